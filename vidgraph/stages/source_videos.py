"""source_videos: probe every ledger entry of a shard; copy accepted files into the root."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.faults import reraise_if_infrastructure
from vidgraph.ingest import ledger_path
from vidgraph.media.probe import InputPolicy, InputRejected, probe_video
from vidgraph.progress import video_done
from vidgraph.storage.schemas import QUARANTINE_SCHEMA, SOURCE_VIDEOS_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "source_videos"


@dataclass
class StageResult:
    table: pa.Table
    quarantine: pa.Table
    inputs: int
    extra: dict = field(default_factory=dict)


def video_id_for(sha256: str) -> str:
    """Stable id from content: the same bytes always get the same id, whatever the file name."""
    return "v" + sha256[:16]


def quarantine_row(path: str, reason: str, stage: str, shard: str, sha256: str | None = None, video_id: str | None = None) -> dict:
    return {"path": path, "sha256": sha256, "reason": reason, "stage": stage, "shard": shard, "video_id": video_id}


# Videos a person set aside (``vidgraph quarantine add``): one table per shard,
# ``quarantine/<shard>/manual.parquet``, stage "manual". Every stage skips them.
MANUAL = "manual"


def set_aside(store: DatasetStore, shard: str) -> dict[str, dict]:
    """sha256 -> the manual quarantine row of each video of ``shard`` a person set aside."""
    if not store.exists(store.table_path("quarantine", shard, MANUAL)):
        return {}
    return {r["sha256"]: r for r in store.read_table("quarantine", shard, MANUAL).to_pylist()}


def find_landed(store: DatasetStore, ident: str) -> list[dict]:
    """Ledger rows that ``ident`` names: a landing path (as given or resolved), a relpath inside
    the landing zone, a sha256 (or a prefix of 12+ hex digits) or a video id."""
    from vidgraph.storage.catalog import read_all

    ledger = read_all(store, "ingest_ledger")
    if ledger is None:
        return []
    resolved = str(Path(ident).expanduser().resolve()) if ident else ""
    sha = ident[1:] if re.fullmatch(r"v[0-9a-f]{16}", ident) else ident.lower()
    out = []
    for r in ledger.to_pylist():
        by_sha = len(sha) >= 12 and re.fullmatch(r"[0-9a-f]+", sha) and r["sha256"].startswith(sha)
        if by_sha or ident in (r["landing_path"], r["relpath"]) or resolved == r["landing_path"]:
            out.append(r)
    return out


def set_video_aside(store: DatasetStore, entry: dict, reason: str) -> dict:
    """Add the ledger row ``entry``'s video to its shard's manual quarantine (once: a second
    call replaces the reason). Returns the quarantine row."""
    shard = entry["shard"]
    row = quarantine_row(entry["landing_path"], reason, MANUAL, shard, entry["sha256"], video_id_for(entry["sha256"]))
    rows = [r for r in set_aside(store, shard).values() if r["sha256"] != entry["sha256"]] + [row]
    store.write_table("quarantine", shard, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), name=MANUAL)
    return row


def landing_problem(path: Path, landing: Path | None) -> str | None:
    """Why a ledger path may not be read now, or None: it must still be a regular file (not a
    symlink, FIFO or folder swapped in since ingest) whose real path is inside the landing zone."""
    real = Path(os.path.realpath(path))  # never raises, even on a symlink loop
    if landing is not None and not real.is_relative_to(landing):
        return "path is outside the landing zone"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing from the landing zone since ingest"
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if stat.S_ISLNK(st.st_mode):
        return "became a symbolic link since ingest"
    return None


def copy_verified(src: Path, dst: Path, sha256: str, chunk: int = 4 << 20) -> None:
    """Copy ``src`` while hashing what is copied; the copy must have the ingested sha256 (a file
    swapped or rewritten between the probe and the copy is refused, not copied)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(src, flags)
    except OSError as e:
        raise InputRejected(f"cannot be read: {e.strerror or e}") from e
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise InputRejected("is no longer a regular file")
        with open(dst, "wb") as out:
            while block := f.read(chunk):
                h.update(block)
                out.write(block)
    if h.hexdigest() != sha256:
        dst.unlink()
        raise InputRejected("content changed since ingest (sha256 differs)")


