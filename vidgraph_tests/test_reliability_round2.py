"""issue 14 (second reliability round), the items outside the media layer: faults of the file vs
faults of the infrastructure, stale staging, non-UTF-8 names, settle time and files rewritten
after ingest, size before hashing, configuration checked at start, the sensor's resume."""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, SensorResult, SkipReason, build_sensor_context

import vidgraph.ingest as ingest_mod
from vidgraph.cli import main
from vidgraph.faults import is_infrastructure_fault
from vidgraph.ingest import incomplete_shards, ingest, ledger_path, scan_landing
from vidgraph.media.probe import InputPolicy, InputRejected, probe_video
from vidgraph.stages.raw_clips import build_raw_clips
from vidgraph.stages.source_videos import build_source_videos
from vidgraph.storage.catalog import Catalog, read_all
from vidgraph.storage.store import DatasetStore, _HOST
from vidgraph_tests.conftest import make_landing

S3_TIMEOUT = "AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 28, Timeout was reached"


def _old(path: Path, age_s: float = 3600) -> Path:
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


# -- 4: faults of the file vs faults of the infrastructure ----------------------------------------


def test_classifier_tells_infrastructure_from_file_faults():
    import av
    from botocore.exceptions import ClientError, EndpointConnectionError

    def chained(outer, inner):
        try:
            try:
                raise inner
            except BaseException as e:
                raise outer from e
        except BaseException as e:
            return e

    infra = [
        OSError(S3_TIMEOUT),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError("timed out"),
        OSError(errno.ENOSPC, "No space left on device"),
        EndpointConnectionError(endpoint_url="http://s3"),
        ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"),
        chained(RuntimeError("decode failed"), OSError(S3_TIMEOUT)),
    ]
    file_faults = [
        InputRejected("truncated"),
        ValueError("bad frame"),
        OSError(errno.EOPNOTSUPP, "Operation not supported"),
        BrokenPipeError(errno.EPIPE, "Broken pipe"),  # a decoder worker that died on its file
        av.error.InvalidDataError(errno.EINVAL, "Invalid data found when processing input"),
        ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject"),
    ]
    assert [is_infrastructure_fault(e) for e in infra] == [True] * len(infra)
    assert [is_infrastructure_fault(e) for e in file_faults] == [False] * len(file_faults)


def test_an_s3_timeout_during_a_stage_raises_instead_of_quarantining_a_good_video(tmp_path, cut_video, monkeypatch):
    landing = make_landing(tmp_path, [cut_video])
    store = DatasetStore(str(tmp_path / "root"))
    (shard,) = ingest(landing, store, min_age_s=0).new_shards

    def probe_over_a_dead_network(*a, **k):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr("vidgraph.stages.source_videos.probe_video", probe_over_a_dead_network)
    with pytest.raises(ConnectionResetError):
        build_source_videos(store, shard)
    monkeypatch.undo()
    assert build_source_videos(store, shard).table.num_rows == 1

    def frozen_s3(self, path, suffix=""):
        raise OSError(S3_TIMEOUT)

    monkeypatch.setattr(DatasetStore, "local_copy", frozen_s3)
    with pytest.raises(OSError, match="NETWORK_CONNECTION"):
        build_raw_clips(store, shard)
    # Nothing was quarantined: the step's retry policy (or the next run) gets the video.
    assert not store.exists(store.table_path("quarantine", shard, "raw_clips"))


# -- 2: stale staging and unfinished shards ----------------------------------------------------


def test_stale_staging_of_dead_processes_is_removed_and_live_staging_kept(tmp_path):
    store = DatasetStore(str(tmp_path / "root"))
    base = Path(store.base)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    made = {
        "dead": base / f".staging-{_HOST}-{dead.pid}-abc",
        "alive": base / f".staging-{_HOST}-{os.getpid()}-abc",
        "other_host_fresh": base / ".staging-elsewhere-1-abc",
        "unknown_old": base / ".staging-q1w2e3",
        "trash": base / ".trash-1234abcd",
    }
    for p in made.values():
        (p / "media").mkdir(parents=True)
    _old(made["unknown_old"], 3 * 24 * 3600)
    with store.staging_dir() as live:
        assert live.name.startswith(f".staging-{_HOST}-{os.getpid()}-")
        removed = {Path(p).name for p in store.clean_stale_staging()}
        assert live.exists()
    assert removed == {made[k].name for k in ("dead", "unknown_old", "trash")}
    assert made["alive"].exists() and made["other_host_fresh"].exists()


