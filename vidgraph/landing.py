"""The landing zone's state: a scan index (no file hashed twice), the S3 listing cursor, byte
progress while hashing, and what happens to a landed file once its copy is safe in the root.

The scan index (``ROOT/_state/landing_index.parquet``) maps a landed file's identity to its
sha256: locally (path, size, mtime_ns, ctime_ns, inode, device), on S3 (key, size, ETag). It is
a cache: missing, unreadable or from another version, it is rebuilt by hashing; any change of
size, mtime, ctime (which every write and every ``utime`` moves, and no user can set), inode or
ETag means the file is hashed again. A file modified within :data:`RACY_S` of the scan is hashed
but not remembered (its timestamp may not yet tell a later same-size write apart, as git's
"racily clean" entries), and neither is one whose stat changed while it was hashed.

The S3 cursor (``ROOT/_state/landing_cursor.json``) is the key up to which an ``s3://`` landing
has been listed; each scan lists at most ``max_keys`` keys after it and the cursor is saved only
after the ledger rows are written. It lives under the root, not in a sensor cursor, so the
sensor and the schedule share it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.storage.store import DatasetStore

log = logging.getLogger("vidgraph.landing")
progress_log = logging.getLogger("vidgraph.progress")

STATE_DIR = "_state"
INDEX_NAME = "landing_index.parquet"
CURSOR_NAME = "landing_cursor.json"
INDEX_VERSION = "2"
RACY_S = 2.0  # files modified this recently are hashed each time, never remembered
DEFAULT_MAX_KEYS = 10_000  # S3 keys listed per scan
AFTER_INGEST = ("keep", "move", "delete")

INDEX_SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # the path (or s3://bucket/key); null when not valid UTF-8 ...
        ("path_bytes", pa.binary()),  # ... and then here, as the file system spells it
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("ctime_ns", pa.int64()),
        ("inode", pa.int64()),
        ("device", pa.int64()),
        ("etag", pa.string()),
        ("sha256", pa.string()),
    ],
    metadata={b"vidgraph_landing_index": INDEX_VERSION.encode()},
)


def is_s3(landing) -> bool:
    return str(landing).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, ``some/prefix``)."""
    rest = str(uri)[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"not an s3:// landing: {uri!r}")
    return bucket, prefix.strip("/")


class S3Location:
    """An ``s3://`` landing prefix that joins like a Path: ``loc / "a/b.mp4"`` is the object's URI."""

    def __init__(self, uri: str):
        self.bucket, self.prefix = split_s3(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def __truediv__(self, rel: str) -> str:
        return f"{self.uri}/{rel}"

    def __str__(self) -> str:
        return self.uri


def s3_client():
    from vidgraph.storage.store import S3Settings, _boto3_client

    return _boto3_client(S3Settings.from_env())


class LandingGone(Exception):
    """The landed object is no longer there (moved or deleted after ingest)."""


def fetch_s3_object(uri: str, dst: Path, sha256: str, chunk: int = 8 << 20) -> None:
    """Download ``uri`` to ``dst`` while hashing it; the bytes must have the ingested sha256."""
    from botocore.exceptions import ClientError

    from vidgraph.media.probe import InputRejected

    bucket, key = split_s3(uri)
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "404"):
            raise LandingGone(uri) from e
        raise
    h = hashlib.sha256()
    with open(dst, "wb") as out:
        for block in body.iter_chunks(chunk):
            h.update(block)
            out.write(block)
    if h.hexdigest() != sha256:
        dst.unlink()
        raise InputRejected("content changed since ingest (sha256 differs)")


# -- the scan index -------------------------------------------------------------------------------


