"""merged_captions: one merged, layered caption per passing long take of a shard.

Reads long_takes (which clips), frame_captions and audio_captions (their rows, by clip_id) and
source_videos (the uploader's own text). Columns that an upstream does not write yet are read as
empty; a passing long take without its frame_captions or audio_captions row gets a row with the
error (and no generation), so the blocking check names it.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.captions.merge import DEFAULT_MAX_QUOTED_CHARS, ClipInputs, merge_clips
from vidgraph.models.backends import ChatModel, GenerationParams
from vidgraph.stages.source_videos import StageResult
from vidgraph.storage.schemas import MERGED_CAPTIONS_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "merged_captions"
UPSTREAMS = ("frame_captions", "audio_captions")

_embedders: dict[str, object] = {}
_embedders_lock = threading.Lock()


def shared_embedder(model: str = ""):
    """One SentenceEmbedder per model per process: the MiniLM load costs seconds."""
    from vidgraph.models.embeddings import PACKAGED_MINILM, SentenceEmbedder

    model = model or PACKAGED_MINILM
    with _embedders_lock:
        if model not in _embedders:
            _embedders[model] = SentenceEmbedder(model)
        return _embedders[model]


def _rows_by_clip(store: DatasetStore, asset: str, shard: str) -> dict[str, dict] | None:
    """``{clip_id: row}`` of an upstream table, or None when the shard has no such table."""
    if not store.exists(store.table_path(asset, shard)):
        return None
    return {r["clip_id"]: r for r in store.read_table(asset, shard).to_pylist()}


def _s(v) -> str:
    return "" if v is None else str(v)


def clip_inputs(store: DatasetStore, shard: str) -> list[ClipInputs]:
    """The passing long takes of a shard with everything their merge needs, in clip order."""
    takes = sorted((r for r in store.read_table("long_takes", shard).to_pylist() if r["passed"]),
                   key=lambda r: r["clip_id"])
    frames = _rows_by_clip(store, "frame_captions", shard)
    audio = _rows_by_clip(store, "audio_captions", shard)
    sources = {}
    if store.exists(store.table_path("source_videos", shard)):
        sources = {r["video_id"]: r for r in store.read_table("source_videos", shard).to_pylist()}
    out = []
    for t in takes:
        cid = t["clip_id"]
        f = (frames or {}).get(cid)
        a = (audio or {}).get(cid)
        src = sources.get(t["video_id"], {})
        problems = []
        if f is None:
            problems.append("no frame_captions row" + ("" if frames is not None else " (no frame_captions table for the shard)"))
        elif not (f.get("caption") or f.get("refined_caption") or f.get("concise_caption")):
            problems.append(f"frame_captions has no caption: {_s(f.get('error')) or 'empty'}")
        if a is None:
            problems.append("no audio_captions row" + ("" if audio is not None else " (no audio_captions table for the shard)"))
        f, a = f or {}, a or {}
        out.append(ClipInputs(
            clip_id=cid, video_id=t["video_id"], duration_s=float(t["duration_s"]),
            caption=_s(f.get("caption")), refined_caption=_s(f.get("refined_caption")),
            concise_caption=_s(f.get("concise_caption")),
            dense_captions=[d for d in (f.get("dense_captions") or []) if d and d.get("text")],
            ocr_text=_s(f.get("ocr_text")),
            has_audio=bool(a.get("has_audio")), audio_class=_s(a.get("audio_class")),
            timeline=list(a.get("timeline") or []), transcript=_s(a.get("transcript")),
            music_tags=[x for x in (a.get("music_tags") or []) if x], tempo_bpm=a.get("tempo_bpm"),
            music_captions=[m for m in (a.get("music_captions") or []) if m and m.get("text")],
            audio_caption=_s(a.get("audio_caption")),
            source_title=_s(src.get("source_title")), source_description=_s(src.get("source_description")),
            source_tags=[x for x in (src.get("source_tags") or []) if x], source_license=_s(src.get("source_license")),
            error="; ".join(problems),
        ))
    return out


def build_merged_captions(
    store: DatasetStore,
    shard: str,
    llm: ChatModel,
    verifier: ChatModel,
    embedder,
    params: GenerationParams,
    *,
    threshold: float = 0.6,
    word_limits: dict | None = None,
    max_quoted_chars: int = DEFAULT_MAX_QUOTED_CHARS,
) -> StageResult:
    clips = clip_inputs(store, shard)
    rows = merge_clips(clips, llm, verifier, embedder, params, threshold=threshold, word_limits=word_limits,
                       max_quoted_chars=max_quoted_chars)
    for r in rows:
        r["shard"] = shard
    table = pa.Table.from_pylist(rows, schema=MERGED_CAPTIONS_SCHEMA)
    with store.staging_dir() as staging:
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, QUARANTINE_SCHEMA.empty_table(), inputs=len(clips))