def test_incomplete_shards_are_those_missing_a_table(tmp_path, cut_video):
    landing = make_landing(tmp_path, [cut_video])
    store = DatasetStore(str(tmp_path / "root"))
    (shard,) = ingest(landing, store, min_age_s=0).new_shards
    assert incomplete_shards(store, ["source_videos", "raw_clips"]) == [shard]
    build_source_videos(store, shard)
    assert incomplete_shards(store, ["source_videos"]) == []
    assert incomplete_shards(store, ["source_videos", "raw_clips"]) == [shard]


@functools.cache
def _defs():
    from vidgraph.definitions import build_defs

    return build_defs()


def _sensor(instance, cursor, landing, root):
    from vidgraph.defs.ingest_sensor import landing_sensor
    from vidgraph.defs.resources import DatasetStoreResource, IngestSettings

    ctx = build_sensor_context(
        instance=instance, cursor=cursor, definitions=_defs(),
        resources={"store": DatasetStoreResource(root=str(root)),
                   "ingest_settings": IngestSettings(landing_dir=str(landing), min_file_age_s=0)},
    )
    return landing_sensor(ctx)


def test_sensor_resumes_a_shard_whose_run_failed_but_not_one_in_progress(tmp_path, cut_video):
    from dagster._core.test_utils import create_run_for_test

    landing = make_landing(tmp_path, [cut_video])
    root = tmp_path / "root"
    instance = DagsterInstance.ephemeral()
    first = _sensor(instance, None, landing, root)
    (shard,) = first.dynamic_partitions_requests[0].partition_keys
    instance.add_dynamic_partitions("shards", [shard])
    run = create_run_for_test(instance, job_name="process_shard", tags={"dagster/partition": shard},
                              status=DagsterRunStatus.STARTED)
    assert isinstance(_sensor(instance, first.cursor, landing, root), SkipReason)  # running: leave it
    instance.report_run_failed(instance.get_run_by_id(run.run_id))  # killed, then marked failed
    resumed = _sensor(instance, first.cursor, landing, root)
    assert isinstance(resumed, SensorResult)
    assert [(r.partition_key, r.run_key) for r in resumed.run_requests] == [(shard, f"{shard}:resume-1")]


# -- 7: file names that are not valid UTF-8 -------------------------------------------------------


def test_a_name_that_is_not_utf8_is_ingested_losslessly(tmp_path, cut_video):
    landing = tmp_path / "landing"
    landing.mkdir()
    raw_name = b"caf\xe9 latin-1.mp4"  # Latin-1, not UTF-8
    shutil.copy(cut_video, os.path.join(os.fsencode(landing), raw_name))
    store = DatasetStore(str(tmp_path / "root"))
    result = ingest(landing, store, min_age_s=0)
    (shard,) = result.new_shards
    (row,) = store.read_table("ingest_ledger", shard).to_pylist()
    assert row["relpath"] == "caf\\xe9 latin-1.mp4"  # readable, valid UTF-8
    assert row["landing_path_bytes"] == os.path.join(os.fsencode(landing.resolve()), raw_name)
    assert ledger_path(row).exists()
    assert build_source_videos(store, shard, landing_root=landing).table.num_rows == 1
    again = ingest(landing, store, min_age_s=0)  # the same file, not a "duplicate" of itself
    assert not again.new_shards and not again.duplicates and len(again.already_ingested) == 1
    json.dumps(result.summary())


# -- 8: settle time; a file rewritten after ingest -----------------------------------------------


def test_young_files_wait_and_a_rewritten_file_is_reported_not_ingested_twice(tmp_path, cut_video):
    landing = make_landing(tmp_path, [cut_video])
    video = landing / cut_video.name
    store = DatasetStore(str(tmp_path / "root"))
    waiting = ingest(landing, store, min_age_s=30)  # just copied: still settling
    assert not waiting.new_shards and waiting.summary()["waiting_to_settle"] == [cut_video.name]
    _old(video)
    (shard,) = ingest(landing, store, min_age_s=30).new_shards
    # The same path gets other content (an upload that was still being written, a re-export).
    video.write_bytes(video.read_bytes() + b"\0more")
    _old(video)
    later = ingest(landing, store, min_age_s=30)
    assert not later.new_shards
    (why,) = [r.reason for r in later.rejected]
    assert "content changed after ingest" in why
    assert read_all(store, "ingest_ledger").num_rows == 1
    quarantine = Catalog(store).query("select path, reason from quarantine")
    assert [q["path"] for q in quarantine] == [str(video.resolve())]
    assert ledger_path(store.read_table("ingest_ledger", shard).to_pylist()[0]) == video.resolve()


