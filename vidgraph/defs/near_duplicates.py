"""near_duplicates: groups of re-uploaded, cropped or re-encoded clips across every shard."""

import json

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.defs.metadata import md_table
from vidgraph.defs.partitions import STEP_RETRY
from vidgraph.defs.resources import DatasetStoreResource, NearDuplicateSettings, SentenceEmbedderResource
from vidgraph.stages.near_duplicates import ASSET, PAIRS_TABLE, PARTITION, build_near_duplicates

# Not partitioned: the asset reads every shard of its upstreams (their tables on the store).
UPSTREAM = [AssetKey("merged_captions"), AssetKey("long_takes")]


@asset(retry_policy=STEP_RETRY, group_name="release", deps=UPSTREAM, code_version="1", kinds={"parquet", "pytorch"})
def near_duplicates(
    context: AssetExecutionContext,
    store: DatasetStoreResource,
    sentence_embedder: SentenceEmbedderResource,
    near_duplicate_settings: NearDuplicateSettings,
) -> MaterializeResult:
    """Near-duplicate groups across all shards: keyframe perceptual hashes (multi-index) and MiniLM caption similarity."""
    st = store.get_store()
    config = near_duplicate_settings.config()
    embedder = sentence_embedder.get_embedder()
    result = build_near_duplicates(st, embedder, config)
    groups = [r for r in result.clips.to_pylist() if r["group_size"] > 1]
    return MaterializeResult(
        metadata={
            "dagster/row_count": result.clips.num_rows,
            "pairs": result.pairs.num_rows,
            "clips_in_groups": len(groups),
            "groups": len({r["group_id"] for r in groups}),
            "index": MetadataValue.json(result.stats),
            "thresholds": MetadataValue.json(config.describe()),
            "embedder": MetadataValue.json(embedder.describe()),
            "pairs_preview": md_table(result.pairs.to_pylist(), limit=20),
            "location": MetadataValue.path(st.uri(ASSET, PARTITION)),
        }
    )


@asset_check(asset=near_duplicates)
def covers_every_merged_clip(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every clip of merged_captions has a row (a group, perhaps of one), and pairs join known clips."""
    from vidgraph.storage.catalog import read_all

    st = store.get_store()
    merged = read_all(st, "merged_captions")
    want = set(merged.column("clip_id").to_pylist()) if merged is not None else set()
    have = set(st.read_table(ASSET, PARTITION).column("clip_id").to_pylist())
    pairs = st.read_table(ASSET, PARTITION, PAIRS_TABLE).to_pylist()
    unknown = [p for p in pairs if p["clip_a"] not in have or p["clip_b"] not in have]
    missing = sorted(want - have)
    return AssetCheckResult(
        passed=not missing and not unknown,
        severity=AssetCheckSeverity.WARN,
        metadata={"merged_clips": len(want), "rows": len(have), "missing": md_table([{"clip_id": c} for c in missing]),
                  "pairs_with_unknown_clips": json.dumps(unknown[:20])},
    )
