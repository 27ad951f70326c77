"""Frame captions for long takes: pure logic (no Dagster, no file I/O).

Two caption families per clip:

* **Differential sliding-window captions** (ShareGPT4Video). Step 0 describes the first keyframe
  in detail; step k shows the model keyframes k-1 and k plus the caption of step k-1 and asks
  what changed (objects, actions, camera). A final text-only pass turns the timestamped captions
  into one detailed video caption (the row's ``caption``).
  The keyframes are chosen by ShareGPT4Video's rule (:mod:`vidgraph.captions.keyframes`): 2-s
  samples kept only when they differ from the last kept one, the last frame always kept; over
  ``max_keyframes`` the steps run in consecutive windows overlapping by one keyframe. The summary
  is asked for the profile's word band (200-400 words for real profiles) and its
  ``max_new_tokens`` is derived from that band.
* **Three levels of dense captions** (LVD-2M). The clip is cut into segments of about
  ``dense_segment_s`` seconds; each gets a caption from the 2-s samples inside it (at least one,
  the nearest) with its ``[start_s, end_s]``. The text model then writes one refined caption of the
  whole clip from the segment captions, and rewrites it as a concise caption.

Work is batched across clips: every DiffSW step is one ``generate`` call for all windows of all
clips that have that keyframe, then one call for all summaries, one for all dense segments, one
for all refinements and one for all rewrites. A failure on a clip is recorded on that clip's row
(``error``); the other clips are unaffected.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..models.backends import ChatModel, ChatMessage, GenerationParams, Request, TextPart, ImagePart
from .prompts import FRAME_CAPTION_TEMPLATES, PromptTemplate, frame_caption_templates, prompt_hash, prompts_version
from .keyframes import KeyframeSelection, keyframe_windows, select_keyframes
from .quality import word_count

# Bump when the caption logic changes in a way that changes outputs (prompts and models are
# versioned separately, see frame_captions_code_version).
CAPTION_LOGIC_VERSION = "2"

# summary_min/summary: ShareGPT4Video's captions are 200-400 words. refine/concise: LVD-2M's
# refined and concise captions.
DEFAULT_WORD_LIMITS = {"first": 120, "diff": 60, "summary_min": 200, "summary": 400, "refine": 200, "concise": 60}
# English text costs about 1.3 tokens a word with the BPE vocabularies of current models; the cap
# leaves room above that so a caption ends by itself, inside the band, rather than being cut.
TOKENS_PER_WORD = 1.6


def tokens_for_words(max_words: int) -> int:
    """``max_new_tokens`` for an answer of at most ``max_words`` words."""
    return int(math.ceil(max_words * TOKENS_PER_WORD)) + 16


def word_limits_from_profile(captions: Mapping[str, Any]) -> dict[str, int]:
    """The word limits a profile's ``captions`` section sets (summary band: min_words..max_words)."""
    out = dict(DEFAULT_WORD_LIMITS)
    for key, name in (("min_words", "summary_min"), ("max_words", "summary"), ("refine_max_words", "refine"),
                      ("concise_max_words", "concise"), ("first_max_words", "first"), ("diff_max_words", "diff")):
        if captions.get(key) is not None:
            out[name] = int(captions[key])
    return out


@dataclass
class ClipKeyframes:
    """Keyframes of one clip; timestamps are seconds from the clip start."""

    clip_id: str
    video_id: str
    start_s: float
    end_s: float
    keyframes: list[tuple[float, Any]] = field(default_factory=list)  # (t_clip_s, PIL.Image)
    window_start: bool = False  # a later caption window of a clip: its first keyframe is not the clip's

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
            role = "window" if clip.window_start and "window" in templates else "first"
            text = templates[role].render(t_s=float(t), duration_s=clip.duration_s, max_words=limits["first"])
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
        label = "opening keyframe" if i == 0 else ("window start" if d.get("window_start") else "change")
        lines.append(f"[{float(d['t_s']):.1f} s, {label}] {d['text']}")
    return "\n".join(lines)


def build_summary_request(clip: ClipKeyframes, diff_captions: Sequence[Mapping[str, Any]],
                          templates: Mapping[str, PromptTemplate] | None = None,
                          word_limits: Mapping[str, int] | None = None) -> Request:
    templates = templates or frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    text = templates["summary"].render(duration_s=clip.duration_s, timeline=format_timeline(diff_captions),
                                       min_words=limits["summary_min"], max_words=limits["summary"])
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


def format_segments(dense_rows: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"[{float(d['start_s']):.1f} s - {float(d['end_s']):.1f} s] {d['text']}" for d in dense_rows)


