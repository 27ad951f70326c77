"""clip_files: clip files for the clips that pass long_takes (``clip_files: passing``).

Run by the long_takes step after its verdict. Files go to ``clip_files/<shard>/media/`` with a
``clip_files`` table (one row per file: method, copied frames, error); the shard is published
atomically like an asset's. With ``all`` (raw_clips cut every shot) or ``none`` the shard is
published empty, so no stale file outlives a change of setting. Consumers never read this
folder directly: vidgraph.media.clip_media finds the file or falls back to the source's span.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.media.shots import Shot
from vidgraph.stages.raw_clips import RawClipsSettings, clip_file_problem, cut_job, cut_time_check, worker_deadline_s
from vidgraph.storage.schemas import CLIP_FILES_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "clip_files"


def clip_file_path(shard: str, clip_id: str) -> str:
    return f"{ASSET}/{shard}/media/{clip_id}.mp4"


def _previous(store: DatasetStore, shard: str) -> dict[str, dict]:
    if not store.exists(store.table_path(ASSET, shard)):
        return {}
    return {r["clip_id"]: r for r in store.read_table(ASSET, shard).to_pylist() if r["path"]}


def build_clip_files(
    store: DatasetStore, shard: str, settings: RawClipsSettings = RawClipsSettings(), clip_ids: set[str] | None = None, log=None
) -> pa.Table:
    """Cut the files of the shard's passing long takes (or of ``clip_ids``) and publish them."""
    rows: list[dict] = []
    wanted: list[dict] = []
    if settings.clip_files == "passing":
        if clip_ids is None:
            lt = store.read_table("long_takes", shard).select(["clip_id", "passed"]).to_pylist()
            clip_ids = {r["clip_id"] for r in lt if r["passed"]}
        wanted = [c for c in store.read_table("raw_clips", shard).to_pylist() if c["clip_id"] in clip_ids]
    sources = {r["video_id"]: r for r in store.read_table("source_videos", shard).to_pylist()} if wanted else {}
    previous = _previous(store, shard)
    encoding = json.dumps(settings.encoding.describe(), sort_keys=True)
    by_video: dict[str, list[dict]] = defaultdict(list)
    for c in wanted:
        by_video[c["video_id"]].append(c)
    with store.staging_dir() as staging:
        media = staging / "media"
        media.mkdir(parents=True, exist_ok=True)
        for vid, clips in sorted(by_video.items()):
            clips.sort(key=lambda c: c["start_frame"])
            todo = []
            for c in clips:
                out = media / f"{c['clip_id']}.mp4"
                old = previous.get(c["clip_id"])
                # Same frames, same encoding: keep the published file (x264 output is not byte-reproducible).
                if old and (old["start_frame"], old["end_frame"], old["encoding"]) == (c["start_frame"], c["end_frame"], encoding) \
                        and store.exists(store.path(old["path"])):
                    src = store.path(old["path"])
                    if store.is_local:
                        os.link(src, out)
                    else:
                        out.write_bytes(store.read_bytes(src))
                    if clip_file_problem(out, c, decode="ends"):  # cut by an older version (say, before a stall counted): again
                        out.unlink()
                        todo.append(c)
                        continue
                    rows.append({**_row(c, shard, encoding), "path": clip_file_path(shard, c["clip_id"]),
                                 "method": old["method"], "copied_frames": old["copied_frames"]})
                else:
                    todo.append(c)
            if not todo:
                continue
            shots = [Shot(c["start_frame"], c["end_frame"], c["start_s"], c["end_s"]) for c in todo]
            outs = [media / f"{c['clip_id']}.mp4" for c in todo]
            try:
                with store.local_copy(store.path(sources[vid]["media_path"]), suffix=".video") as local:
                    files = run_media_job(local, shots, outs, settings)
                for c, f, out in zip(todo, files, outs):
                    # A file that does not match its row is not published: its clip is read as a span.
                    if problem := clip_file_problem(out, c, decode=cut_time_check(f)):
                        out.unlink(missing_ok=True)
                        if log is not None:
                            log(f"clip file of {c['clip_id']} not kept: {problem}")
                        rows.append({**_row(c, shard, encoding), "error": problem})
                        continue
                    rows.append({**_row(c, shard, encoding), "path": clip_file_path(shard, c["clip_id"]),
                                 "method": f.method, "copied_frames": f.copied_frames})
            except Exception as e:  # noqa: BLE001 - those clips are read as spans of the source instead
                msg = f"{type(e).__name__}: {e}"
                if log is not None:
                    log(f"clip files of {vid} not written: {msg}")
                for c, out in zip(todo, outs):
                    out.unlink(missing_ok=True)
                    rows.append({**_row(c, shard, encoding), "error": msg})
        table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["clip_id"]), schema=CLIP_FILES_SCHEMA)
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        store.publish_shard(ASSET, shard, staging)
    return table


def run_media_job(local, shots, outs, settings: RawClipsSettings):
    from vidgraph.media.isolate import run_isolated

    return run_isolated(cut_job, local, shots, outs, settings.encoding, settings.policy,
                        timeout_s=worker_deadline_s(settings.policy), isolate=settings.isolate)


def _row(c: dict, shard: str, encoding: str) -> dict:
    return {
        "clip_id": c["clip_id"], "video_id": c["video_id"], "shard": shard,
        "start_frame": c["start_frame"], "end_frame": c["end_frame"], "n_frames": c["n_frames"],
        "path": "", "method": "", "copied_frames": 0, "encoding": encoding, "error": "",
    }
