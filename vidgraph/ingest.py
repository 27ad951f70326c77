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
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from vidgraph.landing import (
    DEFAULT_MAX_KEYS,
    HashProgress,
    LandingIndex,
    S3Location,
    cacheable,
    is_s3,
    local_key,
    save_cursor,
)
from vidgraph import landing as landing_module
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


def ledger_path(row: dict) -> Path | str:
    """The landing path of a ledger row exactly as the file system spells it; an object of an
    ``s3://`` landing stays its URI (a string: a Path would fold its ``//``)."""
    if row["landing_path"].startswith("s3://"):
        return row["landing_path"]
    raw = row.get("landing_path_bytes")
    return Path(os.fsdecode(raw)) if raw else Path(row["landing_path"])


class Candidate(NamedTuple):  # a tuple: 80,000 of them are made in milliseconds
    location: str  # absolute, resolved, inside the landing zone (or the object's s3:// URI)
    relpath: str
    size: int
    sha256: str

    @property
    def path(self) -> Path | str:
        """The file as a Path (an s3:// URI stays a string). Built on demand: a scan of 80,000
        files makes no Path objects."""
        return self.location if self.location.startswith("s3://") else Path(self.location)


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
    # S3 landings: {"landing": URI, "cursor": KEY}, saved by ``commit_scan`` once the ledger is written.
    commit: dict | None = None

    def signature(self) -> str:
        """Changes whenever the set of files (or their content) changes: a sensor cursor."""
        text = "".join([f"{c.relpath}\0{c.sha256}\n" for c in self.candidates] + [f"{r.relpath}\0{r.reason}\n" for r in self.rejected])
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def commit_scan(store: DatasetStore, scan: ScanResult) -> None:
    """Save what a scan must remember once its files are in the ledger (the S3 cursor)."""
    if scan.commit:
        save_cursor(store, scan.commit["landing"], scan.commit["cursor"])


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


def _hash_regular_file(path: Path, chunk: int = 4 << 20, on_bytes=None) -> tuple[int, str]:
    """(size, sha256) of a regular file, opened so that nothing can block or redirect the open.

    ``O_NONBLOCK`` makes the open of a FIFO (swapped in after the stat) return at once and
    ``O_NOFOLLOW`` refuses a symlink swapped in; the open file is checked with ``fstat``.
    ``on_bytes(n)`` is called after each block (progress).
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
                if on_bytes is not None:
                    on_bytes(len(block))
        return st.st_size, h.hexdigest()
    finally:
        os.close(fd)


# A long-lived process (the daemon's code server) re-lists only the landing folders whose mtime
# changed since its last scan; every FULL_RESCAN_S it stats every file again, which is when a file
# rewritten in place (same name, its folder untouched) is noticed.
FULL_RESCAN_S = float(os.environ.get("VIDGRAPH_FULL_RESCAN_S", "600"))
_FOLDERS: dict[str, dict[str, tuple]] = {}  # landing -> folder -> (key, items, index entries, subfolders)
_FULL_SCAN_AT: dict[str, float] = {}

_new_candidate = tuple.__new__  # Candidate(...) without the NamedTuple's Python-level __new__


def _suffix(name: str) -> str:
    """``Path(name).suffix``, lower-cased, without building a Path."""
    i = name.rfind(".")
    return name[i:].lower() if 0 < i < len(name) - 1 else ""


def _scan_folder(listing, cut, skip_s, stack, items, result, entries, seen, limit, settled_before) -> None:
    """One folder's entries into ``items`` (see :func:`scan_landing`); subfolders onto ``stack``."""
    for entry in listing:
        name = entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue  # vanished while listing
        if is_dir:
            if not name.startswith(".") and entry.path not in skip_s:
                stack.append(entry.path)
            continue
        i = name.rfind(".")  # Path(name).suffix, without a Path
        if not (0 < i < len(name) - 1 and name[i:].lower() in VIDEO_EXTENSIONS):
            continue
        p = entry.path
        if name.startswith("."):
            result.rejected.append(Rejected(p[cut:], "hidden file (name starts with '.'): not an input"))
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished while listing
        size = st.st_size
        if st.st_mode & 0o170000 != 0o100000 or size > limit or (settled_before is not None and st.st_mtime > settled_before):
            items.append((p[cut:], p, st, ""))
            continue
        e = entries.get(p)
        if e is not None and e[:6] == (size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, ""):
            seen[p] = e
            items.append((p[cut:], p, st, e[6]))
        else:
            items.append((p[cut:], p, st, None))


