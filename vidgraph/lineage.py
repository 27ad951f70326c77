"""`vidgraph lineage ID`: the chain from a landed file to a clip's merged record.

ID is a clip id (``v…-c0001``), a video id (``v…``) or a landed file's path. Tables are read
shard by shard with plain Parquet reads (no DuckDB, Dagster or torch import), reading the key
column first, so the command starts fast and reads whole tables only where the ID occurs.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vidgraph.storage.store import DatasetStore

# Caption tables of a clip, in graph order.
CAPTION_TABLES = ("frame_captions", "audio_captions", "merged_captions")


class LineageNotFound(LookupError):
    pass


def _rows(store: DatasetStore, asset: str, column: str, values: set[str], name: str | None = None) -> list[dict]:
    """Rows of every shard's ``asset`` table whose ``column`` is in ``values``."""
    if not values:
        return []
    out = []
    for path in store.list_tables(asset, name):
        if "/.staging" in path:
            continue
        with store.fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            if column not in pf.schema_arrow.names:
                continue
            keys = pf.read(columns=[column]).column(column).to_pylist()
            hits = [i for i, k in enumerate(keys) if k in values]
            if hits:
                table = pf.read()
                out += [table.slice(i, 1).to_pylist()[0] for i in hits]
    return out


def _quarantine(store: DatasetStore, column: str, values: set[str]) -> list[dict]:
    out = []
    for path in store.list_files(store.path("quarantine")):
        if not path.endswith(".parquet") or "/.staging" in path:
            continue
        with store.fs.open_input_file(path) as f:
            t = pq.ParquetFile(f).read()
        out += [r for r in t.to_pylist() if r.get(column) in values]
    return out


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return h.hexdigest()


def _clip_chain(store: DatasetStore, clip: dict) -> dict:
    cid = clip["clip_id"]
    take = _rows(store, "long_takes", "clip_id", {cid})
    kfs = sorted(_rows(store, "long_takes", "clip_id", {cid}, "clip_keyframes"), key=lambda k: k["keyframe_index"])
    chain: dict[str, Any] = {
        "clip_id": cid,
        "clip": {k: clip.get(k) for k in ("clip_index", "start_frame", "end_frame", "n_frames", "start_s", "end_s",
                                           "duration_s", "fps", "width", "height", "has_audio", "path", "detector",
                                           "detector_params")},
        "long_take": None,
        "keyframes": [{"t_clip_s": k["t_clip_s"], "frame_index": k["frame_index"], "path": k["path"]} for k in kfs],
    }
    if take:
        t = take[0]
        chain["long_take"] = {k: t.get(k) for k in ("passed", "reasons", "duration_s", "dynamic_degree", "camera_motion",
                                                     "black_frac", "blurry_frac", "semantic_score", "filter_config")}
    for asset in CAPTION_TABLES:
        rows = _rows(store, asset, "clip_id", {cid})
        chain[asset] = rows[0] if rows else None
    return chain


def lineage(store: DatasetStore, ident: str) -> dict:
    """The chain for a clip id, a video id or a landed file's path (raises LineageNotFound)."""
    ident = ident.strip()
    clips = _rows(store, "raw_clips", "clip_id", {ident})
    kind = "clip"
    video_ids: set[str] = {c["video_id"] for c in clips}
    ledger: list[dict] = []
    if not clips:
        kind = "video"
        videos = _rows(store, "source_videos", "video_id", {ident})
        if videos:
            video_ids = {ident}
        elif ident.startswith("v") and _quarantine(store, "video_id", {ident}):
            video_ids = {ident}
        else:
            kind = "path"
            p = Path(ident).expanduser()
            ledger = _rows(store, "ingest_ledger", "landing_path", {str(p.resolve()) if p.exists() else ident})
            ledger = ledger or _rows(store, "ingest_ledger", "relpath", {ident})
            if not ledger and p.is_file():
                ledger = _rows(store, "ingest_ledger", "sha256", {_sha256_of(p)})  # renamed or moved since ingest
            if not ledger:
                refused = _quarantine(store, "path", {str(p.resolve()) if p.exists() else ident})
                if refused:
                    return {"query": ident, "kind": "path", "landed": [], "quarantine": refused, "videos": []}
                raise LineageNotFound(f"{ident!r} is not a clip id, a video id or a landed file of this dataset")
            video_ids = {"v" + r["sha256"][:16] for r in ledger}
    videos = _rows(store, "source_videos", "video_id", video_ids)
    shas = {v["sha256"] for v in videos} | {r["sha256"] for r in ledger}
    if not shas:
        shas = {q["sha256"] for q in _quarantine(store, "video_id", video_ids) if q.get("sha256")}
    ledger = ledger or _rows(store, "ingest_ledger", "sha256", shas)
    if kind != "clip":
        clips = _rows(store, "raw_clips", "video_id", video_ids)
    by_video: dict[str, list[dict]] = {}
    for c in sorted(clips, key=lambda c: c["clip_id"]):
        by_video.setdefault(c["video_id"], []).append(c)
    out_videos = []
    for vid in sorted(video_ids):
        v = next((x for x in videos if x["video_id"] == vid), None)
        out_videos.append({
            "video_id": vid,
            "source_video": v,
            "clips": [_clip_chain(store, c) for c in by_video.get(vid, [])],
        })
    return {
        "query": ident,
        "kind": kind,
        "landed": sorted(ledger, key=lambda r: (r.get("ingested_at") or "", r["landing_path"])),
        "quarantine": _quarantine(store, "video_id", video_ids),
        "videos": out_videos,
    }