# -- 11: size before hashing; a 1x1 video --------------------------------------------------------


def test_size_is_checked_before_a_byte_is_hashed(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    big = landing / "sparse.mp4"
    with open(big, "wb") as f:
        f.truncate(20 * 1024**3)  # 20 GB, sparse: reading it would take minutes
    _old(big)
    hashed = []
    real = ingest_mod._hash_regular_file
    monkeypatch.setattr(ingest_mod, "_hash_regular_file", lambda p, *a: hashed.append(p) or real(p, *a))
    scan = scan_landing(landing, max_bytes=InputPolicy().max_bytes)
    assert hashed == [] and not scan.candidates
    (r,) = scan.rejected
    assert r.relpath == "sparse.mp4" and "over the limit" in r.reason


def test_a_1x1_video_is_refused_with_a_reason_in_words(tmp_path):
    import av
    import numpy as np

    path = tmp_path / "one_pixel.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width = s.height = 1
        s.pix_fmt = "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((1, 1, 3), i * 20, np.uint8), format="rgb24")
            for pkt in s.encode(frame.reformat(format="yuv420p")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    with pytest.raises(InputRejected, match="resolution 1x1 is below the minimum 16x16"):
        probe_video(path)


# -- 10: configuration checked at start ----------------------------------------------------------


def test_bad_numbers_in_the_environment_and_profiles_are_refused_at_start(tmp_path, monkeypatch, capsys):
    landing = tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("VIDGRAPH_SHARD_SIZE", "abc")
    # `vidgraph query` does not care about the shard size (its parser used to fail on it).
    assert main(["query", "select 42 as answer", "--root", str(tmp_path / "root"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"answer": 42}]
    assert main(["run", str(landing), "--root", str(tmp_path / "root")]) == 2
    assert "VIDGRAPH_SHARD_SIZE must be a whole number, got 'abc'" in capsys.readouterr().err
    monkeypatch.delenv("VIDGRAPH_SHARD_SIZE")

    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  zero:\n    captions: {dense_segment_s: 0}\n"
        "    vlm: {model: 'tiny:vlm'}\n    llm: {model: 'tiny:llm'}\n    asr: {model: 'tiny:asr'}\n"
    )
    monkeypatch.setenv("VIDGRAPH_PROFILES_FILE", str(profiles))
    assert main(["run", str(landing), "--root", str(tmp_path / "root"), "--profile", "zero"]) == 2
    assert "captions.dense_segment_s must be a number > 0, got 0" in capsys.readouterr().err
    assert not (tmp_path / "root").exists() or not list((tmp_path / "root").glob("*/*"))  # nothing ran


def test_a_profiles_file_without_tiny_works_and_records_its_own_code_version(tmp_path):
    """The README's own example: a file with just `mine`. The definitions are built after the
    profile is read, so frame_captions' code_version is mine's, not tiny's."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  mine:\n    generation: {max_new_tokens: 8}\n"
        "    vlm: {backend: openai, model: my-vlm, base_url: 'http://127.0.0.1:9/v1', revision: mine-1}\n"
        "    llm: {model: my-org/my-llm, revision: abc123}\n    asr: {model: 'tiny:asr'}\n"
    )
    (tmp_path / "landing").mkdir()
    script = r"""
import json, sys
from vidgraph.cli import main
landing, root = sys.argv[1], sys.argv[2]
rc = main(["run", landing, "--root", root, "--profile", "mine"])
from dagster import AssetKey
from vidgraph.defs.frame_captions import frame_captions  # as the run built it
from vidgraph.defs.versions import frame_captions_version
got = frame_captions.code_versions_by_key[AssetKey("frame_captions")]
print(json.dumps({"got": got, "want": frame_captions_version("mine"), "rc": rc}))
"""
    env = {**os.environ, "VIDGRAPH_PROFILES_FILE": str(profiles)}
    env.pop("VIDGRAPH_PROFILE", None)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "landing"), str(tmp_path / "root")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["got"] == res["want"] and res["rc"] == 0
    from vidgraph.defs.versions import frame_captions_version

    assert res["got"] != frame_captions_version("tiny")