def build_refine_request(clip: ClipKeyframes, dense_rows: Sequence[Mapping[str, Any]],
                         templates: Mapping[str, PromptTemplate] | None = None,
                         word_limits: Mapping[str, int] | None = None) -> Request:
    """LVD-2M level 2: one refined whole-clip caption from the segment captions (text only)."""
    templates = templates or frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    text = templates["refine"].render(duration_s=clip.duration_s, segments=format_segments(dense_rows),
                                      max_words=limits["refine"])
    return [_system(templates), ChatMessage("user", (TextPart(text),))]


def build_rewrite_request(clip: ClipKeyframes, refined: str, templates: Mapping[str, PromptTemplate] | None = None,
                          word_limits: Mapping[str, int] | None = None) -> Request:
    """LVD-2M level 3: the refined caption rewritten concisely (text only)."""
    templates = templates or frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    text = templates["rewrite"].render(duration_s=clip.duration_s, caption=refined, max_words=limits["concise"])
    return [_system(templates), ChatMessage("user", (TextPart(text),))]


def level_prompt_hashes() -> dict[str, str]:
    """The prompt hash of each caption level: the templates its requests are built from."""
    t = FRAME_CAPTION_TEMPLATES
    return {
        "prompt_hash": prompt_hash(t.values()),
        "dense_prompt_hash": prompt_hash([t["system"], t["dense"]]),
        "refine_prompt_hash": prompt_hash([t["system"], t["refine"]]),
        "rewrite_prompt_hash": prompt_hash([t["system"], t["rewrite"]]),
    }


def choose_keyframes(clips: Sequence[ClipKeyframes], encoder=None, threshold: float | None = None
                     ) -> dict[str, KeyframeSelection]:
    """ShareGPT4Video's redundancy rule on every clip (all candidates embedded in one batch).
    Without an encoder every candidate is kept."""
    out: dict[str, KeyframeSelection] = {}
    if encoder is None:
        for c in clips:
            ts = [float(t) for t, _ in c.keyframes]
            out[c.clip_id] = KeyframeSelection(ts, list(range(len(ts))), [None] * len(ts))
        return out
    thr = encoder.default_threshold if threshold is None else float(threshold)
    flat = [img for c in clips for _, img in c.keyframes]
    emb = encoder.embed(flat) if flat else []
    pos = 0
    for c in clips:
        n = len(c.keyframes)
        out[c.clip_id] = select_keyframes([t for t, _ in c.keyframes], emb[pos: pos + n], encoder.distance, thr)
        pos += n
    return out


