"""Sensors that keep the dataset current and say what went wrong.

- ``stale_partitions_sensor``: an asset's code version follows its settings, models and prompts
  (``versions.py``). The sensor reads the code version each partition was last materialized with
  (the ``dagster/code_version`` tag of its latest materialization) and requests re-runs of exactly
  the partitions whose version differs from the current one. When an asset and one of its
  upstream assets are both stale in a partition, only the upstream one is requested: automation
  (or the next tick of this sensor) brings the rest.
- ``record_run_failures``: every failed run becomes a row of the ``run_failures`` table under the
  dataset root (``vidgraph query "select * from run_failures"``), with its cause and failed steps.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import pyarrow as pa
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterEventType,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from vidgraph.defs.resources import DatasetStoreResource
from vidgraph.defs.schedules import default_status
from vidgraph.storage.schemas import RUN_FAILURES_SCHEMA

CODE_VERSION_TAG = "dagster/code_version"


def recorded_code_versions(instance, key: AssetKey, page: int = 1000) -> dict[str, str | None]:
    """Partition -> code version of its latest materialization (newest records first)."""
    out: dict[str, str | None] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=page, cursor=cursor)
        for record in result.records:
            mat = record.asset_materialization
            if mat is None or mat.partition is None or mat.partition in out:
                continue
            out[mat.partition] = (mat.tags or {}).get(CODE_VERSION_TAG)
        if not result.has_more:
            return out
        cursor = result.cursor


def stale_partitions(instance, asset_graph) -> dict[tuple[str, str], dict[AssetKey, tuple[str | None, str]]]:
    """(partitions def name, partition) -> {asset key: (recorded version, current version)}."""
    stale: dict[tuple[str, str], dict[AssetKey, tuple[str | None, str]]] = defaultdict(dict)
    for key in sorted(asset_graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        node = asset_graph.get(key)
        current, pdef = node.code_version, node.partitions_def
        if not current or pdef is None or not getattr(pdef, "name", None):
            continue
        for partition, recorded in recorded_code_versions(instance, key).items():
            if recorded != current:
                stale[(pdef.name, partition)][key] = (recorded, current)
    return stale


def _upstream_only(keys: set[AssetKey], asset_graph) -> set[AssetKey]:
    """Drop keys that have another of ``keys`` upstream: they follow once it has re-run."""
    return {k for k in keys if not (asset_graph.get_ancestor_asset_keys(k) & (keys - {k}))}


@sensor(
    name="stale_partitions_sensor",
    minimum_interval_seconds=300,
    asset_selection=AssetSelection.all(),
    default_status=default_status(),
    description="Re-run exactly the partitions whose recorded code version (settings, models, prompts) is not the current one.",
)
def stale_partitions_sensor(context: SensorEvaluationContext):
    graph = context.repository_def.asset_graph
    stale = stale_partitions(context.instance, graph)
    requests = []
    for (_, partition), assets in sorted(stale.items()):
        keys = _upstream_only(set(assets), graph)
        # The run key names the versions: the same staleness is requested once, a failed
        # re-run is not retried in a loop, a later change is requested again.
        ident = ",".join(f"{k.to_user_string()}={assets[k][1]}" for k in sorted(keys, key=lambda k: k.to_user_string()))
        for k in keys:
            context.log.info(f"{k.to_user_string()}[{partition}] is stale: recorded {assets[k][0]}, current {assets[k][1]}")
        requests.append(
            RunRequest(
                run_key=f"stale:{partition}:{hashlib.sha256(ident.encode()).hexdigest()[:16]}",
                partition_key=partition,
                asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
                tags={"vidgraph/trigger": "stale"},
            )
        )
    return requests or SkipReason("every materialized partition has the current code version")


def failure_row(context: RunFailureSensorContext) -> dict:
    run = context.dagster_run
    steps = []
    for ev in context.get_step_failure_events():
        err = getattr(ev.event_specific_data, "error", None)
        steps.append({
            "step": ev.step_key or "",
            "error": (err.cls_name or "") if err else "",
            "message": (err.message.strip() if err else ev.message or "")[:2000],
        })
    retried = bool(context.instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY))
    cause = context.failure_event.message or ""
    if steps:  # the run's own message says "step X failed"; the step's error says why
        cause = f"{cause} {steps[0]['message']}".strip()
    return {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "partition": run.tags.get("dagster/partition", ""),
        "assets": sorted(k.to_user_string() for k in (run.asset_selection or ())),
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cause": cause[:4000],
        "failed_steps": steps,
        "retried": retried,
    }


@run_failure_sensor(
    name="record_run_failures",
    default_status=default_status(),
    description="Write each failed run, with its cause and failed steps, to the run_failures table.",
)
def record_run_failures(context: RunFailureSensorContext, store: DatasetStoreResource):
    row = failure_row(context)
    st = store.get_store()
    st.write_table("run_failures", row["run_id"], pa.Table.from_pylist([row], schema=RUN_FAILURES_SCHEMA))
    context.log.info(f"run {row['run_id']} failed: {row['cause'][:200]}")
