"""One bad video never blocks a shard: variable-frame-rate input with drops and a stall (one
definition of when a frame ends, shared by rows, cutter and checks), short shots merged, a
hostile file quarantined while its siblings reach the last asset without a click, messages a
person can act on, and ``vidgraph quarantine add``."""

import json
import os
import shutil
import time

import av
import pytest
from dagster import AssetKey, DagsterEventType, evaluate_automation_conditions
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from vidgraph.cli import main
from vidgraph.definitions import build_defs
from vidgraph.defs.metadata import failing_rows_result
from vidgraph.defs.raw_clips import coverage_failures
from vidgraph.defs.resources import ClipFileSettings, IngestSettings, build_resources
from vidgraph.media.analysis import analyze_video
from vidgraph.media.cutting import ClipEncoding, cut_clips
from vidgraph.media.shots import Shot, ShotDetectorConfig, frame_end_times, shot_problems, shots_from_cuts
from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video
from vidgraph.stages.raw_clips import clip_file_problem
from vidgraph.storage.catalog import read_all
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.bad_inputs import _overwrite_mdat, _video
from vidgraph_tests.test_operations import _instance, _tick, run_automation

# 20 fps, frames 5, 6, 40 and 61 dropped; the last frame of the first scene is held 0.7 s longer
# (a stall right before a cut, as in the issue), a frame inside the last scene 0.4 s longer.
VFR_SPEC = SyntheticSpec(
    [Scene(30, "pan", seed=21, speed=1.0), Scene(24, "object", seed=22, speed=3), Scene(26, "tilt", seed=23, speed=1.0)],
    width=96, height=64, fps=20, drop_frames=(5, 6, 40, 61), stalls=((29, 0.7), (70, 0.4)),
)


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("vfr") / "vfr_stall.mp4", VFR_SPEC)


def test_the_synthetic_vfr_video_holds_its_known_truth(vfr_video):
    truth = VFR_SPEC.truth()
    assert truth["n_frames"] == 76 and truth["boundaries"] == [28, 51] and truth["stalled_frames"] == [27, 66]
    with av.open(str(vfr_video)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert times == pytest.approx(truth["t_s"], abs=1e-4)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) == pytest.approx(0.75, abs=1e-4) and min(gaps) == pytest.approx(0.05, abs=1e-4)


def test_rows_of_a_vfr_video_follow_the_one_definition_of_a_frame_end(vfr_video):
    truth = VFR_SPEC.truth()
    a = analyze_video(vfr_video)
    assert a.n_frames == truth["n_frames"] and a.frames["t_s"] == pytest.approx(truth["t_s"], abs=1e-4)
    assert [s.start_frame for s in a.shots[1:]] == truth["boundaries"]
    ends = frame_end_times(truth["t_s"], VFR_SPEC.fps)
    assert a.duration_s == pytest.approx(truth["duration_s"]) == pytest.approx(ends[-1])
    first = a.shots[0]
    # The first shot's last frame is the stalled one: the shot lasts until the next frame shows.
    assert first.end_s == pytest.approx(truth["t_s"][28]) and first.end_s - truth["t_s"][27] == pytest.approx(0.75, abs=1e-4)
    assert not shot_problems(a.shots, a.n_frames, 6)


@pytest.mark.parametrize("smart", [True, False])
def test_clip_files_of_a_stalled_vfr_video_last_as_long_as_their_rows(vfr_video, tmp_path, smart):
    a = analyze_video(vfr_video)
    outs = [tmp_path / f"c{i}.mp4" for i in range(len(a.shots))]
    files = cut_clips(vfr_video, a.shots, outs, ClipEncoding(smart=smart))
    assert {f.method for f in files} == ({"smart"} if smart else {"encode"})
    for shot, out in zip(a.shots, outs):
        row = {"n_frames": shot.n_frames, "fps": a.fps, "duration_s": round(shot.duration_s, 6)}
        assert clip_file_problem(out, row) == ""
    with av.open(str(outs[0])) as c:  # the stall is in the file: its track lasts the row's 1.4+0.75 s
        s = c.streams.video[0]
        assert float(s.duration * s.time_base) == pytest.approx(a.shots[0].duration_s, abs=1e-3)
    # What the old check did (last frame = the gap before it) would have been off by the stall.
    wrong = {"n_frames": a.shots[0].n_frames, "fps": a.fps, "duration_s": a.shots[0].duration_s - 0.7}
    assert "lasts 2.200s, its row says 1.500s" in clip_file_problem(outs[0], wrong)


