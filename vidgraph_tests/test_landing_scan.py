"""The incremental landing scan: the scan index, what happens to ingested files, an s3:// landing
listed with a cursor, and hashing progress."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

import vidgraph.ingest as ingest_mod
import vidgraph.landing as landing_mod
from vidgraph.ingest import ingest, scan_landing
from vidgraph.landing import INDEX_NAME, STATE_DIR, AfterIngest, LandingIndex, check_move_to, load_cursors
from vidgraph.storage.store import DatasetStore

OLD = time.time() - 3600


def _land(path: Path, data: bytes, mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def hashed(monkeypatch):
    """Names of the local files read by the scan (the real hashing, counted)."""
    calls: list[str] = []
    real = ingest_mod._hash_regular_file
    monkeypatch.setattr(ingest_mod, "_hash_regular_file", lambda p, *a: calls.append(os.path.basename(p)) or real(p, *a))
    return calls


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test a moment ago count as settled for the index (RACY_S guards
    real scans against same-size rewrites within the timestamp granularity)."""
    monkeypatch.setattr(landing_mod, "RACY_S", 0.0)


def _scan(landing, store, **kw):
    return scan_landing(landing, index=LandingIndex.load(store), store=store, exclude=(store.base,), **kw)


def _by_rel(scan):
    return {c.relpath: c.sha256 for c in scan.candidates}


def test_unchanged_files_are_not_hashed_again(tmp_path, hashed, settled):
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    for rel in ("a.mp4", "b.mp4", "sub/c.mp4"):
        _land(landing / rel, os.urandom(100))
    first = _scan(landing, store)
    assert sorted(hashed) == ["a.mp4", "b.mp4", "c.mp4"]
    assert (tmp_path / "root" / STATE_DIR / INDEX_NAME).is_file()
    hashed.clear()
    second = _scan(landing, store)
    assert hashed == []  # nothing read
    assert _by_rel(second) == _by_rel(first) == _by_rel(scan_landing(landing))  # the same answer as a full hash
    assert second.signature() == first.signature()


def test_a_changed_file_is_hashed_again_even_with_its_old_size_and_mtime(tmp_path, hashed, settled):
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    a = _land(landing / "a.mp4", b"A" * 100)
    b = _land(landing / "b.mp4", b"B" * 100)
    first = _by_rel(_scan(landing, store))
    st_a, st_b = os.stat(a), os.stat(b)
    time.sleep(0.01)
    # Rewritten in place, same size, mtime put back to the nanosecond: only ctime tells.
    a.write_bytes(b"a" * 100)
    os.utime(a, ns=(st_a.st_atime_ns, st_a.st_mtime_ns))
    # Replaced by another file (a new inode) with the same size and mtime.
    tmp = _land(landing / "tmp.bin", b"b" * 100)
    os.utime(tmp, ns=(st_b.st_atime_ns, st_b.st_mtime_ns))
    os.replace(tmp, b)
    assert (os.stat(a).st_size, os.stat(a).st_mtime_ns) == (st_a.st_size, st_a.st_mtime_ns)
    hashed.clear()
    second = _by_rel(_scan(landing, store))
    assert sorted(hashed) == ["a.mp4", "b.mp4"]
    assert second["a.mp4"] != first["a.mp4"] and second["b.mp4"] != first["b.mp4"]
    assert second == _by_rel(scan_landing(landing))


def test_a_corrupt_or_missing_index_is_rebuilt_by_hashing(tmp_path, hashed, settled, caplog):
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    _land(landing / "a.mp4", os.urandom(50))
    _land(landing / "b.mp4", os.urandom(50))
    want = _by_rel(_scan(landing, store))
    index_file = tmp_path / "root" / STATE_DIR / INDEX_NAME
    index_file.write_bytes(b"PAR1 not a parquet file")
    hashed.clear()
    with caplog.at_level(logging.WARNING, logger="vidgraph.landing"):
        assert _by_rel(_scan(landing, store)) == want
    assert sorted(hashed) == ["a.mp4", "b.mp4"] and "unusable" in caplog.text
    assert len(LandingIndex.load(store).entries) == 2  # written again, readable
    index_file.unlink()
    hashed.clear()
    assert _by_rel(_scan(landing, store)) == want and len(hashed) == 2


