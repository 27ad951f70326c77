"""The graph so far on the sample videos: source_videos → raw_clips → long_takes → frame_captions,
with tiny offline models, every check, the optional ClipScorer and `vidgraph run --profile`."""

import json
import subprocess
import sys

import pytest
from dagster import DagsterInstance

from vidgraph.definitions import ASSET_MODULES, build_defs
from vidgraph.defs import long_takes as long_takes_defs
from vidgraph.defs.resources import ClipScorerResource, LongTakeSettings
from vidgraph.defs.resources import build_resources
from vidgraph.ingest import ingest
from vidgraph.media.synthetic import write_samples
from vidgraph.storage.catalog import Catalog
from vidgraph.storage.store import DatasetStore


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    landing = tmp_path_factory.mktemp("samples") / "landing"
    write_samples(landing)
    return landing


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, samples, tiny_model_cache):
    root = tmp_path_factory.mktemp("pipeline") / "root"
    store = DatasetStore(str(root))
    shard = sorted(ingest(samples, store, shard_size=8).new_shards)[0]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    defs = build_defs(build_resources(root=str(root), landing=str(samples), profile="tiny"))
    job = defs.resolve_job_def("process_shard")
    result = job.execute_in_process(instance=instance, partition_key=shard, raise_on_error=False)
    return store, shard, result, instance, defs


def _checks(result) -> dict[str, tuple[bool, str]]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": (e.passed, e.severity.value)
        for e in (ev.event_specific_data for ev in result.all_events if ev.event_type_value == "ASSET_CHECK_EVALUATION")
    }


def _metadata(result, asset: str) -> dict:
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            if mat.asset_key.to_user_string() == asset:
                return mat.metadata
    raise AssertionError(f"{asset} was not materialized")


def test_every_asset_materializes_and_every_check_passes(pipeline):
    _, _, result, _, _ = pipeline
    assert result.success
    checks = _checks(result)
    expected = {
        "long_takes:one_row_per_raw_clip",
        "long_takes:passing_clips_meet_thresholds",
        "long_takes:sampled_passing_clips_have_no_cut",
        "long_takes:pass_rate_in_band",
        "frame_captions:every_long_take_captioned",
        "frame_captions:dense_timestamps_in_clip",
    }
    assert expected <= set(checks)
    failed = {k: v for k, v in checks.items() if not v[0] and k.split(":")[0] in ("long_takes",)}
    assert failed == {}
    assert checks["frame_captions:every_long_take_captioned"][0]
    assert checks["frame_captions:dense_timestamps_in_clip"][0]


def test_long_takes_verdicts_on_the_samples(pipeline):
    store, shard, _, _, _ = pipeline
    cat = Catalog(store)
    rows = cat.query("select clip_id, duration_s, passed, reasons, camera_motion from long_takes order by clip_id")
    raw = cat.query("select clip_id from raw_clips order by clip_id")
    assert [r["clip_id"] for r in rows] == [r["clip_id"] for r in raw]
    passing = [r for r in rows if r["passed"]]
    # The samples hold four takes that pass (pan, zoom, tilt, moving object) ...
    assert sorted(r["camera_motion"] for r in passing) == ["pan", "static", "tilt", "zoom"]
    assert all(r["duration_s"] >= 10 for r in passing)
    # ... and one of each rejection: a 3 s shot, a static take, black and blur.
    reasons = {reason for r in rows for reason in r["reasons"]}
    assert {"too_short", "too_static", "black", "blurry"} <= reasons
    # Keyframes every 2 s for each clip, as files with their timestamps.
    kfs = cat.query("select clip_id, count(*) n, min(t_clip_s) first, max(t_clip_s) last from clip_keyframes group by 1")
    by_clip = {k["clip_id"]: k for k in kfs}
    for r in passing:
        k = by_clip[r["clip_id"]]
        assert k["n"] >= 5 and 0 <= k["first"] < 2.1 and k["last"] < r["duration_s"]
    paths = cat.query("select path from clip_keyframes")
    assert all(store.exists(store.path(p["path"])) for p in paths)


