"""Running it day to day: the ingest schedule, automation without clicks, re-runs of stale
partitions, fail-fast partitions, the run-failure table, metadata images as files, --version."""

import os
import shutil
import time
import warnings

import pytest
from dagster import (
    AssetCheckResult,
    AssetKey,
    Definitions,
    MaterializeResult,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    PreviewWarning,
    SkipReason,
    asset,
    asset_check,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
)

from vidgraph.cli import main
from vidgraph.definitions import build_defs
from vidgraph.defs.automation import operated_assets
from vidgraph.defs.metadata import failing_rows_result
from vidgraph.defs.operations import record_run_failures, stale_partitions_sensor
from vidgraph.defs.partitions import shards
from vidgraph.defs.resources import IngestScheduleSettings, IngestSettings, build_resources
from vidgraph.defs.schedules import default_status, ingest_schedule
from vidgraph.ingest import ingest
from vidgraph.storage.catalog import Catalog
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.conftest import make_landing


def _instance(tmp_path) -> DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir()
    return DagsterInstance.local_temp(str(home))  # schedule and sensor contexts need a persistent one


def _requested(result, defs) -> dict[str, set]:
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    return {k.to_user_string(): set(p) for k in keys if (p := result.get_requested_partitions(k))}


def _tick(instance, resources, max_wait_s):
    # Entered: the context opens its own handle on the instance and must close it again.
    with build_schedule_context(
        instance=instance,
        resources={
            "store": resources["store"],
            "ingest_settings": resources["ingest_settings"],
            "ingest_schedule_settings": IngestScheduleSettings(shard_max_wait_s=max_wait_s),
        },
    ) as ctx:
        return ingest_schedule(ctx)


@pytest.fixture(scope="module")
def flowed(tmp_path_factory, cut_video):
    """A landing folder, two schedule ticks, then automation alone carries the shard to the end."""
    tmp = tmp_path_factory.mktemp("ops")
    landing, root = tmp / "landing", tmp / "root"
    landing.mkdir()
    shutil.copy(cut_video, landing / "a.mp4")
    settled = time.time() - 600
    os.utime(landing / "a.mp4", (settled, settled))
    (landing / "b.mp4").write_bytes(cut_video.read_bytes() + b"\0")  # still "being copied": too young
    resources = build_resources(root=str(root), landing=str(landing), shard_size=2, profile="tiny")
    resources["ingest_settings"] = IngestSettings(landing_dir=str(landing), shard_size=2, min_file_age_s=60.0)
    defs = build_defs(resources)
    # Entered, so Dagster's context-local state points at this instance for the module's tests.
    with _instance(tmp) as instance:
        yield _flow(instance, defs, resources, DatasetStore(str(root)), tmp)


def run_automation(defs, instance, cursor, rounds: int, raise_on_error: bool = True) -> list[dict]:
    """Evaluate the automation conditions and run what they request, asset by asset as the
    daemon's runs would, until nothing more is requested; returns the requests of each round."""
    global_job = defs.resolve_implicit_global_asset_job_def()
    requested = []
    for _ in range(rounds):
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        wanted = _requested(result, defs)
        if not wanted:
            break
        requested.append(wanted)
        for name, partitions in wanted.items():
            for p in partitions:
                sub = global_job.get_subset(asset_selection={AssetKey(name)})
                assert sub.execute_in_process(instance=instance, partition_key=p, raise_on_error=raise_on_error).success, name
    return requested


def _flow(instance, defs, resources, store, tmp) -> dict:
    # The automation sensor was already ticking before the shard arrived.
    cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
    ticks = [_tick(instance, resources, 3600.0), _tick(instance, resources, 300.0)]
    shard = ticks[1][0].partition_key
    assert defs.resolve_job_def("ingest_shard").execute_in_process(instance=instance, partition_key=shard).success
    requested = run_automation(defs, instance, cursor, rounds=5)
    return {"instance": instance, "defs": defs, "resources": resources, "shard": shard, "ticks": ticks,
            "requested": requested, "store": store, "tmp": tmp}


