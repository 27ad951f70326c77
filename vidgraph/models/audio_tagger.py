"""Audio tagging with a transformers ``AutoModelForAudioClassification`` (AudioSet AST, or the tiny one).

Scores are sigmoids: AudioSet models are multi-label. :meth:`AudioTagger.tag_windows` scores
fixed windows of a clip in batches; the caller turns them into a per-frame music probability and
a clip's music tags (genre, instrument, mood labels).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

MUSIC_LABEL = "Music"
# Label words that make a tag worth reporting for music (AudioSet genre, instrument, mood names).
MUSIC_TAG_WORDS = ("music", "drum", "guitar", "piano", "synthesizer", "bass", "violin", "orchestra", "singing",
                   "choir", "beat", "percussion", "keyboard", "trumpet", "saxophone", "flute", "strings",
                   "organ", "hip hop", "jazz", "rock", "pop", "techno", "electronic", "ambient", "song")
NOT_TAGS = {"music", "speech", "silence", "noise"}


class AudioTagger:
    def __init__(self, model: str, revision: str = "", device: str = "auto", batch_size: int = 8,
                 name: str | None = None):
        self.path_or_id = model
        self.model_id = name or model
        self.requested_revision = revision or ""
        self.revision = revision or ""
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._fe = None
        self._lock = threading.Lock()

    def load(self):
        with self._lock:
            if self._model is None:
                import os
                from pathlib import Path

                import torch
                from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

                from .backends import _cached_commit, _local_fingerprint, _offline

                kw: dict[str, Any] = {}
                if self.requested_revision:
                    kw["revision"] = self.requested_revision
                if _offline():
                    kw["local_files_only"] = True
                self._fe = AutoFeatureExtractor.from_pretrained(self.path_or_id, **kw)
                model = AutoModelForAudioClassification.from_pretrained(self.path_or_id, **kw).eval()
                dev = self.device
                if dev in ("auto", "", None):
                    dev = "cuda" if torch.cuda.is_available() else "cpu"
                self._model = model.to(dev)
                self._dev = dev
                if os.path.isdir(self.path_or_id):
                    self.revision = self.requested_revision or _local_fingerprint(Path(self.path_or_id))
                else:
                    self.revision = _cached_commit(self.path_or_id, self.requested_revision) or self.revision or "main"
        return self._model

    @property
    def labels(self) -> list[str]:
        m = self.load()
        return [m.config.id2label[i] for i in range(m.config.num_labels)]

    def tag_windows(self, audio: np.ndarray, sr: int, window_s: float, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Sigmoid scores (windows x labels) and each window's start time, for windows of ``window_s``."""
        import torch

        model = self.load()
        x = np.asarray(audio, np.float32)
        win, hop = int(window_s * sr), max(1, int(hop_s * sr))
        starts = list(range(0, max(1, len(x) - win + hop), hop)) if len(x) > win else [0]
        scores = []
        for i in range(0, len(starts), self.batch_size):
            batch = [x[s: s + win] for s in starts[i: i + self.batch_size]]
            batch = [np.pad(b, (0, max(0, int(0.1 * sr) - len(b)))) for b in batch]
            inputs = self._fe(batch, sampling_rate=sr, return_tensors="pt")
            inputs = {k: v.to(self._dev) for k, v in inputs.items()}
            with torch.inference_mode():
                logits = model(**inputs).logits.float()
            scores.append(torch.sigmoid(logits).cpu().numpy())
        return np.concatenate(scores), np.array(starts, np.float64) / sr

    def describe(self) -> dict[str, Any]:
        return {"backend": "transformers", "model_id": self.model_id, "revision": self.revision}


def music_index(labels: list[str]) -> int | None:
    for i, l in enumerate(labels):
        if l.strip().lower() == MUSIC_LABEL.lower():
            return i
    return None


def is_music_tag(label: str) -> bool:
    low = label.strip().lower()
    return low not in NOT_TAGS and any(w in low for w in MUSIC_TAG_WORDS)