def test_long_takes_metadata_for_the_ui(pipeline):
    _, _, result, _, _ = pipeline
    md = _metadata(result, "long_takes")
    assert md["dagster/row_count"].value == md["passed"].value + md["failed"].value
    assert md["passed"].value == 4
    assert "too_static" in md["by_reason"].value
    # Images are files next to the shard, linked by path: no image bytes in the event log.
    for name, suffix in (("dynamic_degree_histogram", ".png"), ("passing_keyframes", ".jpg"), ("failing_keyframes", ".jpg")):
        path = md[name].value
        assert "/long_takes/" in path and path.endswith(suffix), (name, path)
        with open(path, "rb") as f:
            assert f.read(4) in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb"), name


def test_frame_captions_cover_every_passing_take_with_provenance(pipeline):
    store, _, _, _, _ = pipeline
    cat = Catalog(store)
    caps = cat.query("select * from frame_captions order by clip_id")
    passing = cat.query("select clip_id, duration_s from long_takes where passed order by clip_id")
    assert [c["clip_id"] for c in caps] == [p["clip_id"] for p in passing]
    for c, p in zip(caps, passing):
        assert c["error"] is None and c["caption"]
        assert c["vlm_model_id"] == "tiny:vlm" and c["llm_model_id"] == "tiny:llm"
        assert len(c["prompt_hash"]) >= 12 and json.loads(c["gen_params"])["diffsw"]["max_new_tokens"] == 24
        assert len(c["diff_captions"]) == len(c["keyframe_ts"]) >= 5
        assert [d["t_s"] for d in c["diff_captions"]] == c["keyframe_ts"]
        assert c["dense_captions"] and c["dense_captions"][-1]["end_s"] <= p["duration_s"] + 1e-6


def test_failed_threshold_shows_up_in_the_checks(pipeline):
    store, shard, _, _, _ = pipeline
    # Tighten the thresholds after the fact: the passed rows no longer meet them.
    tight = LongTakeSettings(min_duration_s=11.5, max_pass_rate=0.2)
    result = long_takes_defs.thresholds_result(store, shard, tight)
    assert not result.passed
    failing = result.metadata["failures"].value
    assert "too_short" in failing and result.metadata["failing_rows"].value >= 1
    assert long_takes_defs.thresholds_result(store, shard, LongTakeSettings()).passed
    rate = long_takes_defs.pass_rate_result(store, shard, tight)
    assert not rate.passed and rate.severity.value == "WARN"
    assert long_takes_defs.pass_rate_result(store, shard, LongTakeSettings()).passed


def test_clip_scorer_adds_semantic_scores(pipeline, tiny_models, tmp_path):
    store, shard, _, _, _ = pipeline
    from vidgraph.stages.long_takes import build_long_takes

    scorer = ClipScorerResource(enabled=True, model="tiny:scorer").get_scorer()
    settings = LongTakeSettings(min_semantic_score=1.0)  # a sigmoid never reaches 1: every clip fails
    # Into a copy of the store, so the shared pipeline's table stays as it was.
    copy = DatasetStore(str(tmp_path / "root"))
    import shutil

    shutil.copytree(store.root_uri, copy.root_uri, dirs_exist_ok=True)
    rows = build_long_takes(copy, shard, settings.config(), scorer).table.to_pylist()
    with_keyframes = [r for r in rows if r["keyframe_count"]]
    assert with_keyframes and all(0 < r["semantic_score"] < 1 for r in with_keyframes)
    assert all("low_semantic_quality" in r["reasons"] and not r["passed"] for r in with_keyframes)
    assert json.loads(rows[0]["semantic_scorer"])["model"] == "tiny:scorer"


def test_every_stage_module_is_in_the_code_location():
    defs = build_defs(build_resources())
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"source_videos", "raw_clips", "long_takes", "frame_captions"}
    assert len(ASSET_MODULES) == 4


def test_run_command_takes_a_profile(samples, tmp_path, tiny_model_cache):
    bad = subprocess.run(
        [sys.executable, "-m", "vidgraph.cli", "run", str(samples), "--root", str(tmp_path / "r0"), "--profile", "nope"],
        capture_output=True, text=True,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr and "tiny" in bad.stderr
    done = subprocess.run(
        [sys.executable, "-m", "vidgraph.cli", "run", str(samples), "--root", str(tmp_path / "r1"), "--profile", "tiny"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    (shard,) = summary["shards"].values()
    assert shard["success"] and shard["assets"]["frame_captions"]["rows"] == 4
    assert summary["totals"]["frame_captions"] == 4 and summary["totals"]["long_takes"] == summary["totals"]["raw_clips"]