def test_a_shot_shorter_than_the_minimum_is_merged_never_emitted(vfr_video):
    assert [(s.start_frame, s.end_frame) for s in shots_from_cuts([10, 11, 20], 21, 6)] == [(0, 10), (10, 21)]
    assert shots_from_cuts([20], 21, 6)[-1].n_frames == 21 - 0  # a short last shot joins the one before
    one_frame = [Shot(0, 10, 0.0, 1.0), Shot(10, 11, 1.0, 1.05)]
    assert shot_problems(one_frame, 11, 6) == ["shot 1 has 1 frames, fewer than the minimum of 6"]
    for det in ("content", "vidgraph"):
        a = analyze_video(vfr_video, ShotDetectorConfig(detector=det, min_scene_len=15))
        assert all(s.n_frames >= 15 for s in a.shots) and not shot_problems(a.shots, a.n_frames, 15), det


def test_coverage_failures_name_the_video_and_the_cause(tmp_path):
    rows = [
        {"clip_id": "v0123456789abcdef-c0000", "video_id": "v0123456789abcdef", "clip_index": 0, "start_frame": 0,
         "end_frame": 10, "start_s": 0.0, "end_s": 1.0, "detector_params": json.dumps({"min_scene_len": 6})},
        {"clip_id": "v0123456789abcdef-c0001", "video_id": "v0123456789abcdef", "clip_index": 1, "start_frame": 10,
         "end_frame": 11, "start_s": 1.0, "end_s": 1.05, "detector_params": json.dumps({"min_scene_len": 6})},
    ]
    failures = coverage_failures(rows, {"v0123456789abcdef": 12})
    assert [f["problem"] for f in failures] == [
        "shot 1 has 1 frames, fewer than the minimum of 6", "the shots end at frame 11, the video has 12 frames"]


# ---------------------------------------------------------------------------------------------
# End to end: a good video, the VFR video with its stall and a hostile file in one landing folder


@pytest.fixture(scope="module")
def isolated(tmp_path_factory, cut_video, vfr_video):
    tmp = tmp_path_factory.mktemp("isolation")
    landing, root = tmp / "landing", tmp / "root"
    landing.mkdir()
    shutil.copy(cut_video, landing / "good.mp4")
    shutil.copy(vfr_video, landing / "vfr_stall.mp4")
    # Probes as a video, but half its media data is random bytes: raw_clips cannot decode it.
    base = _video(tmp / "base.mp4", seed=103, seconds=2.0)
    (landing / "hostile.mp4").write_bytes(_overwrite_mdat(base.read_bytes(), 0.5, 0.5, 2))
    settled = time.time() - 600
    for f in landing.iterdir():
        os.utime(f, (settled, settled))
    resources = build_resources(root=str(root), landing=str(landing), shard_size=3, profile="tiny")
    resources["ingest_settings"] = IngestSettings(landing_dir=str(landing), shard_size=3, min_file_age_s=60.0)
    resources["clip_file_settings"] = ClipFileSettings(clip_files="all")  # every shot cut, and verified
    defs = build_defs(resources)
    with _instance(tmp) as instance:
        cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
        (request,) = _tick(instance, resources, 3600.0)  # three settled files: a full shard
        shard = request.partition_key
        assert defs.resolve_job_def("ingest_shard").execute_in_process(instance=instance, partition_key=shard).success
        requested = run_automation(defs, instance, cursor, rounds=6, raise_on_error=False)
        yield {"instance": instance, "defs": defs, "resources": resources, "shard": shard, "requested": requested,
               "store": DatasetStore(str(root)), "landing": landing, "root": root}


def red_checks(instance, defs) -> list[tuple[str, str]]:
    """Every check execution the UI shows red: a failed ERROR-severity evaluation, or a planned
    check whose run failed (Dagster resolves it as EXECUTION_FAILED)."""
    red = []
    for key in defs.resolve_asset_graph().asset_check_keys:
        for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=50):
            if rec.status == AssetCheckExecutionRecordStatus.FAILED and rec.evaluation.severity.value == "ERROR":
                red.append((key.to_user_string(), "failed"))
            elif rec.status == AssetCheckExecutionRecordStatus.PLANNED:
                run = instance.get_run_by_id(rec.run_id)
                if run is None or run.status.value == "FAILURE":
                    red.append((key.to_user_string(), "execution failed"))
    return red


