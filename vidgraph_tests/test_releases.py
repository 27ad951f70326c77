"""Three releases, run as `vidgraph release` runs them, on hand-built upstream tables: stable,
leak-free splits, frozen verified gold clips, exports that load with `webdataset` and HF `datasets`."""

import json
from pathlib import Path

import pytest

from vidgraph.stages.benchmark_split import SPLITS, SplitConfig, assign_splits, leakage, moved_clips, split_report
from vidgraph_tests.release_world import ClipSpec, ReleaseWorld, VideoSpec, source_mp4, videos


def _release(name: str, ctx: dict) -> dict:
    from vidgraph.cli import materialize_release

    return materialize_release(name, ctx["instance"], ctx["defs"])


def _context(root: Path, verdicts: Path) -> dict:
    """The real definitions and resources, with a small gold set and a short narration budget."""
    from dagster import DagsterInstance

    from vidgraph.definitions import build_defs
    from vidgraph.defs.resources import EvaluationSettings, ReleaseSettings, build_resources

    resources = build_resources(root=str(root), profile="tiny")
    resources["release_settings"] = ReleaseSettings(verdicts_dir=str(verdicts), gold_size=GOLD_SIZE, gold_batch_size=2)
    resources["evaluation_settings"] = EvaluationSettings(max_judge_attempts=2, max_new_tokens=8)
    return {"defs": build_defs(resources), "instance": DagsterInstance.ephemeral()}


GOLD_SIZE = 3


def _split(world, release) -> dict[str, dict]:
    return {r["clip_id"]: r for r in world.store.read_table("benchmark_split", release).to_pylist()}


def _dup_of(spec: ClipSpec, video_id: str) -> VideoSpec:
    return VideoSpec(video_id, [ClipSpec(spec.caption, spec.image_seed, spec.duration_s, spec.audio_class, variant=1)])


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_cache):
    tmp = tmp_path_factory.mktemp("releases")
    verdicts = tmp / "verdicts"
    verdicts.mkdir()
    ctx = _context(tmp / "root", verdicts)
    world = ReleaseWorld(tmp / "root", source_mp4(tmp))
    s0 = videos("vidA", 8)
    s0.append(_dup_of(s0[0].clips[0], "vidDUPA"))  # a re-upload inside the first release
    world.add_shard("s0", s0, frame_captions=True)
    out = {"world": world, "specs": {c.caption: c for v in s0 for c in v.clips}, "verdicts": verdicts}
    out["v1"] = _release("v1", ctx)
    v1 = _split(world, "v1")
    test_clip = sorted(c for c, r in v1.items() if r["split"] == "test")[0]
    train_clip = sorted(c for c, r in v1.items() if r["split"] == "train" and r["video_id"] != "vidA0000")[0]
    by_id = {f"{v.video_id}-c{i:04d}": c for v in s0 for i, c in enumerate(v.clips)}
    # Release 2: new videos, one of them a re-encode of a test clip; verdicts on two gold clips.
    s1 = videos("vidB", 4, start=8) + [_dup_of(by_id[test_clip], "vidDUPB")]
    world.add_shard("s1", s1)
    gold1 = [g["clip_id"] for g in world.store.read_table("gold_set", "v1").to_pylist()]
    # The fixed clip gets new captions upstream later; the test clip keeps its duplicate's edge.
    fixed = next(g for g in gold1 if g != test_clip)
    accepted = next(g for g in gold1 if g != fixed)
    (verdicts / "verdicts-v1-b000.json").write_text(json.dumps({
        "release": "v1", "batch": "v1-b000", "reviewer": "r", "reviewed_at": "2026-12-01T00:00:00Z",
        "verdicts": [{"clip_id": fixed, "verdict": "fix", "reference_caption": "A human reference narration."},
                     {"clip_id": accepted, "verdict": "accept"}]}))
    (verdicts / "broken.json").write_text("{not json")
    out["v2"] = _release("v2", ctx)
    # Release 3: a new video re-uploading a train clip and a test clip (it bridges the splits),
    # and new merged captions upstream for the verified gold clip, which must stay frozen.
    bridge = VideoSpec("vidBRIDGE", [_dup_of(by_id[train_clip], "x").clips[0], _dup_of(by_id[test_clip], "x").clips[0]])
    world.add_shard("s2", videos("vidC", 3, start=12) + [bridge])
    import pyarrow as pa

    shard = next(r["shard"] for r in _split(world, "v1").values() if r["clip_id"] == fixed)
    mc = world.store.read_table("merged_captions", shard).to_pylist()
    for r in mc:
        if r["clip_id"] == fixed:
            r["merged_caption"] = "CHANGED UPSTREAM"
    world.store.write_table("merged_captions", shard, pa.Table.from_pylist(mc))
    out["v3"] = _release("v3", ctx)
    out.update(test_clip=test_clip, train_clip=train_clip, fixed=fixed, accepted=accepted)
    yield out


