"""The landing sensor: adds shard partitions, requests runs, keeps a cursor, heals a lost tick."""

import shutil

from dagster import DagsterInstance, DagsterRunStatus, SkipReason, build_sensor_context
from dagster._core.test_utils import create_run_for_test

from vidgraph.defs.ingest_sensor import landing_sensor
from vidgraph.defs.resources import DatasetStoreResource, IngestSettings
from vidgraph.ingest import ingest
from vidgraph.storage.store import DatasetStore


def _evaluate(instance, cursor, landing, root):
    ctx = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"store": DatasetStoreResource(root=str(root)), "ingest_settings": IngestSettings(landing_dir=str(landing), shard_size=2, min_file_age_s=0)},
    )
    return landing_sensor(ctx)


def test_sensor_adds_shards_and_requests_runs(tmp_path, cut_video):
    landing, root = tmp_path / "landing", tmp_path / "root"
    landing.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(cut_video, landing / name)  # identical content: one video
    (landing / "c.mp4").write_bytes(cut_video.read_bytes() + b"\0")  # different bytes
    instance = DagsterInstance.ephemeral()

    result = _evaluate(instance, None, landing, root)
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == "shards" and len(add.partition_keys) == 1
    assert [r.partition_key for r in result.run_requests] == list(add.partition_keys)
    ledger = DatasetStore(str(root)).read_table("ingest_ledger", add.partition_keys[0])
    assert ledger.num_rows == 2  # a.mp4 and c.mp4; b.mp4 is a renamed copy of a.mp4

    # Nothing new: the next tick asks again only for the shard's first run (the same run key,
    # which the daemon de-duplicates: a requested run it has not launched yet is not lost) ...
    instance.add_dynamic_partitions("shards", list(add.partition_keys))
    again = _evaluate(instance, result.cursor, landing, root)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]
    assert not again.dynamic_partitions_requests
    # ... and skips once that run is in progress.
    create_run_for_test(instance, job_name="process_shard", tags={"dagster/partition": add.partition_keys[0]},
                        status=DagsterRunStatus.STARTED)
    assert isinstance(_evaluate(instance, result.cursor, landing, root), SkipReason)

    # A new file: exactly one new shard with just that file.
    (landing / "d.mp4").write_bytes(cut_video.read_bytes() + b"\1")
    third = _evaluate(instance, result.cursor, landing, root)
    (add3,) = third.dynamic_partitions_requests
    assert len(add3.partition_keys) == 1 and add3.partition_keys[0] not in add.partition_keys


def test_sensor_re_adds_ledger_shards_missing_from_the_instance(tmp_path, cut_video):
    landing, root = tmp_path / "landing", tmp_path / "root"
    landing.mkdir()
    shutil.copy(cut_video, landing / "a.mp4")
    # A tick that wrote the ledger but died before the partition was added.
    (shard,) = ingest(landing, DatasetStore(str(root))).new_shards
    instance = DagsterInstance.ephemeral()
    result = _evaluate(instance, None, landing, root)
    assert result.dynamic_partitions_requests[0].partition_keys == [shard]
    assert [r.partition_key for r in result.run_requests] == [shard]