class LandingIndex:
    """path -> (size, mtime_ns, ctime_ns, inode, device, etag, sha256), loaded from the root."""

    def __init__(self, store: DatasetStore | None, entries: dict[str, tuple] | None = None):
        self.store = store
        self.entries: dict[str, tuple] = entries or {}
        self.seen: dict[str, tuple] = {}  # entries confirmed or added by this scan
        self.hashed = 0  # files hashed by this scan (index misses)
        self.hits = 0

    @classmethod
    def load(cls, store: DatasetStore) -> "LandingIndex":
        path = store.path(STATE_DIR, INDEX_NAME)
        ident = None
        try:
            if store.is_local:
                # A long-lived process (the daemon's code server) keeps the parsed index while
                # the file is the one it parsed (size, mtime, ctime, inode).
                try:
                    ident = _file_id(path)
                except FileNotFoundError:
                    return cls(store)
                cached = _LOADED.get(path)
                if cached is not None and cached[0] == ident:
                    return cls(store, cached[1])
            elif not store.exists(path):
                return cls(store)
            table = pq.read_table(io.BytesIO(store.read_bytes(path)))
            meta = table.schema.metadata or {}
            if meta.get(b"vidgraph_landing_index") != INDEX_VERSION.encode() or table.schema.names != INDEX_SCHEMA.names:
                raise ValueError("unknown index version")
            cols = [table.column(n).to_pylist() for n in INDEX_SCHEMA.names]
        except Exception as e:  # noqa: BLE001 - a cache: anything wrong with it means rebuild
            log.warning(f"landing index {path} unusable ({type(e).__name__}: {e}); files are hashed again")
            return cls(store)
        paths = [p if p is not None else os.fsdecode(raw) for p, raw in zip(cols[0], cols[1])] if table.column(0).null_count else cols[0]
        entries = dict(zip(paths, zip(*cols[2:])))
        if ident is not None:
            _LOADED.clear()
            _LOADED[path] = (ident, entries)
        return cls(store, entries)

    def lookup(self, path: str, key: tuple) -> str | None:
        """The sha256 recorded for ``path`` when its identity ``key`` is unchanged."""
        e = self.entries.get(path)
        if e is not None and e[:-1] == key:
            self.seen[path] = e
            self.hits += 1
            return e[-1]
        return None

    def record(self, path: str, key: tuple, sha256: str) -> None:
        self.seen[path] = (*key, sha256)

    def save(self, prune_prefix: str | None = None, prune_range: tuple[str, str, str | None] | None = None) -> bool:
        """Write the index when this scan changed it. Entries under ``prune_prefix`` (a local
        scan sees its whole landing) or, for ``prune_range`` = (prefix, after, upto), under prefix
        and in (after, upto] (an S3 window; upto None: to the end) that
        the scan did not see are dropped. Returns whether it was written."""
        if self.store is None:
            return False
        if not self.hashed and len(self.seen) == len(self.entries):
            return False  # every entry confirmed, none added: the index is unchanged
        if prune_prefix is not None:
            old = {k: v for k, v in self.entries.items() if not k.startswith(prune_prefix)}
            gone = len(self.entries) - len(old)
        elif prune_range is not None:
            pre, lo, hi = prune_range
            old = {k: v for k, v in self.entries.items() if not (k.startswith(pre) and k > lo and (hi is None or k <= hi))}
            gone = len(self.entries) - len(old)
        else:
            old, gone = dict(self.entries), 0
        added = sum(1 for k, v in self.seen.items() if self.entries.get(k) != v) if self.hashed else 0
        if not added and gone == len(self.seen):  # the same entries as before
            return False
        old.update(self.seen)
        keys = list(old)
        cols = list(zip(*old.values())) if old else [[]] * 7
        try:  # the common case: every path is valid UTF-8
            texts, raws = pa.array(keys, pa.string()), pa.nulls(len(keys), pa.binary())
        except (UnicodeEncodeError, pa.ArrowException):  # names that are not UTF-8 (surrogate escapes)
            texts, raws = [], []
            for k in keys:
                try:
                    k.encode("utf-8")
                    texts.append(k)
                    raws.append(None)
                except UnicodeEncodeError:
                    texts.append(None)
                    raws.append(os.fsencode(k))
            texts, raws = pa.array(texts, pa.string()), pa.array(raws, pa.binary())
        table = pa.Table.from_arrays(
            [texts, raws]
            + [pa.array(c, f.type) for c, f in zip(cols, list(INDEX_SCHEMA)[2:])],
            schema=INDEX_SCHEMA,
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        try:
            self.store.write_bytes(self.store.path(STATE_DIR, INDEX_NAME), buf.getvalue())
        except OSError as e:  # a cache: a failed write costs hashing next time, nothing else
            log.warning(f"landing index not saved: {e}")
            return False
        self.entries = old
        if self.store.is_local:
            path = self.store.path(STATE_DIR, INDEX_NAME)
            _LOADED.clear()
            _LOADED[path] = (_file_id(path), old)
        return True


# The last index parsed in this process: path -> (file identity, entries). Never mutated in place.
_LOADED: dict[str, tuple[tuple, dict]] = {}


def _file_id(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def local_key(st: os.stat_result) -> tuple:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, "")


def cacheable(st: os.stat_result, after: os.stat_result | None, now_ns: int) -> bool:
    """Whether a hash taken between ``st`` and ``after`` may be remembered."""
    if after is not None and local_key(after) != local_key(st):
        return False  # changed while it was hashed
    racy = now_ns - int(RACY_S * 1e9)
    return st.st_mtime_ns < racy and st.st_ctime_ns < racy


# -- the S3 cursor ---------------------------------------------------------------------------------


def load_cursors(store: DatasetStore) -> dict:
    path = store.path(STATE_DIR, CURSOR_NAME)
    try:
        return json.loads(store.read_bytes(path)) if store.exists(path) else {}
    except Exception as e:  # noqa: BLE001 - a lost cursor means listing from the start, nothing worse
        log.warning(f"landing cursor {path} unreadable ({e}); listing from the start")
        return {}


def save_cursor(store: DatasetStore, landing_uri: str, key: str) -> None:
    cursors = load_cursors(store)
    if cursors.get(landing_uri) == key:
        return
    cursors[landing_uri] = key
    store.write_bytes(store.path(STATE_DIR, CURSOR_NAME), json.dumps(cursors, indent=1, sort_keys=True).encode())


# -- hashing progress ------------------------------------------------------------------------------


def _is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class HashProgress:
    """Bytes hashed so far: a tqdm bar on a terminal, otherwise a plain line at most every
    ``every_s`` seconds (and one at the end)."""

    def __init__(self, total_bytes: int, files: int, enabled: bool = True, every_s: float = 5.0):
        self.total, self.files, self.done_files, self.done = total_bytes, files, 0, 0
        self.enabled = enabled and files > 0
        self.every_s, self._last = every_s, time.monotonic()
        self._started = self._last
        self.bar = None
        if self.enabled and _is_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=f"hashing {files} files", file=sys.stderr)

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if self.bar is not None:
            self.bar.update(nbytes)

    def file_done(self) -> None:
        self.done_files += 1
        if self.enabled and self.bar is None and time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            progress_log.info(self.line())

    def line(self) -> str:
        wall = max(time.monotonic() - self._started, 1e-6)
        return (f"ingest: hashed {self.done_files}/{self.files} files, {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB "
                f"({self.done / 1e6 / wall:.1f} MB/s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            progress_log.info(self.line())


# -- after ingest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AfterIngest:
    """What happens to a landed file once its verified copy is in the dataset root."""

    action: str = "keep"
    move_to: str = ""  # empty: LANDING/.ingested (a hidden folder, never scanned)

    def __post_init__(self):
        if self.action not in AFTER_INGEST:
            raise ValueError(f"after_ingest must be one of {', '.join(AFTER_INGEST)}, not {self.action!r}")

    def target(self, landing: str) -> str:
        if self.move_to:
            return self.move_to.rstrip("/")
        return (str(S3Location(landing)) if is_s3(landing) else str(Path(landing).resolve())) + "/.ingested"


def check_move_to(landing: str, move_to: str) -> None:
    """A move target inside the landing zone must be hidden (never scanned): else each moved
    file would come back as a duplicate of itself."""
    if is_s3(landing) != is_s3(move_to):
        raise ValueError("after_ingest: move_to must be on the same kind of storage as the landing zone")
    if is_s3(landing):
        lb, lp = split_s3(landing)
        mb, mp = split_s3(move_to)
        inside = lb == mb and (not lp or mp == lp or mp.startswith(lp + "/"))
        rel = mp[len(lp):].strip("/") if inside else ""
    else:
        lroot, target = Path(landing).resolve(), Path(move_to).resolve()
        inside = target.is_relative_to(lroot)
        rel = str(target.relative_to(lroot)) if inside else ""
    if inside and not any(part.startswith(".") for part in rel.split("/") if part):
        raise ValueError(f"after_ingest: move_to {move_to!r} lies inside the landing zone and would be scanned again; "
                         "use a folder outside it or a hidden one (.ingested)")


def apply_after_ingest(rows: list[dict], landing: str, policy: AfterIngest, store: DatasetStore | None = None) -> list[str]:
    """Move or delete the landed files of ``rows`` (ledger rows: ``landing_path``, ``relpath``,
    ``sha256``). Called only once each file's copy, checked against its sha256, is published in
    the root: a crash before leaves the file where it was, and the next run does it again. A file
    whose content is no longer the ingested one (a new upload under the same name) is left alone:
    it is checked against the sha256 first (on S3: the scan index's size and ETag for the key in
    ``store``, else the object is read). Returns what was done, one line per file."""
    from vidgraph.ingest import _hash_regular_file, _hash_s3_object

    if policy.action == "keep" or not rows:
        return []
    done = []
    target = policy.target(landing)
    if policy.action == "move":
        check_move_to(landing, target)
    client = s3_client() if is_s3(landing) else None
    index = LandingIndex.load(store) if client is not None and store is not None else None
    for row in rows:
        src = row["landing_path"]
        raw = row.get("landing_path_bytes")
        try:
            if client is not None:
                bucket, key = split_s3(src)
                try:
                    head = client.head_object(Bucket=bucket, Key=key)
                except Exception as e:  # noqa: BLE001 - gone already (an earlier run moved it)
                    if getattr(e, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                        continue
                    raise
                etag = str(head.get("ETag", "")).strip('"')
                known = index.entries.get(src) if index is not None else None
                if known is not None and known[0] == head["ContentLength"] and known[5] == etag:
                    sha = known[6]
                else:
                    sha = _hash_s3_object(client, bucket, key, etag)
                if sha != row["sha256"]:
                    log.warning(f"after_ingest: {src} has other content than was ingested; left in place")
                    continue
                if policy.action == "move":
                    tb, tp = split_s3(target)
                    dest_key = f"{tp}/{row['relpath']}".lstrip("/")
                    client.copy_object(Bucket=tb, Key=dest_key, CopySource={"Bucket": bucket, "Key": key},
                                       CopySourceIfMatch=f'"{etag}"')
                    done.append(f"moved {src} to s3://{tb}/{dest_key}")
                else:
                    done.append(f"deleted {src}")
                client.delete_object(Bucket=bucket, Key=key)
            else:
                path = os.fsdecode(raw) if raw else src
                if not os.path.lexists(path):
                    continue
                if _hash_regular_file(path)[1] != row["sha256"]:  # refuses symlinks and FIFOs too
                    log.warning(f"after_ingest: {src} has other content than was ingested; left in place")
                    continue
                # The video, then its sidecars (NAME.json, NAME.txt) once the video is done.
                sidecars = [s for s in (os.path.splitext(path)[0] + ".json", os.path.splitext(path)[0] + ".txt")
                            if os.path.isfile(s) and not os.path.islink(s)]
                if policy.action == "move":
                    lroot = str(Path(landing).resolve())
                    for src_file in [path, *sidecars]:
                        dest = os.path.join(target, os.path.relpath(src_file, lroot))
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        shutil.move(src_file, dest)
                    done.append(f"moved {row['landing_path']} to {os.path.join(target, row['relpath'])}")
                else:
                    for src_file in [path, *sidecars]:
                        os.unlink(src_file)
                    done.append(f"deleted {row['landing_path']}")
        except Exception as e:  # noqa: BLE001 - the copy is safe in the root; the landed file just stays
            log.warning(f"after_ingest {policy.action}: {src} left in place ({type(e).__name__}: {e})")
    return done
