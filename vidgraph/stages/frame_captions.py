"""frame_captions: DiffSW and three-level dense captions for every passing long take of a shard."""

from __future__ import annotations

import io
import json
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from vidgraph.captions.frame_captions import ClipKeyframes, caption_clips, word_limits_from_profile
from vidgraph.captions.keyframes import GAP_TOLERANCE_S, keyframe_candidates
from vidgraph.media.ocr import clip_text
from vidgraph.models.backends import ChatModel, GenerationParams
from vidgraph.stages.long_takes import KEYFRAMES_TABLE, OCR_TABLE
from vidgraph.stages.source_videos import StageResult
from vidgraph.storage.schemas import FRAME_CAPTIONS_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "frame_captions"
KEYFRAME_EVERY_S = 2.0  # ShareGPT4Video samples a frame every 2 s (long_takes' keyframes)


def load_clip_keyframes(store: DatasetStore, shard: str) -> list[ClipKeyframes]:
    """The passing long takes of a shard with their 2-s keyframe images, in clip order."""
    takes = [r for r in store.read_table("long_takes", shard).to_pylist() if r["passed"]]
    kfs = defaultdict(list)
    for k in store.read_table("long_takes", shard, KEYFRAMES_TABLE).to_pylist():
        kfs[k["clip_id"]].append(k)
    clips = []
    for t in sorted(takes, key=lambda r: r["clip_id"]):
        frames = []
        for k in sorted(kfs[t["clip_id"]], key=lambda k: k["keyframe_index"]):
            img = Image.open(io.BytesIO(store.read_bytes(store.path(k["path"])))).convert("RGB")
            frames.append((float(k["t_clip_s"]), img))
        clips.append(ClipKeyframes(t["clip_id"], t["video_id"], float(t["start_s"]), float(t["end_s"]), frames))
    return clips


def read_last_frames(store: DatasetStore, shard: str, clip_ids: list[str]) -> dict[str, tuple[float, Image.Image] | str]:
    """``clip_id`` -> (t in clip time, image) of each clip's last frame, or the reason it could not be read.
    Each media file is fetched once for all its clips."""
    from vidgraph.media.clip_media import clip_media_for_shard, local_clip_media
    from vidgraph.media.last_frame import read_last_frame

    out: dict[str, tuple[float, Image.Image] | str] = {}
    try:
        media = clip_media_for_shard(store, shard, set(clip_ids))
    except FileNotFoundError as e:
        return {c: f"clip media: {e}" for c in clip_ids}
    by_path = defaultdict(list)
    for cid in clip_ids:
        if cid in media:
            by_path[media[cid].path].append(media[cid])
        else:
            out[cid] = "clip media: not in raw_clips"
    for items in by_path.values():
        with local_clip_media(store, items[0]) as local:
            for m in items:
                try:
                    t, rgb = read_last_frame(local, m.start_s, m.end_s)
                    out[m.clip_id] = (round(t - m.start_s, 6), Image.fromarray(rgb))
                except Exception as e:  # a damaged file stays on its clip's row
                    out[m.clip_id] = f"{type(e).__name__}: {e}"
    return out


def load_ocr(store: DatasetStore, shard: str) -> dict[str, list[dict]]:
    """long_takes' OCR rows by clip (empty when OCR did not run)."""
    if not store.exists(store.table_path("long_takes", shard, OCR_TABLE)):
        return {}
    out = defaultdict(list)
    for r in store.read_table("long_takes", shard, OCR_TABLE).to_pylist():
        out[r["clip_id"]].append(r)
    return out


def ocr_columns(rows: list[dict]) -> dict:
    """The frame_captions OCR columns of one clip from its ``clip_ocr`` rows."""
    rows = sorted(rows, key=lambda r: r["t_clip_s"])
    if not rows:
        return {"ocr_text": "", "ocr": [], "ocr_model": "", "ocr_area_frac": None}
    return {
        "ocr_text": clip_text([(r["t_clip_s"], r["text"]) for r in rows]),
        "ocr": [{"t_s": r["t_clip_s"], "text": r["text"], "area_frac": r["area_frac"]} for r in rows],
        "ocr_model": rows[0]["ocr_model"],
        "ocr_area_frac": sum(r["area_frac"] for r in rows) / len(rows),
    }


def build_frame_captions(
    store: DatasetStore,
    shard: str,
    vlm: ChatModel,
    llm: ChatModel,
    params: GenerationParams,
    captions: dict,
    encoder=None,
) -> StageResult:
    """Caption every passing long take. ``encoder`` (an ImageEncoder) applies ShareGPT4Video's
    redundancy rule to the candidates: the 2-s keyframes and the clip's last frame."""
    clips = load_clip_keyframes(store, shard)
    last = read_last_frames(store, shard, [c.clip_id for c in clips]) if clips else {}
    last_errors = {}
    for c in clips:
        lf = last.get(c.clip_id)
        if isinstance(lf, tuple):
            c.keyframes = keyframe_candidates(c.keyframes, lf, KEYFRAME_EVERY_S, GAP_TOLERANCE_S)
        else:
            last_errors[c.clip_id] = f"last frame unreadable ({lf})"
    rows = caption_clips(
        clips,
        vlm,
        llm,
        params,
        dense_segment_s=float(captions.get("dense_segment_s", 4.0)),
        max_dense_images=captions.get("max_dense_images", 2),
        max_keyframes=captions.get("max_keyframes"),
        word_limits=word_limits_from_profile(captions),
        encoder=encoder,
        keyframe_threshold=captions.get("keyframe_threshold"),
    )
    ocr = load_ocr(store, shard)
    for r in rows:
        r["shard"] = shard
        r.update(ocr_columns(ocr.get(r["clip_id"], [])))
        if r["clip_id"] in last_errors:
            r["error"] = "; ".join(e for e in (r["error"], last_errors[r["clip_id"]]) if e)
        rule = json.loads(r["keyframe_rule"])
        rule.update(every_s=KEYFRAME_EVERY_S, gap_tolerance_s=GAP_TOLERANCE_S,
                    last_frame=r["clip_id"] not in last_errors)
        r["keyframe_rule"] = json.dumps(rule, sort_keys=True)
    table = pa.Table.from_pylist(rows, schema=FRAME_CAPTIONS_SCHEMA)
    with store.staging_dir() as staging:
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, QUARANTINE_SCHEMA.empty_table(), inputs=len(clips))