def test_good_videos_reach_the_last_asset_and_the_hostile_file_is_quarantined(isolated):
    st, shard = isolated["store"], isolated["shard"]
    assert isolated["requested"][0] == {"raw_clips": {shard}}
    assert {"merged_captions": {shard}} in isolated["requested"]
    assert st.exists(st.table_path("merged_captions", shard))  # the last shard asset
    sources = {r["video_id"]: r["relpath"] for r in st.read_table("source_videos", shard).to_pylist()}
    clips = st.read_table("raw_clips", shard).to_pylist()
    assert sorted({sources[c["video_id"]] for c in clips}) == ["good.mp4", "vfr_stall.mp4"]
    lt = {r["video_id"] for r in st.read_table("long_takes", shard).to_pylist()}
    assert sorted(sources[v] for v in lt) == ["good.mp4", "vfr_stall.mp4"]
    (q,) = [r for r in read_all(st, "quarantine").to_pylist() if r["path"].endswith("hostile.mp4")]
    assert q["stage"] == "raw_clips" and "damaged" in q["reason"] and q["shard"] == shard
    # The VFR video's clips: the first one ends with the stall, and its file lasts as long.
    vfr = sorted((c for c in clips if sources[c["video_id"]] == "vfr_stall.mp4"), key=lambda c: c["clip_index"])
    assert [c["start_frame"] for c in vfr[1:]] == VFR_SPEC.truth()["boundaries"]
    assert vfr[0]["duration_s"] == pytest.approx(VFR_SPEC.truth()["t_s"][28])
    assert all(c["n_frames"] >= 6 for c in clips)
    with av.open(st.path(vfr[0]["path"])) as c:
        s = c.streams.video[0]
        assert float(s.duration * s.time_base) == pytest.approx(vfr[0]["duration_s"], abs=1e-3)


def test_no_check_is_red(isolated):
    instance, defs = isolated["instance"], isolated["defs"]
    assert red_checks(instance, defs) == []
    # ...and the checks really ran:
    keys = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    ran = set()
    for key in defs.resolve_asset_graph().asset_check_keys:
        recs = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
        if any(r.status == AssetCheckExecutionRecordStatus.SUCCEEDED for r in recs):
            ran.add(key.name)
    assert {"clip_files_decode", "clips_cover_each_video", "every_video_accounted_for"} <= ran <= keys


def test_failures_name_file_stage_cause_and_what_to_do(isolated):
    st, shard = isolated["store"], isolated["shard"]
    clip = next(c for c in st.read_table("raw_clips", shard).to_pylist())
    result = failing_rows_result([{"clip_id": clip["clip_id"], "problem": "the clip file lasts 1.0s, its row says 2.0s"}],
                                 st, shard, "raw_clips", clips=1)
    text = result.metadata["failures"].value
    assert not result.passed and "| clip_id | file | problem | stage | to_do |" in text
    name = {r["video_id"]: r["relpath"] for r in st.read_table("source_videos", shard).to_pylist()}[clip["video_id"]]
    assert f"vidgraph quarantine add '{name}' --reason 'raw_clips: the clip file lasts 1.0s, its row says 2.0s'" in text
    assert name in result.description and "set it aside and re-run the shard" in result.description