def test_every_release_passes_its_blocking_checks(run):
    for name in ("v1", "v2", "v3"):
        s = run[name]
        assert s["success"], json.dumps(s, indent=1)
        checks = s["runs"]["release_job"]["checks"]
        assert checks["benchmark_split:no_leakage"] == "passed"
        assert checks["benchmark_split:no_clip_moved"] == "passed"
        assert checks["release_exports:exported_media_exist_and_decode"] == "passed"
        assert {"benchmark_split", "gold_set", "release_exports", "retrieval_eval", "narration_eval"} <= set(s["runs"]["release_job"]["assets"])


def test_no_clip_moves_over_three_releases_and_new_duplicates_join_their_group(run):
    w = run["world"]
    v1, v2, v3 = (_split(w, r) for r in ("v1", "v2", "v3"))
    assert set(v1) < set(v2) < set(v3)
    assert all(v2[c]["split"] == r["split"] for c, r in v1.items())
    assert all(v3[c]["split"] == r["split"] for c, r in v2.items())
    assert {r["split"] for r in v1.values()} == set(SPLITS)
    # The re-upload inside release 1 sits with its original; the one in release 2 joins the test clip.
    assert v1["vidDUPA-c0000"]["split"] == v1["vidA0000-c0000"]["split"]
    assert v2["vidDUPB-c0000"]["split"] == "test" and v2["vidDUPB-c0000"]["assignment"] == "joined"
    # A new video holding re-uploads of a train and a test clip cannot join both: it is left out.
    assert {v3["vidBRIDGE-c0000"]["split"], v3["vidBRIDGE-c0001"]["split"]} == {"excluded"}
    assert v3[run["train_clip"]]["split"] == "train" and v3[run["test_clip"]]["split"] == "test"


def test_leakage_is_checked_on_videos_and_duplicate_edges(run):
    from vidgraph.stages.releases import duplicate_pairs

    w = run["world"]
    rows = list(_split(w, "v3").values())
    pairs = duplicate_pairs(w.store)
    assert ("vidA0000-c0000", "vidDUPA-c0000") in pairs
    assert leakage(rows, pairs) == []
    # The same rows with one clip of a video (and of a duplicate group) flipped: both are caught.
    bad = [dict(r, split="train" if r["clip_id"] == "vidDUPB-c0000" else r["split"]) for r in rows]
    kinds = {x["kind"] for x in leakage(bad, pairs)}
    assert kinds == {"duplicate_group"}
    clip = "vidA0001-c0001"
    other = next(s for s in SPLITS if s != prev_split(rows, clip))
    bad = [dict(r, split=other if r["clip_id"] == clip else r["split"]) for r in rows]
    assert "video" in {x["kind"] for x in leakage(bad, pairs)}
    prev = {r["clip_id"]: r for r in rows}
    assert moved_clips(bad, prev) == [{"clip_id": clip, "was": prev[clip]["split"], "now": other}]


def prev_split(rows, clip_id):
    return next(r["split"] for r in rows if r["clip_id"] == clip_id)


