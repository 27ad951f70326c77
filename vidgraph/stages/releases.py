"""Reading and writing the release tables: the split, the gold set and the exports of one release.

Layout: ``ROOT/benchmark_split/<release>/benchmark_split.parquet`` (+ ``release.json``: the shards it
snapshots), ``ROOT/gold_set/<release>/gold_set.parquet``, the review packages under
``ROOT/releases/<release>/gold/`` and the exports under ``ROOT/releases/<release>/``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.stages import near_duplicates as nd
from vidgraph.stages.benchmark_split import (
    ASSET, GOLD_SCHEMA, GOLD_TABLE, SPLIT_SCHEMA, SplitConfig, SplitResult, assign_splits, select_gold,
)
from vidgraph.stages.gold import VERDICTS_ASSET, latest_verdicts, write_review_package
from vidgraph.stages.release_exports import RELEASES_DIR, ExportResult, apply_frozen, build_records, export_release, freeze
from vidgraph.storage.schemas import GOLD_VERDICTS_SCHEMA

MANIFEST = "release.json"


def released_shards(store) -> list[str]:
    """Shards whose merged captions are materialized: what a new release snapshots."""
    return sorted(p.rsplit("/", 2)[-2] for p in store.list_tables("merged_captions"))


def previous_release(store, release: str, ordered: Sequence[str]) -> str | None:
    """The latest release before ``release`` (in partition order) whose split was written."""
    before = list(ordered[: list(ordered).index(release)]) if release in ordered else list(ordered)
    for r in reversed(before):
        if store.exists(store.table_path(ASSET, r)):
            return r
    return None


def read_split(store, release: str | None) -> list[dict]:
    if not release or not store.exists(store.table_path(ASSET, release)):
        return []
    return store.read_table(ASSET, release).to_pylist()


def read_gold(store, release: str | None) -> list[dict]:
    if not release or not store.exists(store.table_path(GOLD_TABLE, release)):
        return []
    return store.read_table(GOLD_TABLE, release).to_pylist()


def read_verdicts(store) -> dict[str, dict]:
    if not store.exists(store.table_path(VERDICTS_ASSET, nd.PARTITION)):
        return {}
    return latest_verdicts(store.read_table(VERDICTS_ASSET, nd.PARTITION).to_pylist())


def _duplicates(store) -> tuple[dict[str, str], list[tuple[str, str]]]:
    if not store.exists(store.table_path(nd.ASSET, nd.PARTITION)):
        return {}, []
    groups = {r["clip_id"]: r["group_id"] for r in store.read_table(nd.ASSET, nd.PARTITION).select(["clip_id", "group_id"]).to_pylist()}
    pairs = [(r["clip_a"], r["clip_b"]) for r in store.read_table(nd.ASSET, nd.PARTITION, nd.PAIRS_TABLE).select(["clip_a", "clip_b"]).to_pylist()]
    return groups, pairs


def duplicate_pairs(store) -> list[tuple[str, str]]:
    return _duplicates(store)[1]


@dataclass
class SplitBuild:
    result: SplitResult
    shards: list[str]
    previous: str | None
    missing_near_duplicates: list[str]  # clips the duplicate table has not seen (it is older than a shard)


def build_benchmark_split(store, release: str, config: SplitConfig, ordered_releases: Sequence[str]) -> SplitBuild:
    shards = released_shards(store)
    clips = []
    for shard in shards:
        audio = {}
        if store.exists(store.table_path("audio_captions", shard)):
            audio = {r["clip_id"]: r["audio_class"] for r in store.read_table("audio_captions", shard).select(["clip_id", "audio_class"]).to_pylist()}
        for r in store.read_table("merged_captions", shard).select(["clip_id", "video_id", "shard", "duration_s"]).to_pylist():
            clips.append({**r, "shard": shard, "audio_class": audio.get(r["clip_id"], "none")})
    groups, pairs = _duplicates(store)
    prev = previous_release(store, release, ordered_releases)
    previous = {r["clip_id"]: r for r in read_split(store, prev)}
    frozen = {g["clip_id"] for g in read_gold(store, prev) if g["verified"]}
    result = assign_splits(release, clips, pairs, groups, previous, config, frozen)
    with store.staging_dir() as staging:
        (staging / MANIFEST).write_text(json.dumps({"release": release, "previous": prev, "shards": shards,
                                                    "config": config.describe()}, indent=2))
        pq.write_table(pa.Table.from_pylist(result.rows, schema=SPLIT_SCHEMA), staging / f"{ASSET}.parquet")
        store.publish_shard(ASSET, release, staging)
    return SplitBuild(result, shards, prev, sorted(c["clip_id"] for c in clips if c["clip_id"] not in groups))


def _keyframes(store, shards: set[str], clip_ids: set[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for shard in sorted(shards):
        if store.exists(store.table_path("long_takes", shard, "clip_keyframes")):
            for k in store.read_table("long_takes", shard, "clip_keyframes").to_pylist():
                if k["clip_id"] in clip_ids:
                    out.setdefault(k["clip_id"], []).append(k)
    for ks in out.values():
        ks.sort(key=lambda k: k["keyframe_index"])
    return out


def build_gold_set(store, release: str, config: SplitConfig, ordered_releases: Sequence[str]) -> tuple[list[dict], dict[str, int]]:
    """The release's gold set, with verified clips frozen, and its review package (batch -> items)."""
    rows = read_split(store, release)
    prev = previous_release(store, release, ordered_releases)
    gold = select_gold(release, rows, read_gold(store, prev), read_verdicts(store), config)
    by_id = {r["clip_id"]: r for r in rows}
    records = {r["clip_id"]: r for r in build_records(store, [by_id[g["clip_id"]] for g in gold if g["clip_id"] in by_id])}
    for g in gold:
        # Freeze a clip's content the first time it is seen verified; keep it as it was after that.
        if g["verified"] and not g.get("frozen_record") and g["clip_id"] in records:
            g["frozen_record"] = freeze(records[g["clip_id"]])
    frozen = {g["clip_id"]: g["frozen_record"] for g in gold if g.get("frozen_record")}
    apply_frozen(list(records.values()), frozen)
    with store.staging_dir() as staging:
        pq.write_table(pa.Table.from_pylist(gold, schema=GOLD_SCHEMA), staging / f"{GOLD_TABLE}.parquet")
        store.publish_shard(GOLD_TABLE, release, staging)
    with store.staging_dir() as staging:
        kfs = _keyframes(store, {g["shard"] for g in gold}, {g["clip_id"] for g in gold})
        sizes = write_review_package(store, staging, release, gold, records, kfs)
        store.publish_shard(RELEASES_DIR, f"{release}/gold", staging)
    return gold, sizes