def test_files_modified_just_now_are_hashed_each_time(tmp_path, hashed):
    """Within RACY_S of its last change a file may still be rewritten with the same size and
    timestamp: it is hashed, never remembered."""
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    _land(landing / "fresh.mp4", os.urandom(50), mtime=time.time())
    _scan(landing, store)
    _scan(landing, store)
    assert hashed == ["fresh.mp4", "fresh.mp4"]
    assert LandingIndex.load(store).entries == {}


def test_files_that_left_the_landing_leave_the_index(tmp_path, settled):
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    _land(landing / "a.mp4", os.urandom(50))
    gone = _land(landing / "b.mp4", os.urandom(50))
    _scan(landing, store)
    gone.unlink()
    _scan(landing, store)
    assert [os.path.basename(p) for p in LandingIndex.load(store).entries] == ["a.mp4"]


def test_a_sensor_tick_with_nothing_new_reads_no_file(tmp_path, hashed, settled):
    from dagster import DagsterInstance, build_sensor_context

    from vidgraph.defs.ingest_sensor import landing_sensor
    from vidgraph.defs.resources import DatasetStoreResource, IngestSettings

    landing, root = tmp_path / "landing", tmp_path / "root"
    for i in range(3):
        _land(landing / f"v{i}.mp4", os.urandom(64))
    instance = DagsterInstance.ephemeral()

    def tick(cursor):
        return landing_sensor(build_sensor_context(instance=instance, cursor=cursor, resources={
            "store": DatasetStoreResource(root=str(root)),
            "ingest_settings": IngestSettings(landing_dir=str(landing), shard_size=8, min_file_age_s=0)}))

    first = tick(None)
    assert len(hashed) == 3 and len(first.run_requests) == 1
    instance.add_dynamic_partitions("shards", list(first.dynamic_partitions_requests[0].partition_keys))
    hashed.clear()
    again = tick(first.cursor)
    assert hashed == [] and not again.dynamic_partitions_requests
    _land(landing / "new.mp4", os.urandom(64))
    third = tick(first.cursor)
    assert hashed == ["new.mp4"] and len(third.dynamic_partitions_requests[0].partition_keys) == 1


def test_hashing_progress_is_plain_lines_when_not_a_terminal(tmp_path, caplog):
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    _land(landing / "a.mp4", os.urandom(3000))
    _land(landing / "b.mp4", os.urandom(2000))
    with caplog.at_level(logging.INFO, logger="vidgraph.progress"):
        ingest(landing, store, progress=True)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "vidgraph.progress"]
    assert line.startswith("ingest: hashed 2/2 files, 0.0/0.0 MB")


# -- after_ingest --------------------------------------------------------------------------------


def _materialize_source_videos(root, landing, shard, **settings):
    from dagster import DagsterInstance, materialize

    from vidgraph.defs.resources import DatasetStoreResource, IngestSettings
    from vidgraph.defs.source_videos import source_videos

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    res = materialize([source_videos], partition_key=shard, instance=instance, resources={
        "store": DatasetStoreResource(root=str(root)),
        "ingest_settings": IngestSettings(landing_dir=str(landing), min_file_age_s=0, **settings)})
    assert res.success
    return DatasetStore(str(root)).read_table("source_videos", shard).to_pylist()