def test_verified_gold_clips_are_frozen_and_the_gold_set_only_grows(run):
    w = run["world"]
    g1, g2, g3 = ({g["clip_id"]: g for g in w.store.read_table("gold_set", r).to_pylist()} for r in ("v1", "v2", "v3"))
    assert set(g1) <= set(g2) <= set(g3)
    assert g2[run["fixed"]]["verified"] and g2[run["fixed"]]["reference_caption"] == "A human reference narration."
    assert g2[run["accepted"]]["verified"] and g2[run["accepted"]]["frozen_record"]
    frozen = json.loads(g2[run["fixed"]]["frozen_record"])
    assert frozen["merged_caption"] != "CHANGED UPSTREAM"
    test3 = {r["clip_id"]: r for r in _records(w, "v3", "test")}
    assert test3[run["fixed"]]["merged_caption"] == frozen["merged_caption"]  # upstream changed, the release did not
    assert _split(w, "v3")[run["fixed"]]["frozen"]
    verdicts = w.store.read_table("gold_verdicts", "all").to_pylist()
    assert {v["clip_id"] for v in verdicts} == {run["fixed"], run["accepted"]}  # broken.json skipped


def _records(w, release, split):
    from vidgraph.stages.releases import release_records

    return release_records(w.store, release, split)


def test_review_package_has_keyframes_captions_and_a_verdict_form(run):
    root = run["world"].root / "releases" / "v1" / "gold"
    page = (root / "v1-b000.html").read_text()
    items = [json.loads(line) for line in (root / "v1-b000.jsonl").read_text().splitlines()]
    assert items and all((root / k).is_file() for it in items for k in it["keyframes"])
    assert items[0]["merged_caption"] and items[0]["merged_caption"] in page
    assert 'value="accept"' in page and "verdicts-${BATCH}.json" in page and "application/json" in page
    # Later releases keep earlier packages' content and add their own batches.
    assert (run["world"].root / "releases" / "v3" / "gold").is_dir()


def test_verdicts_sensor_requests_a_run_only_when_files_change(run):
    from dagster import RunRequest, SkipReason, build_sensor_context

    from vidgraph.defs.gold_verdicts import verdicts_sensor
    from vidgraph.defs.resources import ReleaseSettings

    settings = ReleaseSettings(verdicts_dir=str(run["verdicts"]))
    ctx = build_sensor_context(resources={"release_settings": settings})
    first = verdicts_sensor(ctx)
    assert isinstance(first, RunRequest)
    ctx2 = build_sensor_context(resources={"release_settings": settings}, cursor=ctx.cursor)
    assert isinstance(verdicts_sensor(ctx2), SkipReason)


def test_exports_load_with_webdataset_and_hf_datasets(run):
    import datasets
    import webdataset as wds

    rel = run["world"].root / "releases" / "v3"
    tars = sorted(str(p) for p in (rel / "wds").glob("train-*.tar"))
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    train = _records(run["world"], "v3", "train")
    assert len(samples) == len(train) > 0
    s = samples[0]
    assert s["mp4"][4:8] == b"ftyp" and json.loads(s["json"])["clip_id"] == s["__key__"]
    cache = str(rel.parent.parent.parent / "hf-cache")
    ds = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train", cache_dir=cache)
    ds = ds.cast_column("mp4", datasets.Video(decode=False))  # no video decoder here: the bytes are enough
    assert len(ds) == len(train) and ds[0]["mp4"]["bytes"][4:8] == b"ftyp"
    assert ds[0]["json"]["clip_id"] == samples[0]["__key__"]
    pq = datasets.load_dataset("parquet", data_files={s: str(rel / "data" / f"{s}.parquet") for s in SPLITS}, cache_dir=cache)
    assert {s: len(pq[s]) for s in SPLITS} == {s: len(_records(run["world"], "v3", s)) for s in SPLITS}
    row = pq["train"][0]
    # Full provenance: every upstream table's model columns, the licence and the release.
    for col in ("merged_caption", "transcript", "audio_captions__llm_model_id", "llm_model_id", "source_license", "duplicate_group", "release"):
        assert col in row, col
    jl = [json.loads(x) for x in (rel / "data" / "train.jsonl").read_text().splitlines()]
    assert [r["clip_id"] for r in jl] == pq["train"]["clip_id"]


