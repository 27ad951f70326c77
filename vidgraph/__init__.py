"""vidgraph: raw videos to a multimodal video-language dataset."""
