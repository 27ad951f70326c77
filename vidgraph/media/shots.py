"""Shot boundaries with PySceneDetect's detectors, fed frames from vidgraph's own decode.

The detectors see the small BGR frames of the analysis pass (so the video is decoded once),
indexed by frame number; timestamps are attached afterwards from the frames' real pts, which
keeps variable-frame-rate sources exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

DETECTORS = ("content", "adaptive")


@dataclass(frozen=True)
class ShotDetectorConfig:
    detector: str = "content"
    # ContentDetector: the content_val threshold. AdaptiveDetector: the adaptive ratio threshold.
    threshold: float | None = None
    min_scene_len: int = 15  # frames, as PySceneDetect counts them
    min_content_val: float = 15.0  # AdaptiveDetector only
    window_width: int = 2  # AdaptiveDetector only

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")

    @property
    def effective_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return 27.0 if self.detector == "content" else 3.0

    def describe(self) -> dict:
        d = asdict(self)
        d["threshold"] = self.effective_threshold
        if self.detector == "content":
            d.pop("min_content_val")
            d.pop("window_width")
        return d


@dataclass
class Shot:
    start_frame: int
    end_frame: int  # exclusive
    start_s: float = 0.0
    end_s: float = 0.0  # exclusive: the start time of the next shot's first frame

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_s": round(self.start_s, 6),
            "end_s": round(self.end_s, 6),
        }


class ShotSplitter:
    """Feeds frames to a PySceneDetect detector and turns its cut list into shots."""

    def __init__(self, config: ShotDetectorConfig, fps: float):
        self.config = config
        self.fps = fps
        if config.detector == "content":
            self._det = ContentDetector(threshold=config.effective_threshold, min_scene_len=config.min_scene_len)
        else:
            self._det = AdaptiveDetector(
                adaptive_threshold=config.effective_threshold,
                min_scene_len=config.min_scene_len,
                min_content_val=config.min_content_val,
                window_width=config.window_width,
            )
        self._cuts: list[int] = []

    def process(self, index: int, bgr: np.ndarray) -> float:
        """Feed one frame; returns the detector's content score for it (0 for the first)."""
        cuts = self._det.process_frame(FrameTimecode(index, self.fps), bgr)
        self._cuts.extend(c.frame_num for c in cuts)
        return float(self._det._frame_score or 0.0)  # the score it just compared

    def finish(self, n_frames: int) -> list[Shot]:
        if n_frames > 0:
            self._cuts.extend(c.frame_num for c in self._det.post_process(FrameTimecode(n_frames - 1, self.fps)))
        return shots_from_cuts(self._cuts, n_frames)

    def describe(self) -> dict:
        return {"name": self.config.detector, "library": "scenedetect", **self.config.describe()}


def shots_from_cuts(cuts: list[int], n_frames: int) -> list[Shot]:
    """Shots covering [0, n_frames) with no gap or overlap, split at each cut frame."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < n_frames}), n_frames]
    return [Shot(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