def test_schedule_waits_for_settled_files_and_a_full_shard_then_closes_it(flowed):
    first, second = flowed["ticks"]
    assert isinstance(first, SkipReason) and "partial shard of 1" in first.skip_message
    assert [r.partition_key for r in second] == [flowed["shard"]]
    assert flowed["shard"] in flowed["instance"].get_dynamic_partitions("shards")
    ledger = flowed["store"].read_table("ingest_ledger", flowed["shard"]).to_pylist()
    assert [r["relpath"] for r in ledger] == ["a.mp4"]  # b.mp4 is younger than the settle time


def test_new_shard_flows_to_the_last_asset_without_a_click(flowed):
    shard = flowed["shard"]
    assert flowed["requested"] == [
        {"raw_clips": {shard}}, {"long_takes": {shard}},
        {"frame_captions": {shard}, "audio_captions": {shard}},  # siblings, in one tick
        {"merged_captions": {shard}},
    ]
    st = flowed["store"]
    assert st.exists(st.table_path("merged_captions", shard))  # the last shard asset; its clips are too short to caption
    mat = flowed["instance"].get_latest_materialization_event(AssetKey("merged_captions")).asset_materialization
    assert mat.partition == shard


def test_metadata_images_are_files_and_failures_name_the_landed_file(flowed):
    st, shard = flowed["store"], flowed["shard"]
    mat = flowed["instance"].get_latest_materialization_event(AssetKey("long_takes")).asset_materialization
    assert not any("base64" in str(v.value) for v in mat.metadata.values())
    sheet = mat.metadata["failing_keyframes"].value  # the clips of this video are too short to pass
    assert sheet == st.uri("long_takes", shard, "plots", "failing_keyframes.jpg") and os.path.getsize(sheet) > 0
    clip = Catalog(st).query("select clip_id from raw_clips limit 1")[0]["clip_id"]
    result = failing_rows_result([{"clip_id": clip, "problem": "lasts 1.0s"}], st, shard, clips=1)
    assert not result.passed and "| clip_id | file | problem |" in result.metadata["failures"].value
    assert "a.mp4" in result.metadata["failures"].value


def test_prompt_change_requests_only_the_caption_partitions(flowed, tmp_path, monkeypatch):
    import vidgraph.captions.prompts as prompts

    def stale(defs):
        with build_sensor_context(instance=flowed["instance"], definitions=defs) as ctx:
            return stale_partitions_sensor(ctx)

    assert isinstance(stale(flowed["defs"]), SkipReason)  # nothing changed yet
    copy = tmp_path / "prompts"
    copy.mkdir()
    for f in prompts._prompt_dir().iterdir():
        (copy / f.name).write_text(f.read_text())
    (copy / "dense_segment_v1.txt").write_text((copy / "dense_segment_v1.txt").read_text() + "\nName the main colour.")
    monkeypatch.setattr(prompts, "_prompt_dir", lambda: copy)
    prompts.load_template.cache_clear()
    try:
        (request,) = stale(build_defs(flowed["resources"]))
    finally:
        monkeypatch.undo()
        prompts.load_template.cache_clear()
    assert request.asset_selection == [AssetKey("frame_captions")]
    assert request.partition_key == flowed["shard"]


@pytest.mark.parametrize("prompt, asset", [("mmtrail_merge_v1", "merged_captions"), ("audio_clip_v1", "audio_captions")])
def test_each_caption_asset_hashes_only_its_own_prompts(flowed, tmp_path, monkeypatch, prompt, asset):
    """A changed merge (or audio) prompt re-runs exactly that asset's partitions, not frame_captions."""
    import vidgraph.captions.prompts as prompts

    copy = tmp_path / "prompts"
    copy.mkdir()
    for f in prompts._prompt_dir().iterdir():
        (copy / f.name).write_text(f.read_text())
    (copy / f"{prompt}.txt").write_text((copy / f"{prompt}.txt").read_text() + "\nBe brief.")
    monkeypatch.setattr(prompts, "_prompt_dir", lambda: copy)
    prompts.load_template.cache_clear()
    try:
        with build_sensor_context(instance=flowed["instance"], definitions=build_defs(flowed["resources"])) as ctx:
            (request,) = stale_partitions_sensor(ctx)
    finally:
        monkeypatch.undo()
        prompts.load_template.cache_clear()
    assert request.asset_selection == [AssetKey(asset)] and request.partition_key == flowed["shard"]


