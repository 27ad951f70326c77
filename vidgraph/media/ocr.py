"""On-screen text of keyframes: PP-OCRv4 detection and recognition from ``rapidocr-onnxruntime``.

The wheel ships the ONNX models, so nothing is downloaded. :class:`OcrEngine` detects text boxes
image by image (the detector takes one image at a time; keyframes are at most 512 px, so they are
not resized: ``limit_side_len`` 640 keeps them native, about 0.06 s a frame on one core), then
recognises the crops of every image of the batch together, in batches. A line counts when its
recognition score reaches ``min_score`` and it has at least ``min_chars`` letters or digits:
textured backgrounds (bricks, foliage, noise) give no box or only low-score garbage, which is the
point of using OCR instead of edge density.

OCR text is untrusted data (anyone can burn text into a video): :func:`clean_text` strips control
and format characters and caps the length; consumers must treat it as data, never as instructions.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

MAX_LINE_CHARS = 200
MAX_FRAME_CHARS = 1000
MAX_CLIP_CHARS = 2000
_MASK_WIDTH = 256  # text boxes are rasterised at this width to measure the area they cover


def clean_text(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Printable text only (no control, format or private-use characters), whitespace collapsed, capped."""
    kept = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in str(text))
    return " ".join(kept.split())[:limit]


@dataclass
class OcrLine:
    text: str
    score: float
    quad: list[float]  # x0, y0, ..., x3, y3 as fractions of the image width / height


@dataclass
class FrameOcr:
    lines: list[OcrLine] = field(default_factory=list)
    area_frac: float = 0.0  # share of the image covered by the lines' boxes (their union)

    @property
    def text(self) -> str:
        return clean_text(" / ".join(line.text for line in self.lines), MAX_FRAME_CHARS)


def _alnum(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def box_area_frac(quads: Sequence[Sequence[float]], width: int, height: int) -> float:
    """Share of a ``width`` x ``height`` image covered by the union of quads (fractional coordinates)."""
    if not quads:
        return 0.0
    mw = _MASK_WIDTH
    mh = max(1, int(round(mw * height / max(width, 1))))
    mask = np.zeros((mh, mw), np.uint8)
    for q in quads:
        pts = np.asarray(q, np.float32).reshape(4, 2) * np.array([mw, mh], np.float32)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return float(mask.mean())


class OcrEngine:
    """Batched OCR of images with the PP-OCRv4 models packaged in ``rapidocr-onnxruntime``."""

    def __init__(self, min_score: float = 0.5, min_chars: int = 2, det_limit_side_len: int = 640,
                 rec_batch: int = 16, threads: int | None = None):
        self.min_score = float(min_score)
        self.min_chars = int(min_chars)
        self.det_limit_side_len = int(det_limit_side_len)
        self.rec_batch = int(rec_batch)
        self.threads = threads
        self._engine = None

    def _load(self):
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            kw: dict[str, Any] = {"det_limit_type": "max", "det_limit_side_len": self.det_limit_side_len,
                                  "rec_rec_batch_num": self.rec_batch}
            if self.threads:
                kw["intra_op_num_threads"] = int(self.threads)
            self._engine = RapidOCR(**kw)
        return self._engine

    @property
    def model(self) -> str:
        """The package version and model files, as recorded beside every OCR result."""
        from importlib.metadata import version

        return (f"rapidocr-onnxruntime {version('rapidocr-onnxruntime')}: ch_PP-OCRv4_det_infer + "
                f"ch_PP-OCRv4_rec_infer (min_score {self.min_score:g}, min_chars {self.min_chars})")

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "det_limit_side_len": self.det_limit_side_len, "min_score": self.min_score,
                "min_chars": self.min_chars}

    def read(self, images: Sequence[np.ndarray]) -> list[FrameOcr]:
        """OCR of each image (HxWx3 BGR uint8, as OpenCV decodes JPEGs), in order."""
        eng = self._load()
        crops: list[np.ndarray] = []
        owners: list[tuple[int, list[float]]] = []
        for i, img in enumerate(images):
            img = np.ascontiguousarray(img)
            h, w = img.shape[:2]
            boxes, _ = eng.text_det(img)
            if boxes is None or len(boxes) == 0:
                continue
            boxes = eng.sorted_boxes(boxes)  # top to bottom, left to right
            for box, crop in zip(boxes, eng.get_crop_img_list(img, boxes)):
                if crop.size == 0:
                    continue
                quad = (np.asarray(box, np.float64).reshape(4, 2) / np.array([w, h])).clip(0, 1).ravel().tolist()
                crops.append(crop)
                owners.append((i, quad))
        out = [FrameOcr() for _ in images]
        if crops:
            recs, _ = eng.text_rec(crops)  # every crop of every image, in batches
            for (i, quad), (text, score, *_rest) in zip(owners, recs):
                text = clean_text(text)
                if float(score) >= self.min_score and _alnum(text) >= self.min_chars:
                    out[i].lines.append(OcrLine(text, float(score), [round(v, 5) for v in quad]))
        for img, fo in zip(images, out):
            fo.area_frac = box_area_frac([line.quad for line in fo.lines], img.shape[1], img.shape[0])
        return out

    def read_jpegs(self, jpegs: Sequence[bytes]) -> list[FrameOcr]:
        return self.read([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in jpegs])


def clip_text(frames: Sequence[tuple[float, str]]) -> str:
    """The clip's on-screen text: each keyframe's lines in time order, a line kept once (the first
    time it appears; case and spacing ignored), one line per row, capped."""
    seen: set[str] = set()
    out: list[str] = []
    for _t, text in sorted(frames, key=lambda kv: kv[0]):
        for line in (text or "").split(" / "):
            key = " ".join(line.casefold().split())
            if key and key not in seen:
                seen.add(key)
                out.append(line.strip())
    return _cap_lines(out)


def _cap_lines(lines: list[str]) -> str:
    text, total = [], 0
    for line in lines:
        if total + len(line) + 1 > MAX_CLIP_CHARS:
            break
        text.append(line)
        total += len(line) + 1
    return "\n".join(text)
