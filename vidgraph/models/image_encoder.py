"""Image encoders for keyframe redundancy: how different is one frame from another?

ShareGPT4Video keeps a 2-s keyframe only if its CLIP image embedding differs enough from the last
kept keyframe's (cosine similarity below 0.93). Two encoders sit behind one interface:

* :class:`ColourGridEncoder` (CPU default): a small colour/structure embedding, an 8x8 CIELAB
  thumbnail; the distance is the share of cells whose colour changed. It sees layout, colour and
  objects of about 1/64 of the frame and more, not meaning, and costs well under a millisecond a
  frame. A 64-bit perceptual hash (``imagehash.phash``) was tried first and dropped: it is grey-only
  and missed a new object of a ninth of the frame whose lightness matched the background. The
  threshold was calibrated on labelled synthetic pairs (``bench/captions.py --keyframe-rule``; numbers
  in bench/README.md).
* :class:`CLIPImageEncoder` (``gpu`` profile): any transformers checkpoint with
  ``get_image_features`` (CLIP, SigLIP) or an ``image_embeds`` output; the distance is
  ``1 - cosine``, so the paper's rule "cosine < 0.93" is "distance > 0.07".

A frame is kept when its distance to the last kept frame is *greater* than the threshold.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import numpy as np

from .backends import ModelNotAvailableError, missing_model_message

# Calibrated on labelled synthetic keyframe pairs (bench/captions.py --keyframe-rule, 2026-12-01): redundant
# pairs (the same view re-encoded as JPEG, with sensor noise, with flicker, a subject moved by 3 % of
# the width, a pan of 2 %) scored at most 1/64; distinct pairs (a new object over a ninth of the frame,
# pans of 12 % and more, a new scene) at least 8/64. The threshold sits between them.
GRID_THRESHOLD = 5 / 64
CLIP_THRESHOLD = 0.07  # ShareGPT4Video: keep when cosine similarity < 0.93


class ImageEncoder(ABC):
    """Embeds images; ``distance`` compares two embeddings (0 = the same picture)."""

    name: str = ""
    revision: str = ""
    default_threshold: float = 0.0

    @abstractmethod
    def embed(self, images: Sequence[Any]) -> np.ndarray:
        """One row per image (PIL images or HxWx3 RGB uint8 arrays)."""

    @abstractmethod
    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        ...

    def describe(self) -> dict[str, Any]:
        return {"encoder": self.name, "revision": self.revision, "metric": self.metric,
                "default_threshold": self.default_threshold}

    metric: str = ""

    @property
    def ref(self) -> str:
        """Identity for code versions."""
        return f"{self.name}@{self.revision or 'main'}"

    def close(self) -> None:
        pass


def _pil(img):
    from PIL import Image

    return img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))


class ColourGridEncoder(ImageEncoder):
    """An 8x8 CIELAB thumbnail (area-averaged) with the frame's mean lightness removed; the distance
    is the share of the 64 cells whose colour moved by more than ``delta_e`` (CIE76).

    Removing the mean lightness ignores global flicker and exposure drift; area averaging ignores
    sensor and compression noise; a cell changes when something the size of 1/64 of the frame
    appears, leaves or moves, or when the camera pans."""

    metric = "share of 8x8 CIELAB cells (mean L removed) with delta E > 30"
    default_threshold = GRID_THRESHOLD

    def __init__(self, grid: int = 8, delta_e: float = 30.0):
        self.grid = grid
        self.delta_e = delta_e
        self.name = "colour-grid"
        self.revision = f"grid{grid}-de{delta_e:g}-v1"
        self.metric = f"share of {grid}x{grid} CIELAB cells (mean L removed) with delta E > {delta_e:g}"

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        import cv2

        out = []
        for im in images:
            rgb = np.asarray(_pil(im).convert("RGB"), dtype=np.uint8)
            small = cv2.resize(rgb, (self.grid, self.grid), interpolation=cv2.INTER_AREA)
            # float input: L in [0, 100], a and b in about [-127, 127] (CIE units)
            lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
            lab[..., 0] -= lab[..., 0].mean()
            out.append(lab.reshape(-1))
        return np.stack(out) if out else np.zeros((0, self.grid * self.grid * 3), dtype=np.float32)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        da = (np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).reshape(-1, 3)
        return float((np.sqrt((da ** 2).sum(-1)) > self.delta_e).mean())


class CLIPImageEncoder(ImageEncoder):
    """A transformers image-text model's image tower; distance = 1 - cosine of the embeddings."""

    metric = "1 - cosine similarity of the image embeddings"
    default_threshold = CLIP_THRESHOLD

    def __init__(self, model: str, revision: str | None = None, device: str = "auto", batch_size: int = 32,
                 name: str | None = None):
        self.model_path = str(model)
        self.name = name or self.model_path
        self.revision = revision or ""
        self.device_pref = device
        self.batch_size = batch_size
        self._model = None
        self._processor = None

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoImageProcessor, AutoModel

        local = os.path.isdir(self.model_path)
        kwargs: dict[str, Any] = {} if local else {"revision": self.revision or None}
        try:
            self._processor = AutoImageProcessor.from_pretrained(self.model_path, **kwargs)
            model = AutoModel.from_pretrained(self.model_path, **kwargs)
        except (OSError, ValueError) as e:
            raise ModelNotAvailableError(missing_model_message(self.model_path, self.revision or None, str(e))) from e
        device = self.device_pref
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            model = model.to(torch.bfloat16)
        self._model = model.to(device).eval()

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        self.load()
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = self._processor(images=[_pil(im) for im in images[i: i + self.batch_size]], return_tensors="pt")
            pixels = batch["pixel_values"].to(self._model.device, dtype=self._model.dtype)
            with torch.inference_mode():
                if hasattr(self._model, "get_image_features"):
                    feats = self._model.get_image_features(pixel_values=pixels)
                else:
                    feats = self._model(pixel_values=pixels)
                # transformers 5 returns an output object whose pooler_output is the projected embedding
                if not isinstance(feats, torch.Tensor):
                    feats = getattr(feats, "image_embeds", None) if getattr(feats, "image_embeds", None) is not None \
                        else feats.pooler_output
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
            out.append(feats.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(1.0 - np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))

    def close(self) -> None:
        self._model = None
        self._processor = None


def build_image_encoder(spec: Mapping[str, Any] | None) -> ImageEncoder:
    """The keyframe encoder a profile's ``captions.keyframe_encoder`` names (absent: the colour grid).

    ``{backend: grid}`` or ``{backend: transformers, model: <hub id | folder | tiny:...>, revision: ...}``.
    """
    spec = dict(spec or {})
    backend = spec.get("backend", "grid" if not spec.get("model") else "transformers")
    if backend == "grid":
        return ColourGridEncoder(int(spec.get("grid", 8)), float(spec.get("delta_e", 30.0)))
    if backend == "transformers":
        from .profiles import resolve_model

        model = str(spec["model"])
        return CLIPImageEncoder(resolve_model(model), spec.get("revision") or None, spec.get("device", "auto"),
                                int(spec.get("batch_size", 32)), name=model)
    raise ValueError(f"unknown keyframe encoder backend {backend!r}; use 'grid' or 'transformers'")