def _models(row: dict) -> str:
    """"model@revision" for every model a caption row records, and its prompt hashes."""
    parts = []
    for key in sorted(row):
        if key.endswith("_model_id") and row.get(key):
            role = key[: -len("_model_id")]
            parts.append(f"{role} {row[key]}@{row.get(role + '_revision') or '?'}")
    if row.get("ocr_model"):
        parts.append(f"ocr {row['ocr_model']}")
    for key in sorted(row):
        if key.endswith("prompt_hash") and row.get(key):
            parts.append(f"{key} {str(row[key])[:12]}")
    return ", ".join(parts)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _short(text: Any, n: int = 160) -> str:
    # Captions and uploader text are untrusted: no control characters (terminal escapes) reach the screen.
    s = " ".join(_CONTROL.sub(" ", str(text or "")).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def format_text(chain: dict) -> str:
    lines = [f"lineage of {chain['query']} ({chain['kind']})"]
    for r in chain["landed"]:
        lines.append(f"landed file   {r['landing_path']}  ({r['relpath']}, {r['size_bytes']} bytes, ingested {r['ingested_at']})")
        lines.append(f"sha256        {r['sha256']}")
        lines.append(f"shard         {r['shard']}")
    for q in chain["quarantine"]:
        lines.append(f"quarantined   {q['path']}: {q['reason']} (stage {q['stage']})")
    for v in chain["videos"]:
        s = v["source_video"]
        if s is None:
            lines.append(f"source video  {v['video_id']}: not in source_videos")
            continue
        lines.append(f"source video  {s['video_id']}  {s['container']} {s['video_codec']} {s['width']}x{s['height']}, "
                     f"{s['duration_s']:.2f} s, {s['avg_fps']:.3g} fps, audio {s['audio_codec'] or 'none'}; copy {s['media_path']}")
        for k in ("source_title", "source_description", "source_license", "source_url"):
            if s.get(k):
                lines.append(f"  {k[7:]:<11} {_short(s[k])}")
        for c in v["clips"]:
            cl = c["clip"]
            lines.append(f"clip          {c['clip_id']}  frames {cl['start_frame']}-{cl['end_frame']} ({cl['n_frames']}), "
                         f"{cl['start_s']:.3f}-{cl['end_s']:.3f} s, detector {cl['detector']}; file {cl['path']}")
            t = c["long_take"]
            if t is None:
                lines.append("  long take   (not judged yet)")
            else:
                verdict = "passed" if t["passed"] else "failed: " + ", ".join(t["reasons"] or [])
                lines.append(f"  long take   {verdict}; camera {t['camera_motion']}, dynamic degree {t['dynamic_degree']:.4f}")
            if c["keyframes"]:
                ts = ", ".join(f"{k['t_clip_s']:.1f}" for k in c["keyframes"])
                lines.append(f"  keyframes   {len(c['keyframes'])} at {ts} s, under {c['keyframes'][0]['path'].rsplit('/', 1)[0]}/")
            for asset, text_keys in (("frame_captions", ("caption", "concise_caption", "ocr_text")),
                                     ("audio_captions", ("transcript", "audio_caption")),
                                     ("merged_captions", ("merged_caption", "intent_uploader", "intent_subject"))):
                row = c.get(asset)
                if row is None:
                    continue
                lines.append(f"  {asset:<16}{_models(row)}")
                for k in text_keys:
                    if row.get(k):
                        lines.append(f"    {k}: {_short(row[k])}")
                if asset == "merged_captions":
                    sim = [row.get("intent_similarity_uploader"), row.get("intent_similarity_subject")]
                    lines.append(f"    verified: {row.get('verified')} (similarity {', '.join('-' if x is None else f'{x:.2f}' for x in sim)}); "
                                 f"6W {json.dumps(row.get('sixw'), ensure_ascii=False)}")
                    if row.get("parse_failures"):
                        lines.append(f"    parse failures: {', '.join(p['field'] for p in row['parse_failures'])}")
                if row.get("error"):
                    lines.append(f"    error: {_short(row['error'])}")
    return "\n".join(_CONTROL.sub(" ", line) for line in lines)  # paths and reasons too


def main_lineage(root: str, ident: str, as_json: bool) -> int:
    import sys

    store = DatasetStore(root)
    try:
        chain = lineage(store, ident)
    except LineageNotFound as e:
        print(f"vidgraph: {e}", file=sys.stderr)
        return 1
    print(json.dumps(chain, default=str, ensure_ascii=False) if as_json else format_text(chain))
    return 0


__all__ = ["LineageNotFound", "format_text", "lineage", "main_lineage"]