def _safe_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"


# Sidecars: the uploader's own text next to a landed video (NAME.json, else NAME.txt). Untrusted:
# size-limited, decoded leniently, control characters dropped, every field cut to a length.
SIDECAR_MAX_BYTES = 64 * 1024
SIDECAR_FIELD_CHARS = {"title": 500, "description": 5000, "license": 200, "url": 2000, "tag": 100}
SIDECAR_MAX_TAGS = 50
_SIDECAR_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _clean_text(value, limit: int) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = _SIDECAR_CONTROL.sub(" ", str(value)).strip()
    return text[:limit]


def _read_sidecar_bytes(path: Path, landing: Path | None) -> bytes | None:
    """The sidecar's bytes, or None when there is none; raises ValueError when it may not be read."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if landing is not None and not Path(os.path.realpath(path)).is_relative_to(landing):
        raise ValueError("outside the landing zone")
    if st.st_size > SIDECAR_MAX_BYTES:
        raise ValueError(f"larger than {SIDECAR_MAX_BYTES} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = f.read(SIDECAR_MAX_BYTES + 1)
    if len(data) > SIDECAR_MAX_BYTES:
        raise ValueError(f"larger than {SIDECAR_MAX_BYTES} bytes")
    return data


def parse_sidecar(data: bytes, kind: str) -> dict:
    """The source_* columns from a sidecar's bytes (``kind`` "json" or "txt")."""
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    out = {"source_title": "", "source_description": "", "source_license": "", "source_url": "", "source_tags": []}
    if kind == "txt":
        out["source_description"] = _clean_text(text, SIDECAR_FIELD_CHARS["description"])
        return out
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError("JSON sidecar is not an object")
    lim = SIDECAR_FIELD_CHARS
    out["source_title"] = _clean_text(meta.get("title"), lim["title"])
    out["source_description"] = _clean_text(meta.get("description"), lim["description"])
    out["source_license"] = _clean_text(meta.get("licence", meta.get("license")), lim["license"])
    url = _clean_text(meta.get("url", meta.get("webpage_url")), lim["url"])
    out["source_url"] = url if re.match(r"https?://[^\s]+$", url) else ""
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = tags.split(",")
    if isinstance(tags, list):
        out["source_tags"] = [t for t in (_clean_text(x, lim["tag"]) for x in tags[:SIDECAR_MAX_TAGS]) if t]
    return out


def read_source_text(video: Path, landing: Path | None = None) -> dict:
    """The source_* columns from ``NAME.json`` (else ``NAME.txt``) beside ``video``; "" when absent.

    A sidecar that cannot be used (too large, not JSON, a symlink, ...) leaves the columns empty
    and says why in ``source_sidecar_error``; the video itself is unaffected.
    """
    empty = {"source_title": "", "source_description": "", "source_license": "", "source_url": "",
             "source_tags": [], "source_sidecar": "", "source_sidecar_error": ""}
    for kind in ("json", "txt"):
        side = video.with_suffix(f".{kind}")
        try:
            data = _read_sidecar_bytes(side, landing)
            if data is None:
                continue
            return {**empty, **parse_sidecar(data, kind), "source_sidecar": side.name}
        except (ValueError, OSError) as e:  # JSONDecodeError is a ValueError
            return {**empty, "source_sidecar": side.name, "source_sidecar_error": f"{type(e).__name__}: {e}"[:300]}
    return empty


def _prior_copy(store: DatasetStore, media_rel: str, scratch: Path) -> Path | None:
    """The copy an earlier run of this shard published in the root, as a local file (the landed
    file may be gone: moved or deleted by ``after_ingest``)."""
    path = store.path(media_rel)
    if not store.exists(path):
        return None
    if store.is_local:
        return Path(path)
    with store.fs.open_input_stream(path) as src, open(scratch, "wb") as out:
        while block := src.read(8 << 20):
            out.write(block)
    return scratch


def _prior_rows(store: DatasetStore, shard: str) -> dict[str, dict]:
    if not store.exists(store.table_path(ASSET, shard)):
        return {}
    return {r["video_id"]: r for r in store.read_table(ASSET, shard).to_pylist()}


