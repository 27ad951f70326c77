"""gold_verdicts: the reviewers' verdicts on gold clips, read from the JSON files dropped into a folder."""

import hashlib

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from vidgraph.defs.metadata import md_table
from vidgraph.defs.resources import DatasetStoreResource, ReleaseSettings
from vidgraph.stages.gold import VERDICTS_ASSET, VerdictFileError, latest_verdicts, parse_verdict_file
from vidgraph.stages.near_duplicates import PARTITION
from vidgraph.stages.releases import write_verdicts
from vidgraph.storage.store import DatasetStore


def verdict_files(folder: str) -> dict[str, str]:
    """name -> content hash of every *.json file in the verdicts folder (local or s3://)."""
    st = DatasetStore(folder)
    return {p.rsplit("/", 1)[-1]: hashlib.sha256(st.read_bytes(p)).hexdigest()[:16]
            for p in st.list_files(st.base) if p.endswith(".json")}


@asset(group_name="release", code_version="1", kinds={"parquet"})
def gold_verdicts(context: AssetExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings) -> MaterializeResult:
    """Every verdict file in the verdicts folder as one table (latest verdict per clip wins downstream)."""
    folder = DatasetStore(release_settings.verdicts_dir)
    rows, bad = [], []
    for path in folder.list_files(folder.base):
        if not path.endswith(".json"):
            continue
        name = path.rsplit("/", 1)[-1]
        try:
            rows += parse_verdict_file(folder.read_bytes(path), name)
        except VerdictFileError as e:
            # A malformed file is reported and skipped; the other reviewers' verdicts still count.
            bad.append({"file": name, "problem": str(e)})
            context.log.warning(str(e))
    st = store.get_store()
    write_verdicts(st, rows)
    latest = latest_verdicts(rows)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "clips": len(latest),
            "by_verdict": MetadataValue.json({v: sum(1 for r in latest.values() if r["verdict"] == v) for v in ("accept", "fix", "reject")}),
            "bad_files": md_table(bad),
            "folder": MetadataValue.path(release_settings.verdicts_dir),
            "location": MetadataValue.path(st.uri(VERDICTS_ASSET, PARTITION)),
        }
    )


gold_verdicts_job = define_asset_job("gold_verdicts_job", selection=AssetSelection.assets(gold_verdicts))


@sensor(job=gold_verdicts_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def verdicts_sensor(context: SensorEvaluationContext, release_settings: ReleaseSettings):
    """Reads the verdicts folder again whenever a verdict file appears or changes."""
    files = verdict_files(release_settings.verdicts_dir)
    if not files:
        return SkipReason(f"no verdict files in {release_settings.verdicts_dir}")
    state = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    if state == context.cursor:
        return SkipReason("no new or changed verdict files")
    context.update_cursor(state)
    return RunRequest(run_key=f"verdicts-{state}", tags={"vidgraph/verdict_files": str(len(files))})
