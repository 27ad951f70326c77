"""frame_captions: DiffSW and dense captions for every passing long take of a shard."""

from __future__ import annotations

import io
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from vidgraph.captions.frame_captions import ClipKeyframes, caption_clips
from vidgraph.models.backends import ChatModel, GenerationParams
from vidgraph.stages.long_takes import KEYFRAMES_TABLE
from vidgraph.stages.source_videos import StageResult
from vidgraph.storage.schemas import FRAME_CAPTIONS_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "frame_captions"


def load_clip_keyframes(store: DatasetStore, shard: str) -> list[ClipKeyframes]:
    """The passing long takes of a shard with their keyframe images, in clip order."""
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


def build_frame_captions(
    store: DatasetStore,
    shard: str,
    vlm: ChatModel,
    llm: ChatModel,
    params: GenerationParams,
    captions: dict,
) -> StageResult:
    clips = load_clip_keyframes(store, shard)
    rows = caption_clips(
        clips,
        vlm,
        llm,
        params,
        dense_segment_s=float(captions.get("dense_segment_s", 4.0)),
        max_dense_images=captions.get("max_dense_images", 2),
        max_keyframes=captions.get("max_keyframes"),
    )
    for r in rows:
        r["shard"] = shard
    table = pa.Table.from_pylist(rows, schema=FRAME_CAPTIONS_SCHEMA)
    with store.staging_dir() as staging:
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, QUARANTINE_SCHEMA.empty_table(), inputs=len(clips))