def test_paper_views_and_dataset_card(run):
    rel = run["world"].root / "releases" / "v3"
    lvd = [json.loads(x) for x in (rel / "views" / "lvd2m.jsonl").read_text().splitlines()]
    mm = [json.loads(x) for x in (rel / "views" / "mmtrail.jsonl").read_text().splitlines()]
    vm = [json.loads(x) for x in (rel / "views" / "videomind.jsonl").read_text().splitlines()]
    assert len(lvd) == len(mm) == len(vm) > 0
    s0 = next(r for r in lvd if r["clip_id"].startswith("vidA0002"))
    assert s0["refined_caption"] and s0["raw_captions"][0]["text"]
    music = next(r for r in mm if r["music_captions"])
    assert {"start_s", "end_s", "text"} <= set(music["music_captions"][0]) and "merged_caption" in music
    assert set(vm[0]) >= {"factual", "abstract", "intent", "sixw"} and vm[0]["factual"]["visual"].startswith("Visual:")
    card = (rel / "DATASET_CARD.md").read_text()
    header = card.split("---")[1]
    assert "license: cc-by-4.0" in header and "size_categories:" in header and "task_categories:" in header
    assert "path: data/test.parquet" in header
    n = len(_records(run["world"], "v3", None))
    assert f"- clips: {n}" in card and "mergehash" in card and "| cc-by-4.0 |" in card
    for name in ("durations", "caption_lengths", "dynamic_degree", "audio_classes", "languages"):
        png = rel / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{name}.png" in card


def test_evaluations_and_catalog_views(run):
    from vidgraph.storage.catalog import Catalog

    cat = Catalog(run["world"].store)
    ret = cat.query("select layer, queries, r1, r10, mean_rank from retrieval_eval where release = 'v3' order by layer")
    assert [r["layer"] for r in ret] == ["abstract", "factual", "intent"]
    for r in ret:
        assert r["queries"] >= 2 and 0 <= r["r1"] <= r["r10"] <= 1 and 1 <= r["mean_rank"] <= r["queries"]
    nar = cat.query("select clip_id, environment, characters, plot, l1_attempts, reference_kind from narration_eval where release = 'v2'")
    assert nar and all(-1 <= r[k] <= 5 for r in nar for k in ("environment", "characters", "plot"))
    assert "human" in {r["reference_kind"] for r in nar}
    # A random tiny judge never answers in the format: every score is -1 after every attempt.
    assert all(r["environment"] == -1 and r["l1_attempts"] == 2 for r in nar)
    splits = cat.query("select release, count(*) as n from benchmark_split group by 1 order by 1")
    assert [r["release"] for r in splits] == ["v1", "v2", "v3"]
    assert cat.query("select count(*) as n from near_duplicate_pairs")[0]["n"] >= 3
    cat.close()


def test_stratified_assignment_balances_each_large_stratum():
    cfg = SplitConfig()
    clips = [{"clip_id": f"c{i:04d}", "video_id": f"v{i // 2:04d}", "shard": "s", "duration_s": [10, 20, 45, 90][i % 4],
              "audio_class": ["speech", "music"][(i // 4) % 2]} for i in range(1600)]
    res = assign_splits("r", clips, [], {}, {}, cfg)
    for row in split_report(res.rows):
        if row["clips"] >= 100:
            for i, s in enumerate(SPLITS):
                assert abs(row[f"{s}_share"] - cfg.shares[i]) <= 0.03, row
    assert leakage(res.rows, []) == []


def test_release_command_is_wired():
    from vidgraph.cli import build_parser, cmd_release

    args = build_parser().parse_args(["release", "2026-12-01", "--root", "/tmp/x"])
    assert args.func is cmd_release and args.name == "2026-12-01" and args.root == "/tmp/x"
