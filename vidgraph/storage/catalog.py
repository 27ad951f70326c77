"""The DuckDB catalog: one view per asset (and side table) across every shard of the root."""

from __future__ import annotations

from collections import defaultdict

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
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
from vidgraph.storage.store import DatasetStore
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


def _dataset(store: DatasetStore, paths: list[str]) -> pads.Dataset:
    # Unify the schemas from the files' footers: an all-null column in one shard must not
    # decide the type for the others.
    schemas = [pq.read_schema(p, filesystem=store.fs) for p in paths]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return pads.dataset(paths, schema=schema, format="parquet", filesystem=store.fs)


def read_all(store: DatasetStore, asset: str, name: str | None = None) -> pa.Table | None:
    """Every shard's table of ``asset`` (or of every table under it, for union views)."""
    if asset in UNION_VIEWS and name is None:
        paths = [p for p in store.list_files(store.path(asset)) if p.endswith(".parquet") and "/.staging" not in p]
    else:
        paths = store.list_tables(asset, name)
    if not paths:
        return None
    return _dataset(store, paths).to_table()


def discover_views(store: DatasetStore) -> dict[str, list[str]]:
    """View name -> table paths, found by walking the root."""
    views: dict[str, list[str]] = defaultdict(list)
    top = pafs.FileSelector(store.base, recursive=False, allow_not_found=True)
    for info in store.fs.get_file_info(top):
        if info.type != pafs.FileType.Directory or info.base_name.startswith("."):
            continue
        asset = info.base_name
        for path in store.list_files(info.path):
            if not path.endswith(".parquet") or "/.staging" in path:
                continue
            base = path.rsplit("/", 1)[-1][: -len(".parquet")]
            # ROOT/<asset>/<shard>/<table>.parquet only: media folders hold no tables.
            if path.count("/") - info.path.count("/") != 2:
                continue
            view = asset if (asset in UNION_VIEWS or base == asset) else base
            views[view].append(path)
    return dict(views)


class Catalog:
    """A DuckDB connection with a view per asset; ``query`` returns rows as dicts."""

    def __init__(self, store: DatasetStore):
        self.store = store
        self.con = duckdb.connect(":memory:")
        self.views = discover_views(store)
        for view, paths in sorted(self.views.items()):
            self.con.register(view, _dataset(store, sorted(paths)))
        for view, schema in KNOWN_SCHEMAS.items():
            if view not in self.views:
                self.con.register(view, schema.empty_table())

    def query(self, sql: str) -> list[dict]:
        cur = self.con.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def df(self, sql: str):
        return self.con.execute(sql).df()

    def close(self):
        self.con.close()
