"""The vidgraph code location."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from vidgraph.defs import audio_captions, frame_captions, ingest_sensor, long_takes, merged_captions, raw_clips, source_videos
from vidgraph.defs import evaluations, gold_verdicts, near_duplicates, releases
from vidgraph.defs.executors import executor_for_environment
from vidgraph.defs.resources import build_resources

# Modules in graph order; each holds one asset and its checks.
ASSET_MODULES = [source_videos, raw_clips, long_takes, frame_captions, audio_captions, merged_captions]
# The release end of the graph: across shards, then per `releases` partition.
ASSET_MODULES += [near_duplicates, gold_verdicts, releases, evaluations]
RELEASE_JOBS = [releases.release_job, releases.release_inputs_job, gold_verdicts.gold_verdicts_job]


def build_defs(resources: dict | None = None, executor: str | None = None) -> Definitions:
    """The code location; ``executor`` (else ``VIDGRAPH_EXECUTOR``) picks where steps run."""
    from vidgraph.defs.automation import automation_sensor, operated_assets, operated_resources, with_default_status
    from vidgraph.defs.operations import record_run_failures, stale_partitions_sensor
    from vidgraph.defs.schedules import ingest_schedule, ingest_shard_job

    resources = operated_resources(resources if resources is not None else build_resources())
    return Definitions(
        # Owners, tags, column schemas, code versions and automation conditions are applied
        # here, to every asset, so assets added later get them too (vidgraph/defs/automation.py).
        assets=operated_assets(load_assets_from_modules(ASSET_MODULES), resources),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[ingest_sensor.process_shard_job, ingest_shard_job, *RELEASE_JOBS],
        schedules=[ingest_schedule],
        sensors=[with_default_status(ingest_sensor.landing_sensor), automation_sensor, stale_partitions_sensor,
                 record_run_failures, gold_verdicts.verdicts_sensor],
        resources=resources,
        executor=executor_for_environment(executor),
    )


defs = build_defs()
