"""The dataset root on S3: ingest, clips and a catalog query against a real moto_server."""

import boto3
from dagster import DagsterInstance, materialize

from vidgraph.defs.raw_clips import clip_files_decode, clips_cover_each_video, every_video_accounted_for, raw_clips
from vidgraph.defs.resources import ClipFileSettings, build_resources
from vidgraph.defs.source_videos import every_input_accounted_for, source_videos
from vidgraph.ingest import ingest
from vidgraph.storage.catalog import Catalog
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.conftest import CUT_SPEC, make_landing


def test_store_writes_reads_and_lists_on_s3(s3_env):
    import pyarrow as pa

    store = DatasetStore(f"s3://{s3_env}/data")
    store.write_table("demo", "shard-1", pa.table({"x": [1, 2]}))
    assert store.read_table("demo", "shard-1").column("x").to_pylist() == [1, 2]
    assert store.list_tables("demo") == [f"{s3_env}/data/demo/shard-1/demo.parquet"]


def test_whole_shard_on_s3(tmp_path, s3_env, cut_video, moto_endpoint):
    landing = make_landing(tmp_path, [cut_video])
    root = f"s3://{s3_env}/vidgraph"
    store = DatasetStore(root)
    (shard,) = ingest(landing, store).new_shards
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    assets = [source_videos, raw_clips, every_input_accounted_for, every_video_accounted_for, clips_cover_each_video, clip_files_decode]
    # clip_files: all, so the clip files themselves go to (and are checked on) S3.
    resources = {**build_resources(root=root, landing=str(landing)), "clip_file_settings": ClipFileSettings(clip_files="all")}
    res = materialize(assets, partition_key=shard, instance=instance, resources=resources)
    assert res.success and all(c.passed for c in res.get_asset_check_evaluations())

    rows = Catalog(store).query("select clip_id, start_frame, end_frame, path from raw_clips order by clip_index")
    assert [(r["start_frame"], r["end_frame"]) for r in rows] == [(0, 48), (48, 84), (84, CUT_SPEC.n_frames)]
    # The objects really are in the bucket, under ROOT/<asset>/<shard>/.
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_env, Prefix="vidgraph/raw_clips/")["Contents"]}
    assert f"vidgraph/raw_clips/{shard}/raw_clips.parquet" in keys
    assert {f"vidgraph/{r['path']}" for r in rows} <= keys
