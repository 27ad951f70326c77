"""Incremental ingestion: a sensor scans the landing folder, adds shards, requests their runs."""


from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from vidgraph.defs.partitions import RELEASE_GROUPS, shards
from vidgraph.defs.resources import DatasetStoreResource, IngestSettings
from vidgraph.ingest import ingest, ledger_shards, scan_landing

# Every partitioned asset of the graph, with its checks; partitions inferred from the assets.
# The release groups span shards (not shard-partitioned), so they are left out.
process_shard_job = define_asset_job(
    "process_shard", selection=AssetSelection.all() - AssetSelection.groups(*RELEASE_GROUPS),
    description="Materialize every asset of one shard.",
)


@sensor(job=process_shard_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def landing_sensor(context: SensorEvaluationContext, store: DatasetStoreResource, ingest_settings: IngestSettings):
    """Ingest new videos from the landing folder into shards and start a run per new shard."""
    scan = scan_landing(ingest_settings.landing_dir, min_age_s=ingest_settings.min_file_age_s)
    st = store.get_store()
    known = set(context.instance.get_dynamic_partitions(shards.name))
    # Shards in the ledger but not in the instance (e.g. a tick that died after writing the
    # ledger) are added again: the ledger is the source of truth.
    missing = [s for s in ledger_shards(st) if s not in known]
    if scan.signature() == context.cursor and not missing:
        return SkipReason("landing folder unchanged since the last scan")
    result = ingest(ingest_settings.landing_dir, st, shard_size=ingest_settings.shard_size, scan=scan)
    new = sorted(set(result.new_shards) | set(missing))
    context.log.info(f"ingest: {result.summary()}")
    return SensorResult(
        run_requests=[RunRequest(run_key=s, partition_key=s) for s in new],
        dynamic_partitions_requests=[shards.build_add_request(new)] if new else [],
        cursor=scan.signature(),
    )
