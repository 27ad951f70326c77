"""Shot boundaries with PySceneDetect's detectors, fed frames from vidgraph's own decode.

The detectors see the small BGR frames of the analysis pass (so the video is decoded once),
indexed by frame number; timestamps are attached afterwards from the frames' real pts, which
keeps variable-frame-rate sources exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

DETECTORS = ("vidgraph", "content", "adaptive")


@dataclass(frozen=True)
class ShotDetectorConfig:
    detector: str = "vidgraph"
    # vidgraph: the least content_val of a hard cut. ContentDetector: the content_val threshold.
    # AdaptiveDetector: the adaptive ratio threshold.
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
        return {"vidgraph": VidgraphParams.min_content_val, "content": 27.0, "adaptive": 3.0}[self.detector]

    def describe(self) -> dict:
        d = asdict(self)
        d["threshold"] = self.effective_threshold
        if self.detector != "adaptive":
            d.pop("min_content_val")
            d.pop("window_width")
        if self.detector == "vidgraph":
            d.update({k: v for k, v in asdict(VidgraphParams()).items() if k != "min_content_val"})
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
    """Feeds frames to a detector (vidgraph's or PySceneDetect's) and turns its cuts into shots."""

    def __init__(self, config: ShotDetectorConfig, fps: float):
        self.config = config
        self.fps = fps
        self._vg: VidgraphDetector | None = None
        if config.detector == "vidgraph":
            self._vg = VidgraphDetector(
                fps, min_scene_len=config.min_scene_len,
                params=VidgraphParams(min_content_val=config.effective_threshold),
            )
            self._det = None
        elif config.detector == "content":
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
        if self._vg is not None:
            return self._vg.process(index, bgr)
        cuts = self._det.process_frame(FrameTimecode(index, self.fps), bgr)
        self._cuts.extend(c.frame_num for c in cuts)
        return float(self._det._frame_score or 0.0)  # the score it just compared

    def finish(self, n_frames: int) -> list[Shot]:
        if self._vg is not None:
            return shots_from_cuts(self._vg.finish(n_frames), n_frames)
        if n_frames > 0:
            self._cuts.extend(c.frame_num for c in self._det.post_process(FrameTimecode(n_frames - 1, self.fps)))
        return shots_from_cuts(self._cuts, n_frames)

    def describe(self) -> dict:
        library = "vidgraph" if self._vg is not None else "scenedetect"
        return {"name": self.config.detector, "library": library, **self.config.describe()}


def shots_from_cuts(cuts: list[int], n_frames: int) -> list[Shot]:
    """Shots covering [0, n_frames) with no gap or overlap, split at each cut frame."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < n_frames}), n_frames]
    return [Shot(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


# ---------------------------------------------------------------------------------------------
# vidgraph's detector


@dataclass(frozen=True)
class VidgraphParams:
    """Parameters of vidgraph's detector (``ShotDetectorConfig(detector="vidgraph")``)."""

    # Hard cuts: a content_val spike that stands out of its neighbourhood and changes the picture.
    min_content_val: float = 12.0  # least content_val (ContentDetector's HSV score) of a cut
    cut_ratio: float = 3.0  # content_val over the mean of its neighbours (+-cut_window frames)
    cut_window: int = 4
    min_hist_delta: float = 0.15  # least colour-histogram change across a cut...
    min_tiny_delta: float = 18.0  # ...or least change of the 32-px thumbnail (grey levels)
    # Dissolves: frames that are a linear blend of the shots before and after, which differ.
    dissolve_spans_s: tuple[float, ...] = (0.12, 0.25, 0.5)  # half-widths tried, seconds
    dissolve_min_delta: float = 14.0  # thumbnail change across the dissolve (grey levels)
    dissolve_max_residual: float = 0.3  # middle frame off the blend, share of that change
    dissolve_min_hist: float = 0.25  # colour-histogram change across the dissolve
    # the middle frame's colours are new blends, not a mix of the two ends' (as when the camera
    # pans to a new view): histogram distance to the ends' mean, share of their distance
    dissolve_min_mix: float = 0.3
    # Fades through black: a dip of brightness to a small share of the level around it.
    fade_ratio: float = 0.3
    fade_min_level: float = 48.0  # the brightness (HSV V mean) on both sides must reach this
    fade_window_s: float = 1.0


TINY_W = 32
DUPLICATE_SCORE = 0.1  # content_val below this: the frame repeats the previous one


def _hist_hsv(hsv: np.ndarray) -> np.ndarray:
    n = float(hsv.shape[0] * hsv.shape[1])
    hs = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [16], [0, 256]).ravel()
    return (np.concatenate([hs, v]) / n).astype(np.float32)


def _hist_dist(a: np.ndarray, b: np.ndarray) -> float:
    return cv2.norm(a, b, cv2.NORM_L1) / 4.0  # two histograms summing to 1 each: 0..1


class VidgraphDetector:
    """Hard cuts, dissolves and fades through black from cheap per-frame measures.

    Per frame (on the analysis pass's small BGR frame): ContentDetector's HSV score
    (content_val), a colour histogram, brightness, and a 32-px thumbnail kept in a short ring
    buffer. Decisions are made at the end from the per-frame series:

    - hard cut at frame i: content_val[i] is large, stands out of the mean of its neighbours
      (camera motion raises them all, a cut only one), the colour histogram or the thumbnail
      changes too, and the change persists two frames later (not a flash);
    - dissolve: over a window of +-k frames the middle thumbnail is the average of the two
      ends, which differ in picture and colours; the cut goes where the blend passes 50 %;
    - fade through black: brightness dips to a small share of the level on both sides; the cut
      goes at the darkest frame (the middle of the darkest run).

    Candidates closer than min_scene_len are resolved by priority: cut, fade, dissolve.
    """

    def __init__(self, fps: float, min_scene_len: int = 15, params: VidgraphParams = VidgraphParams()):
        self.p = params
        self.fps = fps
        self.min_scene_len = max(1, int(min_scene_len))
        self.ks = sorted({max(2, int(round(fps * s))) for s in params.dissolve_spans_s})
        self._depth = 2 * max(self.ks) + 1
        self._ring: list[tuple[np.ndarray, np.ndarray] | None] = [None] * self._depth
        self._prev_hsv: np.ndarray | None = None
        self._n = 0
        self.content: list[float] = []
        self.hist_delta: list[float] = []
        self.tiny_delta: list[float] = []
        self.persist: list[float] = []  # thumbnail change from frame i-1 to i+2
        self.v_mean: list[float] = []
        # per k, centre frame -> (thumbnail change across, residual share, alpha, histogram change
        # across, histogram mix share, histogram alpha); only where the thumbnail changes enough
        self.blend: dict[int, dict[int, tuple[float, ...]]] = {k: {} for k in self.ks}
        self._tiny_size: tuple[int, int] | None = None

    def process(self, index: int, bgr: np.ndarray) -> float:
        i = self._n
        self._n += 1
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        if self._tiny_size is None:
            h, w = bgr.shape[:2]
            self._tiny_size = (TINY_W, max(2, int(round(TINY_W * h / w))))
            self._half_size = (max(1, w // 2), max(1, h // 2))
            self._tiny_n = float(self._tiny_size[0] * self._tiny_size[1] * 3)
        tiny = cv2.resize(bgr, self._tiny_size, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        # the histogram of every other pixel: the same statistics for a quarter of the work
        hist = _hist_hsv(cv2.resize(hsv, self._half_size, interpolation=cv2.INTER_NEAREST))
        self.v_mean.append(cv2.mean(hsv)[2])
        tn = self._tiny_n
        if self._prev_hsv is None:
            score = 0.0
            self.hist_delta.append(0.0)
            self.tiny_delta.append(0.0)
        else:
            m = cv2.mean(cv2.absdiff(hsv, self._prev_hsv))
            score = (m[0] + m[1] + m[2]) / 3.0  # ContentDetector's default-weight content_val
            prev_tiny, prev_hist = self._ring[(i - 1) % self._depth]
            self.hist_delta.append(_hist_dist(hist, prev_hist))
            self.tiny_delta.append(cv2.norm(tiny, prev_tiny, cv2.NORM_L1) / tn)
        self.content.append(score)
        self._prev_hsv = hsv
        self._ring[i % self._depth] = (tiny, hist)
        self.persist.append(0.0)
        if i >= 3:
            self.persist[i - 2] = cv2.norm(tiny, self._ring[(i - 3) % self._depth][0], cv2.NORM_L1) / tn
        for k in self.ks:
            if i < 2 * k:
                continue
            a, ha = self._ring[(i - 2 * k) % self._depth]
            d = cv2.norm(tiny, a, cv2.NORM_L1) / tn
            if d < self.p.dissolve_min_delta:
                continue
            mid, hm = self._ring[(i - k) % self._depth]
            ab = tiny - a
            r = cv2.norm(mid, (a + tiny) * 0.5, cv2.NORM_L1) / tn / d
            alpha = float(np.dot(mid - a, ab) / max(float(np.dot(ab, ab)), 1e-6))
            hab = _hist_dist(ha, hist)
            mix = _hist_dist(hm, (ha + hist) * 0.5) / max(hab, 1e-6)
            dam, dmb = _hist_dist(ha, hm), _hist_dist(hm, hist)
            self.blend[k][i - k] = (d, r, alpha, hab, mix, dam / max(dam + dmb, 1e-6))
        return score

    # -- decisions ------------------------------------------------------------------------
    def hard_cuts(self) -> list[tuple[int, float]]:
        p = self.p
        c = np.asarray(self.content)
        n = len(c)
        hd, td, pers = np.asarray(self.hist_delta), np.asarray(self.tiny_delta), np.asarray(self.persist)
        out = []
        W = p.cut_window
        for i in np.flatnonzero(c >= p.min_content_val):
            if i == 0:
                continue
            # repeated frames (telecine, low-rate sources) say nothing about motion
            before = c[max(1, i - W):i]
            after = c[i + 1:i + 1 + W]
            before, after = before[before > DUPLICATE_SCORE], after[after > DUPLICATE_SCORE]
            mb = float(before.mean()) if before.size else 0.0
            ma = float(after.mean()) if after.size else 0.0
            both = np.concatenate([before, after])
            ratio = c[i] / max(float(both.mean()) if both.size else 0.0, 0.5)
            # a cut between a still and a moving shot: the still side alone, if colours change a lot
            ratio_side = c[i] / max(min(mb, ma), 0.5)
            # a cut inside shaking or fast motion: content_val is high all along, but the colour
            # histogram (which motion hardly moves) jumps only at the cut
            hnb = np.concatenate([hd[max(1, i - W):i], hd[i + 1:i + 1 + W]])
            hist_ratio = hd[i] / max(float(hnb.mean()) if hnb.size else 0.0, 0.01)
            if not (
                (ratio >= p.cut_ratio and (hd[i] >= p.min_hist_delta or td[i] >= p.min_tiny_delta))
                or (ratio_side >= 2 * p.cut_ratio and hd[i] >= 2 * p.min_hist_delta)
                or (hd[i] >= 2 * p.min_hist_delta and hist_ratio >= 2 * p.cut_ratio)
            ):
                continue
            if i + 2 < n and pers[i] < 0.5 * td[i]:
                continue  # the picture comes back: a flash, not a cut
            out.append((int(i), float(ratio)))
        return out

    def fades(self) -> list[tuple[int, float]]:
        p = self.p
        v = np.asarray(self.v_mean)
        n = len(v)
        L = max(2, int(round(p.fade_window_s * self.fps)))
        out = []
        i = 0
        while i < n:
            lo, hi = max(0, i - L), min(n, i + L + 1)
            before = v[lo:i].max() if i > lo else 0.0
            after = v[i + 1:hi].max() if hi > i + 1 else 0.0
            ref = min(before, after)
            if ref >= p.fade_min_level and v[i] <= p.fade_ratio * ref:
                # the dark run: frames within +1 level of the darkest in this dip
                j = i
                while j + 1 < n and v[j + 1] <= p.fade_ratio * ref:
                    j += 1
                seg = v[i:j + 1]
                dark = np.flatnonzero(seg <= seg.min() + 1.0)
                centre = i + (int(dark[0]) + int(dark[-1]) + 1) // 2
                out.append((centre, float(ref / max(seg.min(), 1.0))))
                i = j + 1
            else:
                i += 1
        return out

    def dissolves(self) -> list[tuple[int, float]]:
        p = self.p
        out = []
        K = max(self.ks)
        for k in self.ks:
            ok = sorted(
                j for j, (d, r, a, h, mix, ha) in self.blend[k].items()
                if d >= p.dissolve_min_delta and r <= p.dissolve_max_residual and h >= p.dissolve_min_hist
                and mix >= p.dissolve_min_mix and 0.2 <= a <= 0.8
            )
            runs: list[list[int]] = []
            for j in ok:
                if runs and j - runs[-1][-1] <= 1:
                    runs[-1].append(j)
                else:
                    runs.append([j])
            for run in runs:
                alphas = [self.blend[k][j][2] for j in run]
                if len(run) < 2 or not (min(alphas) < 0.5 <= max(alphas)):
                    continue  # the blend must pass its middle inside the run
                # Place the cut where the colours are half way between the two shots, measured
                # over the widest window (its ends lie outside the dissolve; histograms shrug
                # off motion); else at the run's middle.
                centre = (run[0] + run[-1] + 1) // 2
                lo, hi = run[0] - K // 2, run[-1] + K // 2 + 1
                cross = [
                    j for j in range(max(lo, 1), hi)
                    if j in self.blend[K] and j - 1 in self.blend[K]
                    and self.blend[K][j - 1][5] < 0.5 <= self.blend[K][j][5]
                ]
                cut = min(cross, key=lambda j: abs(j - centre)) if cross else centre
                out.append((cut, float(max(self.blend[k][j][0] for j in run))))
        return out

    def finish(self, n_frames: int) -> list[int]:
        cands = [(0, s, i) for i, s in self.hard_cuts()]
        cands += [(1, s, i) for i, s in self.fades()]
        cands += [(2, s, i) for i, s in self.dissolves()]
        cands.sort(key=lambda x: (x[0], -x[1]))
        chosen: list[int] = []
        for _, _, i in cands:
            if i < self.min_scene_len or i >= n_frames:
                continue
            if all(abs(i - j) >= self.min_scene_len for j in chosen):
                chosen.append(i)
        return sorted(chosen)
