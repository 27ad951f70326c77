"""The dataset root: a local folder or an s3:// prefix, written atomically.

Layout: ``ROOT/<asset>/<shard>/<asset>.parquet`` plus media files under the same folder.
``ROOT/_compacted/`` holds the catalog's compacted copies of the tables (``catalog.py``), and on
S3 ``ROOT/_changes/<asset>/<shard>`` is a small marker rewritten whenever a shard's tables
change (S3 has no folder modification times; the catalog compares the marker's ETag).
Local writes go to a temporary name and are renamed into place; an S3 PUT (single or
multipart) only becomes visible when complete, so a crash never leaves half a file behind.
A shard's Parquet table is written last, after its media, so it acts as the commit marker.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


STAGING_PREFIX = ".staging-"
STALE_STAGING_AGE_S = 24 * 3600.0
# Staging folders are named .staging-HOST-PID-random ('-' in the host name becomes '_').
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname() or "host")


CHANGES_DIR = "_changes"


class Entry(NamedTuple):
    """One entry of a non-recursive listing. ``stamp`` changes whenever the entry changes:
    locally ``inode:mtime_ns`` (a folder's mtime moves when a file in it is replaced, and a
    published shard folder is a new inode); on S3 a file's ETag; "" when not asked or unknown."""

    name: str
    is_dir: bool
    size: int = 0
    stamp: str = ""


