"""The packaged all-MiniLM-L6-v2 loads offline and ranks known sentence relations correctly."""

import numpy as np

from vidgraph.models.embeddings import SentenceEmbedder, packaged_minilm_dir


def test_packaged_minilm_paraphrase_high_unrelated_low():
    assert (packaged_minilm_dir() / "model.safetensors").exists()
    emb = SentenceEmbedder()
    sims = emb.similarity(
        ["A man is riding a horse.", "A man is riding a horse.", "A cat sleeps on a sofa.", ""],
        ["Someone rides a horse.", "The stock market fell sharply today.", "A kitten naps on the couch.", "anything"],
    )
    assert sims[0] > 0.7 and sims[2] > 0.6  # paraphrases
    assert sims[1] < 0.2  # unrelated
    assert sims[3] == 0.0  # empty text is a zero vector, never a spurious match
    vecs = emb.encode(["a", "b b"])
    assert vecs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert emb.describe()["revision"] == emb.revision and len(emb.revision) == 12
