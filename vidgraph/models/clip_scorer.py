"""Semantic quality of a clip: a transformers image model scores its keyframes.

The model is any ``AutoModelForImageClassification`` checkpoint. With one output (an aesthetic
or quality regressor) the score is the sigmoid of its logit; with several, it is the softmax
probability of the label named in ``label`` (for example ``"good"``). A clip's score is the mean
over its keyframes. The model loads once and scores every keyframe of the shard in batches.
"""

from __future__ import annotations

import io
import os
from typing import Any, Sequence

import numpy as np

from .backends import ModelNotAvailableError, missing_model_message


class ClipScorer:
    def __init__(self, model: str, revision: str | None = None, label: str | None = None,
                 device: str = "auto", batch_size: int = 32, name: str | None = None):
        self.model_id = str(model)
        self.name = name or self.model_id  # as configured (e.g. tiny:scorer), for provenance
        self.revision = revision or None
        self.label = label
        self.device_pref = device
        self.batch_size = batch_size
        self._model = None
        self._processor = None
        self._label_index: int | None = None

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        local = os.path.isdir(self.model_id)
        kwargs: dict[str, Any] = {} if local else {"revision": self.revision}
        try:
            self._processor = AutoImageProcessor.from_pretrained(self.model_id, **kwargs)
            model = AutoModelForImageClassification.from_pretrained(self.model_id, **kwargs)
        except (OSError, ValueError) as e:
            raise ModelNotAvailableError(missing_model_message(self.model_id, self.revision, str(e))) from e
        device = self.device_pref
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = model.to(device).eval()
        n = model.config.num_labels
        if n > 1:
            labels = {v.lower(): int(k) for k, v in model.config.id2label.items()}
            if not self.label or self.label.lower() not in labels:
                raise ValueError(
                    f"{self.model_id} has {n} labels ({', '.join(sorted(labels))}); set the scorer's "
                    "`label` to the one that means good quality"
                )
            self._label_index = labels[self.label.lower()]

    def score_images(self, images: Sequence[Any]) -> list[float]:
        """One score in [0, 1] per image (PIL images or HxWx3 RGB arrays)."""
        import torch

        self.load()
        out: list[float] = []
        for i in range(0, len(images), self.batch_size):
            batch = self._processor(images=list(images[i : i + self.batch_size]), return_tensors="pt")
            batch = {k: v.to(self._model.device) for k, v in batch.items()}
            with torch.inference_mode():
                logits = self._model(**batch).logits.float()
            if logits.shape[-1] == 1:
                scores = torch.sigmoid(logits[:, 0])
            else:
                scores = torch.softmax(logits, -1)[:, self._label_index]
            out.extend(float(s) for s in scores.cpu())
        return out

    def score_jpegs(self, jpegs: Sequence[bytes]) -> float:
        """Mean score over a clip's keyframes (JPEG bytes)."""
        return float(np.mean(self.score_images([decode_jpeg(b) for b in jpegs]))) if jpegs else float("nan")

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "revision": self.revision or "", "label": self.label or "",
                "aggregate": "mean over keyframes"}


def decode_jpeg(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")
