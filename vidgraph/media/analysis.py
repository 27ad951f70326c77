"""The one low-resolution decode pass: cuts, per-frame signals, flow, quality and keyframes.

Everything the shot splitter and the long-take filter measure comes from this single walk over
the frames. Each decoded frame is shrunk plane by plane (no swscale) to a 256-px luma plane
(the luma signals, and at 2 fps sharpness and text bands) and a 128-px BGR image (the shot
detector). Per-frame signals are measured on stacks of ``batch_frames`` frames: per-pixel
work (colour conversion, the difference to the previous frame and its sum) is one OpenCV call
on the stack, histograms one call per frame, and the arithmetic on thumbnails and the
detector's windows exact integer sums over the stack. A thread of its own only decodes (FFmpeg's
frame and slice threads spread that over the cores where the codec has them); the shrinking,
the keyframe JPEGs and the 2 fps measures (Farneback flow on 80-px frames, sharpness, text
bands) run in the measuring thread, the flow in a third thread only beside a decoder that
runs on one core. Every number is the same from run to run and the same as frame by frame
(``batch_frames=1``, the reference).
"""

from __future__ import annotations

import math
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

from vidgraph.media.decode import _PLANAR_YUV8, even_size, iter_video_frames, plane_array, rotate_for_display
from vidgraph.media.probe import InputPolicy, open_input
from vidgraph.media.shots import TINY_W, Shot, ShotDetectorConfig, ShotSplitter, level_stats, time_shots


# Farneback on 80-px gray frames. A 3-level pyramid and a 15-px window track displacements of
# 5+ px between samples (a brisk pan at 2 fps); on synthetic pans of known speed (up to 1.5 px
# a frame at 320 px, 2 fps) they read the true speed as closely as the 160-px setup used before
# (4 levels, 21 px), at under a quarter of its cost (bench/README.md, "Analysis pass").
FARNEBACK_PARAMS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 7, "poly_sigma": 1.5}


@dataclass(frozen=True)
class AnalysisConfig:
    # The shot detector's frames (every frame). The luma signals (every frame) and the 2 fps
    # sharpness and text bands are measured on a luma plane twice this size, where the source
    # is that large: its histograms keep the statistics their thresholds were set on.
    width: int = 128
    sample_fps: float = 2.0  # rate of flow / quality samples
    flow_width: int = 80
    static_flow_threshold: float = 0.002  # per-pixel flow (fraction of the diagonal) counted as static
    keyframe_every_s: float = 2.0
    keyframe_max_side: int = 512
    keyframe_jpeg_quality: int = 85
    # Per-frame signals are measured on stacks of this many frames; 1 measures frame by frame
    # (the reference the batched pass is tested against; same outputs, slower).
    batch_frames: int = 64

    def describe(self) -> dict:
        d = asdict(self)
        d.pop("batch_frames")  # how the work is grouped, not what is measured
        return d


FRAME_SIGNALS = ("t_s", "content_val", "luma_mean", "luma_std", "hist_delta")
SAMPLE_SIGNALS = (
    "frame_index",
    "t_s",
    "prev_frame_index",
    "flow_mean",
    "flow_p50",
    "flow_p90",
    "static_frac",
    "pan_x",
    "pan_y",
    "zoom",
    "rotation",
    "residual",
    "sharpness",
    "text_top",
    "text_bottom",
    "luma_mean",
    "luma_std",
)


@dataclass
class Keyframe:
    frame_index: int
    t_s: float
    width: int
    height: int
    jpeg: bytes


@dataclass
class VideoAnalysis:
    fps: float
    n_frames: int
    duration_s: float  # end of the last frame, relative to the first
    width: int
    height: int
    frames: dict[str, np.ndarray]  # one value per decoded frame (FRAME_SIGNALS)
    samples: dict[str, np.ndarray]  # one value per sampled frame (SAMPLE_SIGNALS)
    keyframes: list[Keyframe]
    shots: list[Shot]
    detector: dict
    config: dict = field(default_factory=dict)

    def frame_end_s(self, index: int) -> float:
        """Start time of frame ``index`` (or the video's end for index == n_frames)."""
        return self.duration_s if index >= self.n_frames else float(self.frames["t_s"][index])


