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
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[ingest_sensor.process_shard_job, *RELEASE_JOBS],
        sensors=[ingest_sensor.landing_sensor, gold_verdicts.verdicts_sensor],
        resources=resources if resources is not None else build_resources(),
        executor=executor_for_environment(executor),
    )


defs = build_defs()