@dataclass(frozen=True)
class S3Settings:
    """Connection settings, read from the same variables dagster-aws's S3Resource uses."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None

    @classmethod
    def from_env(cls) -> "S3Settings":
        env = os.environ.get
        return cls(
            endpoint_url=env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or None,
            region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None,
            access_key=env("AWS_ACCESS_KEY_ID") or None,
            secret_key=env("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env("AWS_SESSION_TOKEN") or None,
        )

    def __repr__(self) -> str:  # never print credentials
        return f"S3Settings(endpoint_url={self.endpoint_url!r}, region={self.region!r})"


def _s3_filesystem(settings: S3Settings) -> pafs.FileSystem:
    kwargs: dict = {"region": settings.region or "us-east-1"}
    if settings.access_key:
        kwargs.update(access_key=settings.access_key, secret_key=settings.secret_key)
        if settings.session_token:
            kwargs["session_token"] = settings.session_token
    if settings.endpoint_url:
        parsed = urlparse(settings.endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc or settings.endpoint_url
        kwargs["scheme"] = parsed.scheme or "https"
    # Transient errors (throttling, 5xx, resets) are retried with backoff inside the client.
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=8)
    return pafs.S3FileSystem(**kwargs)


def _boto3_client(settings: S3Settings):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region or "us-east-1",
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        aws_session_token=settings.session_token,
        config=Config(retries={"max_attempts": 10, "mode": "standard"}),
    )


class DatasetStore:
    """Reads and writes dataset files under one root URI (a folder path or s3://bucket/prefix)."""

    def __init__(self, root: str, s3: S3Settings | None = None):
        self.root_uri = str(root)
        parsed = urlparse(self.root_uri)
        if parsed.username or parsed.password:
            # The root shows up in metadata and logs; credentials belong in the environment.
            raise ValueError("the dataset root must not carry credentials (s3://KEY:SECRET@...); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
        if parsed.scheme == "s3":
            self.is_local = False
            settings = s3 or S3Settings.from_env()
            self.fs = _s3_filesystem(settings)
            # Writes go through boto3, as dagster-aws's S3Resource does: standard retry mode
            # backs off on throttling and 5xx; large files go up in multipart, retried per part.
            self._s3 = _boto3_client(settings)
            self.base = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        elif parsed.scheme in ("", "file"):
            self.is_local = True
            self.fs = pafs.LocalFileSystem()
            local = parsed.path if parsed.scheme == "file" else self.root_uri
            self.base = str(Path(local).expanduser().resolve())
        else:
            raise ValueError(f"unsupported dataset root {root!r}: use a folder path or s3://bucket/prefix")

    # -- paths -----------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Filesystem path (no scheme) of a file under the root; parts must stay inside it."""
        rel = "/".join(p.strip("/") for p in parts if p)
        if any(seg in ("..", "") for seg in rel.split("/")):
            raise ValueError(f"path escapes the dataset root: {rel!r}")
        return f"{self.base}/{rel}"

    def uri(self, *parts: str) -> str:
        p = self.path(*parts)
        return p if self.is_local else f"s3://{p}"

    def shard_dir(self, asset: str, shard: str) -> str:
        return self.path(asset, shard)

    def table_path(self, asset: str, shard: str, name: str | None = None) -> str:
        return self.path(asset, shard, f"{name or asset}.parquet")

    # -- writing ---------------------------------------------------------------------------
    def _ensure_parent(self, path: str) -> None:
        if self.is_local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    def write_bytes(self, path: str, data: bytes) -> str:
        self._ensure_parent(path)
        if self.is_local:
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            bucket, key = path.split("/", 1)
            self._s3.put_object(Bucket=bucket, Key=key, Body=data)
        return path

    def put_file(self, local_file: str | Path, path: str) -> str:
        """Copy a finished local file into place atomically."""
        self._ensure_parent(path)
        if self.is_local:
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            shutil.copyfile(local_file, tmp)
            os.replace(tmp, path)
        else:
            bucket, key = path.split("/", 1)
            self._s3.upload_file(str(local_file), bucket, key)  # multipart for large files, retried per part
        return path

    def move_file(self, local_file: str | Path, path: str) -> str:
        """Move a finished local temp file into place (a rename when both are local)."""
        if self.is_local:
            self._ensure_parent(path)
            os.replace(local_file, path)
            return path
        self.put_file(local_file, path)
        os.unlink(local_file)
        return path

    def write_table(self, asset: str, shard: str, table: pa.Table, name: str | None = None) -> str:
        """Write one shard's table; replaces any earlier version in one atomic step."""
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        self.mark_changed(asset, shard)
        out = self.write_bytes(self.table_path(asset, shard, name), buf.getvalue())
        self.mark_changed(asset, shard)
        return out

    def mark_changed(self, asset: str, shard: str) -> None:
        """On S3, rewrite the shard's change marker (before and after a change, so that a crash
        in between still leaves a changed marker); locally the folder's own stamp does this."""
        if self.is_local:
            return
        bucket, key = self.path(CHANGES_DIR, asset, shard.split("/", 1)[0]).split("/", 1)
        self._s3.put_object(Bucket=bucket, Key=key, Body=uuid.uuid4().hex.encode())

    # -- reading ---------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as f:
            return f.read()

    def read_table(self, asset: str, shard: str, name: str | None = None) -> pa.Table:
        path = self.table_path(asset, shard, name)
        if not self.exists(path):
            raise FileNotFoundError(f"no {name or asset} table for shard {shard!r} at {self.uri(asset, shard)}")
        return pq.read_table(path, filesystem=self.fs)

    def list_tables(self, asset: str, name: str | None = None) -> list[str]:
        """Paths of every shard's table of an asset, ``ROOT/<asset>/*/<name>.parquet``, found from
        the catalog's listing of the asset (media folders are never walked)."""
        from vidgraph.storage.catalog import table_paths

        return table_paths(self, asset, name or asset)

    def list_subdirs(self, path: str) -> list[str]:
        """Names of the folders directly under ``path`` (one listing, no ``stat``)."""
        if not self.is_local:
            return [e.name for e in self.list_dir(path) if e.is_dir]
        try:
            with os.scandir(path) as it:
                return [e.name for e in it if e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_dir(self, path: str, stamps: bool = False) -> list[Entry]:
        """The entries directly under ``path`` (no recursion): locally one ``scandir`` (plus a
        ``stat`` per entry when ``stamps``), on S3 one paginated ListObjectsV2 with delimiter '/'
        (1,000 entries a request; sizes and ETags come with it)."""
        if self.is_local:
            try:
                it = os.scandir(path)
            except (FileNotFoundError, NotADirectoryError):
                return []
            out = []
            with it:
                for e in it:
                    try:
                        is_dir = e.is_dir(follow_symlinks=False)
                        if stamps or not is_dir:
                            st = e.stat(follow_symlinks=False)
                            out.append(Entry(e.name, is_dir, 0 if is_dir else st.st_size, f"{st.st_ino}:{st.st_mtime_ns}"))
                        else:
                            out.append(Entry(e.name, True))
                    except FileNotFoundError:  # removed while listing
                        continue
            return out
        bucket, _, key = path.partition("/")
        prefix = key.rstrip("/") + "/" if key else ""
        out = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for p in page.get("CommonPrefixes", []):
                out.append(Entry(p["Prefix"][len(prefix):].rstrip("/"), True))
            for o in page.get("Contents", []):
                name = o["Key"][len(prefix):]
                if name:
                    out.append(Entry(name, False, int(o.get("Size", 0)), str(o.get("ETag", "")).strip('"')))
        return out

    def list_files(self, prefix: str) -> list[str]:
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File)

    def delete_tree(self, path: str) -> None:
        rel = path[len(self.base) + 1:].split("/") if path.startswith(self.base + "/") else []
        if len(rel) >= 2 and not self.is_local and not rel[0].startswith("_"):
            self.mark_changed(rel[0], rel[1])
        if self.is_local:
            shutil.rmtree(path, ignore_errors=True)
        elif self.fs.get_file_info(path).type != pafs.FileType.NotFound:
            self.fs.delete_dir(path)

    @contextlib.contextmanager
    def local_copy(self, path: str, suffix: str = "") -> Iterator[str]:
        """A local file path for reading ``path``: itself when local, else a temp download."""
        if self.is_local:
            yield path
            return
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="vidgraph-")
        try:
            with os.fdopen(fd, "wb") as out, self.fs.open_input_stream(path) as src:
                shutil.copyfileobj(src, out, length=8 << 20)
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def publish_shard(self, asset: str, shard: str, staging: Path) -> str:
        """Replace ``ROOT/<asset>/<shard>/`` by the finished ``staging`` folder.

        Locally this is two renames, so readers see the old shard or the new one, never a mix.
        On S3, media go up first and tables last (the asset's own table very last), then
        objects the new version no longer has are deleted.
        """
        target = self.shard_dir(asset, shard)
        self.mark_changed(asset, shard)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            trash = None
            if os.path.exists(target):
                trash = f"{self.base}/.trash-{uuid.uuid4().hex[:8]}"
                os.replace(target, trash)
            os.replace(staging, target)
            if trash:
                shutil.rmtree(trash, ignore_errors=True)
            return target
        files = sorted(p for p in Path(staging).rglob("*") if p.is_file())
        main_table = Path(staging) / f"{asset}.parquet"
        files.sort(key=lambda p: (p == main_table, p.suffix == ".parquet", str(p)))
        new_keys = set()
        for f in files:
            key = f"{target}/{f.relative_to(staging).as_posix()}"
            self.put_file(f, key)
            new_keys.add(key)
        for old in self.list_files(target):
            if old not in new_keys:
                self.fs.delete_file(old)
        self.mark_changed(asset, shard)
        return target

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """A scratch folder for media being produced; on the root's own disk when local,
        so finished files move into place with a rename. Its name carries the host and process
        id, so that a later run can tell the folder of a killed process from a live one."""
        owner = f"{_HOST}-{os.getpid()}-"
        if self.is_local:
            Path(self.base).mkdir(parents=True, exist_ok=True)
            d = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{owner}", dir=self.base)
        else:
            d = tempfile.mkdtemp(prefix=f"vidgraph-staging-{owner}")
        try:
            yield Path(d)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def clean_stale_staging(self, max_age_s: float = STALE_STAGING_AGE_S) -> list[str]:
        """Remove what killed processes left behind: staging folders whose process (on this host)
        is gone, or that are older than ``max_age_s`` (another host's, or an unknown owner's), and
        the ``.trash-*`` of an interrupted publish. Returns the paths removed."""
        removed = []
        now = time.time()
        places = [(Path(self.base), STAGING_PREFIX)] if self.is_local else []
        places.append((Path(tempfile.gettempdir()), "vidgraph-staging-"))
        for folder, prefix in places:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for e in entries:
                trash = self.is_local and folder == Path(self.base) and e.name.startswith(".trash-")
                if not (trash or e.name.startswith(prefix)) or not e.is_dir(follow_symlinks=False):
                    continue
                if trash or _owner_gone(e.name[len(prefix):]) or _age(e.path, now) > max_age_s:
                    shutil.rmtree(e.path, ignore_errors=True)
                    removed.append(e.path)
        return removed



def _owner_gone(tail: str) -> bool:
    """True when ``HOST-PID-random`` names a process of this host that no longer runs."""
    host, sep, rest = tail.partition("-")
    pid = rest.split("-", 1)[0]
    if not sep or host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it runs, as someone else
        return False
    return False


def _age(path: str, now: float) -> float:
    try:
        return now - os.stat(path, follow_symlinks=False).st_mtime
    except OSError:
        return 0.0
