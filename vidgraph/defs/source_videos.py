"""source_videos: the shard's probed videos, copied into the dataset root."""


from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.defs.guards import require_ingested
from vidgraph.defs.metadata import md_table
from vidgraph.defs.partitions import STEP_RETRY, shards
from vidgraph.defs.resources import DatasetStoreResource, IngestSettings
from vidgraph.defs.versions import source_videos_version
from vidgraph.landing import apply_after_ingest
from vidgraph.stages.source_videos import ASSET, MANUAL, build_source_videos
from vidgraph.storage.store import DatasetStore

PREVIEW_COLUMNS = ["video_id", "relpath", "video_codec", "width", "height", "duration_s", "avg_fps", "is_vfr", "has_audio"]


@asset(partitions_def=shards, retry_policy=STEP_RETRY, group_name="ingest", code_version=source_videos_version(), kinds={"video", "parquet"})
def source_videos(
    context: AssetExecutionContext, store: DatasetStoreResource, ingest_settings: IngestSettings
) -> MaterializeResult:
    """Source videos of a shard, probed with PyAV and copied into the dataset root; bad files quarantined."""
    st = store.get_store()
    shard = context.partition_key
    require_ingested(st, shard)
    after = ingest_settings.after_ingest_policy()  # a bad setting fails here, before any work
    result = build_source_videos(st, shard, ingest_settings.policy(), landing_root=ingest_settings.landing_dir)
    rows = result.table.to_pylist()
    quarantined = result.quarantine.to_pylist()
    for q in quarantined:
        context.log.warning(f"quarantined {q['path']!r}: {q['reason']}")
    # The copies are published (checked against their sha256): only now may landed files go.
    copied = {r["landing_path"] for r in rows}
    ledger = [e for e in st.read_table("ingest_ledger", shard).to_pylist() if e["landing_path"] in copied]
    for line in apply_after_ingest(ledger, ingest_settings.landing_dir, after, st):
        context.log.info(f"after_ingest: {line}")
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "inputs": result.inputs,
            "quarantined": len(quarantined),
            "total_duration_s": round(sum(r["duration_s"] for r in rows), 2),
            "preview": md_table(rows, PREVIEW_COLUMNS),
            "quarantine": md_table(quarantined, ["path", "reason"]),
            "location": MetadataValue.path(st.uri(ASSET, shard)),
        }
    )


def accounting(st: DatasetStore, shard: str, inputs_asset: str, outputs_asset: str, stage: str, key: str) -> AssetCheckResult:
    """Every input row of the shard is in the output or in the quarantine, exactly once."""
    inputs = st.read_table(inputs_asset, shard).column(key).to_pylist()
    outputs = st.read_table(outputs_asset, shard).column(key).to_pylist() if st.exists(st.table_path(outputs_asset, shard)) else []
    quarantined = []
    # The stage's own quarantine, and the videos a person set aside (every stage skips those).
    for name in dict.fromkeys((stage, MANUAL)):
        if st.exists(st.table_path("quarantine", shard, name)):
            quarantined += st.read_table("quarantine", shard, name).column(key).to_pylist()
    accounted = list(set(outputs)) + quarantined
    missing = sorted(set(inputs) - set(accounted))
    twice = sorted({k for k in set(outputs) if k in set(quarantined)})
    return AssetCheckResult(
        passed=not missing and not twice,
        metadata={
            "inputs": len(inputs),
            "processed": len(set(outputs)),
            "quarantined": len(quarantined),
            "missing": md_table([{key: m} for m in missing]),
            "in_both": md_table([{key: t} for t in twice]),
        },
    )


@asset_check(asset=source_videos, blocking=True, partitions_def=shards)
def every_input_accounted_for(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every video of the shard's ledger is in source_videos or in the quarantine."""
    return accounting(store.get_store(), context.partition_key, "ingest_ledger", ASSET, ASSET, "sha256")