@pytest.mark.parametrize("action", ["keep", "move", "delete"])
def test_after_ingest_acts_only_once_the_copy_is_in_the_root(tmp_path, cut_video, action):
    landing, root = tmp_path / "landing", tmp_path / "root"
    video = _land(landing / "in" / "good.mp4", cut_video.read_bytes())
    _land(landing / "in" / "good.json", b'{"title": "a title"}')
    bad = _land(landing / "bad.mp4", b"not a video at all" * 10)
    store = DatasetStore(str(root))
    (shard,) = ingest(landing, store).new_shards
    assert video.exists()  # ingest itself never moves anything: the ledger is not a copy
    rows = _materialize_source_videos(root, landing, shard, after_ingest=action)
    assert [r["relpath"] for r in rows] == ["in/good.mp4"] and rows[0]["source_title"] == "a title"
    assert (root / rows[0]["media_path"]).is_file()
    assert bad.exists()  # refused by source_videos: always kept, for a person to look at
    moved = landing / ".ingested" / "in" / "good.mp4"
    assert video.exists() == (action == "keep")
    assert moved.exists() == (action == "move") == (landing / ".ingested" / "in" / "good.json").exists()
    if action == "move":
        assert moved.read_bytes() == cut_video.read_bytes()
    # Nothing comes back as new or as a duplicate, and a re-run of the shard still has its video
    # (from the copy in the root when the landed file is gone) with its sidecar's text.
    again = ingest(landing, store)
    assert not again.new_shards and not again.duplicates
    rerun = _materialize_source_videos(root, landing, shard, after_ingest=action)
    assert [(r["video_id"], r["source_title"]) for r in rerun] == [(rows[0]["video_id"], "a title")]
    assert store.read_table("quarantine", shard, "source_videos").num_rows == 1  # bad.mp4 only


def test_move_to_inside_the_landing_must_be_hidden(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    with pytest.raises(ValueError, match="scanned again"):
        check_move_to(str(landing), str(landing / "done"))
    check_move_to(str(landing), str(landing / ".done"))
    check_move_to(str(landing), str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="must be one of"):
        AfterIngest("archive")


# -- an s3:// landing ----------------------------------------------------------------------------


@pytest.fixture
def s3_hashes(monkeypatch):
    calls: list[str] = []
    real = ingest_mod._hash_s3_object
    monkeypatch.setattr(ingest_mod, "_hash_s3_object", lambda c, b, key, *a: calls.append(key) or real(c, b, key, *a))
    return calls


def _s3(moto_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


def test_an_s3_landing_is_listed_with_a_cursor_a_bounded_window_per_scan(tmp_path, s3_env, moto_endpoint, s3_hashes):
    s3 = _s3(moto_endpoint)
    for i in range(5):
        s3.put_object(Bucket=s3_env, Key=f"in/v{i}.mp4", Body=os.urandom(100))
    s3.put_object(Bucket=s3_env, Key="in/x-notes.txt", Body=b"not a video")
    s3.put_object(Bucket=s3_env, Key="in/y/.partial.mp4", Body=b"half")
    s3.put_object(Bucket=s3_env, Key="other/v9.mp4", Body=b"outside the prefix")
    store = DatasetStore(str(tmp_path / "root"))
    landing = f"s3://{s3_env}/in"

    def tick():
        return ingest(landing, store, shard_size=1, max_keys=2)

    r1 = tick()
    assert sorted(r1.summary()["new_shards"].values()) == [1, 1] and s3_hashes == ["in/v0.mp4", "in/v1.mp4"]
    assert load_cursors(store) == {landing: "in/v1.mp4"}
    rows = [store.read_table("ingest_ledger", s).to_pylist()[0] for s in r1.new_shards]
    assert sorted(r["landing_path"] for r in rows) == [f"{landing}/v0.mp4", f"{landing}/v1.mp4"]
    assert sorted(r["relpath"] for r in rows) == ["v0.mp4", "v1.mp4"]
    r2 = tick()  # continues from the cursor
    assert len(r2.new_shards) == 2 and s3_hashes[2:] == ["in/v2.mp4", "in/v3.mp4"]
    r3 = tick()
    assert len(r3.new_shards) == 1 and load_cursors(store) == {landing: "in/x-notes.txt"}
    r4 = tick()  # the end of the listing: the hidden object is refused, the cursor starts over
    assert not r4.new_shards and [r.reason for r in r4.rejected] == ["hidden file (name starts with '.'): not an input"]
    assert load_cursors(store) == {landing: ""}
    r5 = tick()  # the first window again: known objects, nothing read
    assert not r5.new_shards and len(r5.already_ingested) == 2
    assert len(s3_hashes) == 5
    # An object replaced under the same key (a new ETag) is read again, in its window: content changed.
    s3.put_object(Bucket=s3_env, Key="in/v2.mp4", Body=os.urandom(100))
    r6 = tick()  # v2, v3
    assert s3_hashes[5:] == ["in/v2.mp4"] and "content changed after ingest" in r6.rejected[0].reason


def test_young_s3_objects_wait_and_hold_the_cursor(tmp_path, s3_env, moto_endpoint, s3_hashes):
    s3 = _s3(moto_endpoint)
    s3.put_object(Bucket=s3_env, Key="in/a.mp4", Body=os.urandom(100))
    store = DatasetStore(str(tmp_path / "root"))
    landing = f"s3://{s3_env}/in"
    r = ingest(landing, store, min_age_s=3600, max_keys=10)
    assert not r.new_shards and r.waiting == ["a.mp4"] and s3_hashes == []
    assert load_cursors(store) == {landing: ""}  # listed again next time
    assert ingest(landing, store, min_age_s=0, max_keys=10).summary()["new_videos"] == 1


def test_source_videos_reads_an_s3_landing_and_after_ingest_moves_the_object(tmp_path, s3_env, moto_endpoint, cut_video):
    s3 = _s3(moto_endpoint)
    s3.put_object(Bucket=s3_env, Key="in/cam/cuts.mp4", Body=cut_video.read_bytes())
    root = tmp_path / "root"
    landing = f"s3://{s3_env}/in"
    (shard,) = ingest(landing, DatasetStore(str(root))).new_shards
    rows = _materialize_source_videos(root, landing, shard, after_ingest="move", move_to=f"s3://{s3_env}/done")
    assert [(r["relpath"], r["landing_path"]) for r in rows] == [("cam/cuts.mp4", f"{landing}/cam/cuts.mp4")]
    assert (root / rows[0]["media_path"]).read_bytes() == cut_video.read_bytes()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_env)["Contents"]}
    assert "done/cam/cuts.mp4" in keys and "in/cam/cuts.mp4" not in keys
    # A re-run reads the copy in the root.
    assert [r["video_id"] for r in _materialize_source_videos(root, landing, shard)] == [rows[0]["video_id"]]


