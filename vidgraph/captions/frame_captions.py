"""Frame captions for long takes: pure logic (no Dagster, no file I/O).

Two caption families per clip:

* **Differential sliding-window captions** (ShareGPT4Video). Step 0 describes the first keyframe
  in detail; step k shows the model keyframes k-1 and k plus the caption of step k-1 and asks
  what changed (objects, actions, camera). A final text-only pass turns the timestamped captions
  into one detailed video caption (the row's ``caption``).
* **Temporally dense captions** (LVD-2M). The clip is cut into segments of about
  ``dense_segment_s`` seconds; each gets a caption from the keyframes inside it (at least one,
  the nearest) with its ``[start_s, end_s]``.

Work is batched across clips: every DiffSW step is one ``generate`` call for all clips that have
that keyframe, then one call for all summaries, then one for all dense segments. A failure on a
clip is recorded on that clip's row (``error``); the other clips are unaffected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..models.backends import ChatModel, ChatMessage, GenerationParams, Request, TextPart, ImagePart
from .prompts import FRAME_CAPTION_TEMPLATES, PromptTemplate, frame_caption_templates, prompt_hash, prompts_version
from .quality import word_count

# Bump when the caption logic changes in a way that changes outputs (prompts and models are
# versioned separately, see frame_captions_code_version).
CAPTION_LOGIC_VERSION = "1"

DEFAULT_WORD_LIMITS = {"first": 120, "diff": 60, "summary": 200}


@dataclass
class ClipKeyframes:
    """Keyframes of one clip; timestamps are seconds from the clip start."""

    clip_id: str
    video_id: str
    start_s: float
    end_s: float
    keyframes: list[tuple[float, Any]] = field(default_factory=list)  # (t_clip_s, PIL.Image)

    @property
    def duration_s(self) -> float:
        return max(0.0, float(self.end_s) - float(self.start_s))


@dataclass(frozen=True)
class DiffSWStep:
    """One DiffSW model call, inspectable before it runs."""

    clip_id: str
    step: int
    t_s: float
    prev_t_s: float | None
    image_ts: tuple[float, ...]  # timestamps of the images in the request, in order
    prev_caption: str | None
    request: Request


@dataclass(frozen=True)
class DenseStep:
    clip_id: str
    index: int
    start_s: float
    end_s: float
    image_ts: tuple[float, ...]
    request: Request


def _select_keyframes(kfs: Sequence[tuple[float, Any]], max_keyframes: int | None) -> list[tuple[float, Any]]:
    kfs = sorted(kfs, key=lambda kv: float(kv[0]))
    if max_keyframes is None or len(kfs) <= max_keyframes:
        return list(kfs)
    if max_keyframes <= 1:
        return kfs[:1]
    idx = sorted({round(i * (len(kfs) - 1) / (max_keyframes - 1)) for i in range(max_keyframes)})
    return [kfs[i] for i in idx]


def _system(templates: Mapping[str, PromptTemplate]) -> ChatMessage:
    return ChatMessage("system", (TextPart(templates["system"].render()),))


def build_diffsw_requests(clips: Sequence[ClipKeyframes], step: int, prev_captions: Mapping[str, str],
                          templates: Mapping[str, PromptTemplate] | None = None,
                          word_limits: Mapping[str, int] | None = None) -> list[DiffSWStep]:
    """The requests of DiffSW step ``step`` for every clip that takes part in it.

    Step 0: every clip with at least one keyframe; the request holds keyframe 0.
    Step k >= 1: every clip with more than k keyframes whose step k-1 caption is in
    ``prev_captions``; the request holds keyframes k-1 and k (in that order) and that caption.
    Keyframes are taken in time order (``clip.keyframes`` is expected sorted).
    """
    templates = templates or frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    out = []
    for clip in clips:
        kfs = clip.keyframes
        if len(kfs) <= step:
            continue
        t, img = kfs[step]
        if step == 0:
            text = templates["first"].render(t_s=float(t), duration_s=clip.duration_s, max_words=limits["first"])
            req = [_system(templates), ChatMessage("user", (ImagePart(img), TextPart(text)))]
            out.append(DiffSWStep(clip.clip_id, 0, float(t), None, (float(t),), None, req))
            continue
        if clip.clip_id not in prev_captions:
            continue
        prev_caption = prev_captions[clip.clip_id]
        pt, pimg = kfs[step - 1]
        text = templates["diff"].render(prev_t_s=float(pt), t_s=float(t), prev_caption=prev_caption,
                                        max_words=limits["diff"])
        req = [_system(templates), ChatMessage("user", (ImagePart(pimg), ImagePart(img), TextPart(text)))]
        out.append(DiffSWStep(clip.clip_id, step, float(t), float(pt), (float(pt), float(t)), prev_caption, req))
    return out


def format_timeline(diff_captions: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for i, d in enumerate(diff_captions):
        label = "opening keyframe" if i == 0 else "change"
        lines.append(f"[{float(d['t_s']):.1f} s, {label}] {d['text']}")
    return "\n".join(lines)


def build_summary_request(clip: ClipKeyframes, diff_captions: Sequence[Mapping[str, Any]],
                          templates: Mapping[str, PromptTemplate] | None = None,
                          word_limits: Mapping[str, int] | None = None) -> Request:
    templates = templates or frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    text = templates["summary"].render(duration_s=clip.duration_s, timeline=format_timeline(diff_captions),
                                       max_words=limits["summary"])
    return [_system(templates), ChatMessage("user", (TextPart(text),))]


def dense_segments(duration_s: float, segment_s: float = 4.0) -> list[tuple[float, float]]:
    """Cut ``[0, duration_s)`` into ``round(duration/segment_s)`` (>= 1) equal, contiguous segments."""
    if duration_s <= 0:
        return []
    if segment_s <= 0:
        raise ValueError("segment_s must be > 0")
    n = max(1, round(duration_s / segment_s))
    edges = [round(duration_s * i / n, 3) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def segment_keyframe_indices(times: Sequence[float], start_s: float, end_s: float, last: bool,
                             max_images: int | None = None) -> list[int]:
    """Indices of the keyframes in ``[start_s, end_s)`` (``]`` for the last segment), at least one
    (the nearest to the segment's middle), at most ``max_images`` evenly spread."""
    if not times:
        return []
    inside = [i for i, t in enumerate(times) if start_s <= t < end_s or (last and t == end_s)]
    if not inside:
        mid = (start_s + end_s) / 2
        inside = [min(range(len(times)), key=lambda i: (abs(times[i] - mid), i))]
    if max_images and len(inside) > max_images:
        if max_images == 1:
            inside = [inside[len(inside) // 2]]
        else:
            inside = [inside[round(k * (len(inside) - 1) / (max_images - 1))] for k in range(max_images)]
    return inside


def build_dense_requests(clip: ClipKeyframes, segment_s: float = 4.0, max_images: int | None = 2,
                         templates: Mapping[str, PromptTemplate] | None = None) -> list[DenseStep]:
    templates = templates or frame_caption_templates()
    times = [float(t) for t, _ in clip.keyframes]
    segs = dense_segments(clip.duration_s, segment_s)
    out = []
    for i, (s, e) in enumerate(segs):
        idx = segment_keyframe_indices(times, s, e, last=(i == len(segs) - 1), max_images=max_images)
        if not idx:
            continue
        text = templates["dense"].render(n_frames=len(idx), start_s=s, end_s=e, duration_s=clip.duration_s)
        parts = tuple(ImagePart(clip.keyframes[j][1]) for j in idx) + (TextPart(text),)
        out.append(DenseStep(clip.clip_id, i, s, e, tuple(times[j] for j in idx),
                             [_system(templates), ChatMessage("user", parts)]))
    return out


def caption_clips(clips: Sequence[ClipKeyframes], vlm: ChatModel, llm: ChatModel, params: GenerationParams,
                  dense_segment_s: float = 4.0, *, summary_params: GenerationParams | None = None,
                  dense_params: GenerationParams | None = None, max_dense_images: int | None = 2,
                  max_keyframes: int | None = None, word_limits: Mapping[str, int] | None = None,
                  dense: bool = True) -> list[dict[str, Any]]:
    """Caption a shard of clips; one row dict per clip, in input order. Never raises per clip."""
    templates = frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    summary_params = summary_params or params
    dense_params = dense_params or params
    clips = [ClipKeyframes(c.clip_id, c.video_id, float(c.start_s), float(c.end_s),
                           _select_keyframes(c.keyframes, max_keyframes)) for c in clips]
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        raise ValueError("clip_id values must be unique within a shard")

    errors: dict[str, list[str]] = {c.clip_id: [] for c in clips}
    diffs: dict[str, list[dict]] = {c.clip_id: [] for c in clips}
    for c in clips:
        if not c.keyframes:
            errors[c.clip_id].append("no keyframes")

    # 1. DiffSW, batched across clips step by step.
    prev: dict[str, str] = {}
    step = 0
    while True:
        steps = build_diffsw_requests(clips, step, prev, templates, limits)
        if not steps:
            break
        results = vlm.generate([s.request for s in steps], params)
        for s, r in zip(steps, results):
            if r.error is None and r.text is not None:
                diffs[s.clip_id].append({"t_s": s.t_s, "text": r.text})
                prev[s.clip_id] = r.text
            else:
                errors[s.clip_id].append(f"diffsw step {step} (t={s.t_s:.2f}s): {r.error or 'no output'}")
                prev.pop(s.clip_id, None)
        # Clips that failed this step or have no further keyframe drop out.
        prev = {cid: txt for cid, txt in prev.items() if not errors[cid]}
        step += 1

    ok = [c for c in clips if not errors[c.clip_id] and diffs[c.clip_id]]

    # 2. Summary, text only, batched.
    summaries: dict[str, str] = {}
    if ok:
        results = llm.generate([build_summary_request(c, diffs[c.clip_id], templates, limits) for c in ok],
                               summary_params)
        for c, r in zip(ok, results):
            if r.error is None and r.text is not None:
                summaries[c.clip_id] = r.text
            else:
                errors[c.clip_id].append(f"summary: {r.error or 'no output'}")

    # 3. Dense segment captions, batched across all segments of all clips.
    dense_rows: dict[str, list[dict]] = {c.clip_id: [] for c in clips}
    if dense and ok:
        dsteps = [d for c in ok for d in build_dense_requests(c, dense_segment_s, max_dense_images, templates)]
        results = vlm.generate([d.request for d in dsteps], dense_params) if dsteps else []
        for d, r in zip(dsteps, results):
            failed = r.error is not None or r.text is None
            dense_rows[d.clip_id].append({"start_s": d.start_s, "end_s": d.end_s,
                                          "text": None if failed else r.text,
                                          "keyframe_ts": list(d.image_ts)})
            if failed:
                errors[d.clip_id].append(f"dense [{d.start_s:.2f}, {d.end_s:.2f}]: {r.error or 'no output'}")

    gen_params = json.dumps({
        "diffsw": params.as_dict(), "summary": summary_params.as_dict(), "dense": dense_params.as_dict(),
        "dense_segment_s": dense_segment_s, "max_dense_images": max_dense_images,
        "max_keyframes": max_keyframes, "word_limits": limits,
    }, sort_keys=True)
    phash = prompt_hash(FRAME_CAPTION_TEMPLATES.values())
    rows = []
    for c in clips:
        caption = summaries.get(c.clip_id)
        err = "; ".join(errors[c.clip_id]) or None
        rows.append({
            "clip_id": c.clip_id, "video_id": c.video_id, "duration_s": c.duration_s,
            "caption": caption,
            "diff_captions": diffs[c.clip_id],
            "dense_captions": dense_rows[c.clip_id],
            "keyframe_ts": [float(t) for t, _ in c.keyframes],
            "vlm_model_id": vlm.model_id, "vlm_revision": vlm.revision,
            "llm_model_id": llm.model_id, "llm_revision": llm.revision,
            "prompt_hash": phash, "gen_params": gen_params,
            "error": err,
            "word_count": word_count(caption),
        })
    return rows


def frame_captions_code_version(*model_refs: str) -> str:
    """Code version for the frame_captions asset: logic version + all prompt files + model refs.

    Pass the model identities, e.g. ``profile.vlm.ref, profile.llm.ref`` (backend:model@revision).
    """
    blob = json.dumps({"logic": CAPTION_LOGIC_VERSION, "prompts": prompts_version(), "models": list(model_refs)},
                      sort_keys=True)
    return "fc-" + hashlib.sha256(blob.encode()).hexdigest()[:16]