def test_automation_stops_where_a_blocking_check_fails(tmp_path):
    """The central condition on stand-in assets with the real names, so checks really run."""
    verdict = {"passed": False}

    @asset(name="source_videos", partitions_def=shards)
    def sv():
        return MaterializeResult()

    @asset(name="raw_clips", partitions_def=shards, deps=["source_videos"])
    def rc():
        return MaterializeResult()

    @asset_check(asset="raw_clips", blocking=True, partitions_def=shards)
    def clip_files_decode():
        return AssetCheckResult(passed=verdict["passed"])

    @asset(name="long_takes", partitions_def=shards, deps=["raw_clips"])
    def lt():
        return MaterializeResult()

    assets = operated_assets([sv, rc, lt], {})
    defs = Definitions(assets=assets, asset_checks=[clip_files_decode])
    with _instance(tmp_path) as instance:
        _check_blocks(defs, instance, verdict)


def _check_blocks(defs, instance, verdict):
    cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
    instance.add_dynamic_partitions("shards", ["shard-a"])

    job = defs.resolve_implicit_global_asset_job_def()

    def run(name):
        job.get_subset(asset_selection={AssetKey(name)}).execute_in_process(instance=instance, partition_key="shard-a", raise_on_error=False)
        nonlocal cursor
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        return _requested(result, defs)

    assert run("source_videos") == {"raw_clips": {"shard-a"}}
    assert run("raw_clips") == {}  # its blocking check failed: long_takes waits
    verdict["passed"] = True
    assert run("raw_clips") == {"long_takes": {"shard-a"}}


def test_a_partition_never_ingested_fails_at_once_and_is_recorded(tmp_path, cut_video):
    root = tmp_path / "root"
    resources = build_resources(root=str(root), landing=str(tmp_path))
    with DagsterInstance.ephemeral() as instance:
        _typo(instance, resources, root)
        # An ingested shard whose upstream table is missing is refused at once too.
        (shard,) = ingest(make_landing(tmp_path, [cut_video]), DatasetStore(str(root))).new_shards
        instance.add_dynamic_partitions("shards", [shard])
        job = build_defs(resources).resolve_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey("long_takes")})
        run = job.execute_in_process(instance=instance, partition_key=shard, raise_on_error=False)
        assert not run.success and not instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
        (step,) = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        assert "materialize raw_clips" in step.dagster_event.event_specific_data.error.message


def _typo(instance, resources, root):
    instance.add_dynamic_partitions("shards", ["shard-typo"])
    t0 = time.monotonic()
    run = build_defs(resources).resolve_job_def("ingest_shard").execute_in_process(
        instance=instance, partition_key="shard-typo", raise_on_error=False
    )
    assert not run.success and time.monotonic() - t0 < 30  # the retry policy's delays never start
    assert not instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
    (failure,) = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    ctx = build_run_status_sensor_context(
        sensor_name="record_run_failures", dagster_event=failure.dagster_event, dagster_instance=instance,
        dagster_run=run.dagster_run, resources={"store": resources["store"]},
    ).for_run_failure()
    record_run_failures(ctx)
    (row,) = Catalog(DatasetStore(str(root))).query("select * from run_failures")
    assert row["run_id"] == run.run_id and row["partition"] == "shard-typo" and row["retried"] is False
    assert "never ingested" in row["cause"] and "vidgraph ingest" in row["cause"]
    assert [s["step"] for s in row["failed_steps"]] == ["source_videos"]


def test_version_switches_and_quiet_warnings(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("vidgraph ")
    monkeypatch.setenv("VIDGRAPH_AUTOMATION", "off")
    assert default_status("schedule") == DefaultScheduleStatus.STOPPED and default_status() == DefaultSensorStatus.STOPPED
    monkeypatch.delenv("VIDGRAPH_AUTOMATION")
    assert default_status("schedule") == DefaultScheduleStatus.RUNNING
    from vidgraph.progress import throughput
    from vidgraph.quiet import quiet_dagster

    assert throughput(1440, 60.0, 3.0) == "1440 frames in 3.0 s: 480 frames/s, 20.0x real time"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_dagster()  # by category: a Preview notice goes, any other warning stays
        warnings.warn("preview", PreviewWarning)
        warnings.warn("other", UserWarning)
    assert [str(w.message) for w in seen] == ["other"]
