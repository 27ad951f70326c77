"""Synthetic dataset roots at scale, in vidgraph's own formats (used by bench/scale.py and a test).

A *template* is a dataset root holding exactly one real shard, produced by the real pipeline
(`vidgraph run` on real videos). ``synthesize`` copies it N times:

- a landing folder of N x V small distinct files (V = the template's videos; a video extension,
  never decoded), whose real sha256 are in
- a real ledger: one ``ingest_ledger/<shard>/ingest_ledger.parquet`` per shard, as ``ingest`` writes
  it (shard name from the members' hashes, as ``vidgraph.ingest.shard_name`` derives it);
- every other per-shard table of the template, with the ids rewritten per shard: the shard name,
  each video's sha256, video_id (``v`` + sha256[:16], hence every clip_id and media path) and
  landing path, so that rows are distinct across shards; other values are the template's;
- the template's media files (keyframes, clips, plots, copies of sources) at the same relative
  paths, ids rewritten, as hard links to the template's files (the same number of directory
  entries to walk as real shards have, without the bytes); ``media="none"`` or a number limits them;
- optionally a DAGSTER_HOME whose SQLite instance has every shard as a dynamic partition.

Only pyarrow and the standard library are imported here: the code under test is never imported,
so the same synthesizer serves any checkout.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

LEDGER = "ingest_ledger"
FILES_PER_FOLDER = 1000  # landing files per sub-folder of the synthetic landing zone


def shard_name(hashes: list[str]) -> str:
    """As ``vidgraph.ingest.shard_name``."""
    return "shard-" + hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:12]


def video_id_for(sha256: str) -> str:
    """As ``vidgraph.stages.source_videos.video_id_for``."""
    return "v" + sha256[:16]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# -- the template -------------------------------------------------------------------------------


def build_template(out: Path, python: str, code: str, videos: list[Path] | None = None, env: dict | None = None) -> Path:
    """Run the real pipeline once (``vidgraph samples`` + ``vidgraph run``, tiny profile) on the
    sample videos plus ``videos``, all in one shard; returns the template root."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    landing, root, home = out / "landing", out / "root", out / "dagster_home"
    for d in (landing, home):
        d.mkdir(parents=True)
    run_env = {**os.environ, **(env or {}), "PYTHONPATH": code, "DAGSTER_HOME": str(home),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VIDGRAPH_PROFILE": "tiny"}
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cli = [python, "-m", "vidgraph.cli"]
    subprocess.run(cli + ["samples", str(landing)], env=run_env, cwd=out, check=True, stdout=subprocess.DEVNULL)
    for v in videos or []:
        shutil.copy(v, landing / Path(v).name)
    n = len([p for p in landing.iterdir() if p.is_file()])
    log = open(out / "run.log", "w")
    subprocess.run(cli + ["run", str(landing), "--root", str(root), "--settle-s", "0", "--shard-size", str(max(n, 1))],
                   env=run_env, cwd=out, check=True, stdout=log, stderr=subprocess.STDOUT)
    shards = os.listdir(root / LEDGER)
    if len(shards) != 1:
        raise RuntimeError(f"the template run made {len(shards)} shards, not one: see {out / 'run.log'}")
    return root


@dataclass
class _Column:
    """How to rewrite one column per shard."""

    kind: str  # "keep" | "dict" (strings: distinct values rewritten) | "py" (anything else holding ids)
    indices: pa.Array | None = None
    values: list | None = None  # distinct values: None where no id occurs, else (pieces, tokens)
    dtype: pa.DataType | None = None
    pylist: list | None = None


class Template:
    """One real shard, ready to be copied with new ids."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        (self.shard,) = os.listdir(self.root / LEDGER)
        ledger = pq.read_table(self.root / LEDGER / self.shard / f"{LEDGER}.parquet")
        self.ledger_schema = ledger.schema
        self.videos = sorted(ledger.to_pylist(), key=lambda r: r["relpath"])
        self.tables: dict[str, pa.Table] = {}  # relative path -> table (the ledger excluded)
        self.media: list[str] = []  # relative paths of every other file
        for asset in sorted(os.listdir(self.root)):
            folder = self.root / asset / self.shard
            if asset.startswith(".") or not folder.is_dir():
                continue
            for dirpath, _, files in os.walk(folder):
                for f in sorted(files):
                    rel = os.path.relpath(os.path.join(dirpath, f), self.root)
                    if asset == LEDGER:
                        continue
                    if f.endswith(".parquet") and os.path.dirname(rel) == f"{asset}/{self.shard}":
                        self.tables[rel] = pq.read_table(self.root / rel)
                    else:
                        self.media.append(rel)
        # Every id of the template, longest first (a landing path contains its relpath).
        self.token_of: dict[str, tuple[str, int]] = {self.shard: ("shard", -1)}
        for i, v in enumerate(self.videos):
            self.token_of[v["sha256"]] = ("sha256", i)
            self.token_of[video_id_for(v["sha256"])] = ("video_id", i)
            self.token_of[v["landing_path"]] = ("landing_path", i)
            self.token_of[v["relpath"]] = ("relpath", i)
        self.pattern = re.compile("|".join(re.escape(t) for t in sorted(self.token_of, key=len, reverse=True)))
        self.columns = {rel: [self._prepare(t.column(j)) for j in range(t.num_columns)] for rel, t in self.tables.items()}
        self.media_split = [self._split(m) for m in self.media]

    def rows(self) -> dict[str, int]:
        """Rows per table of the template (relative path under the shard -> rows), ledger included."""
        out = {f"{LEDGER}/{LEDGER}.parquet": len(self.videos)}
        for rel, t in self.tables.items():
            asset, _, name = rel.split("/")
            out[f"{asset}/{name}"] = t.num_rows
        return out

    def _split(self, s: str):
        """None when ``s`` holds no id, else (literal pieces, tokens between them)."""
        pieces, tokens, last = [], [], 0
        for m in self.pattern.finditer(s):
            pieces.append(s[last:m.start()])
            tokens.append(self.token_of[m.group(0)])
            last = m.end()
        if not tokens:
            return None
        pieces.append(s[last:])
        return pieces, tokens

    def _prepare(self, col: pa.ChunkedArray) -> _Column:
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            enc = pc.dictionary_encode(col)
            values = [None if v is None else self._split(v) for v in enc.dictionary.to_pylist()]
            if not any(values):
                return _Column("keep")
            return _Column("dict", indices=enc.indices, values=values, dtype=col.type,
                           pylist=enc.dictionary.to_pylist())
        if pa.types.is_dictionary(col.type):
            raise NotImplementedError("dictionary columns are not used by vidgraph's schemas")
        py = col.to_pylist()
        if self.pattern.search(repr(py)) is None:
            return _Column("keep")
        return _Column("py", dtype=col.type, pylist=py)

    # -- one synthetic shard -------------------------------------------------------------------
    def rewrite(self, new: dict[tuple[str, int], str]):
        """A function of strings with the template's ids replaced by ``new`` ones."""

        def fill(split, s):
            if split is None:
                return s
            pieces, tokens = split
            out = [pieces[0]]
            for tok, piece in zip(tokens, pieces[1:]):
                out.append(new[tok])
                out.append(piece)
            return "".join(out)

        return fill

    def shard_tables(self, new: dict[tuple[str, int], str]) -> dict[str, pa.Table]:
        fill = self.rewrite(new)

        def deep(v):
            if isinstance(v, str):
                return fill(self._split(v), v)
            if isinstance(v, bytes):
                return os.fsencode(deep(os.fsdecode(v)))
            if isinstance(v, list):
                return [deep(x) for x in v]
            if isinstance(v, dict):
                return {k: deep(x) for k, x in v.items()}
            if isinstance(v, tuple):
                return tuple(deep(x) for x in v)
            return v

        out = {}
        for rel, table in self.tables.items():
            arrays = []
            for j, c in enumerate(self.columns[rel]):
                if c.kind == "keep":
                    arrays.append(table.column(j))
                elif c.kind == "dict":
                    values = pa.array([fill(s, v) for s, v in zip(c.values, c.pylist)], type=c.dtype)
                    arrays.append(pc.take(values, c.indices))
                else:
                    arrays.append(pa.array([deep(v) for v in c.pylist], type=c.dtype))
            asset, _, name = rel.split("/")
            out[f"{asset}/{new[('shard', -1)]}/{name}"] = pa.Table.from_arrays(arrays, schema=table.schema)
        return out


# -- synthesis ----------------------------------------------------------------------------------


def _landing_bytes(k: int, i: int, relpath: str, size: int) -> bytes:
    head = f"vidgraph scale bench: synthetic landing file, shard {k}, video {i} ({relpath}); never decoded\n".encode()
    if len(head) >= size:
        return head
    filler = hashlib.sha256(head).digest() * (size // 32 + 1)
    return head + filler[: size - len(head)]


def _link(src: Path, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
            raise
        open(dst, "wb").close()  # an empty placeholder where a hard link is impossible


def _write_shards(template_root: str, out: str, first: int, last: int, landing_bytes: int, media: str | int,
                  ingested_at: str) -> list[str]:
    """Shards ``first .. last-1``; returns their names (in order). Runs in a worker process."""
    tpl = _TEMPLATE_CACHE.get(template_root) or _TEMPLATE_CACHE.setdefault(template_root, Template(template_root))
    out_p = Path(out)
    root, landing = out_p / "root", out_p / "landing"
    n_media = len(tpl.media) if media == "all" else 0 if media == "none" else min(int(media), len(tpl.media))
    names = []
    made_dirs: set[str] = set()

    def mkdir(d: str):
        if d not in made_dirs:
            os.makedirs(d, exist_ok=True)
            made_dirs.add(d)

    for k in range(first, last):
        folder = landing / f"b{k * len(tpl.videos) // FILES_PER_FOLDER:05d}"
        mkdir(str(folder))
        new: dict[tuple[str, int], str] = {}
        ledger_rows = []
        for i, v in enumerate(tpl.videos):
            base = os.path.basename(v["relpath"])
            path = folder / f"s{k:06d}-{i}-{base}"
            data = _landing_bytes(k, i, v["relpath"], landing_bytes)
            with open(path, "wb") as f:
                f.write(data)
            sha = hashlib.sha256(data).hexdigest()
            rel = str(path.relative_to(landing))
            new[("sha256", i)] = sha
            new[("video_id", i)] = video_id_for(sha)
            new[("landing_path", i)] = str(path)
            new[("relpath", i)] = rel
            ledger_rows.append({"sha256": sha, "landing_path": str(path), "relpath": rel, "size_bytes": len(data),
                                "ingested_at": ingested_at, "landing_path_bytes": os.fsencode(path)})
        shard = shard_name([r["sha256"] for r in ledger_rows])
        new[("shard", -1)] = shard
        names.append(shard)
        for r in ledger_rows:
            r["shard"] = shard
        mkdir(str(root / LEDGER / shard))
        ledger = pa.Table.from_pylist(ledger_rows, schema=tpl.ledger_schema)
        # Media first, tables last (a shard's table is its commit marker, as in the store).
        for rel, split in zip(tpl.media[:n_media], tpl.media_split[:n_media]):
            dst = str(root / tpl.rewrite(new)(split, rel))
            mkdir(os.path.dirname(dst))
            _link(tpl.root / rel, dst)
        for rel, table in tpl.shard_tables(new).items():
            mkdir(str(root / os.path.dirname(rel)))
            pq.write_table(table, str(root / rel), compression="zstd")
        pq.write_table(ledger, str(root / LEDGER / shard / f"{LEDGER}.parquet"), compression="zstd")
    return names


_TEMPLATE_CACHE: dict[str, Template] = {}


def _worker(args):
    return _write_shards(*args)


def register_partitions(home: Path, shards: list[str], python: str = sys.executable) -> None:
    """Every shard as a dynamic partition of a SQLite DAGSTER_HOME (dagster from ``python``'s env)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    names = home / "shards.txt"
    names.write_text("\n".join(shards) + "\n")
    code = ("import sys\nfrom dagster import DagsterInstance\n"
            "names = [n for n in open(sys.argv[1]).read().split() if n]\n"
            "with DagsterInstance.get() as i:\n"
            "    have = set(i.get_dynamic_partitions('shards'))\n"
            "    i.add_dynamic_partitions('shards', [n for n in names if n not in have])\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("PYTHONPATH", None)
    subprocess.run([python, "-c", code, str(names)], env=env, check=True, cwd=str(home))
    names.unlink()


def synthesize(template_root: str | Path, out: str | Path, shards: int, landing_bytes: int = 1024,
               media: str | int = "all", workers: int = 1, dagster_home: bool = True,
               python: str = sys.executable) -> dict:
    """Write OUT/root (the dataset root), OUT/landing and (``dagster_home``) OUT/dagster_home with
    ``shards`` shards copied from the template; returns (and writes to OUT/synth.json) a manifest."""
    t0 = time.time()
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    (out / "root").mkdir(parents=True, exist_ok=True)
    (out / "landing").mkdir(parents=True, exist_ok=True)
    template_root = str(Path(template_root).resolve())
    tpl = Template(template_root)
    ingested_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    step = max(1, min(250, -(-shards // max(1, workers))))
    jobs = [(template_root, str(out), a, min(a + step, shards), landing_bytes, media, ingested_at)
            for a in range(0, shards, step)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            names = [n for part in pool.map(_worker, jobs, chunksize=1) for n in part]
    else:
        names = [n for job in jobs for n in _write_shards(*job)]
    t_files = time.time() - t0
    if dagster_home:
        register_partitions(out / "dagster_home", names, python)
    manifest = {
        "shards": shards, "template_shard": tpl.shard, "template_root": template_root,
        "videos_per_shard": len(tpl.videos), "landing_files": shards * len(tpl.videos), "landing_bytes": landing_bytes,
        "tables_per_shard": len(tpl.tables) + 1,
        "media_per_shard": len(tpl.media) if media == "all" else 0 if media == "none" else min(int(media), len(tpl.media)),
        "template_media_per_shard": len(tpl.media), "rows_per_shard": tpl.rows(),
        "seconds_files": round(t_files, 2), "seconds": round(time.time() - t0, 2), "first_shards": names[:3],
    }
    (out / "synth.json").write_text(json.dumps(manifest, indent=2))
    return manifest