def build_source_videos(
    store: DatasetStore,
    shard: str,
    policy: InputPolicy = InputPolicy(),
    landing_root: str | Path | None = None,
) -> StageResult:
    from vidgraph.landing import LandingGone, fetch_s3_object, is_s3

    ledger = store.read_table("ingest_ledger", shard).to_pylist()
    rows: list[dict] = []
    quarantined: list[dict] = []
    landing = Path(landing_root).resolve() if landing_root and not is_s3(landing_root) else None
    prior: dict[str, dict] | None = None
    aside = set_aside(store, shard)  # in the manual quarantine: not read at all
    with store.staging_dir() as staging:
        for entry in ledger:
            if entry["sha256"] in aside:
                continue
            remote = is_s3(entry["landing_path"])  # an s3:// landing: the object is fetched first
            path = None if remote else ledger_path(entry)  # the name as the file system spells it (may not be UTF-8)
            name = entry["landing_path"].rsplit("/", 1)[-1] if remote else path.name
            vid = video_id_for(entry["sha256"])
            started = time.monotonic()

            def reject(reason: str) -> None:
                quarantined.append(quarantine_row(entry["landing_path"], reason, ASSET, shard, entry["sha256"], vid))

            media_rel = f"{ASSET}/{shard}/media/{vid}{_safe_suffix(name)}"
            target = staging / "media" / f"{vid}{_safe_suffix(name)}"
            target.parent.mkdir(parents=True, exist_ok=True)
            fetched = staging / f".fetch-{vid}"
            source, gone = path, False
            try:
                if remote:
                    fetch_s3_object(entry["landing_path"], fetched, entry["sha256"])
                    source = fetched
                else:
                    problem = landing_problem(path, landing)
                    if problem == "missing from the landing zone since ingest":
                        gone = True
                    elif problem:
                        reject(problem)
                        continue
            except LandingGone:
                gone = True
            except InputRejected as e:
                reject(e.reason)
                continue
            if gone:  # moved or deleted after an earlier run copied it: that copy is the source
                source = _prior_copy(store, media_rel, fetched)
                if source is None:
                    reject("missing from the landing zone since ingest")
                    continue
            try:
                probe = probe_video(source, policy)
                if probe.sha256 != entry["sha256"]:
                    raise InputRejected("content changed since ingest (sha256 differs)")
                if source == fetched:  # ours, already checked against the sha256
                    os.replace(fetched, target)
                else:
                    copy_verified(source, target, entry["sha256"])
            except InputRejected as e:
                reject(e.reason)
                continue
            except Exception as e:  # noqa: BLE001 - one bad file must never stop the shard
                reraise_if_infrastructure(e)  # S3/network/disk faults retry the step; they are not the file's
                reject(f"probe failed: {type(e).__name__}: {e}")
                continue
            row = probe.as_row()
            row.pop("path")
            if gone:
                prior = _prior_rows(store, shard) if prior is None else prior
                old = prior.get(vid, {})
                text = {**read_source_text(Path(os.devnull) / name), **{k: old[k] for k in old if k.startswith("source_")}}
            elif remote:
                text = read_source_text(Path(os.devnull) / name)  # empty: sidecars are read from local landings only
            else:
                text = read_source_text(path, landing)
            rows.append(
                {
                    **row,
                    **text,
                    "video_id": vid,
                    "shard": shard,
                    "relpath": entry["relpath"],
                    "landing_path": entry["landing_path"],
                    "media_path": media_rel,
                }
            )
            video_done(ASSET, entry["relpath"], row.get("n_frames_declared") or 0, row.get("duration_s") or 0.0, started, "probed and copied")
        rows.sort(key=lambda r: r["video_id"])
        table = pa.Table.from_pylist(rows, schema=SOURCE_VIDEOS_SCHEMA)
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        # The quarantine before the asset: a kill between the two leaves the shard unpublished
        # (resumed by the next run), never published with its quarantine missing.
        qtable = pa.Table.from_pylist(sorted(quarantined, key=lambda r: r["path"]), schema=QUARANTINE_SCHEMA)
        store.write_table("quarantine", shard, qtable, name=ASSET)
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, qtable, inputs=len(ledger))
