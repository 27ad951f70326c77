"""The DuckDB catalog: one view per asset (and side table) across every shard of the root.

Opening it costs O(assets) listings, not O(files):

- tables are found by pattern, ``ROOT/<asset>/<shard>/<table>.parquet``, from one non-recursive
  listing of each asset folder (media and keyframe folders are never walked; on S3 one
  ListObjectsV2 with delimiter per asset, a request per 1,000 shards, listings in a bounded pool);
- schemas come from ``schemas.py`` (``KNOWN_SCHEMAS``), unified with the footers of the few tables
  not yet compacted (older tables that lack a newer column read it as null);
- a view is registered only when a query names it (table names parsed by DuckDB);
- each asset has a compacted copy of its tables: segments ``ROOT/_compacted/<asset>/<generation>/<view>.parquet``
  (rows tagged with their shard in ``__vidgraph_shard``) and a manifest ``ROOT/_compacted/<asset>/manifest.json``
  naming every shard they hold with that shard folder's stamp at compaction time. A view reads the
  segments (less the rows of shards whose stamp changed since: a re-run wins over its stale copy)
  plus the tables of the shards not in them, the *tail*. When the tail exceeds
  ``VIDGRAPH_COMPACT_AFTER`` shards (default 200), opening the asset compacts it into a new segment
  (merged into one past ``MAX_SEGMENTS``); ``vidgraph stats --compact`` and :func:`compact_all`
  compact and merge on demand.

A shard folder's stamp is ``inode:mtime_ns`` locally (a replaced table moves the folder's mtime, a
re-published shard is a new folder) and, on S3, the ETag of the marker ``ROOT/_changes/<asset>/<shard>``
that the store rewrites around every change of the shard (``DatasetStore.mark_changed``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vidgraph.storage.schemas import (
    AUDIO_CAPTIONS_SCHEMA,
    BENCHMARK_SPLIT_SCHEMA,
    GOLD_SET_SCHEMA,
    GOLD_VERDICTS_SCHEMA,
    NARRATION_EVAL_SCHEMA,
    NEAR_DUPLICATE_PAIRS_SCHEMA,
    NEAR_DUPLICATES_SCHEMA,
    RETRIEVAL_EVAL_SCHEMA,
    CLIP_KEYFRAMES_SCHEMA,
    FRAME_CAPTIONS_SCHEMA,
    LEDGER_SCHEMA,
    LONG_TAKES_SCHEMA,
    MERGED_CAPTIONS_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_CLIPS_SCHEMA,
    RUN_FAILURES_SCHEMA,
    SOURCE_VIDEOS_SCHEMA,
)
from vidgraph.storage.store import CHANGES_DIR, DatasetStore
from vidgraph.storage.schemas import CLIP_OCR_SCHEMA  # long_takes' OCR side table

# Views that exist (empty) even before anything was written, so queries never fail on them.
KNOWN_SCHEMAS = {
    "ingest_ledger": LEDGER_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "source_videos": SOURCE_VIDEOS_SCHEMA,
    "raw_clips": RAW_CLIPS_SCHEMA,
    "long_takes": LONG_TAKES_SCHEMA,
    "clip_keyframes": CLIP_KEYFRAMES_SCHEMA,
    "frame_captions": FRAME_CAPTIONS_SCHEMA,
    "merged_captions": MERGED_CAPTIONS_SCHEMA,
    "audio_captions": AUDIO_CAPTIONS_SCHEMA,
    # releases: near_duplicates spans shards (partition "all"); the others have one table per release.
    "near_duplicates": NEAR_DUPLICATES_SCHEMA,
    "near_duplicate_pairs": NEAR_DUPLICATE_PAIRS_SCHEMA,
    "benchmark_split": BENCHMARK_SPLIT_SCHEMA,
    "gold_set": GOLD_SET_SCHEMA,
    "gold_verdicts": GOLD_VERDICTS_SCHEMA,
    "retrieval_eval": RETRIEVAL_EVAL_SCHEMA,
    "narration_eval": NARRATION_EVAL_SCHEMA,
    "run_failures": RUN_FAILURES_SCHEMA,
}

# long_takes' OCR side table (frames)
KNOWN_SCHEMAS["clip_ocr"] = CLIP_OCR_SCHEMA

# Assets whose every table, whatever its file name, belongs to one view.
UNION_VIEWS = ("quarantine", "ingest_ledger")

# Side tables: view -> the asset folder whose shards hold them (so a query naming one lists only
# that folder). A view not found here or as a folder of its own makes the catalog list them all.
SIDE_TABLES = {
    "frame_signals": "raw_clips",
    "sample_signals": "raw_clips",
    "video_keyframes": "raw_clips",
    "clip_keyframes": "long_takes",
    "clip_ocr": "long_takes",
    "near_duplicate_pairs": "near_duplicates",
}

COMPACTED_DIR = "_compacted"
MANIFEST = "manifest.json"
FORMAT = 3  # manifest format: a reader ignores (and a compaction replaces) any other
SHARD_COLUMN = "__vidgraph_shard"  # in compacted files only: the shard folder a row came from
COMPACT_AFTER_ENV = "VIDGRAPH_COMPACT_AFTER"
DEFAULT_COMPACT_AFTER = 200  # tail shards (not yet compacted) above which opening an asset compacts it
LIST_WORKERS = 16  # bounded pool for listings and footers (S3 round trips)
KEEP_OLD_GENERATION_S = 600.0
MAX_SEGMENTS = 8  # compacted files per view before they are merged into one  # older generations stay this long for readers still on them


def compact_after_default() -> int:
    raw = os.environ.get(COMPACT_AFTER_ENV, "")
    try:
        return int(raw) if raw.strip() else DEFAULT_COMPACT_AFTER
    except ValueError:
        return DEFAULT_COMPACT_AFTER


def view_of(asset: str, base: str) -> str:
    return asset if (asset in UNION_VIEWS or base == asset) else base


def _pool_map(fn, items: list) -> list:
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(items))) as ex:
        return list(ex.map(fn, items))


def asset_dirs(store: DatasetStore) -> list[str]:
    """The asset folders of the root (one listing); ``_…`` (catalog) and ``.…`` (staging) skipped."""
    return sorted(e.name for e in store.list_dir(store.base) if e.is_dir and not e.name.startswith((".", "_")))


def shard_stamps(store: DatasetStore, asset: str, stamps: bool = True) -> dict[str, str]:
    """Shard folder -> stamp, from one listing of ``ROOT/<asset>/`` (and, on S3, one of its change
    markers); without ``stamps``, the names only (every stamp "")."""
    if not stamps:
        return {name: "" for name in store.list_subdirs(store.path(asset)) if not name.startswith(".")}
    if store.is_local:
        return {e.name: e.stamp for e in store.list_dir(store.path(asset), stamps=True)
                if e.is_dir and not e.name.startswith(".")}
    shards, marks = _pool_map(
        lambda p: store.list_dir(p), [store.path(asset), store.path(CHANGES_DIR, asset)]
    )
    stamp = {e.name: e.stamp for e in marks if not e.is_dir}
    return {e.name: stamp.get(e.name, "") for e in shards if e.is_dir and not e.name.startswith(".")}


def _shard_tables(store: DatasetStore, asset: str, shard: str) -> dict[str, int]:
    """Table name -> size of ``ROOT/<asset>/<shard>/*.parquet`` (one non-recursive listing)."""
    return {e.name[: -len(".parquet")]: e.size for e in store.list_dir(store.path(asset, shard))
            if not e.is_dir and e.name.endswith(".parquet")}


@dataclass
class AssetState:
    """What a reader of one asset folder uses: the manifest's current shards, and the tail."""

    asset: str
    manifest: dict | None
    compacted: set[str]  # shards whose rows in the compacted files are current
    excluded: list[str]  # shards in the compacted files whose rows are stale or removed
    tail: dict[str, dict[str, int]]  # shard -> {table: size}, read from their own files
    stamps: dict[str, str] = field(default_factory=dict)

    def path(self, store: DatasetStore, shard: str, table: str) -> str:
        return store.path(self.asset, shard, f"{table}.parquet")

    def segments(self, view: str) -> list[dict]:
        """The view's compacted segments: {"file": "<generation>/<view>.parquet", "exclude": [shards], "rows": n}."""
        return (self.manifest or {}).get("views", {}).get(view, {}).get("segments", [])

    def compacted_files(self, store: DatasetStore, view: str) -> list[tuple[str, list[str]]]:
        """(path, shards whose rows in it are stale) of each compacted segment of ``view``."""
        return [(store.path(COMPACTED_DIR, self.asset, seg["file"]), sorted(set(seg["exclude"]) | set(self.excluded)))
                for seg in self.segments(view)]

    def tail_tables(self, store: DatasetStore, view: str) -> list[tuple[str, str]]:
        """(shard, path) of the tail's tables of ``view``."""
        return sorted((s, self.path(store, s, t)) for s, tables in self.tail.items()
                      for t in tables if view_of(self.asset, t) == view)

    def views(self) -> set[str]:
        out = set((self.manifest or {}).get("views", {}))
        out |= {view_of(self.asset, t) for tables in self.tail.values() for t in tables}
        return out

    def shards_with(self, table: str) -> set[str]:
        """Shards that have ``ROOT/<asset>/<shard>/<table>.parquet``."""
        index = (self.manifest or {}).get("tables", {}).get(table)
        if index is None:
            out = set()
        elif "with" in index:
            out = self.compacted.intersection(index["with"])
        else:
            out = self.compacted.difference(index["without"])
        return out | {s for s, tables in self.tail.items() if table in tables}

    def all_shards(self) -> set[str]:
        """Shards with at least one table."""
        return set(self.compacted) | {s for s, t in self.tail.items() if t}


_MANIFESTS: dict[str, tuple[tuple, dict]] = {}  # local path -> (stat key, parsed manifest): a process reuses it


def _read_manifest(store: DatasetStore, asset: str) -> dict | None:
    path = store.path(COMPACTED_DIR, asset, MANIFEST)
    key = None
    if store.is_local:  # a manifest is replaced by a rename: inode, mtime and size tell a new one
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = _MANIFESTS.get(path)
        if hit and hit[0] == key:
            return hit[1]
    try:
        data = store.read_bytes(path)
    except FileNotFoundError:
        return None
    try:
        m = json.loads(data)
    except ValueError as e:  # cut short or overwritten: the tables are the truth, the manifest a cache
        print(f"vidgraph: {path} is not a readable manifest ({e}); the asset's tables are read directly "
              "until the next compaction replaces it", file=sys.stderr)
        return None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        return None
    if key is not None:
        if len(_MANIFESTS) > 64:
            _MANIFESTS.clear()
        _MANIFESTS[path] = (key, m)
    return m


def asset_state(store: DatasetStore, asset: str, compact_after: int | None = None, stamps: bool = True) -> AssetState:
    """The asset's manifest, stamps and tail; compacts first when the tail exceeds ``compact_after``
    shards (default ``VIDGRAPH_COMPACT_AFTER``; 0: never).

    ``stamps=False`` answers "which shards have which tables" from the folder names alone (no
    ``stat`` per shard, no marker listing on S3): a compacted shard whose folder still exists is
    taken to have the tables it had. Its rows are not to be read (``excluded`` stays empty)."""
    state = _load_state(store, asset, stamps)
    limit = compact_after_default() if compact_after is None else compact_after
    if limit > 0 and sum(1 for t in state.tail.values() if t) > limit:
        try:
            state = compact(store, asset, state if stamps else None)
        except Exception as e:  # noqa: BLE001 - a read-only root, a transient error: read uncompacted this time
            print(f"vidgraph: could not compact {asset} ({type(e).__name__}: {e}); reading its tables one by one",
                  file=sys.stderr)
    return state


def _load_state(store: DatasetStore, asset: str, with_stamps: bool = True) -> AssetState:
    manifest = _read_manifest(store, asset)
    stamps = shard_stamps(store, asset, with_stamps)
    known = (manifest or {}).get("shards", {})
    if with_stamps:
        compacted = {s for s, stamp in known.items() if stamps.get(s) == stamp}
        excluded = sorted(set(known) - compacted)
    else:
        compacted, excluded = {s for s in known if s in stamps}, []
    todo = sorted(set(stamps) - compacted)
    listed = _pool_map(lambda s: _shard_tables(store, asset, s), todo)
    tail = dict(zip(todo, listed))
    return AssetState(asset, manifest, compacted, excluded, tail, stamps)


# -- schemas -------------------------------------------------------------------------------------

def _footers(store: DatasetStore, paths: list[str]) -> list[pa.Schema]:
    return _pool_map(lambda p: pq.read_schema(p, filesystem=store.fs), paths)


def _unify(schemas: list[pa.Schema], known: pa.Schema | None) -> pa.Schema:
    # An all-null column in one shard must not decide the type for the others; columns a table
    # lacks (written by older code) read as null.
    if known is not None:
        try:
            return pa.unify_schemas([known, *schemas], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.unify_schemas(schemas, promote_options="permissive")


def _view_schema(store: DatasetStore, view: str, compacted: list[str], tail: list[str]) -> pa.Schema:
    schemas = [_drop_shard(s) for s in _footers(store, compacted)] + _footers(store, tail)
    known = KNOWN_SCHEMAS.get(view)
    if not schemas:
        return known
    return _unify(schemas, known)


def _drop_shard(schema: pa.Schema) -> pa.Schema:
    i = schema.get_field_index(SHARD_COLUMN)
    return schema.remove(i) if i >= 0 else schema


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones as nulls, others cast."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


# -- reading -------------------------------------------------------------------------------------

@dataclass
class ViewSource:
    """Where a view's rows are: compacted files (less their excluded shards) and tail tables."""

    compacted: list[tuple[str, list[str]]] = field(default_factory=list)  # (file, excluded shards)
    tail: list[str] = field(default_factory=list)

    def __iter__(self):  # the files, for callers that list a view's sources
        return iter([f for f, _ in self.compacted] + self.tail)

    def __len__(self):
        return len(self.compacted) + len(self.tail)


def _source(store: DatasetStore, states: list[AssetState], view: str) -> ViewSource:
    src = ViewSource()
    for st in states:
        src.compacted += st.compacted_files(store, view)
        src.tail += [p for _, p in st.tail_tables(store, view)]
    return src


def _datasets(store: DatasetStore, view: str, src: ViewSource):
    """(schema, [(compacted dataset, excluded shards)], tail dataset or None)."""
    import pyarrow.dataset as pads

    schema = _view_schema(store, view, [f for f, _ in src.compacted], src.tail)
    with_shard = schema.append(pa.field(SHARD_COLUMN, pa.string()))
    comp = [(pads.dataset(f, schema=with_shard, format="parquet", filesystem=store.fs), ex) for f, ex in src.compacted]
    tail = pads.dataset(sorted(src.tail), schema=schema, format="parquet", filesystem=store.fs) if src.tail else None
    return schema, comp, tail


def _excluding(shards: list[str]):
    return None if not shards else ~pc.field(SHARD_COLUMN).isin(pa.array(shards, pa.string()))


def read_all(store: DatasetStore, asset: str, name: str | None = None, columns: list[str] | None = None,
             filter=None, compact_after: int | None = None) -> pa.Table | None:
    """Every shard's table of ``asset`` (or of every table under it, for union views): the compacted
    rows plus the tail. ``columns`` and ``filter`` (a pyarrow expression) limit what is read."""
    import pyarrow.dataset as pads

    if asset in UNION_VIEWS and name is not None:  # one file name inside a union view: rare, per file
        paths = [store.path(asset, s, f"{name}.parquet") for s in sorted(asset_state(store, asset, 0).shards_with(name))]
        if not paths:
            return None
        ds = pads.dataset(paths, schema=_unify(_footers(store, paths), None), format="parquet", filesystem=store.fs)
        return ds.to_table(columns=columns, filter=filter)
    state = asset_state(store, asset, compact_after)
    view = asset if asset in UNION_VIEWS else (name or asset)
    src = _source(store, [state], view)
    if not src:
        return None
    schema, comp, tail = _datasets(store, view, src)
    cols = columns or schema.names
    parts = []
    for ds, excluded in comp:
        f = _excluding(excluded)
        if filter is not None:
            f = filter if f is None else (f & filter)
        parts.append(ds.to_table(columns=cols, filter=f))
    if tail is not None:
        parts.append(tail.to_table(columns=cols, filter=filter))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def table_paths(store: DatasetStore, asset: str, table: str) -> list[str]:
    """Paths of ``ROOT/<asset>/<shard>/<table>.parquet`` for every shard that has one."""
    state = asset_state(store, asset, 0, stamps=False)
    return sorted(state.path(store, s, table) for s in state.shards_with(table))


# -- compaction ----------------------------------------------------------------------------------

class _BufferedWriter:
    """A Parquet writer that gathers small tables into row groups of about ``ROW_GROUP`` rows."""

    ROW_GROUP = 128 * 1024

    def __init__(self, path, schema: pa.Schema):
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.schema = schema
        self.pending: list[pa.Table] = []
        self.n = 0
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.n += table.num_rows
            self.rows += table.num_rows
            if self.n >= self.ROW_GROUP:
                self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=max(self.n, 1))
            self.pending, self.n = [], 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.flush()
        self.writer.close()


def _generation() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:8]}"


def _generation_time(name: str) -> float | None:
    try:
        import calendar

        return float(calendar.timegm(time.strptime(name.split("-", 1)[0], "%Y%m%dT%H%M%S")))
    except ValueError:
        return None


def compact(store: DatasetStore, asset: str, state: AssetState | None = None, full: bool = False) -> AssetState:
    """Fold the asset's tail into a new compacted segment per view, then replace the manifest in
    one atomic write. Rows of shards changed or removed since are excluded from the older segments;
    when a view has more than ``MAX_SEGMENTS`` segments (or ``full``), they are merged into one and
    the stale rows dropped. Readers of the previous manifest keep reading its files (kept
    ``KEEP_OLD_GENERATION_S``); concurrent compactions each write their own generation and the
    last manifest wins, both being correct. Returns the new state."""
    import pyarrow.dataset as pads

    state = state or _load_state(store, asset)
    tail_shards = {s for s, t in state.tail.items() if t}
    multi = any(len(state.segments(v)) > 1 for v in state.views())
    if not tail_shards and not state.excluded and not (full and multi):
        return state
    shards_meta = dict((state.manifest or {}).get("shards", {}))
    for s in state.excluded:
        shards_meta.pop(s, None)
    gen = _generation()
    views_meta = {}
    with store.staging_dir() as tmp:
        for view in sorted(state.views()):
            old = state.segments(view)
            tails = state.tail_tables(store, view)
            merge = bool(old) and (full or len(old) + bool(tails) > MAX_SEGMENTS)
            segments = [] if merge else [
                {**seg, "exclude": sorted(set(seg["exclude"]) | set(state.excluded))} for seg in old]
            if not merge and not tails:
                views_meta[view] = {"segments": segments}
                continue
            old_paths = [store.path(COMPACTED_DIR, asset, seg["file"]) for seg in old] if merge else []
            schema = _view_schema(store, view, old_paths, [p for _, p in tails])
            with_shard = schema.append(pa.field(SHARD_COLUMN, pa.string()))
            out = tmp / f"{view}.parquet"
            with _BufferedWriter(out, with_shard) as w:
                for seg, path in zip(old if merge else [], old_paths):
                    keep = sorted(state.compacted - set(seg["exclude"]))
                    ds = pads.dataset(path, schema=with_shard, format="parquet", filesystem=store.fs)
                    for batch in ds.to_batches(filter=pc.field(SHARD_COLUMN).isin(pa.array(keep, pa.string())),
                                               batch_size=65536):
                        w.add(pa.Table.from_batches([batch], schema=with_shard))
                # Tail tables, a few at a time (bounded memory), each tagged with its shard.
                for i in range(0, len(tails), 64):
                    chunk = tails[i:i + 64]
                    tables = _pool_map(lambda sp: pq.read_table(sp[1], filesystem=store.fs), chunk)
                    for (shard, _), t in zip(chunk, tables):
                        w.add(conform(t, schema).append_column(SHARD_COLUMN, pa.array([shard] * t.num_rows, pa.string())))
            store.move_file(out, store.path(COMPACTED_DIR, asset, gen, f"{view}.parquet"))
            segments.append({"file": f"{gen}/{view}.parquet", "exclude": [], "rows": w.rows})
            views_meta[view] = {"segments": segments}
    for s in tail_shards:  # a folder without tables (a publish under way on S3) stays in the tail
        shards_meta[s] = state.stamps.get(s, "")
    # Which compacted shard has which table: per table, the shorter of the lists of shards with
    # it and without it (most shards have every table of their asset).
    having: dict[str, set[str]] = defaultdict(set)
    for table in (state.manifest or {}).get("tables", {}):
        having[table] = state.shards_with(table) - set(state.tail)
    for s in tail_shards:
        for table in state.tail[s]:
            having[table].add(s)
    tables_meta = {}
    for table, with_it in sorted(having.items()):
        without = set(shards_meta) - with_it
        tables_meta[table] = {"with": sorted(with_it)} if len(with_it) < len(without) else {"without": sorted(without)}
    previous = state.manifest or {}
    manifest = {"format": FORMAT, "asset": asset, "generation": gen,
                "compacted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "keep": sorted(_referenced(previous)), "shards": shards_meta, "tables": tables_meta,
                "views": views_meta}
    store.write_bytes(store.path(COMPACTED_DIR, asset, MANIFEST), json.dumps(manifest, separators=(",", ":")).encode())
    _drop_old_generations(store, asset, _referenced(manifest) | set(manifest["keep"]))
    tail = {s: t for s, t in state.tail.items() if not t}
    return AssetState(asset, manifest, set(shards_meta), [], tail, state.stamps)


def _referenced(manifest: dict) -> set[str]:
    """Generations whose files ``manifest`` reads."""
    return {seg["file"].split("/", 1)[0] for v in manifest.get("views", {}).values() for seg in v.get("segments", [])}


def _drop_old_generations(store: DatasetStore, asset: str, keep: set) -> None:
    now = time.time()
    for e in store.list_dir(store.path(COMPACTED_DIR, asset)):
        t = _generation_time(e.name) if e.is_dir else None
        if e.is_dir and e.name not in keep and t is not None and now - t > KEEP_OLD_GENERATION_S:
            store.delete_tree(store.path(COMPACTED_DIR, asset, e.name))


def compact_all(store: DatasetStore, assets: list[str] | None = None, full: bool = True) -> dict[str, dict]:
    """Compact every asset folder (or ``assets``) now, whatever its tail (``full``: merge each
    view's segments into one). Returns per asset the generation and the shards compacted."""
    out = {}
    for asset in assets or asset_dirs(store):
        st = compact(store, asset, full=full)
        out[asset] = {"generation": (st.manifest or {}).get("generation"), "shards": len(st.compacted),
                      "tail": sum(1 for t in st.tail.values() if t)}
    return out


# -- the catalog ---------------------------------------------------------------------------------

def table_names(sql: str, con=None) -> set[str] | None:
    """Names of the tables ``sql`` reads, parsed by DuckDB (on ``con`` when given); None when it cannot tell."""
    import duckdb

    own = con is None
    con = duckdb.connect(":memory:") if own else con
    try:
        raw = con.execute("select json_serialize_sql(?)", [sql]).fetchall()[0][0]
        tree = json.loads(raw)
        if not tree.get("error"):
            out: set[str] = set()
            ctes: set[str] = set()
            stack = [tree]
            while stack:
                n = stack.pop()
                if isinstance(n, dict):
                    if n.get("type") == "BASE_TABLE" and n.get("table_name"):
                        out.add(n["table_name"].lower())
                    for entry in (n.get("cte_map") or {}).get("map", []) if isinstance(n.get("cte_map"), dict) else []:
                        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                            ctes.add(entry["key"].lower())
                    stack.extend(n.values())
                elif isinstance(n, list):
                    stack.extend(n)
            return out - ctes
        try:
            return {t.lower() for t in duckdb.get_table_names(sql, qualified=False)}
        except Exception:  # noqa: BLE001 - not a statement DuckDB can parse alone: register everything
            return None
    except duckdb.Error:
        return None
    finally:
        if own:
            con.close()


class Catalog:
    """A DuckDB connection with a view per asset; ``query`` returns rows as dicts.

    Views are registered when a query names them, from the compacted files plus the tail.
    """

    def __init__(self, store: DatasetStore, compact_after: int | None = None):
        self.store = store
        self.compact_after = compact_after
        import duckdb  # here, not at import: `vidgraph lineage` lists tables without DuckDB

        self.con = duckdb.connect(":memory:")
        self._dirs: list[str] | None = None
        self._states: dict[str, AssetState] = {}
        self._registered: set[str] = set()
        self._all = False

    # -- discovery --
    def _asset_dirs(self) -> list[str]:
        if self._dirs is None:
            self._dirs = asset_dirs(self.store)
        return self._dirs

    def _load(self, assets: list[str]) -> None:
        todo = [a for a in assets if a not in self._states]
        for a, st in zip(todo, _pool_map(lambda a: asset_state(self.store, a, self.compact_after), todo)):
            self._states[a] = st

    def _holders(self, view: str) -> list[str] | None:
        """Asset folders that may hold ``view``; None when only a full listing can tell."""
        dirs = set(self._asset_dirs())
        out = [a for a in (view, SIDE_TABLES.get(view)) if a and a in dirs]
        if out or view in KNOWN_SCHEMAS:
            return out
        return None

    def _register_views(self, views: dict[str, list[str]]) -> None:
        self._load(sorted({a for assets in views.values() for a in assets}))
        for view, assets in views.items():
            states = [self._states[a] for a in assets]
            self._register(view, _source(self.store, states, view))

    def _register(self, view: str, src: ViewSource) -> None:
        if view in self._registered:
            return
        self._registered.add(view)
        if not src:
            if view in KNOWN_SCHEMAS:
                self.con.register(view, KNOWN_SCHEMAS[view].empty_table())
            return
        schema, comp, tail = _datasets(self.store, view, src)
        parts = []
        for i, (ds, excluded) in enumerate(comp):
            name = f"__vg_{view}_c{i}"
            self.con.register(name, ds)
            where = ""
            if excluded:
                where = f' WHERE "{SHARD_COLUMN}" NOT IN (' + ", ".join("'" + s.replace("'", "''") + "'" for s in excluded) + ")"
            parts.append(f'SELECT * EXCLUDE ("{SHARD_COLUMN}") FROM "{name}"{where}')
        if tail is not None:
            self.con.register(f"__vg_{view}_t", tail)
            parts.append(f'SELECT * FROM "__vg_{view}_t"')
        self.con.execute(f'CREATE OR REPLACE VIEW "{view}" AS ' + " UNION ALL ".join(parts))

    def _register_all(self) -> None:
        if self._all:
            return
        self._all = True
        dirs = self._asset_dirs()
        self._load(dirs)
        views: dict[str, list[str]] = defaultdict(list)
        for a in dirs:
            for v in self._states[a].views():
                views[v].append(a)
        for v in KNOWN_SCHEMAS:
            views.setdefault(v, [])
        self._register_views({v: a for v, a in views.items() if v not in self._registered})

    def ensure(self, names) -> None:
        """Register the views ``names`` (unknown names make every view registered)."""
        want: dict[str, list[str]] = {}
        for n in names:
            if n in self._registered:
                continue
            holders = self._holders(n)
            if holders is None:
                if not self._all:
                    self._register_all()
                continue
            want[n] = holders
        if want:
            self._register_views(want)

    @property
    def views(self) -> dict[str, ViewSource]:
        """Every view with rows, and where they are (lists every asset folder)."""
        self._register_all()
        out = {}
        for a in self._asset_dirs():
            for v in self._states[a].views():
                out.setdefault(v, []).append(a)
        return {v: _source(self.store, [self._states[a] for a in assets], v) for v, assets in sorted(out.items())}

    def query(self, sql: str) -> list[dict]:
        cur = self._execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def df(self, sql: str):
        return self._execute(sql).df()

    def _execute(self, sql: str):
        names = table_names(sql, self.con)
        if names is None:
            self._register_all()
        else:
            self.ensure(names)
        return self.con.execute(sql)

    def close(self):
        self.con.close()