def test_the_schedule_holds_the_s3_cursor_before_a_held_partial_shard(tmp_path, s3_env, moto_endpoint, s3_hashes):
    from vidgraph.defs.schedules import plan_scan

    s3 = _s3(moto_endpoint)
    for i in range(3):
        s3.put_object(Bucket=s3_env, Key=f"in/v{i}.mp4", Body=os.urandom(100))
    store = DatasetStore(str(tmp_path / "root"))
    landing = f"s3://{s3_env}/in"
    scan = scan_landing(landing, store=store, index=LandingIndex.load(store), max_keys=10)
    kept, held, why = plan_scan(landing, store, shard_size=2, settle_s=0, max_wait_s=3600, max_videos=100, scan=scan)
    assert held == ["v2.mp4"] and "partial shard" in why
    ingest(landing, store, shard_size=2, scan=kept)
    assert load_cursors(store) == {landing: "in/v1.mp4"}  # v2 is listed again next tick
    later = scan_landing(landing, store=store, index=LandingIndex.load(store), max_keys=10)
    assert [c.relpath for c in later.candidates] == ["v2.mp4"] and len(s3_hashes) == 3  # not read again


def test_vidgraph_ingest_prints_hashing_progress_on_stderr(tmp_path):
    import json
    import subprocess
    import sys

    landing = tmp_path / "landing"
    _land(landing / "a.mp4", os.urandom(4000))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("DAGSTER_HOME", None)
    run = subprocess.run([sys.executable, "-m", "vidgraph.cli", "ingest", str(landing), "--root", str(tmp_path / "root"),
                          "--settle-s", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ingest: hashed 1/1 files" in run.stderr  # not a terminal: a plain line, no bar
    assert json.loads(run.stdout)["new_videos"] == 1


def test_after_ingest_leaves_a_file_whose_content_is_no_longer_the_ingested_one(tmp_path):
    from vidgraph.landing import apply_after_ingest

    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    f = _land(landing / "a.mp4", b"one" * 10)
    (shard,) = ingest(landing, store).new_shards
    rows = store.read_table("ingest_ledger", shard).to_pylist()
    f.write_bytes(b"two" * 10)  # a new upload under the same name, after the copy
    assert apply_after_ingest(rows, str(landing), AfterIngest("delete")) == [] and f.exists()
    f.write_bytes(b"one" * 10)
    assert apply_after_ingest(rows, str(landing), AfterIngest("delete")) == [f"deleted {rows[0]['landing_path']}"]
    assert not f.exists()


def test_a_name_that_is_not_utf8_is_remembered_too(tmp_path, hashed, settled):
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    landing.mkdir()
    raw = os.path.join(os.fsencode(landing), b"caf\xe9.mp4")
    with open(raw, "wb") as f:
        f.write(os.urandom(40))
    _land(landing / "plain.mp4", os.urandom(40))
    first = _by_rel(_scan(landing, store))
    hashed.clear()
    assert _by_rel(_scan(landing, store)) == first and hashed == []
    assert os.fsdecode(raw) in LandingIndex.load(store).entries


def test_a_long_lived_process_skips_the_stats_of_unchanged_folders(tmp_path, hashed, settled, monkeypatch):
    """The daemon's code server re-lists only folders whose mtime changed; a file rewritten in
    place (its folder untouched) is noticed at the next full rescan (FULL_RESCAN_S)."""
    monkeypatch.setattr(ingest_mod, "FULL_RESCAN_S", 3600.0)
    landing, store = tmp_path / "landing", DatasetStore(str(tmp_path / "root"))
    for rel in ("a/1.mp4", "a/2.mp4", "b/3.mp4"):
        _land(landing / rel, os.urandom(100))
    first = _scan(landing, store)  # hashes everything
    second = _scan(landing, store)  # every file indexed: folders become clean
    assert _by_rel(second) == _by_rel(first) and len(first.candidates) == 3
    # Rewrite a/1.mp4 in place with its size and mtime kept: its folder does not change.
    path = landing / "a" / "1.mp4"
    folder_before = os.stat(landing / "a").st_mtime_ns
    _land(path, os.urandom(100))
    assert os.stat(landing / "a").st_mtime_ns == folder_before
    hashed.clear()
    cached = _scan(landing, store)
    assert hashed == [] and _by_rel(cached) == _by_rel(first)  # the shortcut did not stat it
    # The full rescan stats every file again: the in-place rewrite is noticed.
    monkeypatch.setattr(ingest_mod, "FULL_RESCAN_S", 0.0)
    full = _scan(landing, store)
    assert hashed == ["1.mp4"] and _by_rel(full)["a/1.mp4"] != _by_rel(first)["a/1.mp4"]
    monkeypatch.setattr(ingest_mod, "FULL_RESCAN_S", 3600.0)
    _scan(landing, store)  # folders clean again
    hashed.clear()
    # A file added to a folder changes the folder: it is listed again and the new file found.
    _land(landing / "b" / "4.mp4", os.urandom(100))
    found = _scan(landing, store)
    assert hashed == ["4.mp4"] and set(_by_rel(found)) == {"a/1.mp4", "a/2.mp4", "b/3.mp4", "b/4.mp4"}
    # A removed file leaves the scan.
    (landing / "a" / "2.mp4").unlink()
    assert set(_by_rel(_scan(landing, store))) == {"a/1.mp4", "b/3.mp4", "b/4.mp4"}
