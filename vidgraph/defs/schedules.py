"""Scheduled incremental ingestion: every tick ingests the landing folder and runs each new shard.

The landing sensor (``ingest_sensor.py``) gives low latency; this schedule is the steady beat that
works even when the sensor is off. A tick:

1. scans the landing folder, leaving files younger than ``IngestSettings.min_file_age_s`` (the
   settle time) for a later tick;
2. holds back a partial shard (fewer new videos than ``shard_size``) until its oldest file has
   waited ``shard_max_wait_s``, then closes it as it is; at most ``max_videos_per_tick`` new
   videos are ingested per tick, the rest wait for the next one;
3. ingests with :func:`vidgraph.ingest.ingest` (ledger, de-duplication, quarantine);
4. adds the new shards as partitions and requests one ``ingest_shard`` run per shard
   (``source_videos`` and its checks); declarative automation carries the shard downstream.

The cron comes from ``VIDGRAPH_INGEST_CRON`` (default hourly). ``VIDGRAPH_AUTOMATION=off`` starts
the schedule, the sensors and the automation stopped (see :func:`default_status`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from vidgraph.defs.partitions import shards
from vidgraph.defs.resources import DatasetStoreResource, IngestScheduleSettings, IngestSettings
from vidgraph.defs.ingest_sensor import landing_scan
from vidgraph.ingest import ScanResult, ingest, ingested_hashes, ledger_shards, scan_landing
from vidgraph.storage.store import DatasetStore

INGEST_CRON_ENV = "VIDGRAPH_INGEST_CRON"
DEFAULT_INGEST_CRON = "0 * * * *"  # hourly
AUTOMATION_ENV = "VIDGRAPH_AUTOMATION"
_OFF = ("0", "off", "false", "no", "stopped")


def automation_enabled() -> bool:
    """Whether the schedule and sensors start running (``VIDGRAPH_AUTOMATION``, on by default)."""
    return os.environ.get(AUTOMATION_ENV, "on").strip().lower() not in _OFF


def default_status(kind: str = "sensor"):
    """RUNNING unless ``VIDGRAPH_AUTOMATION=off``; a toggle in the UI overrides it per instance."""
    on = automation_enabled()
    if kind == "schedule":
        return DefaultScheduleStatus.RUNNING if on else DefaultScheduleStatus.STOPPED
    return DefaultSensorStatus.RUNNING if on else DefaultSensorStatus.STOPPED


def ingest_cron() -> str:
    return os.environ.get(INGEST_CRON_ENV, "").strip() or DEFAULT_INGEST_CRON


# The first asset of a shard; automation (AutomationCondition.eager) does the rest.
ingest_shard_job = define_asset_job(
    "ingest_shard", selection=AssetSelection.assets("source_videos"), description="Materialize source_videos of one shard."
)


def plan_scan(
    landing: str | Path,
    store: DatasetStore,
    shard_size: int,
    settle_s: float,
    max_wait_s: float,
    max_videos: int,
    now: float | None = None,
    scan: ScanResult | None = None,
) -> tuple[ScanResult, list[str], str]:
    """The scan to ingest now, the relpaths held back for a later tick, and why.

    New videos are grouped in scan order, ``shard_size`` per shard, as ``ingest`` groups them; only
    the trailing partial group can be held, and only while its oldest file is younger than
    ``max_wait_s``. ``scan``: one already made (with the scan index, or of an S3 window)."""
    if scan is None:
        exclude = (store.base,) if store.is_local else ()
        scan = scan_landing(landing, min_age_s=settle_s, exclude=exclude, store=store)
    known = ingested_hashes(store)
    fresh = [c for c in scan.candidates if c.sha256 not in known]
    take = min(len(fresh), max(shard_size, max_videos // shard_size * shard_size))
    why = f"more than {max_videos} new videos: the rest wait for the next tick" if take < len(fresh) else ""
    tail = take % shard_size
    if take == len(fresh) and tail:
        now = time.time() if now is None else now
        mtimes = (scan.commit or {}).get("mtimes")  # S3: LastModified of each object listed
        oldest = min(_mtime(c.path, now, mtimes) for c in fresh[take - tail:take])
        if now - oldest < max_wait_s:
            take -= tail
            why = f"partial shard of {tail} video(s) waits up to {max_wait_s:.0f}s for {shard_size - tail} more"
    held = {c.relpath for c in fresh[take:]}
    kept = ScanResult([c for c in scan.candidates if c.relpath not in held], scan.rejected, scan.duplicates,
                      commit=_held_cursor(scan, held))
    return kept, sorted(held), why


def _held_cursor(scan: ScanResult, held: set[str]) -> dict | None:
    """On S3, the cursor must not pass a held object: it stops just before the first one."""
    if not scan.commit or not held:
        return scan.commit
    first = min(held)
    prefix = scan.commit["landing"].split("/", 3)[3] + "/" if scan.commit["landing"].count("/") >= 3 else ""
    before = [prefix + c.relpath for c in scan.candidates if c.relpath < first]
    cursor = max(before) if before else scan.commit.get("start", "")
    return {**scan.commit, "cursor": min(cursor, scan.commit["cursor"]) if scan.commit["cursor"] else cursor}


def _mtime(path, default: float, mtimes: dict | None = None) -> float:
    if str(path).startswith("s3://"):
        return (mtimes or {}).get(str(path), default)
    try:
        return os.stat(path).st_mtime
    except OSError:
        return default


@schedule(
    name="ingest_schedule",
    cron_schedule=ingest_cron(),
    job=ingest_shard_job,
    default_status=default_status("schedule"),
    description="Ingest the landing folder and start a run per new shard (cron: VIDGRAPH_INGEST_CRON, hourly by default).",
)
def ingest_schedule(
    context: ScheduleEvaluationContext,
    store: DatasetStoreResource,
    ingest_settings: IngestSettings,
    ingest_schedule_settings: IngestScheduleSettings,
):
    st = store.get_store()
    s = ingest_schedule_settings
    scan, held, why = plan_scan(
        ingest_settings.landing_dir, st, ingest_settings.shard_size, ingest_settings.min_file_age_s,
        s.shard_max_wait_s, s.max_videos_per_tick, scan=landing_scan(st, ingest_settings),
    )
    result = ingest(ingest_settings.landing_dir, st, shard_size=ingest_settings.shard_size, scan=scan)
    context.log.info(f"ingest: {result.summary()}" + (f"; held back {len(held)}: {why}" if held else ""))
    # The ledger is the source of truth: shards it has and the instance lacks are added too
    # (a tick that died between the ledger and the partition).
    known = set(context.instance.get_dynamic_partitions(shards.name))
    new = sorted(set(result.new_shards) | {s for s in ledger_shards(st) if s not in known})
    added = [s for s in new if s not in known]
    if added:
        context.instance.add_dynamic_partitions(shards.name, added)
    if not new:
        return SkipReason("no new videos" + (f" ready ({why})" if held else ""))
    return [RunRequest(run_key=f"ingest:{shard}", partition_key=shard, tags={"vidgraph/trigger": "schedule"}) for shard in new]
