"""bench/scale.py's synthesizer: N copies of a real shard, with a real ledger of real hashes."""

import hashlib
import importlib.util
import sys
from pathlib import Path

from dagster import DagsterInstance, materialize

from vidgraph.defs.raw_clips import raw_clips
from vidgraph.defs.resources import build_resources
from vidgraph.defs.source_videos import source_videos
from vidgraph.ingest import ingest
from vidgraph.storage.catalog import Catalog
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.conftest import make_landing

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scale_data.py"


def _scale_data():
    spec = importlib.util.spec_from_file_location("scale_data", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["scale_data"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _counts(store: DatasetStore) -> dict[str, int]:
    cat = Catalog(store)
    try:
        return {v: cat.query(f'select count(*) as n from "{v}"')[0]["n"] for v in sorted(cat.views)}
    finally:
        cat.close()


def test_synthetic_shards_copy_a_real_shard_with_real_hashes(tmp_path, cut_video):
    sd = _scale_data()
    # The template: one real shard, ingested and run through the first two assets by the real code.
    landing = make_landing(tmp_path, [cut_video])
    (landing / "b.mp4").write_bytes(cut_video.read_bytes() + b"\0")  # a second video
    template = tmp_path / "template"
    (shard,) = ingest(landing, DatasetStore(str(template))).new_shards
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    res = materialize([source_videos, raw_clips], partition_key=shard, instance=instance,
                      resources=build_resources(root=str(template), landing=str(landing)))
    assert res.success
    want = _counts(DatasetStore(str(template)))
    assert want["ingest_ledger"] == 2 and want["raw_clips"] > 2

    n = 5
    out = tmp_path / "synth"
    manifest = sd.synthesize(template, out, n, dagster_home=False)
    store = DatasetStore(str(out / "root"))
    assert _counts(store) == {view: n * rows for view, rows in want.items()}
    assert manifest["landing_files"] == 2 * n

    cat = Catalog(store)
    try:
        # Ids are rewritten per shard: every row is distinct, and its media path exists.
        assert cat.query("select count(distinct clip_id) as n from raw_clips")[0]["n"] == n * want["raw_clips"]
        assert cat.query("select count(distinct shard) as n from source_videos")[0]["n"] == n
        keyframes = [r["path"] for r in cat.query("select path from video_keyframes")]
        assert keyframes and all((out / "root" / p).is_file() for p in keyframes)
        assert not any(shard in p for p in keyframes)  # the template's shard name was rewritten
        # The ledger holds the landing files' real sha256 and the shard names ingest derives.
        ledger = cat.query("select shard, sha256, landing_path from ingest_ledger")
        by_shard = cat.query("select shard, list(sha256) as hashes from ingest_ledger group by shard")
    finally:
        cat.close()
    files = sorted(p for p in (out / "landing").rglob("*") if p.is_file())
    assert len(files) == 2 * n
    assert sorted((r["landing_path"], r["sha256"]) for r in ledger) == sorted(
        (str(p), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files)
    assert all(r["shard"] == sd.shard_name(r["hashes"]) for r in by_shard)
    # So the real ingest sees every landing file as already ingested.
    again = ingest(out / "landing", store)
    assert not again.new_shards and len(again.already_ingested) == 2 * n and not again.duplicates