def build_release_exports(store, release: str, wds_shard_size: int) -> ExportResult:
    rows = read_split(store, release)
    if not store.exists(store.table_path(ASSET, release)):
        raise FileNotFoundError(f"release {release!r} has no benchmark_split table; materialize it first")
    records = build_records(store, rows)
    frozen = {g["clip_id"]: g["frozen_record"] for g in read_gold(store, release) if g.get("frozen_record")}
    apply_frozen(records, frozen)
    manifest = {}
    path = store.path(ASSET, release, MANIFEST)
    if store.exists(path):
        manifest = json.loads(store.read_bytes(path))
    return export_release(store, release, records, wds_shard_size, card_extra=manifest)


def write_verdicts(store, rows: list[dict]) -> None:
    with store.staging_dir() as staging:
        pq.write_table(pa.Table.from_pylist(rows, schema=GOLD_VERDICTS_SCHEMA), staging / f"{VERDICTS_ASSET}.parquet")
        store.publish_shard(VERDICTS_ASSET, nd.PARTITION, staging)


def release_records(store, release: str, split: str | None = None) -> list[dict]:
    """The release's exported records (from its Parquet files), optionally one split."""
    from vidgraph.stages.benchmark_split import SPLITS

    out = []
    for s in SPLITS if split is None else (split,):
        p = store.path(RELEASES_DIR, release, "data", f"{s}.parquet")
        if store.exists(p):
            out += pq.read_table(p, filesystem=store.fs).to_pylist()
    return out
