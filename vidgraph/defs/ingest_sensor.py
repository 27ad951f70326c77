"""Incremental ingestion: a sensor scans the landing folder, adds shards, requests their runs,
and resumes the shards that a killed or failed run left unfinished."""


from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from vidgraph.defs.partitions import RELEASE_GROUPS, shards
from vidgraph.defs.resources import DatasetStoreResource, IngestSettings
from vidgraph.ingest import commit_scan, incomplete_shards, ingest, ledger_shards, scan_landing
from vidgraph.landing import LandingIndex

# Every partitioned asset of the graph, with its checks; partitions inferred from the assets.
# The release groups span shards (not shard-partitioned), so they are left out.
process_shard_job = define_asset_job(
    "process_shard", selection=AssetSelection.all() - AssetSelection.groups(*RELEASE_GROUPS),
    description="Materialize every asset of one shard.",
)

# A shard whose runs failed this many times is left alone (and logged): a deterministic failure
# must not loop; `vidgraph run LANDING` or a run from the UI retries it by hand.
MAX_RESUMES = 3
_IN_PROGRESS = {
    DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING,
}


def shard_assets(asset_graph) -> list[str]:
    """Names of the materializable assets partitioned by shard: a shard is complete when each
    has its table in the store."""
    return sorted(
        key.to_user_string() for key in asset_graph.get_all_asset_keys()
        if asset_graph.get(key).is_materializable and asset_graph.get(key).partitions_def == shards
    )


def resume_requests(context: SensorEvaluationContext, st, skip: set[str]) -> list[RunRequest]:
    """A run for each shard of the ledger that is not complete and has no run in progress.

    A shard never run gets its first run key (the shard name, which the daemon de-duplicates);
    a shard whose last runs failed or were killed gets ``SHARD:resume-N``. A run killed with
    its process stays STARTED until run monitoring (Kubernetes/ECS launchers) or a person marks
    it failed.
    """
    repo = context.repository_def
    if repo is None:  # a context built without definitions (tests): the code location's own
        from vidgraph.definitions import defs

        repo = defs.get_repository_def()
    requests = []
    for shard in incomplete_shards(st, shard_assets(repo.asset_graph)):
        if shard in skip:
            continue
        runs = context.instance.get_runs(
            filters=RunsFilter(job_name=process_shard_job.name, tags={"dagster/partition": shard})
        )
        if any(r.status in _IN_PROGRESS for r in runs):
            continue
        if not runs:
            requests.append(RunRequest(run_key=shard, partition_key=shard))
        elif len(runs) < MAX_RESUMES + 1:
            requests.append(RunRequest(run_key=f"{shard}:resume-{len(runs)}", partition_key=shard))
        else:
            context.log.warning(f"shard {shard} is unfinished after {len(runs)} runs; not resumed again")
    return requests


def landing_scan(st, ingest_settings: IngestSettings, min_age_s: float | None = None):
    """The landing scan of a tick: with the scan index unless switched off, one bounded window on S3."""
    return scan_landing(
        ingest_settings.landing_dir,
        min_age_s=ingest_settings.min_file_age_s if min_age_s is None else min_age_s,
        exclude=(st.base,) if st.is_local else (),
        max_bytes=ingest_settings.max_bytes,
        index=LandingIndex.load(st) if ingest_settings.scan_index else None,
        max_keys=ingest_settings.max_keys_per_scan,
        store=st,
    )


@sensor(job=process_shard_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def landing_sensor(context: SensorEvaluationContext, store: DatasetStoreResource, ingest_settings: IngestSettings):
    """Ingest new videos from the landing folder into shards and start a run per new or unfinished shard."""
    st = store.get_store()
    st.clean_stale_staging()  # folders of killed processes
    scan = landing_scan(st, ingest_settings)
    known = set(context.instance.get_dynamic_partitions(shards.name))
    # Shards in the ledger but not in the instance (e.g. a tick that died after writing the
    # ledger) are added again: the ledger is the source of truth.
    missing = [s for s in ledger_shards(st) if s not in known]
    if scan.signature() == context.cursor and not missing:
        commit_scan(st, scan)  # an S3 window with nothing new: the cursor still moves on
        resumed = resume_requests(context, st, set())
        if not resumed:
            return SkipReason("landing folder unchanged since the last scan, and no shard left unfinished")
        return SensorResult(run_requests=resumed, cursor=context.cursor)
    result = ingest(ingest_settings.landing_dir, st, shard_size=ingest_settings.shard_size, scan=scan)
    new = sorted(set(result.new_shards) | set(missing))
    context.log.info(f"ingest: {result.summary()}")
    return SensorResult(
        run_requests=[RunRequest(run_key=s, partition_key=s) for s in new] + resume_requests(context, st, set(new)),
        dynamic_partitions_requests=[shards.build_add_request(new)] if new else [],
        cursor=scan.signature(),
    )
