"""Ingest: scan a landing folder, de-duplicate by content, group new videos into shards.

Files are identified by sha256, so a renamed copy is never ingested twice. A shard's name is
derived from its members' hashes, and the ledger row for a shard is written once, atomically,
so running ingest again over the same landing folder changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from vidgraph.media.probe import sha256_file
from vidgraph.storage.catalog import read_all
from vidgraph.storage.schemas import LEDGER_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".ogv", ".wmv", ".3gp"}
)
DEFAULT_SHARD_SIZE = 8  # videos per shard: small enough for a laptop step


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

    def signature(self) -> str:
        """Changes whenever the set of files (or their content) changes: a sensor cursor."""
        h = hashlib.sha256()
        for c in self.candidates:
            h.update(f"{c.relpath}\0{c.sha256}\n".encode())
        for r in self.rejected:
            h.update(f"{r.relpath}\0{r.reason}\n".encode())
        return h.hexdigest()[:16]


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def scan_landing(landing: str | Path, min_age_s: float = 0.0) -> ScanResult:
    """Find video files under ``landing`` without ever opening anything but regular files.

    Symlinks are followed only when they resolve inside the landing zone; FIFOs, devices and
    sockets are reported, never opened (opening a FIFO would block); folders are walked (a
    folder named ``x.mp4`` is a folder, not an input). Files younger than ``min_age_s`` are
    left for the next scan (they may still be uploading).
    """
    root = Path(landing).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    result = ScanResult()
    seen: dict[str, str] = {}
    now = time.time()
    stack = [root]
    entries: list[tuple[str, Path]] = []
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue  # hidden files and partial uploads (.part, .tmp) are not inputs
                p = Path(entry.path)
                rel = str(p.relative_to(root))
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(p)
                    continue
                if p.suffix.lower() not in VIDEO_EXTENSIONS:
                    continue
                entries.append((rel, p))
    for rel, p in sorted(entries):
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            target = p.resolve()
            if not _is_inside(target, root):
                result.rejected.append(Rejected(rel, "symbolic link leaves the landing zone"))
                continue
            if not target.is_file():
                result.rejected.append(Rejected(rel, "symbolic link to something that is not a regular file"))
                continue
            st = os.stat(target)
            p = target
        if not stat.S_ISREG(st.st_mode):
            kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device or special file"
            result.rejected.append(Rejected(rel, f"not a regular file ({kind})"))
            continue
        if min_age_s and now - st.st_mtime < min_age_s:
            continue
        digest = sha256_file(p)
        if digest in seen:
            result.duplicates.append(Duplicate(rel, digest, seen[digest]))
            continue
        seen[digest] = rel
        result.candidates.append(Candidate(p, rel, st.st_size, digest))
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

    def summary(self) -> dict:
        return {
            "new_shards": {k: len(v) for k, v in self.new_shards.items()},
            "new_videos": sum(len(v) for v in self.new_shards.values()),
            "already_ingested": len(self.already_ingested),
            "duplicates": len(self.duplicates),
            "rejected": [{"path": r.relpath, "reason": r.reason} for r in self.rejected],
        }


def ingested_hashes(store: DatasetStore) -> set[str]:
    ledger = read_all(store, "ingest_ledger")
    return set(ledger.column("sha256").to_pylist()) if ledger is not None else set()


def ledger_shards(store: DatasetStore) -> list[str]:
    ledger = read_all(store, "ingest_ledger")
    return sorted(set(ledger.column("shard").to_pylist())) if ledger is not None else []


def ingest(
    landing: str | Path,
    store: DatasetStore,
    shard_size: int = DEFAULT_SHARD_SIZE,
    min_age_s: float = 0.0,
    scan: ScanResult | None = None,
) -> IngestResult:
    """Record new videos of ``landing`` in the ledger, ``shard_size`` per shard."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    landing = Path(landing).resolve()
    scan = scan or scan_landing(landing, min_age_s=min_age_s)
    known = ingested_hashes(store)
    fresh = [c for c in scan.candidates if c.sha256 not in known]
    old = [c for c in scan.candidates if c.sha256 in known]
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
                    "landing_path": str(c.path),
                    "relpath": c.relpath,
                    "size_bytes": c.size,
                    "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                for c in group
            ],
            schema=LEDGER_SCHEMA,
        )
        store.write_table("ingest_ledger", shard, table)
    _record_scan_rejections(store, landing, scan.rejected)
    return IngestResult(shards, scan.duplicates, old, scan.rejected, scan.signature())


def _record_scan_rejections(store: DatasetStore, landing: Path, rejected: list[Rejected]) -> None:
    """Files refused at the landing zone go to the quarantine once each (keyed by path+reason)."""
    if not rejected:
        return
    existing = read_all(store, "quarantine")
    have = set()
    if existing is not None:
        have = set(zip(existing.column("path").to_pylist(), existing.column("reason").to_pylist()))
    rows = []
    for r in rejected:
        path = str(landing / r.relpath)
        if (path, r.reason) in have:
            continue
        rows.append({"path": path, "sha256": None, "reason": r.reason, "stage": "ingest", "shard": None, "video_id": None})
    if rows:
        key = "ingest-" + hashlib.sha256("\n".join(f"{r['path']}\0{r['reason']}" for r in rows).encode()).hexdigest()[:12]
        store.write_table("quarantine", key, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), name="ingest")