@pytest.fixture
def cli_logging():
    """`vidgraph run` in this process adds a stderr handler (pytest's captured stream) to the
    vidgraph logger: taken off again, so later tests do not write to a closed stream."""
    import logging

    logger = logging.getLogger("vidgraph")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_quarantine_add_sets_a_video_aside_and_its_shard_no_longer_includes_it(isolated, capsys, cli_logging):
    st, shard, root = isolated["store"], isolated["shard"], str(isolated["root"])
    assert main(["quarantine", "add", "nothing_like_it.mp4", "--reason", "x", "--root", root]) == 2
    assert "names no ingested video" in capsys.readouterr().err
    assert main(["quarantine", "add", "vfr_stall.mp4", "--reason", "stalls on purpose", "--root", root]) == 0
    out = capsys.readouterr()
    (row,) = json.loads(out.out)["set_aside"]
    assert row["stage"] == "manual" and row["reason"] == "stalls on purpose" and row["shard"] == shard
    assert f"vidgraph run LANDING --shard {shard} --root {root}" in out.err
    vfr_id = row["video_id"]
    # Again, by video id, and with --run: its shard is re-run (`vidgraph run LANDING --shard`) and
    # every stage skips it; the reason is replaced, not added twice.
    assert main(["quarantine", "add", vfr_id, "--reason", "stalls", "--root", root, "--run", str(isolated["landing"])]) == 0
    text = capsys.readouterr().out
    decoder = json.JSONDecoder()
    added, end = decoder.raw_decode(text)
    summary, _ = decoder.raw_decode(text[end:].lstrip())
    assert [r["video_id"] for r in added["set_aside"]] == [vfr_id]
    assert summary["ingest"].startswith("not run") and list(summary["shards"]) == [shard]
    assert summary["shards"][shard]["success"], summary
    for asset in ("source_videos", "raw_clips", "long_takes", "merged_captions"):
        assert vfr_id not in set(st.read_table(asset, shard).column("video_id").to_pylist()), asset
    relpaths = {r["relpath"] for r in st.read_table("source_videos", shard).to_pylist()}
    assert relpaths == {"good.mp4", "hostile.mp4"}  # the hostile file probes; raw_clips quarantines it
    checks = summary["shards"][shard]["checks"]
    assert checks["source_videos:every_input_accounted_for"] == checks["raw_clips:every_video_accounted_for"] == "passed"
    manual = [r for r in read_all(st, "quarantine").to_pylist() if r["stage"] == "manual"]
    assert [(r["video_id"], r["reason"]) for r in manual] == [(vfr_id, "stalls")]
    assert main(["quarantine", "list", "--root", root, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(r["stage"], os.path.basename(r["path"])) for r in listed} >= {("manual", "vfr_stall.mp4"), ("raw_clips", "hostile.mp4")}


def test_run_with_an_unknown_shard_is_refused_without_ingesting(isolated, tmp_path, capsys, cli_logging):
    st, root = isolated["store"], str(isolated["root"])
    landing = tmp_path / "landing"
    landing.mkdir()
    _video(landing / "new.mp4", seed=5)
    before = read_all(st, "ingest_ledger").num_rows
    assert main(["run", str(landing), "--root", root, "--shard", "shard-typo"]) == 2
    err = capsys.readouterr().err
    assert "shard-typo" in err and "not in the ingest ledger" in err and isolated["shard"] in err
    assert read_all(st, "ingest_ledger").num_rows == before  # new.mp4 was not ingested


def test_where_dagster_reports_checks_that_did_not_run(tmp_path):
    """The evidence behind README's "Checks that did not run": Dagster 1.13 records every check
    of a run as PLANNED when the run is created and resolves a PLANNED check of a run that ended
    FAILURE as EXECUTION_FAILED (red), whether the check has its own op or lives in its asset's.
    A failed blocking check always fails its run. Automation runs the failing asset on its own,
    so no downstream check is planned in that run and none turns red."""
    import asyncio

    from dagster import AssetCheckResult, AssetCheckSpec, Definitions, DagsterInstance, MaterializeResult, asset, asset_check
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionResolvedStatus as S

    @asset
    def a():
        return MaterializeResult()

    @asset_check(asset=a, blocking=True)
    def a_ok():
        return AssetCheckResult(passed=False)

    @asset(deps=[a])
    def b():
        return MaterializeResult()

    @asset_check(asset=b)
    def b_ok():
        return AssetCheckResult(passed=True)

    @asset(deps=[a], check_specs=[AssetCheckSpec("c_ok", asset="c")])
    def c():
        return MaterializeResult(check_results=[AssetCheckResult(check_name="c_ok", passed=True)])

    defs = Definitions(assets=[a, b, c], asset_checks=[a_ok, b_ok])
    job = defs.resolve_implicit_global_asset_job_def()

    def statuses(instance):
        ctx = LoadingContextForTest(instance)
        return {k.name: [asyncio.run(r.resolve_status(ctx)) for r in instance.event_log_storage.get_asset_check_execution_history(k, limit=5)]
                for k in defs.resolve_asset_graph().asset_check_keys}

    (tmp_path / "all").mkdir()
    (tmp_path / "one").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "all")) as instance:  # "Materialize all", one run
        assert not job.execute_in_process(instance=instance, raise_on_error=False).success
        assert statuses(instance) == {"a_ok": [S.FAILED], "b_ok": [S.EXECUTION_FAILED], "c_ok": [S.EXECUTION_FAILED]}
    with DagsterInstance.local_temp(str(tmp_path / "one")) as instance:  # as automation runs it: a alone
        job.get_subset(asset_selection={a.key}).execute_in_process(instance=instance, raise_on_error=False)
        assert statuses(instance) == {"a_ok": [S.FAILED], "b_ok": [], "c_ok": []}


