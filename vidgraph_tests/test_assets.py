"""source_videos and raw_clips materialized for one shard, bad inputs quarantined, re-runs idempotent."""

import hashlib
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from vidgraph.defs.raw_clips import clip_files_decode, clips_cover_each_video, every_video_accounted_for, raw_clips
from vidgraph.defs.resources import ClipFileSettings, build_resources
from vidgraph.media.clip_media import clip_media_for_shard
from vidgraph.defs.source_videos import every_input_accounted_for, source_videos
from vidgraph.ingest import ingest
from vidgraph.storage.catalog import Catalog
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.conftest import CUT_SPEC, make_landing

ASSETS = [source_videos, raw_clips, every_input_accounted_for, every_video_accounted_for, clips_cover_each_video, clip_files_decode]


def _bad_files(landing: Path, good: Path) -> dict[str, str]:
    """The bad inputs of the issue, with a word their quarantine reason must contain."""
    (landing / "empty.mp4").write_bytes(b"")
    (landing / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    data = good.read_bytes()
    (landing / "truncated.mp4").write_bytes(data[: len(data) // 3])
    # Audio only: an AAC track in MP4.
    import av
    import numpy as np

    with av.open(str(landing / "audio_only.mp4"), "w") as out:
        s = out.add_stream("aac", rate=22050, layout="mono")
        for k in range(20):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 22050, k * 1024
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return {"empty.mp4": "empty", "notes.mp4": "cannot be opened", "truncated.mp4": "", "audio_only.mp4": "no video stream"}


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under the root (tables decoded to rows, media by hash), minus the ledger's time."""
    import pyarrow.parquet as pq

    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "ingest_ledger" in p.parts:
            continue
        rel = str(p.relative_to(root))
        out[rel] = str(pq.read_table(p).to_pylist()) if p.suffix == ".parquet" else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def shard_env(tmp_path, cut_video):
    landing = make_landing(tmp_path, [cut_video])
    expected = _bad_files(landing, cut_video)
    store = DatasetStore(str(tmp_path / "root"))
    result = ingest(landing, store, shard_size=16)
    (shard,) = result.new_shards
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    resources = build_resources(root=str(tmp_path / "root"), landing=str(landing))
    return store, shard, instance, resources, expected, tmp_path / "root"


def test_materialize_shard_clips_checks_and_quarantine(shard_env):
    store, shard, instance, resources, expected, root = shard_env
    res = materialize(ASSETS, partition_key=shard, instance=instance, resources=resources)
    assert res.success
    checks = res.get_asset_check_evaluations()
    assert len(checks) == 4 and all(c.passed for c in checks)

    cat = Catalog(store)
    videos = cat.query("select * from source_videos")
    assert [v["relpath"] for v in videos] == ["cuts.mp4"]
    clips = cat.query("select * from raw_clips order by clip_index")
    assert [(c["start_frame"], c["end_frame"]) for c in clips] == [(0, 48), (48, 84), (84, CUT_SPEC.n_frames)]
    assert all(c["has_audio"] for c in clips)
    assert clips[1]["start_s"] == pytest.approx(2.0) and clips[1]["end_s"] == pytest.approx(3.5)
    # clip_files: passing (the default): raw_clips writes no file, its clips are spans of the source.
    media = clip_media_for_shard(store, shard)
    assert [(m.is_clip_file, m.start_s) for m in media.values()] == [(False, c["start_s"]) for c in clips]
    assert not (root / clips[0]["path"]).exists()

    quarantined = {Path(q["path"]).name: q["reason"] for q in cat.query("select * from quarantine")}
    assert set(quarantined) == set(expected)
    for name, word in expected.items():
        assert word in quarantined[name].lower(), (name, quarantined[name])
    # Nothing lost: every ledger entry is in the output or the quarantine.
    assert cat.query("select count(*) n from ingest_ledger")[0]["n"] == len(videos) + len(quarantined)

    mat = instance.get_latest_materialization_event(raw_clips.key).asset_materialization
    assert mat.partition == shard and mat.metadata["dagster/row_count"].value == 3
    sheet = Path(mat.metadata["first_frames"].value)  # a file next to the shard, not base64 in the log
    assert sheet.parent == root / "raw_clips" / shard / "plots" and sheet.read_bytes()[:2] == b"\xff\xd8"


def test_rerun_gives_the_same_rows_and_files(shard_env):
    store, shard, instance, resources, _, root = shard_env
    resources = {**resources, "clip_file_settings": ClipFileSettings(clip_files="all")}
    assert materialize(ASSETS, partition_key=shard, instance=instance, resources=resources).success
    first = _snapshot(root)
    assert materialize(ASSETS, partition_key=shard, instance=instance, resources=resources).success
    assert _snapshot(root) == first
    cat = Catalog(store)
    assert cat.query("select count(*) n, count(distinct clip_id) d from raw_clips")[0] == {"n": 3, "d": 3}
    assert all(m.is_clip_file for m in clip_media_for_shard(store, shard).values())
    assert cat.query("select count(*) n from quarantine")[0]["n"] == 4
    assert not [p for p in root.iterdir() if p.name.startswith((".staging", ".trash"))]


def test_failed_blocking_check_stops_downstream(shard_env, monkeypatch):
    store, shard, instance, resources, _, _ = shard_env
    import vidgraph.defs.source_videos as sv

    # Lose one quarantine row: the accounting check must fail and raw_clips must not run.
    real = sv.build_source_videos

    def lossy(*a, **k):
        r = real(*a, **k)
        store.write_table("quarantine", shard, r.quarantine.slice(1), name="source_videos")
        return r

    monkeypatch.setattr(sv, "build_source_videos", lossy)
    res = materialize(ASSETS, partition_key=shard, instance=instance, resources=resources, raise_on_error=False)
    evals = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert not evals["every_input_accounted_for"].passed
    materialized = {e.asset_key.to_user_string() for e in res.get_asset_materialization_events()}
    assert materialized == {"source_videos"}