_FRAME_THREADS, _SLICE_THREADS = 1 << 12, 1 << 13  # AV_CODEC_CAP_FRAME_THREADS, _SLICE_THREADS
# Bytes of decoded full-size frames (counted at 3 bytes a pixel) queued between decoder and
# measures: the decoder runs on while a stack is measured; more run-ahead was no faster (128 MB
# took 25-60 MB more memory on 576p-720p at the same speed).
_FULL_FRAMES_BUDGET = 32 << 20


def threaded_decoder(stream) -> bool:
    """Whether the stream's decoder can spread its work over threads (frames or slices)."""
    return bool(int(getattr(stream.codec_context.codec, "capabilities", 0) or 0) & (_FRAME_THREADS | _SLICE_THREADS))


def _done(fn: Callable, *args) -> Future:
    """``fn(*args)`` run now, as a finished Future (the flow measured in the measuring thread)."""
    f: Future = Future()
    f.set_result(fn(*args))
    return f


def configure_decoder(stream) -> None:
    """Decoder threading for the analysis pass: frame + slice threads on every core.

    Frame threading only changes when frames come out of the decoder, never which frames or
    their order, so indices stay those of ``iter_video_frames`` everywhere else.
    """
    try:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = 0  # one per core
    except Exception:  # an already-open codec context keeps its settings
        pass


def shrink(plane: np.ndarray, w: int, h: int) -> np.ndarray:
    """Downscale an 8-bit plane to (w, h): area-halvings (OpenCV's fast 2x2 path) while the
    plane is at least twice the target, then one bilinear step of less than 2x. Close to a
    single INTER_AREA resize (within ~0.5 grey levels) at a third of its cost on 720p."""
    ph, pw = plane.shape[:2]
    while pw >= 2 * w and ph >= 2 * h:
        pw, ph = pw // 2, ph // 2
        # An odd side loses its last row or column: OpenCV's fast path needs an exact halving
        # (its general area resize took 5x longer on 720x405 MPEG-2).
        plane = cv2.resize(plane[: 2 * ph, : 2 * pw], (pw, ph), interpolation=cv2.INTER_AREA)
    if (pw, ph) == (w, h):
        # A copy: an unresized plane is a view of the decoder's buffer, which FFmpeg reuses for
        # later frames while this one is still queued or measured (signals then changed run to run).
        return plane.copy() if plane.base is not None else plane
    return cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR)


_END = object()
IDLE = object()  # prefetch(mark_idle=True): the consumer has caught up with the producer
IDLE_BATCH = 8  # the least stack measured early when the measuring thread has caught up


