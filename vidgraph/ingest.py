"""Ingest: scan a landing folder, de-duplicate by content, group new videos into shards.

Files are identified by sha256, so a renamed copy is never ingested twice. A shard's name is
derived from its members' hashes, and the ledger row for a shard is written once, atomically,
so running ingest again over the same landing folder changes nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from vidgraph.storage.catalog import asset_state, read_all
from vidgraph.storage.schemas import LEDGER_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".ogv", ".wmv", ".3gp"}
)
DEFAULT_SHARD_SIZE = 8  # videos per shard: small enough for a laptop step
# A file modified less than this long ago may still be uploading or copying: it waits for a later
# scan (a half-written file would be ingested, fail, and come back as a second version).
DEFAULT_SETTLE_S = 30.0


def display_path(path: str | os.PathLike) -> str:
    """A name as valid UTF-8 text for tables and messages: bytes that are not UTF-8 are shown as
    ``\\xNN`` (the file system's own spelling is kept losslessly in ``landing_path_bytes``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def ledger_path(row: dict) -> Path:
    """The landing path of a ledger row exactly as the file system spells it."""
    raw = row.get("landing_path_bytes")
    return Path(os.fsdecode(raw)) if raw else Path(row["landing_path"])


@dataclass(frozen=True)
class Candidate:
    path: Path  # absolute, resolved, inside the landing zone
    relpath: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Rejected:
    relpath: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    relpath: str
    sha256: str
    same_as: str


@dataclass
class ScanResult:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # relpaths modified too recently (still settling)

    def signature(self) -> str:
        """Changes whenever the set of files (or their content) changes: a sensor cursor."""
        h = hashlib.sha256()
        for c in self.candidates:
            h.update(f"{c.relpath}\0{c.sha256}\n".encode("utf-8", "surrogateescape"))
        for r in self.rejected:
            h.update(f"{r.relpath}\0{r.reason}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device or special file"


class _NotRegular(Exception):
    pass


def _hash_regular_file(path: Path, chunk: int = 4 << 20) -> tuple[int, str]:
    """(size, sha256) of a regular file, opened so that nothing can block or redirect the open.

    ``O_NONBLOCK`` makes the open of a FIFO (swapped in after the stat) return at once and
    ``O_NOFOLLOW`` refuses a symlink swapped in; the open file is checked with ``fstat``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(_kind(st.st_mode))
        h = hashlib.sha256()
        with os.fdopen(fd, "rb", closefd=False) as f:
            while block := f.read(chunk):
                h.update(block)
        return st.st_size, h.hexdigest()
    finally:
        os.close(fd)


def scan_landing(
    landing: str | Path, min_age_s: float = 0.0, exclude: tuple[str | Path, ...] = (), max_bytes: int | None = None
) -> ScanResult:
    """Find video files under ``landing`` without ever opening anything but regular files.

    Symlinks are followed only when they resolve inside the landing zone (symlinked folders are
    never walked); FIFOs, devices and sockets are reported, never opened (opening a FIFO would
    block); folders are walked (a folder named ``x.mp4`` is a folder, not an input); hidden
    folders are not walked, and a hidden file with a video extension is reported (``._x.mp4``
    copies of macOS metadata, partial uploads). Files younger than ``min_age_s`` are left for
    the next scan (they may still be uploading; listed in ``waiting``). Folders in ``exclude``
    (the dataset root when it lies inside the landing zone) are not walked. A file over
    ``max_bytes`` is refused from its size alone, before a byte of it is read.
    """
    root = Path(landing).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    skip = {Path(e).resolve() for e in exclude}
    result = ScanResult()
    seen: dict[str, str] = {}
    now = time.time()
    stack = [root]
    entries: list[tuple[str, Path]] = []
    while stack:
        folder = stack.pop()
        try:
            listing = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:  # unreadable folder: say so instead of failing the scan
            rel = str(folder.relative_to(root)) if folder != root else "."
            result.rejected.append(Rejected(rel, f"folder cannot be listed: {e.strerror or e}"))
            continue
        for entry in listing:
            p = Path(entry.path)
            rel = str(p.relative_to(root))
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished while listing
            if stat.S_ISDIR(st.st_mode):
                if not entry.name.startswith(".") and p not in skip:
                    stack.append(p)
                continue
            if p.suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            if entry.name.startswith("."):
                result.rejected.append(Rejected(rel, "hidden file (name starts with '.'): not an input"))
                continue
            entries.append((rel, p))
    for rel, p in sorted(entries):
        try:
            st = os.lstat(p)
        except OSError:
            continue  # removed since the listing
        if stat.S_ISLNK(st.st_mode):
            try:
                target = Path(os.path.realpath(p, strict=True))
            except (OSError, RuntimeError) as e:
                why = "a loop" if getattr(e, "errno", None) == errno.ELOOP else "a missing target"
                result.rejected.append(Rejected(rel, f"symbolic link cannot be resolved ({why})"))
                continue
            if not _is_inside(target, root) or any(_is_inside(target, s) for s in skip):
                result.rejected.append(Rejected(rel, "symbolic link leaves the landing zone"))
                continue
            st = os.stat(target)
            if not stat.S_ISREG(st.st_mode):
                result.rejected.append(Rejected(rel, f"symbolic link to something that is not a regular file ({_kind(st.st_mode)})"))
                continue
            p = target
        elif not stat.S_ISREG(st.st_mode):
            result.rejected.append(Rejected(rel, f"not a regular file ({_kind(st.st_mode)})"))
            continue
        if min_age_s and now - st.st_mtime < min_age_s:
            result.waiting.append(rel)
            continue
        if max_bytes is not None and st.st_size > max_bytes:
            result.rejected.append(Rejected(rel, f"file is {st.st_size} bytes, over the limit of {max_bytes} (not read)"))
            continue
        try:
            size, digest = _hash_regular_file(p)
        except _NotRegular as e:
            result.rejected.append(Rejected(rel, f"not a regular file ({e})"))
            continue
        except OSError as e:
            result.rejected.append(Rejected(rel, f"cannot be read: {e.strerror or e}"))
            continue
        if digest in seen:
            result.duplicates.append(Duplicate(rel, digest, seen[digest]))
            continue
        seen[digest] = rel
        result.candidates.append(Candidate(p, rel, size, digest))
    return result


def shard_name(hashes: list[str]) -> str:
    return "shard-" + hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:12]


@dataclass
class IngestResult:
    new_shards: dict[str, list[Candidate]]
    duplicates: list[Duplicate]
    already_ingested: list[Candidate]
    rejected: list[Rejected]
    scan_signature: str
    waiting: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        out = {
            "new_shards": {k: len(v) for k, v in self.new_shards.items()},
            "new_videos": sum(len(v) for v in self.new_shards.values()),
            "already_ingested": len(self.already_ingested),
            "duplicates": [{"path": display_path(d.relpath), "same_as": d.same_as} for d in self.duplicates],
            "rejected": [{"path": display_path(r.relpath), "reason": r.reason} for r in self.rejected],
        }
        if self.waiting:
            out["waiting_to_settle"] = [display_path(w) for w in self.waiting]
        return out


def ingested_hashes(store: DatasetStore) -> set[str]:
    """Every sha256 in the ledger: one column of the compacted ledger plus its tail."""
    ledger = read_all(store, "ingest_ledger", columns=["sha256"])
    return set(ledger.column("sha256").to_pylist()) if ledger is not None else set()


_LEDGER_PATH_COLUMNS = ("sha256", "landing_path", "relpath", "ingested_at", "landing_path_bytes")


def _ledger_paths(store: DatasetStore, candidates: list[Candidate] | None = None
                  ) -> tuple[dict[str, tuple[set[str], str]], dict[str, str]]:
    """(sha256 -> (every landing path recorded for it, the relpath of its first ledger row),
    landing path -> the sha256 last ingested from it).

    With ``candidates``, only the ledger rows that share a hash or a landing path with one of them
    are read into Python (the answers for those candidates are the same): O(new files)."""
    filt = None
    if candidates is not None:
        if not candidates:
            return {}, {}
        hashes = pa.array(sorted({c.sha256 for c in candidates}), pa.string())
        paths = pa.array(sorted({display_path(c.path) for c in candidates}), pa.string())
        filt = pc.field("sha256").isin(hashes) | pc.field("landing_path").isin(paths)
    ledger = read_all(store, "ingest_ledger", columns=list(_LEDGER_PATH_COLUMNS), filter=filt)
    out: dict[str, tuple[set[str], str]] = {}
    by_path: dict[str, str] = {}
    if ledger is None or not ledger.num_rows:
        return out, by_path
    order = pc.sort_indices(
        pa.table({"a": pc.fill_null(ledger.column("ingested_at"), ""), "b": pc.fill_null(ledger.column("relpath"), "")}),
        sort_keys=[("a", "ascending"), ("b", "ascending")],
    )
    for row in ledger.take(order).to_pylist():
        paths, first = out.setdefault(row["sha256"], (set(), row["relpath"]))
        path = str(ledger_path(row))
        paths.add(path)
        by_path[path] = row["sha256"]
    return out, by_path


def ledger_shards(store: DatasetStore) -> list[str]:
    """Shards of the ledger: one listing of ``ROOT/ingest_ledger/`` (names only) and the compacted
    manifest; only shards not yet compacted are listed one by one."""
    return sorted(asset_state(store, "ingest_ledger", stamps=False).all_shards())


def incomplete_shards(store: DatasetStore, assets: list[str]) -> list[str]:
    """Shards of the ledger that lack the table of one of ``assets``: ingested, but a run was
    killed or failed before every asset was published (a published table is the commit marker
    of its asset's shard, and each stage writes its quarantine before publishing).

    One listing per asset (its compacted manifest says which shards have the table; only shards
    not compacted are listed one by one), then set differences."""
    from vidgraph.storage.catalog import _pool_map

    shards = set(ledger_shards(store))
    have = (_pool_map if not store.is_local else lambda f, xs: [f(x) for x in xs])(  # S3: in parallel
        lambda a: asset_state(store, a, stamps=False).shards_with(a), list(assets))
    out: set[str] = set()
    for done in have:
        out |= shards - done
    return sorted(out)


def duplicate_reason(same_as: str) -> str:
    return f"duplicate: same content as {same_as!r}, which is ingested instead"


def _outside_root(scan: ScanResult, store: DatasetStore, landing: Path) -> ScanResult:
    """Drop what lies in the dataset root, when the root is inside the landing zone: the
    pipeline's own outputs (clip files, copies of sources) are never inputs."""
    if not store.is_local:
        return scan
    root = Path(store.base)
    if not _is_inside(root, landing):
        return scan

    def inside(rel: str) -> bool:
        return _is_inside(landing / rel, root)

    return ScanResult(
        [c for c in scan.candidates if not _is_inside(c.path, root) and not inside(c.relpath)],
        [r for r in scan.rejected if not inside(r.relpath)],
        [d for d in scan.duplicates if not inside(d.relpath)],
        [w for w in scan.waiting if not inside(w)],
    )


def changed_reason(new_sha: str, old_sha: str) -> str:
    return (f"content changed after ingest (now sha256 {new_sha[:12]}, ingested as {old_sha[:12]}): "
            "the ingested version is kept; give the new content another name to ingest it")


def ingest(
    landing: str | Path,
    store: DatasetStore,
    shard_size: int = DEFAULT_SHARD_SIZE,
    min_age_s: float = 0.0,
    scan: ScanResult | None = None,
    max_bytes: int | None = None,
) -> IngestResult:
    """Record new videos of ``landing`` in the ledger, ``shard_size`` per shard.

    Content already in the ledger is not ingested again: the same file at the same path is
    "already ingested"; the same bytes under another name are a duplicate, recorded in the
    quarantine (stage ``ingest``) with the name of the copy that was ingested, like every file
    the landing scan refused. New content at a path already ingested (a file rewritten or still
    being written when it was ingested) is reported in the quarantine, never ingested a second
    time under the same name.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    landing = Path(landing).resolve()
    exclude = (store.base,) if store.is_local else ()
    scan = scan or scan_landing(landing, min_age_s=min_age_s, exclude=exclude, max_bytes=max_bytes)
    scan = _outside_root(scan, store, landing)
    known, by_path = _ledger_paths(store, scan.candidates)
    fresh: list[Candidate] = []
    old: list[Candidate] = []
    duplicates = list(scan.duplicates)
    rejected = list(scan.rejected)
    for c in scan.candidates:
        if c.sha256 not in known and str(c.path) in by_path:
            rejected.append(Rejected(c.relpath, changed_reason(c.sha256, by_path[str(c.path)])))
        elif c.sha256 not in known:
            fresh.append(c)
        elif str(c.path) in known[c.sha256][0]:
            old.append(c)
        else:
            duplicates.append(Duplicate(c.relpath, c.sha256, known[c.sha256][1]))
    shards: dict[str, list[Candidate]] = {}
    for i in range(0, len(fresh), shard_size):
        group = fresh[i:i + shard_size]
        shards[shard_name([c.sha256 for c in group])] = group
    for shard, group in shards.items():
        table = pa.Table.from_pylist(
            [
                {
                    "shard": shard,
                    "sha256": c.sha256,
                    "landing_path": display_path(c.path),
                    "relpath": display_path(c.relpath),
                    "size_bytes": c.size,
                    "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "landing_path_bytes": os.fsencode(c.path),
                }
                for c in group
            ],
            schema=LEDGER_SCHEMA,
        )
        store.write_table("ingest_ledger", shard, table)
    _record_scan_rejections(store, landing, rejected, duplicates)
    return IngestResult(shards, duplicates, old, rejected, scan.signature(), list(scan.waiting))


def _record_scan_rejections(store: DatasetStore, landing: Path, rejected: list[Rejected], duplicates: list[Duplicate] = ()) -> None:
    """Files refused at the landing zone, and duplicates, go to the quarantine once each
    (keyed by path and reason)."""
    from vidgraph.stages.source_videos import video_id_for

    if not rejected and not duplicates:
        return
    refused = [(r.relpath, r.reason, None) for r in rejected]
    refused += [(d.relpath, duplicate_reason(d.same_as), d.sha256) for d in duplicates]
    # Only the quarantine rows of the paths refused now are read (two columns).
    wanted = pa.array(sorted({display_path(landing / relpath) for relpath, _, _ in refused}), pa.string())
    existing = read_all(store, "quarantine", columns=["path", "reason"], filter=pc.field("path").isin(wanted))
    have = set()
    if existing is not None:
        have = set(zip(existing.column("path").to_pylist(), existing.column("reason").to_pylist()))
    rows = []
    for relpath, reason, sha in refused:
        path = display_path(landing / relpath)
        if (path, reason) in have:
            continue
        have.add((path, reason))
        rows.append(
            {"path": path, "sha256": sha, "reason": reason, "stage": "ingest", "shard": None,
             "video_id": video_id_for(sha) if sha else None}
        )
    if rows:
        key = "ingest-" + hashlib.sha256("\n".join(f"{r['path']}\0{r['reason']}" for r in rows).encode()).hexdigest()[:12]
        store.write_table("quarantine", key, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), name="ingest")
