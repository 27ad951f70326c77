"""What every asset gets from the code location, applied centrally over the loaded assets.

- owners and tags (by group), and ``dagster/column_schema`` from the table's Arrow schema
  (``vidgraph.storage.catalog.KNOWN_SCHEMAS``, keyed by asset name);
- a code version derived from the resources (``versions.py``);
- declarative automation on the shard-partitioned assets downstream of ``source_videos``:
  ``eager`` (run when a dependency updates or a partition appears, never while a dependency is
  missing or in progress) and only when every blocking check upstream has passed, so a new shard
  flows to the last asset without a click and stops where a blocking check fails.

An asset that sets its own ``automation_condition``, owners or tags keeps them.
"""

from __future__ import annotations

import copy

import pyarrow as pa
from dagster import (
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    SensorDefinition,
    TableColumn,
    TableSchema,
    map_asset_specs,
)

from vidgraph.defs.schedules import automation_enabled, default_status

ROOT_ASSETS = {"source_videos"}  # started by the ingest schedule / landing sensor, not by automation
OWNERS_BY_GROUP = {"ingest": ["team:ingest"], "clips": ["team:media"], "captions": ["team:captions"]}
DEFAULT_OWNERS = ["team:vidgraph"]


def shard_automation() -> AutomationCondition:
    return (AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager, after upstream blocking checks pass"
    )


def column_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=f.name, type=str(f.type)) for f in schema])


def operated_spec(spec: AssetSpec, versions: dict[str, str]) -> AssetSpec:
    from vidgraph.storage.catalog import KNOWN_SCHEMAS

    name = spec.key.to_user_string()
    group = spec.group_name or "default"
    pdef = spec.partitions_def
    tags = {"vidgraph/stage": group, "vidgraph/partitioned_by": getattr(pdef, "name", None) or "none"}
    changes: dict = {}
    if not spec.owners:
        changes["owners"] = OWNERS_BY_GROUP.get(group, DEFAULT_OWNERS)
    if name in versions:
        changes["code_version"] = versions[name]
    if spec.automation_condition is None and name not in ROOT_ASSETS and getattr(pdef, "name", None) == "shards":
        changes["automation_condition"] = shard_automation()
    if changes:
        spec = spec.replace_attributes(**changes)
    metadata = {}
    if name in KNOWN_SCHEMAS and "dagster/column_schema" not in spec.metadata:
        metadata["dagster/column_schema"] = column_schema(KNOWN_SCHEMAS[name])
    return spec.merge_attributes(tags={k: v for k, v in tags.items() if k not in spec.tags}, metadata=metadata)


def operated_assets(assets, resources: dict):
    from vidgraph.defs.versions import code_versions

    versions = code_versions(resources)
    return list(map_asset_specs(lambda spec: operated_spec(spec, versions), list(assets)))


def operated_resources(resources: dict) -> dict:
    """The resources the schedule needs, with defaults where a caller's dict lacks them."""
    from vidgraph.defs.resources import IngestScheduleSettings

    return {"ingest_schedule_settings": IngestScheduleSettings(), **resources}


def with_default_status(sensor_def: SensorDefinition) -> SensorDefinition:
    """A copy of a sensor that starts running unless VIDGRAPH_AUTOMATION=off."""
    out = copy.copy(sensor_def)
    out._default_status = default_status()  # no public setter; the copy leaves the module's sensor alone
    return out


automation_sensor = AutomationConditionSensorDefinition(
    "vidgraph_automation",
    target=AssetSelection.all(),
    default_status=default_status(),
    minimum_interval_seconds=30,
    description="Evaluates the assets' automation conditions (eager after blocking checks) every 30 s.",
)

__all__ = ["automation_enabled", "automation_sensor", "operated_assets", "operated_resources", "with_default_status"]