def prefetch(items: Iterable, fn: Callable, depth: int = 8, chunk: int = 1, mark_idle: bool = False) -> Iterator[tuple]:
    """Yield ``(item, fn(item))``, with the iteration and ``fn`` running in a background thread
    up to ``depth`` chunks of ``chunk`` items ahead.

    Decoding (FFmpeg) releases the GIL, so the next frames are decoded while this thread
    measures the current one; without it the decoder's threads sit idle whenever the analysis
    is busy. Items cross between the threads in chunks, so the hand-off's locking is paid once
    per chunk, not per frame. With ``mark_idle``, the marker ``IDLE`` comes before each wait for
    the producer: the consumer has caught up and may do now what it was saving up. The thread
    is joined before this returns, so the container is never closed under it; its exceptions
    are raised here.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    chunk = max(1, int(chunk))

    def work() -> None:
        out: list = []
        try:
            for item in items:
                if stop.is_set():
                    return
                out.append((item, fn(item)))
                if len(out) >= chunk:
                    q.put(out)
                    out = []
            if out:
                q.put(out)
            q.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            if out:
                q.put(out)
            q.put(e)

    worker = threading.Thread(target=work, name="vidgraph-decode", daemon=True)
    worker.start()
    try:
        while True:
            if mark_idle and q.empty():
                yield IDLE
            got = q.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue, then join it
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def analysis_size(width: int, src_w: int, src_h: int) -> tuple[int, int]:
    """The analysis frame's size: ``width`` across (at most the source's), and a height that
    is a whole multiple of the detector's 32-px thumbnail's, so the thumbnail is an exact
    area reduction (OpenCV's fast path; 5x the cost otherwise). The aspect ratio moves by at
    most half a thumbnail row; narrower sources keep :func:`even_size`."""
    if width % TINY_W or src_w < width:
        return even_size(width, src_w, src_h)
    th = max(1, int(round(TINY_W * src_h / src_w)))
    return width, max(2, (width // TINY_W) * th // 2 * 2)


def _some_rows(plane: np.ndarray, out_h: int) -> np.ndarray:
    """Every k-th row of a plane k or more times taller than twice ``out_h`` (a strided view, no
    copy): a shrink reads the decoded frame from memory, and half its rows still give every
    output row at least two source rows to average."""
    k = plane.shape[0] // (2 * max(1, out_h))
    return plane[::k] if k >= 2 else plane


def analysis_frames(frame, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The analysis pass's luma, small luma (h, w) and small BGR image of one decoded frame,
    for the per-frame signals (tall planes are read every k-th row: ``_some_rows``).

    The luma is (2w, 2h) where the frame is at least that large (the small luma its exact 2x2
    area halving), else the small luma itself. Planar 8-bit YUV is read plane by plane, each plane shrunk
    straight to its size, and only the small I420 image is converted to BGR; other layouts
    (10-bit, NV12, RGB, palettes) are converted to yuv420p first.
    """
    if frame.format.name not in _PLANAR_YUV8:
        frame = frame.reformat(format="yuv420p")
    planes = frame.planes
    if frame.width >= 2 * w and frame.height >= 2 * h:
        y_luma = shrink(_some_rows(plane_array(planes[0]), 2 * h), 2 * w, 2 * h)
        y_small = cv2.resize(y_luma, (w, h), interpolation=cv2.INTER_AREA)
    else:
        y_luma = y_small = shrink(_some_rows(plane_array(planes[0]), h), w, h)
    u_small = shrink(_some_rows(plane_array(planes[1]), h // 2), w // 2, h // 2)
    v_small = shrink(_some_rows(plane_array(planes[2]), h // 2), w // 2, h // 2)
    return y_luma, y_small, i420_to_bgr(y_small, u_small, v_small)


def i420_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A BGR image of small Y, U and V planes (4:2:0), by OpenCV (limited-range BT.601)."""
    h, w = y.shape
    return cv2.cvtColor(np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420)


def quality_luma(frame, w: int, h: int) -> np.ndarray:
    """The luma plane of one decoded frame shrunk to (w, h) from all its rows, for the 2 fps
    measures (sharpness and text bands)."""
    if frame.format.name not in _PLANAR_YUV8:
        frame = frame.reformat(format="yuv420p")
    return shrink(plane_array(frame.planes[0]), w, h)


def frame_signals(y_small: np.ndarray, prev_hist: np.ndarray | None) -> tuple[float, float, float, np.ndarray]:
    """Luma mean, luma std, histogram change and histogram of one luma frame (a stack of one)."""
    mean, std, delta, hists = frame_signals_batch(y_small[None], prev_hist)
    return float(mean[0]), float(std[0]), float(delta[0]), hists[0]


def frame_signals_batch(ys: np.ndarray, prev_hist: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Luma means, stds, histogram changes and 32-bin histograms of a (B, h, w) stack.

    One OpenCV histogram of 256 levels per frame gives all three (numpy's are slower on 8-bit
    planes); the statistics and changes are numpy over the stack.
    """
    b = ys.shape[0]
    counts = np.empty((b, 256), np.float32)
    for j in range(b):
        counts[j] = cv2.calcHist([ys[j]], [0], None, [256], [0, 256]).ravel()
    mean, std = level_stats(counts)
    hists = (counts.reshape(b, 32, 8).sum(axis=2) / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)).astype(np.float32)
    prev = np.concatenate([(hists[:1] if prev_hist is None else prev_hist[None]), hists[:-1]])
    delta = np.abs(hists - prev).sum(axis=1) / 2
    if prev_hist is None:
        delta[0] = 0.0
    return mean, std, delta.astype(np.float64), hists


def sample_signals(prev_gray: np.ndarray | None, gray: np.ndarray, y_small: np.ndarray, static_thr: float) -> dict:
    """The 2 fps measures of one sampled frame: flow from the previous sample, sharpness, text bands."""
    if prev_gray is not None:
        stats = _flow_stats(prev_gray, gray, static_thr)
    else:
        stats = dict.fromkeys(
            ("flow_mean", "flow_p50", "flow_p90", "static_frac", "pan_x", "pan_y", "zoom", "rotation", "residual"),
            np.nan,
        )
    top, bottom = _text_band_density(y_small)
    stats["sharpness"] = sharpness(y_small)
    stats["text_top"] = top
    stats["text_bottom"] = bottom
    return stats


def sharpness(y: np.ndarray) -> float:
    """Variance of the Laplacian of an 8-bit plane. The Laplacian is whole numbers within
    +-1020, so int16 holds it exactly and numpy's variance of it is the float64 one to the bit,
    at a third of the cost."""
    return float(cv2.Laplacian(y, cv2.CV_16S).var())


GIL_SWITCH_S = 0.0005  # the GIL switch interval while the decoder thread runs beside the pass


@contextmanager
def _setting(get: Callable, set_: Callable, value):
    """A process-wide setting held at ``value`` for the block, restored after."""
    old = get()
    set_(value)
    try:
        yield
    finally:
        set_(old)


def switch_interval(seconds: float):
    """Python's thread switch interval, for the block."""
    return _setting(sys.getswitchinterval, sys.setswitchinterval, seconds)


def opencv_threads(n: int):
    """Hold OpenCV to ``n`` threads (and restore it after). Its parallel loops split work into
    stripes by the threads free at that moment, so with one thread per call no result can
    depend on the machine's load; the pass gets its parallelism from its own threads instead
    (decode, signals, flow)."""
    return _setting(cv2.getNumThreads, cv2.setNumThreads, n)


def _text_band_density(y_small: np.ndarray, band: float = 0.15) -> tuple[float, float]:
    """Edge density in the top and bottom bands, where overlaid titles and subtitles sit."""
    h = y_small.shape[0]
    k = max(2, int(h * band))
    if 2 * k + 2 >= h:
        edges = cv2.Canny(y_small, 100, 200)
        return float(edges[:k].mean() / 255.0), float(edges[-k:].mean() / 255.0)
    # Only the bands are searched for edges (a row more, so their inner border is measured as
    # inside the whole picture): a third of the work.
    top = cv2.Canny(np.ascontiguousarray(y_small[: k + 1]), 100, 200)[:k]
    bottom = cv2.Canny(np.ascontiguousarray(y_small[-k - 1:]), 100, 200)[1:]
    return float(top.mean() / 255.0), float(bottom.mean() / 255.0)


FLOW_GRID = 2  # the affine fit samples the flow every FLOW_GRID px (on the 80-px flow frame)


@lru_cache(maxsize=8)
def _affine_basis(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix of the affine flow model on the sampling grid, and its pseudo-inverse."""
    diag = float(np.hypot(w, h))
    ys, xs = np.mgrid[0:h:FLOW_GRID, 0:w:FLOW_GRID]
    xn = (xs - w / 2) / diag
    yn = (ys - h / 2) / diag
    A = np.stack([np.ones_like(xn), xn, yn], -1).reshape(-1, 3)
    return A, np.ascontiguousarray(np.linalg.pinv(A).T)


def _solve3(m: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve a 3x3 system by its adjugate (exact arithmetic order, no BLAS threads)."""
    (a, b, c), (d, e, f), (g, h, i) = m.tolist()
    co = np.array([[e * i - f * h, c * h - b * i, b * f - c * e],
                   [f * g - d * i, a * i - c * g, c * d - a * f],
                   [d * h - e * g, b * g - a * h, a * e - b * d]])
    det = a * co[0, 0] + b * co[1, 0] + c * co[2, 0]
    return (co * r).sum(axis=1) / det


def _median(x: np.ndarray) -> float:
    """``np.median(x)`` of a 1-D array by partial sorting (the mean of the middle two for an even
    size, as numpy takes it), without numpy's NaN check, whose first call imports numpy.ma."""
    n = x.size
    if n % 2:
        return float(np.partition(x, n // 2)[n // 2])
    part = np.partition(x, (n // 2 - 1, n // 2))
    return float((part[n // 2 - 1] + part[n // 2]) / 2)


def _percentiles(x: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(x, qs)`` (linear interpolation) by partial sorting: a fifth of its cost."""
    n = x.size
    pos = [(n - 1) * q / 100.0 for q in qs]
    kth = sorted({int(math.floor(p)) for p in pos} | {min(n - 1, int(math.floor(p)) + 1) for p in pos})
    part = np.partition(x, kth)
    out = []
    for p in pos:
        lo = int(math.floor(p))
        hi = min(n - 1, lo + 1)
        out.append(float(part[lo] + (part[hi] - part[lo]) * (p - lo)))
    return out


def _flow_stats(prev: np.ndarray, cur: np.ndarray, static_thr: float) -> dict[str, float]:
    """Farneback flow between two small gray frames, in fractions of the frame diagonal,
    so scores do not depend on resolution; plus an affine fit for camera motion."""
    # A zeroed output buffer, so nothing of a fresh allocation can reach the result (with None,
    # flow_mean differed in its last bits between runs; see also the magnitude below).
    flow = cv2.calcOpticalFlowFarneback(prev, cur, np.zeros((*prev.shape, 2), np.float32), **FARNEBACK_PARAMS, flags=0)
    h, w = prev.shape
    diag = float(np.hypot(w, h))
    flow *= 1.0 / diag
    fx, fy = flow[..., 0], flow[..., 1]
    # numpy, not cv2.magnitude: given these strided views of the flow, cv2.magnitude returned
    # values that differed in the last bits from run to run (flow_mean moved by up to ~4e-9).
    mag = np.sqrt(fx * fx + fy * fy)
    # Affine model u = a0 + a1 x + a2 y, v = b0 + b1 x + b2 y over normalised coordinates
    # (least squares through the cached pseudo-inverse of the fixed design matrix). Products
    # are einsum, not matrix products: those go to OpenBLAS, whose worker threads then spin
    # beside the pass.
    A, pinv_t = _affine_basis(h, w)
    uv = np.stack([fx[::FLOW_GRID, ::FLOW_GRID].reshape(-1), fy[::FLOW_GRID, ::FLOW_GRID].reshape(-1)], 1).astype(np.float64)
    coef = np.einsum("ni,nj->ij", pinv_t, uv)  # (3, 2): a0 a1 a2 | b0 b1 b2
    d = uv - np.einsum("ni,ij->nj", A, coef)
    resid = np.sqrt(np.einsum("nj,nj->n", d, d))
    # Refit on the points the camera model explains, so a moving subject does not read as a pan.
    inliers = resid <= 2 * _median(resid) + 1e-6
    if 12 <= inliers.sum() < len(uv):
        Ai = A[inliers]
        m = np.einsum("ij,ik->jk", Ai, Ai)
        rhs = np.einsum("ni,nj->ij", Ai, uv[inliers])
        coef = np.stack([_solve3(m, rhs[:, 0]), _solve3(m, rhs[:, 1])], 1)
    ca, cb = coef[:, 0], coef[:, 1]
    a0, a1, a2 = ca
    b0, b1, b2 = cb
    p50, p90 = _percentiles(mag.ravel(), (50, 90))
    # Sums in float64 in numpy's fixed pairwise order: the same numbers on every run.
    return {
        "flow_mean": float(mag.sum(dtype=np.float64)) / mag.size,
        "flow_p50": float(p50),
        "flow_p90": float(p90),
        "static_frac": float((mag < static_thr).mean()),
        "pan_x": float(a0),
        "pan_y": float(b0),
        "zoom": float((a1 + b2) / 2),
        "rotation": float((b1 - a2) / 2),
        "residual": float(resid.sum()) / resid.size,
    }


def analyze_video(
    path: str | Path,
    detector: ShotDetectorConfig = ShotDetectorConfig(),
    config: AnalysisConfig = AnalysisConfig(),
    policy: InputPolicy = InputPolicy(),
) -> VideoAnalysis:
    """Decode ``path`` once at low resolution and return cuts, signals and keyframes."""
    # The decoder thread takes the GIL back after every FFmpeg call: a shorter switch interval
    # lets it in sooner while the measuring thread runs Python.
    with open_input(path) as container, opencv_threads(1), switch_interval(GIL_SWITCH_S), ExitStack() as stack:
        stream = container.streams.video[0]
        configure_decoder(stream)
        src_w, src_h = stream.codec_context.width, stream.codec_context.height
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        w, h = analysis_size(config.width, src_w, src_h)
        fw, fh = even_size(config.flow_width, src_w, src_h)
        splitter = ShotSplitter(detector, fps)
        # The 2 fps flow: in a thread of its own beside a decoder that runs on one core (MJPEG,
        # MPEG-4 part 2), where Farneback, which releases the GIL, fills that core's idle time;
        # in the measuring thread where FFmpeg's own threads keep every core busy (a third
        # Python thread there only adds hand-overs of the GIL).
        if threaded_decoder(stream):
            submit = _done
        else:
            submit = stack.enter_context(ThreadPoolExecutor(1, "vidgraph-flow")).submit
        batch = max(1, int(config.batch_frames))

        fr: dict[str, list[float]] = {k: [] for k in FRAME_SIGNALS}
        sample_meta: list[tuple[int, float, int, float, float]] = []
        sample_jobs: list[Future] = []
        keyframes: list[Keyframe] = []
        state = {"prev_hist": None, "prev_gray": None, "prev_sample": -1}
        sample_dt = 1.0 / config.sample_fps
        due = {"keyframe": 0.0, "sample": 0.0}

        def is_due(what: str, t: float, every: float) -> bool:
            """Whether a keyframe or a sample is due at time t (then the next one is scheduled)."""
            if t + 1e-6 < due[what]:
                return False
            due[what] += every * max(1, int((t - due[what]) / every) + 1)
            return True

        def prepare(df):
            """The luma and small BGR frame; for a sampled frame (2 fps) also the flow frame;
            the keyframe JPEG when one is due."""
            y_luma, _, bgr = analysis_frames(df.frame, w, h)
            sample = None
            if is_due("sample", df.t_s, sample_dt):
                # sharpness and text bands on a luma plane shrunk from every row (their
                # thresholds are set on it), and the flow frame from the same plane
                y_q = quality_luma(df.frame, *y_luma.shape[::-1])
                sample = (y_q, cv2.resize(y_q, (fw, fh), interpolation=cv2.INTER_AREA))
            kf = _keyframe(df, src_w, src_h, config) if is_due("keyframe", df.t_s, config.keyframe_every_s) else None
            return df.index, df.t_s, y_luma, bgr, sample, kf

        def flush(buf: list) -> None:
            if not buf:
                return
            if batch == 1:  # the reference: frame by frame
                idx, t, y_luma, bgr, _, _ = buf[0]
                content = [splitter.process(idx, bgr)]
                m, sd, delta, state["prev_hist"] = frame_signals(y_luma, state["prev_hist"])
                means, stds, deltas = [m], [sd], [delta]
            else:
                content = splitter.process_batch(buf[0][0], np.stack([b[3] for b in buf])).tolist()
                means, stds, deltas, hists = frame_signals_batch(np.stack([b[2] for b in buf]), state["prev_hist"])
                state["prev_hist"] = hists[-1]
                means, stds, deltas = means.tolist(), stds.tolist(), deltas.tolist()
            fr["t_s"].extend(b[1] for b in buf)
            fr["content_val"].extend(float(cv) for cv in content)
            fr["luma_mean"].extend(means)
            fr["luma_std"].extend(stds)
            fr["hist_delta"].extend(deltas)
            for (idx, t, _, _, sample, _), m, sd in zip(buf, means, stds):
                if sample is None:
                    continue
                y_q, gray = sample
                # each job is a pure function of its frames
                sample_jobs.append(submit(sample_signals, state["prev_gray"], gray, y_q, config.static_flow_threshold))
                sample_meta.append((idx, t, state["prev_sample"], m, sd))
                state["prev_gray"] = gray
                state["prev_sample"] = idx

        frames = iter_video_frames(container, stream, timeout_s=policy.decode_timeout_s)
        # The decoder's thread only decodes, and the frames are shrunk and measured here, beside
        # it. Up to 64 full-size frames (at most ~32 MB) wait in between, so the decoder runs on
        # while a stack of 64 is measured. (Shrinking in the decoder's thread costs more: every
        # OpenCV call hands the GIL over between the Python threads; with the flow in a third
        # thread too, 27 % more CPU time on 480x352 H.264: bench/README.md, "Analysis pass:
        # where the time goes".)
        ahead = max(4, min(64, _FULL_FRAMES_BUDGET // max(1, 3 * src_w * src_h)))
        decoded = prefetch(frames, lambda df: None, depth=max(2, ahead // 4), chunk=4, mark_idle=True)
        # Closed explicitly: the decode thread is joined before the container closes, even on an error.
        items = (IDLE if x is IDLE else prepare(x[0]) for x in decoded)
        buf: list = []
        try:
            for item in items:
                if item is IDLE:
                    # Caught up with the decoder: measure what is waiting now rather than at the
                    # end (batches of any size give the same numbers), so little is left to do
                    # after the last frame is decoded.
                    if len(buf) >= IDLE_BATCH:
                        flush(buf)
                        buf = []
                    continue
                if item[5] is not None:
                    keyframes.append(item[5])
                buf.append(item)
                if len(buf) >= batch:
                    flush(buf)
                    buf = []
            flush(buf)
        finally:
            decoded.close()
        sm: dict[str, list[float]] = {k: [] for k in SAMPLE_SIGNALS}
        for (idx, t, prev_idx, m, sd), job in zip(sample_meta, sample_jobs):
            stats = job.result()
            sm["frame_index"].append(idx)
            sm["t_s"].append(t)
            sm["prev_frame_index"].append(prev_idx)
            for k in SAMPLE_SIGNALS[3:-2]:
                sm[k].append(stats[k])
            sm["luma_mean"].append(m)
            sm["luma_std"].append(sd)

        n = len(fr["t_s"])
        shots = splitter.finish(n)
        # A frame lasts until the next one; the last one a nominal frame (shots.time_shots).
        duration = time_shots(shots, fr["t_s"], fps)
        return VideoAnalysis(
            fps=fps,
            n_frames=n,
            duration_s=duration,
            width=src_w,
            height=src_h,
            frames={k: np.asarray(v, dtype=np.float64) for k, v in fr.items()},
            samples={
                k: np.asarray(v, dtype=np.int64 if k.endswith("index") else np.float64) for k, v in sm.items()
            },
            keyframes=keyframes,
            shots=shots,
            detector=splitter.describe(),
            config=config.describe(),
        )


# FFmpeg's colour spaces read with BT.601 (unspecified, BT470BG, SMPTE170M; swscale's default
# too) and its limited-range tags (unspecified, MPEG): OpenCV's I420 conversion is theirs.
_BT601 = frozenset({2, 5, 6})
_LIMITED_RANGE = frozenset({0, 1})


def _small_bgr(frame, w: int, h: int) -> np.ndarray:
    """A (w, h) BGR image of a decoded frame. Planar 8-bit YUV is shrunk plane by plane here
    (swscale's scaler took 2-3x longer); limited-range BT.601 is converted by OpenCV (within
    two grey levels of swscale, at a tenth of its cost), anything else by swscale with the
    frame's own matrix and range (so full-range and BT.709 sources keep their colours)."""
    if frame.format.name not in _PLANAR_YUV8 or (w, h) == (frame.width, frame.height):
        return frame.to_ndarray(width=w, height=h, format="bgr24")
    sizes = ((w, h), (w // 2, h // 2), (w // 2, h // 2))
    planes = [shrink(plane_array(p), pw, ph) for p, (pw, ph) in zip(frame.planes, sizes)]
    if int(frame.colorspace) in _BT601 and int(frame.color_range) in _LIMITED_RANGE:
        return i420_to_bgr(*planes)
    small = av.VideoFrame(w, h, "yuv420p")
    for dst, src, (pw, _) in zip(small.planes, planes, sizes):
        np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)[:, :pw] = src
    small.colorspace = frame.colorspace
    small.color_range = frame.color_range
    return small.to_ndarray(format="bgr24")


def _keyframe(df, src_w: int, src_h: int, config: AnalysisConfig) -> Keyframe:
    scale = min(1.0, config.keyframe_max_side / max(src_w, src_h))
    kw, kh = max(2, int(src_w * scale) // 2 * 2), max(2, int(src_h * scale) // 2 * 2)
    img = _small_bgr(df.frame, kw, kh)
    img = rotate_for_display(img, int(df.frame.rotation or 0))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, config.keyframe_jpeg_quality])
    return Keyframe(df.index, df.t_s, img.shape[1], img.shape[0], buf.tobytes())