def test_audio_timelines_are_a_png_file_next_to_the_shard(tmp_path, isolated):
    from vidgraph.defs.metadata import image_file, timelines_png

    rows = [{"clip_id": "v0123456789abcdef-c0000", "duration_s": 12.0, "timeline": [
        {"start_s": 0.0, "end_s": 4.0, "label": "speech"}, {"start_s": 4.0, "end_s": 12.0, "label": "music"}]}]
    png = timelines_png(rows)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and timelines_png([{"clip_id": "x", "timeline": []}]) is None
    st = DatasetStore(str(tmp_path / "root"))
    value = image_file(st, "audio_captions", "shard-x", "timelines.png", png)
    assert value.value == st.uri("audio_captions", "shard-x", "plots", "timelines.png") and os.path.getsize(value.value) == len(png)
    # The asset links it (its clips here are too short to be long takes: no rows, no image).
    mat = isolated["instance"].get_latest_materialization_event(AssetKey("audio_captions")).asset_materialization
    assert "timelines" in mat.metadata and not any("base64" in str(v.value) for v in mat.metadata.values())


def test_raw_clips_config_describes_the_real_defaults():
    from vidgraph.defs.raw_clips import RawClipsConfig

    fields = RawClipsConfig.model_fields
    assert "vidgraph 6, content 15" in fields["min_scene_len"].description
    assert f"vidgraph {ShotDetectorConfig().effective_threshold:g}," in fields["threshold"].description
    assert ShotDetectorConfig(detector="content").effective_min_scene_len == 15


def _one_frame_shot_job(local, detector, analysis, policy):
    """The real analysis, except that the VFR video (76 frames) gets a 1-frame last shot."""
    from vidgraph.stages.raw_clips import analyze_job

    a, note = analyze_job(local, detector, analysis, policy)
    if a.n_frames == VFR_SPEC.truth()["n_frames"]:
        last = a.shots[-1]
        a.shots[-1:] = [Shot(last.start_frame, last.end_frame - 1, last.start_s, float(a.frames["t_s"][-1])),
                        Shot(last.end_frame - 1, last.end_frame, float(a.frames["t_s"][-1]), last.end_s)]
    return a, note


def test_a_video_whose_clips_cannot_be_verified_is_quarantined_and_its_siblings_carry_on(tmp_path, cut_video, vfr_video):
    from vidgraph.ingest import ingest
    from vidgraph.stages.raw_clips import RawClipsSettings, build_raw_clips
    from vidgraph.stages.source_videos import build_source_videos
    from vidgraph_tests.conftest import make_landing

    store = DatasetStore(str(tmp_path / "root"))
    (shard,) = ingest(make_landing(tmp_path, [cut_video, vfr_video]), store).new_shards
    build_source_videos(store, shard)
    result = build_raw_clips(store, shard, RawClipsSettings(isolate=False), job=_one_frame_shot_job)
    (q,) = result.quarantine.to_pylist()
    assert q["stage"] == "raw_clips" and q["path"].endswith("vfr_stall.mp4")
    assert q["reason"] == "its clips cannot be verified: shot 3 has 1 frames, fewer than the minimum of 6"
    sources = {r["video_id"]: r["relpath"] for r in store.read_table("source_videos", shard).to_pylist()}
    assert {sources[r["video_id"]] for r in result.table.to_pylist()} == {"cuts.mp4"}


def test_a_reused_clip_file_that_no_longer_matches_its_row_is_cut_again(tmp_path, vfr_video):
    """Files of an unchanged video are reused on a re-run, unless they do not match their rows
    (as files cut before a stall counted in the last frame's length)."""
    from vidgraph.ingest import ingest
    from vidgraph.stages.raw_clips import RawClipsSettings, build_raw_clips
    from vidgraph.stages.source_videos import build_source_videos
    from vidgraph_tests.conftest import make_landing

    store = DatasetStore(str(tmp_path / "root"))
    (shard,) = ingest(make_landing(tmp_path, [vfr_video]), store).new_shards
    build_source_videos(store, shard)
    settings = RawClipsSettings(isolate=False, clip_files="all")
    rows = build_raw_clips(store, shard, settings).table.to_pylist()
    first, second = (store.path(r["path"]) for r in rows[:2])
    shutil.copy(second, first + ".tmp")
    os.replace(first + ".tmp", first)  # clip 0's file now holds clip 1's frames
    assert clip_file_problem(first, rows[0]).startswith("the clip file has 23 frames")
    rows = build_raw_clips(store, shard, settings).table.to_pylist()
    assert all(clip_file_problem(store.path(r["path"]), r) == "" for r in rows)