def caption_clips(clips: Sequence[ClipKeyframes], vlm: ChatModel, llm: ChatModel, params: GenerationParams,
                  dense_segment_s: float = 4.0, *, summary_params: GenerationParams | None = None,
                  dense_params: GenerationParams | None = None, max_dense_images: int | None = 2,
                  max_keyframes: int | None = None, word_limits: Mapping[str, int] | None = None,
                  dense: bool = True, encoder=None, keyframe_threshold: float | None = None,
                  refine_params: GenerationParams | None = None) -> list[dict[str, Any]]:
    """Caption a shard of clips; one row dict per clip, in input order. Never raises per clip.

    ``clip.keyframes`` are the candidates (2-s samples, then the last frame); with ``encoder`` the
    redundancy rule picks the keyframes of the differential captions, without it all are used.
    The summary's and the text levels' ``max_new_tokens`` come from the word limits unless
    ``summary_params``/``refine_params`` are given.
    """
    templates = frame_caption_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    summary_params = summary_params or replace(params, max_new_tokens=tokens_for_words(limits["summary"]))
    refine_params = refine_params or replace(params, max_new_tokens=tokens_for_words(limits["refine"]))
    rewrite_params = replace(refine_params, max_new_tokens=tokens_for_words(limits["concise"]))
    dense_params = dense_params or params
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        raise ValueError("clip_id values must be unique within a shard")
    clips = [ClipKeyframes(c.clip_id, c.video_id, float(c.start_s), float(c.end_s),
                           sorted(c.keyframes, key=lambda kv: float(kv[0]))) for c in clips]
    selections = choose_keyframes(clips, encoder, keyframe_threshold)

    errors: dict[str, list[str]] = {c.clip_id: [] for c in clips}
    for c in clips:
        if not c.keyframes:
            errors[c.clip_id].append("no keyframes")

    # 1. DiffSW over the kept keyframes, in windows (each a chain of its own), batched across all
    # windows of all clips step by step.
    windows: list[tuple[str, int, ClipKeyframes]] = []
    window_spans: dict[str, list[dict]] = {c.clip_id: [] for c in clips}
    for c in clips:
        kept = [c.keyframes[i] for i in selections[c.clip_id].kept]
        for w, (a, b) in enumerate(keyframe_windows(len(kept), max_keyframes)):
            windows.append((c.clip_id, w, ClipKeyframes(f"{c.clip_id}#w{w}", c.video_id, c.start_s, c.end_s,
                                                        kept[a:b], window_start=w > 0)))
            window_spans[c.clip_id].append({"start_s": float(kept[a][0]), "end_s": float(kept[b - 1][0]),
                                            "keyframe_ts": [float(t) for t, _ in kept[a:b]]})
    owner = {wc.clip_id: (cid, w) for cid, w, wc in windows}
    wdiffs: dict[str, list[dict]] = {wc.clip_id: [] for _, _, wc in windows}
    failed_windows: set[str] = set()
    prev: dict[str, str] = {}
    step = 0
    while True:
        steps = build_diffsw_requests([wc for _, _, wc in windows], step, prev, templates, limits)
        if not steps:
            break
        results = vlm.generate([s.request for s in steps], params)
        for s, r in zip(steps, results):
            cid, w = owner[s.clip_id]
            if r.error is None and r.text is not None:
                wdiffs[s.clip_id].append({"t_s": s.t_s, "text": r.text, "window_start": step == 0 and w > 0})
                prev[s.clip_id] = r.text
            else:
                errors[cid].append(f"diffsw window {w} step {step} (t={s.t_s:.2f}s): {r.error or 'no output'}")
                failed_windows.add(s.clip_id)
                prev.pop(s.clip_id, None)
        # Windows that failed this step, or whose clip failed elsewhere, drop out.
        prev = {wid: txt for wid, txt in prev.items() if wid not in failed_windows and not errors[owner[wid][0]]}
        step += 1
    diffs: dict[str, list[dict]] = {c.clip_id: [] for c in clips}
    for cid, _w, wc in windows:
        diffs[cid].extend(wdiffs[wc.clip_id])

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

    # 3. LVD-2M level 1: dense segment captions from the 2-s samples, batched across all segments.
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

    # 4. LVD-2M levels 2 and 3: refined whole-clip caption, then its concise rewrite (text model).
    refined: dict[str, str] = {}
    concise: dict[str, str] = {}
    if dense:
        todo = [c for c in ok if dense_rows[c.clip_id] and not any(d["text"] is None for d in dense_rows[c.clip_id])]
        results = llm.generate([build_refine_request(c, dense_rows[c.clip_id], templates, limits) for c in todo],
                               refine_params) if todo else []
        for c, r in zip(todo, results):
            if r.error is None and r.text is not None:
                refined[c.clip_id] = r.text
            else:
                errors[c.clip_id].append(f"refine: {r.error or 'no output'}")
        todo = [c for c in todo if c.clip_id in refined]
        results = llm.generate([build_rewrite_request(c, refined[c.clip_id], templates, limits) for c in todo],
                               rewrite_params) if todo else []
        for c, r in zip(todo, results):
            if r.error is None and r.text is not None:
                concise[c.clip_id] = r.text
            else:
                errors[c.clip_id].append(f"rewrite: {r.error or 'no output'}")

    gen_params = json.dumps({
        "diffsw": params.as_dict(), "summary": summary_params.as_dict(), "dense": dense_params.as_dict(),
        "refine": refine_params.as_dict(), "rewrite": rewrite_params.as_dict(),
        "dense_segment_s": dense_segment_s, "max_dense_images": max_dense_images,
        "max_keyframes": max_keyframes, "word_limits": limits, "tokens_per_word": TOKENS_PER_WORD,
    }, sort_keys=True)
    keyframe_rule = json.dumps({
        "rule": "sharegpt4video: keep a 2-s sample when its distance to the last kept keyframe > threshold; "
                "last frame always kept" if encoder is not None else "all candidates kept",
        **({"encoder": encoder.describe(),
            "threshold": encoder.default_threshold if keyframe_threshold is None else float(keyframe_threshold)}
           if encoder is not None else {}),
    }, sort_keys=True)
    hashes = level_prompt_hashes()
    rows = []
    for c in clips:
        caption = summaries.get(c.clip_id)
        sel = selections[c.clip_id]
        err = "; ".join(errors[c.clip_id]) or None
        rows.append({
            "clip_id": c.clip_id, "video_id": c.video_id, "duration_s": c.duration_s,
            "caption": caption,
            "diff_captions": [{"t_s": d["t_s"], "text": d["text"]} for d in diffs[c.clip_id]],
            "dense_captions": dense_rows[c.clip_id],
            "refined_caption": refined.get(c.clip_id),
            "concise_caption": concise.get(c.clip_id),
            "keyframe_ts": sel.kept_ts,
            "candidate_keyframe_ts": sel.candidate_ts,
            "keyframe_distances": sel.distances,
            "keyframe_windows": window_spans[c.clip_id],
            "keyframe_rule": keyframe_rule,
            "vlm_model_id": vlm.model_id, "vlm_revision": vlm.revision,
            "llm_model_id": llm.model_id, "llm_revision": llm.revision,
            **hashes,
            "gen_params": gen_params,
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
