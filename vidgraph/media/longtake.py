"""LVD-2M-style long-take metrics for one clip, from the signals of the single analysis pass.

Nothing here decodes video: every metric is computed from the per-frame signals
(``content_val``, ``luma_mean``, ``luma_std``, ``hist_delta``) and the 2 fps samples (Farneback
flow statistics, the affine camera-motion fit, sharpness, text-band edge density) that
``vidgraph.media.analysis.analyze_video`` recorded while the shots were being detected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from vidgraph.media.analysis import FARNEBACK_PARAMS

# Reasons a clip fails, in the order they are reported.
REASONS = (
    "too_short",
    "cut_inside",
    "gradual_transition_inside",
    "too_static",
    "too_jittery",
    "black",
    "uniform",
    "blurry",
    "overlaid_text",
    "low_semantic_quality",
)

CAMERA_MOTIONS = ("static", "pan", "tilt", "zoom", "shaky", "complex", "unknown")

# The flow scorer as analyze_video runs it; recorded with every score, since flow scores from
# different setups (algorithm, parameters, frame size, sampling) are not comparable.
FARNEBACK = {
    "algorithm": "opencv.calcOpticalFlowFarneback",
    "params": FARNEBACK_PARAMS,
    "unit": "fraction of the frame diagonal per second",
}


@dataclass(frozen=True)
class LongTakeConfig:
    min_duration_s: float = 10.0  # LVD-2M keeps takes of at least 10 s
    # Inner hard cuts: a test more sensitive than the splitter over the clip's stored scores. The
    # splitter (vidgraph's detector) needs a spike 3x its neighbours' mean confirmed by a colour or
    # thumbnail change and no flash; here 2.5x the neighbours' median suffices, unconfirmed, or a
    # luma-histogram jump alone.
    inner_cut_min_content: float = 12.0
    inner_cut_ratio: float = 2.5  # score against the median of its neighbourhood (adaptive)
    inner_cut_window: int = 6  # frames on each side
    inner_cut_hist_jump: float = 0.45  # or a luma-histogram jump this large (half L1 distance)
    # Gradual transitions: fades through black and cross-dissolves.
    # Luma is the decoded Y plane, limited range: 16 is black.
    fade_black_luma: float = 40.0  # a frame this dark between brighter frames is a fade
    fade_min_drop: float = 25.0  # the luma on both sides must be this much brighter
    dissolve_window_s: float = 0.75  # histogram change summed over this window ...
    dissolve_min_change: float = 0.5  # ... must reach this ...
    dissolve_ratio: float = 3.0  # ... and stand this far above the clip's typical change
    # Dynamic degree (Farneback flow, fraction of the frame diagonal per second).
    min_dynamic_degree: float = 0.002
    max_dynamic_degree: float = 0.6
    max_jitter: float = 0.15  # erratic global motion (shake), same unit
    static_pair_flow: float = 0.002  # a sample pair with mean flow below this is static
    camera_static_flow: float = 0.008  # global (affine) motion below this: the camera is still
    shaky_min_jitter: float = 0.01  # erratic global motion above this ...
    shaky_ratio: float = 1.5  # ... and this far above the steady motion: shaky
    # Image quality.
    black_luma: float = 32.0  # mean luma of a (near-)black frame
    uniform_luma_std: float = 6.0  # luma spread of a near-uniform frame
    max_black_frac: float = 0.5
    max_uniform_frac: float = 0.5
    min_sharpness: float = 40.0  # variance of the Laplacian on the 256-px analysis frame
    max_blurry_frac: float = 0.5
    # Overlaid text: edge density in the top/bottom band. A cheap proxy, so it is recorded but does
    # not reject by default: textured backgrounds (the rooftops of vtest.avi) score like subtitles.
    text_edge_density: float = 0.15
    max_text_frac: float = 0.5
    reject_text: bool = False
    # Semantic quality (optional ClipScorer): clips scoring below are rejected.
    min_semantic_score: float = 0.3
    # Keyframes handed to captioning (ShareGPT4Video samples one every 2 s).
    keyframe_every_s: float = 2.0
    # OCR (PP-OCRv4) on the keyframes of clips that pass every other test. Where it ran, the
    # overlaid-text metric is the share of keyframes whose text boxes cover at least
    # ocr_min_area_frac of the frame (one subtitle line on a 16:9 frame covers about 0.05-0.1), and it
    # replaces edge density, which textured backgrounds fool.
    ocr: bool = True
    ocr_min_area_frac: float = 0.01

    def describe(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.describe(), sort_keys=True)


def _in_clip(start_frame: int, end_frame: int, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[start_frame:end_frame] for k, v in frames.items()}


def _samples_in_clip(start_frame: int, end_frame: int, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    idx = np.asarray(samples.get("frame_index", []), dtype=np.int64)
    keep = (idx >= start_frame) & (idx < end_frame)
    return {k: np.asarray(v)[keep] for k, v in samples.items()}


def inner_cuts(frames: dict[str, np.ndarray], config: LongTakeConfig) -> list[int]:
    """Clip-relative frames where a hard cut happens, by an adaptive test on the stored scores.

    Frame 0 of the clip is the splitter's own cut, so it is never reported.
    """
    score = np.asarray(frames["content_val"], dtype=np.float64)
    hist = np.asarray(frames["hist_delta"], dtype=np.float64)
    n, w = len(score), config.inner_cut_window
    out = []
    for i in range(1, n):
        neighbours = np.concatenate([score[max(1, i - w) : i], score[i + 1 : i + 1 + w]])
        # Repeated frames (score 0: telecine, frozen endings) say nothing about the motion level.
        neighbours = neighbours[neighbours > 0.5]
        base = float(np.median(neighbours)) if len(neighbours) >= 2 else config.inner_cut_min_content
        adaptive = score[i] >= config.inner_cut_min_content and score[i] >= config.inner_cut_ratio * max(base, 1.0)
        hneighbours = np.concatenate([hist[max(1, i - w) : i], hist[i + 1 : i + 1 + w]])
        hneighbours = hneighbours[hneighbours > 0.001]
        hbase = float(np.median(hneighbours)) if len(hneighbours) >= 2 else 0.0
        jump = hist[i] >= config.inner_cut_hist_jump and hist[i] >= config.inner_cut_ratio * max(hbase, 0.01)
        if adaptive or jump:
            out.append(i)
    return out


def gradual_transitions(frames: dict[str, np.ndarray], fps: float, config: LongTakeConfig) -> list[dict]:
    """Fades through black (a dark dip between brighter stretches) and cross-dissolves (a bump of
    histogram change well above the clip's typical change), as clip-relative frame spans."""
    luma = np.asarray(frames["luma_mean"], dtype=np.float64)
    hist = np.asarray(frames["hist_delta"], dtype=np.float64)
    n = len(luma)
    out: list[dict] = []
    # Fades: every run of dark frames with bright frames on both sides.
    dark = luma < config.fade_black_luma
    i = 0
    while i < n:
        if not dark[i]:
            i += 1
            continue
        j = i
        while j < n and dark[j]:
            j += 1
        before, after = luma[max(0, i - int(fps)) : i], luma[j : j + int(fps)]
        if (
            len(before)
            and len(after)
            and before.max() >= luma[i:j].mean() + config.fade_min_drop
            and after.max() >= luma[i:j].mean() + config.fade_min_drop
        ):
            out.append({"kind": "fade", "start": int(i), "end": int(j)})
        i = j
    # Dissolves: windowed histogram change far above the clip's typical windowed change.
    w = max(2, int(round(config.dissolve_window_s * fps)))
    if n > 2 * w:
        h = hist.copy()
        h[0] = 0.0
        windowed = np.convolve(h, np.ones(w), mode="valid")  # windowed[k] = sum h[k:k+w]
        typical = float(np.median(windowed))
        hot = (windowed >= config.dissolve_min_change) & (windowed >= config.dissolve_ratio * max(typical, 0.02))
        k = 0
        while k < len(hot):
            if hot[k]:
                m = k
                # Hot windows whose spans overlap are one transition: a dip of the windowed sum
                # inside a dissolve (encoder noise can make one) must not split it in two.
                while m < len(hot) and (hot[m] or hot[m:m + w].any()):
                    m += 1
                span = {"kind": "dissolve", "start": int(k), "end": int(m + w - 1)}
                # A fade already explains this change.
                if not any(f["start"] < span["end"] and span["start"] < f["end"] + w for f in out if f["kind"] == "fade"):
                    out.append(span)
                k = m
            else:
                k += 1
    return sorted(out, key=lambda t: t["start"])


def _pair_rates(s: dict[str, np.ndarray], start_frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Flow pairs fully inside the clip, with the time between their frames."""
    prev = np.asarray(s.get("prev_frame_index", []), dtype=np.int64)
    inside = prev >= start_frame
    t = np.asarray(s.get("t_s", []), dtype=np.float64)
    # The previous sample's time: samples are consecutive, so it is the row before.
    dt = np.empty_like(t)
    if len(t):
        dt[0] = np.nan
        dt[1:] = np.diff(t)
    ok = inside & np.isfinite(np.asarray(s.get("flow_mean", []), dtype=np.float64)) & (dt > 0)
    return ok, dt


def motion_metrics(s: dict[str, np.ndarray], start_frame: int, config: LongTakeConfig) -> dict:
    ok, dt = _pair_rates(s, start_frame)
    if not ok.any():
        return {
            "dynamic_degree": None,
            "dynamic_p50": None,
            "dynamic_p90": None,
            "static_pair_frac": None,
            "flow_pairs": 0,
            "pan_x_per_s": None,
            "pan_y_per_s": None,
            "zoom_per_s": None,
            "jitter_per_s": None,
            "camera_motion": "unknown",
        }
    d = dt[ok]
    flow = np.asarray(s["flow_mean"], dtype=np.float64)[ok] / d
    pan_x = np.asarray(s["pan_x"], dtype=np.float64)[ok] / d
    pan_y = np.asarray(s["pan_y"], dtype=np.float64)[ok] / d
    zoom = np.asarray(s["zoom"], dtype=np.float64)[ok] / d
    static_pairs = (np.asarray(s["flow_mean"], dtype=np.float64)[ok] / d) < config.static_pair_flow
    mx, my, mz = float(np.median(pan_x)), float(np.median(pan_y)), float(np.median(zoom))
    # Jitter: how far the global motion strays from its steady component.
    jitter = float(np.sqrt(np.mean((pan_x - mx) ** 2 + (pan_y - my) ** 2)))
    return {
        "dynamic_degree": float(flow.mean()),
        "dynamic_p50": float(np.percentile(flow, 50)),
        "dynamic_p90": float(np.percentile(flow, 90)),
        "static_pair_frac": float(static_pairs.mean()),
        "flow_pairs": int(ok.sum()),
        "pan_x_per_s": mx,
        "pan_y_per_s": my,
        "zoom_per_s": mz,
        "jitter_per_s": jitter,
        "camera_motion": camera_motion_class(mx, my, mz, jitter, config),
    }


def camera_motion_class(pan_x: float, pan_y: float, zoom: float, jitter: float, config: LongTakeConfig) -> str:
    """static, pan, tilt, zoom or shaky, from the affine fit of the flow field (per second).

    ``zoom`` is the divergence term over coordinates normalised by the diagonal, so at the frame
    corner it moves pixels by about ``zoom / 2`` of the diagonal; it is compared on that scale.
    """
    steady = max(abs(pan_x), abs(pan_y), abs(zoom) / 2)
    if max(steady, jitter) < config.camera_static_flow:
        return "static"
    if jitter >= config.shaky_min_jitter and jitter > config.shaky_ratio * steady:
        return "shaky"
    if abs(zoom) / 2 >= max(abs(pan_x), abs(pan_y)):
        return "zoom"
    if abs(pan_x) >= 2 * abs(pan_y):
        return "pan"
    if abs(pan_y) >= 2 * abs(pan_x):
        return "tilt"
    return "complex"


def quality_metrics(f: dict[str, np.ndarray], s: dict[str, np.ndarray], config: LongTakeConfig) -> dict:
    luma = np.asarray(f["luma_mean"], dtype=np.float64)
    spread = np.asarray(f["luma_std"], dtype=np.float64)
    sharp = np.asarray(s.get("sharpness", []), dtype=np.float64)
    text = np.maximum(np.asarray(s.get("text_top", []), dtype=np.float64), np.asarray(s.get("text_bottom", []), dtype=np.float64))
    n = max(len(luma), 1)
    return {
        "black_frac": float((luma < config.black_luma).sum() / n),
        "uniform_frac": float((spread < config.uniform_luma_std).sum() / n),
        "sharpness_median": float(np.median(sharp)) if len(sharp) else None,
        "blurry_frac": float((sharp < config.min_sharpness).mean()) if len(sharp) else None,
        "text_frac": float((text >= config.text_edge_density).mean()) if len(text) else None,
        "luma_mean": float(luma.mean()) if len(luma) else None,
    }


def evaluate_clip(
    start_frame: int,
    end_frame: int,
    start_s: float,
    end_s: float,
    frames: dict[str, np.ndarray],
    samples: dict[str, np.ndarray],
    config: LongTakeConfig = LongTakeConfig(),
    fps: float | None = None,
) -> dict:
    """Every long-take metric of the clip ``[start_frame, end_frame)`` of a video, its verdict and
    the reasons it fails. ``frames``/``samples`` are the whole video's analysis signals."""
    f = _in_clip(start_frame, end_frame, frames)
    s = _samples_in_clip(start_frame, end_frame, samples)
    duration = float(end_s - start_s)
    if fps is None:
        t = np.asarray(f["t_s"], dtype=np.float64)
        fps = float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 and t[-1] > t[0] else 25.0
    cuts = inner_cuts(f, config)
    transitions = gradual_transitions(f, fps, config)
    motion = motion_metrics(s, start_frame, config)
    quality = quality_metrics(f, s, config)

    row = {
        "duration_s": round(duration, 6),
        "n_frames": int(end_frame - start_frame),
        "inner_cut_frames": [int(start_frame + c) for c in cuts],
        "gradual_transitions": json.dumps(
            [{**t, "start": t["start"] + start_frame, "end": t["end"] + start_frame} for t in transitions]
        ),
        **motion,
        **quality,
        "dynamic_scorer": dynamic_scorer_json(),
    }
    reasons = failure_reasons(row, config)
    return {**row, "passed": not reasons, "reasons": reasons}


def dynamic_scorer_json(analysis_config: dict | None = None) -> str:
    """The flow scorer and its settings, as recorded beside every dynamic-degree score."""
    d = dict(FARNEBACK)
    if analysis_config:
        for k in ("flow_width", "sample_fps", "static_flow_threshold"):
            d[k] = analysis_config.get(k)
    return json.dumps(d, sort_keys=True)


def failure_reasons(row: dict, config: LongTakeConfig) -> list[str]:
    """The reasons a clip's metrics fail the thresholds, in ``REASONS`` order. The filter's verdict
    and the check that re-judges passed rows both come from here."""
    failed = set()
    if row["duration_s"] < config.min_duration_s:
        failed.add("too_short")
    if row.get("inner_cut_frames"):
        failed.add("cut_inside")
    if json.loads(row.get("gradual_transitions") or "[]"):
        failed.add("gradual_transition_inside")
    dyn = row.get("dynamic_degree")
    if dyn is None or dyn < config.min_dynamic_degree:
        failed.add("too_static")
    elif dyn > config.max_dynamic_degree or (row.get("jitter_per_s") or 0.0) > config.max_jitter:
        failed.add("too_jittery")
    if row["black_frac"] > config.max_black_frac:
        failed.add("black")
    if row["uniform_frac"] > config.max_uniform_frac:
        failed.add("uniform")
    if row.get("blurry_frac") is not None and row["blurry_frac"] > config.max_blurry_frac:
        failed.add("blurry")
    text = overlaid_text_frac(row)
    if config.reject_text and text is not None and text > config.max_text_frac:
        failed.add("overlaid_text")
    if row.get("semantic_score") is not None and row["semantic_score"] < config.min_semantic_score:
        failed.add("low_semantic_quality")
    return [r for r in REASONS if r in failed]


def select_keyframes(
    start_frame: int, end_frame: int, kf_frames: list[int], kf_times: list[float], every_s: float
) -> list[int]:
    """Indices (into the video's keyframe list) of the keyframes inside the clip, at least
    ``every_s`` apart (up to a quarter of it: keyframes land on the first frame at or after each
    2 s mark, so their spacing wobbles by a frame)."""
    chosen: list[int] = []
    last_t = -np.inf
    for i, (f, t) in enumerate(zip(kf_frames, kf_times)):
        if start_frame <= f < end_frame and t - last_t >= 0.75 * every_s:
            chosen.append(i)
            last_t = t
    return chosen


def overlaid_text_frac(row: dict) -> float | None:
    """The overlaid-text metric of a row: the OCR share where OCR ran, else the edge-density share."""
    if row.get("ocr_text_frac") is not None:
        return float(row["ocr_text_frac"])
    return row.get("text_frac")


def ocr_text_metrics(area_fracs: list[float], config: LongTakeConfig) -> dict:
    """``ocr_text_frac`` (share of keyframes with text covering at least ``ocr_min_area_frac``) and
    ``ocr_area_frac`` (mean covered share) from the OCR of a clip's keyframes."""
    if not area_fracs:
        return {"ocr_text_frac": None, "ocr_area_frac": None}
    a = np.asarray(area_fracs, dtype=np.float64)
    return {"ocr_text_frac": float((a >= config.ocr_min_area_frac).mean()), "ocr_area_frac": float(a.mean())}