def scan_landing(
    landing: str | Path,
    min_age_s: float = 0.0,
    exclude: tuple[str | Path, ...] = (),
    max_bytes: int | None = None,
    index: LandingIndex | None = None,
    progress: bool = False,
    max_keys: int | None = None,
    store: DatasetStore | None = None,
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

    With ``index`` (see :mod:`vidgraph.landing`), a file whose size, mtime, ctime, inode and
    device are those recorded is not read again; the index is saved when it changed.
    ``progress`` shows the bytes hashed. An ``s3://`` landing is listed by
    :func:`scan_s3_landing` (``store`` holds its cursor, ``max_keys`` bounds the listing).
    """
    if is_s3(landing):
        if store is None:
            raise ValueError("an s3:// landing needs the dataset store (its cursor and index live there)")
        return scan_s3_landing(str(landing), store, min_age_s=min_age_s, max_bytes=max_bytes, index=index,
                               progress=progress, max_keys=max_keys or DEFAULT_MAX_KEYS)
    root = Path(landing).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    root_s = str(root)
    cut = len(root_s) + (0 if root_s.endswith(os.sep) else 1)
    skip = {Path(e).resolve() for e in exclude}
    skip_s = {str(s) for s in skip}
    result = ScanResult()
    now = time.time()
    now_ns = time.time_ns()
    settled_before = now - min_age_s if min_age_s else None
    limit = max_bytes if max_bytes is not None else float("inf")
    entries = index.entries if index is not None else {}
    seen = index.seen if index is not None else {}
    # One item per file: (relpath, path, stat, sha256) where sha256 is the indexed hash, None for
    # a settled regular file to read, or "" for one the second pass looks at closely (symlinks,
    # special files, too young, too big): the common case costs one lstat and a dict lookup.
    items: list[tuple] = []
    stack = [root_s]
    folders = _FOLDERS.setdefault(root_s, {}) if index is not None else None
    if folders is not None and now - _FULL_SCAN_AT.get(root_s, 0.0) >= FULL_RESCAN_S:
        folders.clear()  # every file is stat-ed again
        _FULL_SCAN_AT[root_s] = now
    while stack:
        folder = stack.pop()
        fkey = None
        if folders is not None:
            try:
                fst = os.stat(folder)  # before the listing: an entry added after it changes the key
                fkey = (fst.st_mtime_ns, fst.st_ctime_ns, fst.st_ino)
            except OSError:
                fkey = None
            known = folders.pop(folder, None)
            if fkey is not None and known is not None and known[0] == fkey:
                # Unchanged since this process's last scan, every file then indexed: no stat per file.
                folders[folder] = known
                items.extend(known[1])
                seen.update(known[2])
                stack.extend(known[3])
                continue
        first_item, rejected_before, first_sub = len(items), len(result.rejected), len(stack)
        try:
            with os.scandir(folder) as it:
                listing = list(it)
        except OSError as e:  # unreadable folder: say so instead of failing the scan
            rel = folder[cut:] if folder != root_s else "."
            result.rejected.append(Rejected(rel, f"folder cannot be listed: {e.strerror or e}"))
            continue
        _scan_folder(listing, cut, skip_s, stack, items, result, entries, seen, limit, settled_before)
        mine = items[first_item:]
        racy_ns = landing_module.RACY_S * 1e9
        if (fkey is not None and len(result.rejected) == rejected_before and all(x[3] for x in mine)
                and now_ns - fkey[0] > racy_ns and now_ns - fkey[1] > racy_ns):
            # Clean (every file indexed and settled, nothing refused) and not changed within a
            # timestamp's granularity: this process's next scan may skip its files' stats.
            folders[folder] = (fkey, mine, {x[1]: seen[x[1]] for x in mine}, stack[first_sub:])
    to_read = sum(x[2].st_size for x in items if x[3] is None)
    items.sort()  # by relpath (unique, so the stat results are never compared)
    bar = HashProgress(to_read, sum(1 for x in items if x[3] is None), enabled=progress)
    digests: dict[str, str] = {}
    candidates, duplicates, rejected = result.candidates, result.duplicates, result.rejected
    hashed = 0
    for rel, p, st, sha in items:
        if sha == "":
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = Path(os.path.realpath(p, strict=True))
                except (OSError, RuntimeError) as e:
                    why = "a loop" if getattr(e, "errno", None) == errno.ELOOP else "a missing target"
                    rejected.append(Rejected(rel, f"symbolic link cannot be resolved ({why})"))
                    continue
                if not _is_inside(target, root) or any(_is_inside(target, s) for s in skip):
                    rejected.append(Rejected(rel, "symbolic link leaves the landing zone"))
                    continue
                try:
                    st = os.stat(target)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    rejected.append(Rejected(rel, f"symbolic link to something that is not a regular file ({_kind(st.st_mode)})"))
                    continue
                p = str(target)
            elif not stat.S_ISREG(mode):
                rejected.append(Rejected(rel, f"not a regular file ({_kind(mode)})"))
                continue
            if min_age_s and now - st.st_mtime < min_age_s:
                result.waiting.append(rel)
                continue
            if max_bytes is not None and st.st_size > max_bytes:
                rejected.append(Rejected(rel, f"file is {st.st_size} bytes, over the limit of {max_bytes} (not read)"))
                continue
            e = entries.get(p)
            sha = e[6] if e is not None and e[:6] == local_key(st) else None
            if sha:
                seen[p] = e
        if sha is None:
            hashed += 1
            try:
                size, sha = _hash_regular_file(p, 4 << 20, bar.update) if progress else _hash_regular_file(p)
            except _NotRegular as e:
                rejected.append(Rejected(rel, f"not a regular file ({e})"))
                continue
            except OSError as e:
                rejected.append(Rejected(rel, f"cannot be read: {e.strerror or e}"))
                continue
            finally:
                bar.file_done()
            if index is not None:
                try:
                    after = os.stat(p, follow_symlinks=False)
                except OSError:
                    after = None
                if after is not None and cacheable(st, after, now_ns):
                    index.record(p, local_key(st), sha)
        else:
            size = st.st_size
        first = digests.get(sha)
        if first is not None:
            duplicates.append(Duplicate(rel, sha, first))
            continue
        digests[sha] = rel
        candidates.append(_new_candidate(Candidate, (p, rel, size, sha)))
    bar.close()
    result.waiting.sort()
    if index is not None:
        index.hashed += hashed
        index.hits += len(seen)
        index.save(prune_prefix=root_s + os.sep)
    return result


def _collect(result: ScanResult, done: list[tuple], rejected_at: list[tuple[int, Rejected]]) -> None:
    """Fill ``result`` in scan order: candidates, duplicates (the same bytes seen earlier in the
    scan), and rejections where they fell."""
    seen: dict[str, str] = {}
    j = 0
    for i, item in enumerate(done):
        while j < len(rejected_at) and rejected_at[j][0] <= i:
            result.rejected.append(rejected_at[j][1])
            j += 1
        if len(item) == 2:
            result.rejected.append(item[1])
            continue
        rel, p, size, digest = item
        if digest in seen:
            result.duplicates.append(Duplicate(rel, digest, seen[digest]))
            continue
        seen[digest] = rel
        result.candidates.append(Candidate(p, rel, size, digest))
    result.rejected.extend(r for _, r in rejected_at[j:])


def scan_s3_landing(
    landing: str,
    store: DatasetStore,
    min_age_s: float = 0.0,
    max_bytes: int | None = None,
    index: LandingIndex | None = None,
    progress: bool = False,
    max_keys: int = DEFAULT_MAX_KEYS,
    client=None,
) -> ScanResult:
    """One bounded window of an ``s3://bucket/prefix`` landing.

    Lists at most ``max_keys`` keys after the cursor saved in the root (``StartAfter``, then
    ``ContinuationToken`` page by page); objects younger than ``min_age_s`` (``LastModified``)
    wait, and the next cursor stops before the first of them so they are listed again; only
    objects whose (key, size, ETag) the index lacks are read (streamed, ``If-Match`` the listed
    ETag, so a version replaced meanwhile is left for the next scan). When the listing reaches
    the end, the next scan starts from the beginning again (new keys sorting before the cursor
    are found then; unchanged ones cost a LIST, never a read). Hidden names, hidden folders and
    the dataset root (when it lies under the prefix) are treated as in a local scan. The cursor
    is in ``result.commit``: :func:`commit_scan` saves it once the ledger is written.
    """
    from vidgraph.landing import load_cursors, s3_client

    if max_keys < 1:
        raise ValueError("max_keys (IngestSettings.max_keys_per_scan) must be at least 1")
    loc = S3Location(landing)
    client = client or s3_client()
    prefix = f"{loc.prefix}/" if loc.prefix else ""
    root_prefix = None
    if not store.is_local and (store.base + "/").startswith(f"{loc.bucket}/{prefix}"):
        root_prefix = store.base.split("/", 1)[1] + "/" if "/" in store.base else ""
    start = load_cursors(store).get(loc.uri, "")
    kwargs = {"Bucket": loc.bucket, "Prefix": prefix}
    if start:
        kwargs["StartAfter"] = start
    listed: list[dict] = []
    exhausted = False
    token = None
    while len(listed) < max_keys:
        page = client.list_objects_v2(**kwargs, MaxKeys=min(1000, max_keys - len(listed)),
                                      **({"ContinuationToken": token} if token else {}))
        listed.extend(page.get("Contents", []))
        if not page.get("IsTruncated"):
            exhausted = True
            break
        token = page["NextContinuationToken"]
    result = ScanResult()
    now = time.time()
    first_young = None
    plan: list[tuple] = []
    rejected_at: list[tuple[int, Rejected]] = []
    for obj in listed:
        key = obj["Key"]
        rel = key[len(prefix):]
        if not rel or key.endswith("/") or (root_prefix is not None and key.startswith(root_prefix)):
            continue
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts[:-1]) or _suffix(parts[-1]) not in VIDEO_EXTENSIONS:
            continue
        if parts[-1].startswith("."):
            rejected_at.append((len(plan), Rejected(rel, "hidden file (name starts with '.'): not an input")))
            continue
        size, etag = int(obj["Size"]), str(obj.get("ETag", "")).strip('"')
        if min_age_s and now - obj["LastModified"].timestamp() < min_age_s:
            result.waiting.append(rel)
            first_young = first_young or key
            continue
        if max_bytes is not None and size > max_bytes:
            rejected_at.append((len(plan), Rejected(rel, f"file is {size} bytes, over the limit of {max_bytes} (not read)")))
            continue
        uri = loc / rel
        ident = (size, 0, 0, 0, 0, etag)
        sha = index.lookup(uri, ident) if index is not None else None
        plan.append(("known", rel, uri, size, sha) if sha else ("hash", rel, uri, size, key, etag, ident))
    todo = [x for x in plan if x[0] == "hash"]
    bar = HashProgress(sum(x[3] for x in todo), len(todo), enabled=progress)
    done: list[tuple] = []
    for item in plan:
        if item[0] == "known":
            done.append(item[1:])
            continue
        _, rel, uri, size, key, etag, ident = item
        try:
            digest = _hash_s3_object(client, loc.bucket, key, etag, bar.update)
        except _Changed:
            result.waiting.append(rel)  # replaced since the listing: the next scan sees the new one
            first_young = min(first_young or key, key)
            continue
        except Exception as e:  # noqa: BLE001 - reported like an unreadable local file
            from vidgraph.faults import reraise_if_infrastructure

            reraise_if_infrastructure(e)
            done.append((rel, Rejected(rel, f"cannot be read: {type(e).__name__}: {e}")))
            continue
        finally:
            bar.file_done()
        if index is not None:
            index.record(uri, ident, digest)
        done.append((rel, uri, size, digest))
    bar.close()
    _collect(result, done, rejected_at)
    if first_young is not None:  # list again from just before the first object still settling
        before = [o["Key"] for o in listed if o["Key"] < first_young]
        cursor = before[-1] if before else start
    elif exhausted:
        cursor = ""  # the end: start over next time
    else:
        cursor = listed[-1]["Key"] if listed else start
    mtimes = {loc / o["Key"][len(prefix):]: o["LastModified"].timestamp() for o in listed}
    result.commit = {"landing": loc.uri, "cursor": cursor, "start": start, "mtimes": mtimes}
    if index is not None:
        index.hashed += len(todo)
        hi = listed[-1]["Key"] if listed and not exhausted else None
        base = f"s3://{loc.bucket}/"
        index.save(prune_range=(base + prefix, base + start if start else base + prefix, base + hi if hi else None))
    return result


class _Changed(Exception):
    pass


def _hash_s3_object(client, bucket: str, key: str, etag: str, on_bytes=None, chunk: int = 4 << 20) -> str:
    """sha256 of an object streamed from S3, if it still has the listed ETag."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=key, IfMatch=f'"{etag}"')["Body"]
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "NoSuchKey", "404"):
            raise _Changed(key) from e
        raise
    h = hashlib.sha256()
    for block in body.iter_chunks(chunk):
        h.update(block)
        if on_bytes is not None:
            on_bytes(len(block))
    return h.hexdigest()


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
        paths = pa.array(sorted({display_path(c.location) for c in candidates}), pa.string())
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

    # String prefixes, not Paths: this runs over every candidate of the scan (80,000 at scale).
    root_s, root_rel = str(root), str(root.relative_to(landing))

    def inside(rel: str) -> bool:
        return root_rel == "." or rel == root_rel or rel.startswith(root_rel + os.sep)

    def inside_abs(path: str) -> bool:
        return path == root_s or path.startswith(root_s + os.sep)

    return ScanResult(
        [c for c in scan.candidates if not inside_abs(c.location) and not inside(c.relpath)],
        [r for r in scan.rejected if not inside(r.relpath)],
        [d for d in scan.duplicates if not inside(d.relpath)],
        [w for w in scan.waiting if not inside(w)],
        scan.commit,
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
    use_index: bool = True,
    progress: bool = False,
    max_keys: int | None = None,
) -> IngestResult:
    """Record new videos of ``landing`` in the ledger, ``shard_size`` per shard.

    Content already in the ledger is not ingested again: the same file at the same path is
    "already ingested"; the same bytes under another name are a duplicate, recorded in the
    quarantine (stage ``ingest``) with the name of the copy that was ingested, like every file
    the landing scan refused. New content at a path already ingested (a file rewritten or still
    being written when it was ingested) is reported in the quarantine, never ingested a second
    time under the same name.

    ``use_index``: unchanged files are not hashed again (the scan index under the root);
    ``landing`` may be an ``s3://`` prefix (one bounded window per call, ``max_keys``).
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    if scan is None:
        scan = scan_landing(landing, min_age_s=min_age_s, exclude=(store.base,) if store.is_local else (),
                            max_bytes=max_bytes, index=LandingIndex.load(store) if use_index else None,
                            progress=progress, max_keys=max_keys, store=store)
    if is_s3(landing):
        landing = S3Location(str(landing))  # joins like a Path: landing / relpath is the object's URI
    else:
        landing = Path(landing).resolve()
        scan = _outside_root(scan, store, landing)
    known, by_path = _ledger_paths(store, scan.candidates)
    fresh: list[Candidate] = []
    old: list[Candidate] = []
    duplicates = list(scan.duplicates)
    rejected = list(scan.rejected)
    for c in scan.candidates:
        if c.sha256 not in known and c.location in by_path:
            rejected.append(Rejected(c.relpath, changed_reason(c.sha256, by_path[c.location])))
        elif c.sha256 not in known:
            fresh.append(c)
        elif c.location in known[c.sha256][0]:
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
                    "landing_path": display_path(c.location),
                    "relpath": display_path(c.relpath),
                    "size_bytes": c.size,
                    "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "landing_path_bytes": os.fsencode(c.location),
                }
                for c in group
            ],
            schema=LEDGER_SCHEMA,
        )
        store.write_table("ingest_ledger", shard, table)
    _record_scan_rejections(store, landing, rejected, duplicates)
    commit_scan(store, scan)
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
