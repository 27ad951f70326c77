"""issue 15, items 2-4: the catalog in O(assets), its compacted per-asset files, the ledger read
through them, `vidgraph stats` and run summaries that count only the shards a run ran.

Small synthetic roots in the project's formats (tables written through the store, as the stages
write them); answers are compared with an independent per-shard reader (every table's footer
unified, as the catalog did before compaction existed)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from vidgraph.ingest import _ledger_paths, incomplete_shards, ingested_hashes, ledger_shards
from vidgraph.storage.catalog import (
    COMPACTED_DIR,
    UNION_VIEWS,
    Catalog,
    asset_state,
    compact,
    compact_all,
    read_all,
)
from vidgraph.storage.schemas import LEDGER_SCHEMA, QUARANTINE_SCHEMA, RAW_CLIPS_SCHEMA, SOURCE_VIDEOS_SCHEMA
from vidgraph.storage.store import DatasetStore


# -- a synthetic root --------------------------------------------------------------------------

def _shard(i: int) -> str:
    return f"shard-{i:04d}"


def publish_clips(store: DatasetStore, shard: str, n: int, tag: str = "v1", old_schema: bool = False) -> None:
    """raw_clips for one shard, a frame_signals side table and a media file, published as a stage does."""
    rows = [{"clip_id": f"{shard}-c{k}-{tag}", "video_id": f"{shard}-v", "shard": shard, "clip_index": k,
             "start_frame": 10 * k, "end_frame": 10 * k + 10, "n_frames": 10, "duration_s": 0.4, "fps": 25.0,
             "path": f"raw_clips/{shard}/media/{k}.mp4", "detector": tag, "audio_note": "" if k else None}
            for k in range(n)]
    table = pa.Table.from_pylist(rows, schema=RAW_CLIPS_SCHEMA)
    if old_schema:  # written by older code, before these columns existed
        table = table.drop_columns(["analysis_params", "audio_note"])
    with store.staging_dir() as st:
        pq.write_table(table, st / "raw_clips.parquet")
        # an all-null column in one shard must not decide the type for the others
        score = pa.array([None] * 3, pa.null()) if old_schema else pa.array([0.5, 1.5, 2.5])
        pq.write_table(pa.table({"video_id": [f"{shard}-v"] * 3, "frame_index": [0, 1, 2], "score": score}),
                       st / "frame_signals.parquet")
        (st / "media").mkdir()
        (st / "media" / "0.mp4").write_bytes(b"not a video")
        store.publish_shard("raw_clips", shard, st)


def write_ledger(store: DatasetStore, shard: str, n: int = 2) -> None:
    rows = [{"shard": shard, "sha256": f"{shard}-h{k}", "landing_path": f"/landing/{shard}/{k}.mp4",
             "relpath": f"{shard}/{k}.mp4", "size_bytes": 100 + k, "ingested_at": f"2026-01-01T00:00:{k:02d}Z",
             "landing_path_bytes": f"/landing/{shard}/{k}.mp4".encode()} for k in range(n)]
    store.write_table("ingest_ledger", shard, pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA))


def write_quarantine(store: DatasetStore, shard: str, stage: str, reasons: list[str]) -> None:
    rows = [{"path": f"/landing/{shard}/{k}.mp4", "sha256": None, "reason": r, "stage": stage, "shard": shard,
             "video_id": None} for k, r in enumerate(reasons)]
    store.write_table("quarantine", shard, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), name=stage)


def build_root(root: Path, n: int = 6) -> DatasetStore:
    store = DatasetStore(str(root))
    for i in range(n):
        s = _shard(i)
        write_ledger(store, s)
        publish_clips(store, s, 2 + i % 3, old_schema=(i == 0))
        write_quarantine(store, s, "raw_clips", [f"bad {i}"] if i % 2 else [])
        if i == 4:
            write_quarantine(store, s, "source_videos", ["unreadable"])
        if i < n - 1:  # the last shard never got source_videos: it is incomplete
            store.write_table("source_videos", s, pa.Table.from_pylist(
                [{"video_id": f"{s}-v", "shard": s, "sha256": f"{s}-h0"}], schema=SOURCE_VIDEOS_SCHEMA))
    return store


def per_shard(root: Path, sql: str) -> list[str]:
    """The answer read table by table (every footer unified), independent of the catalog."""
    views: dict[str, list[str]] = defaultdict(list)
    for asset in Path(root).iterdir():
        if asset.name.startswith((".", "_")) or not asset.is_dir():
            continue
        for p in asset.glob("*/*.parquet"):
            views[asset.name if asset.name in UNION_VIEWS or p.stem == asset.name else p.stem].append(str(p))
    con = duckdb.connect()
    for view, paths in views.items():
        schema = pa.unify_schemas([pq.read_schema(p) for p in paths], promote_options="permissive")
        con.register(view, pads.dataset(sorted(paths), schema=schema, format="parquet"))
    return _rows(con.execute(sql))


def _rows(cur) -> list[str]:
    cols = [d[0] for d in cur.description]
    return sorted(json.dumps(dict(zip(cols, r)), default=str, sort_keys=True) for r in cur.fetchall())


QUERIES = [
    "select count(*) n from raw_clips",
    "select * from raw_clips",
    "select clip_id, detector, audio_note, analysis_params from raw_clips",
    "select video_id, sum(score) s, count(*) n from frame_signals group by 1",
    "select c.clip_id, l.sha256 from raw_clips c join ingest_ledger l using (shard) join frame_signals f using (video_id)",
    "select path, reason, stage from quarantine",
    "select shard, count(*) n from ingest_ledger group by 1",
]


def _catalog_rows(store: DatasetStore, sql: str) -> list[str]:
    cat = Catalog(store, compact_after=0)
    try:
        return _rows(cat._execute(sql))
    finally:
        cat.close()


def _same_answers(store: DatasetStore, root: Path) -> None:
    for sql in QUERIES:
        assert _catalog_rows(store, sql) == per_shard(root, sql), sql


# -- compacted vs per-shard --------------------------------------------------------------------

def test_compacted_answers_equal_per_shard_answers_with_a_rerun_shard(tmp_path):
    root = tmp_path / "root"
    store = build_root(root)
    _same_answers(store, root)  # nothing compacted yet: every table is in the tail
    out = compact_all(store)
    assert out["raw_clips"]["shards"] == 6 and out["raw_clips"]["tail"] == 0
    manifest = json.loads((root / COMPACTED_DIR / "raw_clips" / "manifest.json").read_text())
    assert set(manifest["views"]) == {"raw_clips", "frame_signals"} and len(manifest["shards"]) == 6
    (seg,) = manifest["views"]["raw_clips"]["segments"]
    assert (root / COMPACTED_DIR / "raw_clips" / seg["file"]).is_file() and seg["rows"] == 2 + 3 + 4 + 2 + 3 + 4
    # which shard has which table, from the manifest alone
    quarantine = asset_state(store, "quarantine", 0, stamps=False)
    assert not quarantine.tail and quarantine.shards_with("source_videos") == {_shard(4)}
    assert quarantine.shards_with("raw_clips") == {_shard(i) for i in range(6)} and not quarantine.shards_with("x")
    _same_answers(store, root)

    # After compaction: shard 2 re-run with other rows, shard 3 removed, shard 6 new, and the
    # quarantine of shard 1 rewritten in place (write_table into the same folder).
    publish_clips(store, _shard(2), 1, tag="v2")
    store.delete_tree(store.shard_dir("raw_clips", _shard(3)))
    publish_clips(store, _shard(6), 2)
    write_ledger(store, _shard(6))
    write_quarantine(store, _shard(1), "raw_clips", ["bad 1, again", "and another"])
    state = asset_state(store, "raw_clips", compact_after=0)
    assert state.excluded == [_shard(2), _shard(3)] and set(state.tail) == {_shard(2), _shard(6)}
    assert asset_state(store, "quarantine", compact_after=0).excluded == [_shard(1)]
    _same_answers(store, root)
    rows = _catalog_rows(store, "select clip_id from raw_clips where shard = 'shard-0002'")
    assert rows == [json.dumps({"clip_id": "shard-0002-c0-v2"})]  # the re-run wins; no stale row

    # A second compaction adds a segment (stale rows excluded from the first); a full one merges.
    compact(store, "raw_clips")
    manifest = json.loads((root / COMPACTED_DIR / "raw_clips" / "manifest.json").read_text())
    first, second = manifest["views"]["raw_clips"]["segments"]
    assert first["exclude"] == [_shard(2), _shard(3)] and second["rows"] == 3
    assert not asset_state(store, "raw_clips", compact_after=0).tail
    _same_answers(store, root)
    compact_all(store, full=True)
    manifest = json.loads((root / COMPACTED_DIR / "raw_clips" / "manifest.json").read_text())
    (seg,) = manifest["views"]["raw_clips"]["segments"]
    assert seg["exclude"] == [] and seg["rows"] == 2 + 3 + 1 + 3 + 4 + 2
    _same_answers(store, root)
    # An asset's own table read whole, and by columns with a filter, the same way.
    assert read_all(store, "raw_clips").num_rows == seg["rows"]
    t = read_all(store, "raw_clips", columns=["clip_id"], filter=pa.compute.field("shard") == _shard(2))
    assert t.column_names == ["clip_id"] and t.column("clip_id").to_pylist() == ["shard-0002-c0-v2"]


def test_a_query_registers_only_the_views_it_names_and_compacts_past_the_threshold(tmp_path):
    root = tmp_path / "root"
    store = build_root(root, n=5)
    cat = Catalog(store, compact_after=3)
    assert cat.query("select count(*) n from raw_clips")[0]["n"] == 2 + 3 + 4 + 2 + 3
    views = {r[0] for r in cat.con.execute("select view_name from duckdb_views() where not internal").fetchall()}
    assert {v for v in views if not v.startswith("__vg_")} == {"raw_clips"}  # __vg_…: its sources
    # the tail (5 shards) was over the threshold: raw_clips is compacted, nothing else was touched
    assert (root / COMPACTED_DIR / "raw_clips" / "manifest.json").is_file()
    assert not (root / COMPACTED_DIR / "ingest_ledger").exists()
    assert cat.query("select count(*) n from gold_set")[0]["n"] == 0  # a known view with no table yet
    # a name DuckDB cannot place (a side table) is found through its asset
    assert cat.query("select count(*) n from frame_signals")[0]["n"] == 15
    cat.close()
    # below the threshold nothing is written
    store2 = build_root(tmp_path / "root2", n=2)
    Catalog(store2, compact_after=3).query("select count(*) n from raw_clips")
    assert not (tmp_path / "root2" / COMPACTED_DIR).exists()


def test_ledger_and_quarantine_lookups_answer_the_same_compacted_or_not(tmp_path):
    root = tmp_path / "root"
    store = build_root(root)
    plain = tmp_path / "plain"
    shutil.copytree(root, plain)
    compact_all(store)
    write_ledger(store, _shard(6))  # one shard in the tail, after compaction
    write_ledger(DatasetStore(str(plain)), _shard(6))
    for st in (store, DatasetStore(str(plain))):
        assert ledger_shards(st) == [_shard(i) for i in range(7)]
        assert ingested_hashes(st) == {f"{_shard(i)}-h{k}" for i in range(7) for k in range(2)}
        # shard 5 lacks source_videos; shard 6 has nothing but its ledger
        assert incomplete_shards(st, ["source_videos", "raw_clips"]) == [_shard(5), _shard(6)]
        assert incomplete_shards(st, ["raw_clips"]) == [_shard(6)]
    assert _ledger_paths(store) == _ledger_paths(DatasetStore(str(plain)))
    known, by_path = _ledger_paths(store)
    assert known[f"{_shard(3)}-h1"] == ({f"/landing/{_shard(3)}/1.mp4"}, f"{_shard(3)}/1.mp4")
    assert by_path[f"/landing/{_shard(6)}/0.mp4"] == f"{_shard(6)}-h0"
    assert (root / COMPACTED_DIR / "ingest_ledger" / "manifest.json").is_file()


def test_stats_counts_the_dataset_and_the_run_summary_only_its_shards(tmp_path, capsys):
    from vidgraph.cli import _totals, main

    root = tmp_path / "root"
    store = build_root(root, n=3)
    assert main(["stats", "--root", str(root), "--json", "--compact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shards"] == 3 and out["rows"]["raw_clips"] == 2 + 3 + 4 and out["rows"]["frame_signals"] == 9
    assert out["rows"]["ingest_ledger"] == 6 and out["quarantine"] == {"raw_clips": 1}
    assert out["catalog"]["raw_clips"] == {"compacted_shards": 3, "tail_shards": 0,
                                           "generation": out["compacted"]["raw_clips"]["generation"]}
    # A run's summary: rows of the shards it ran, from their own tables.
    assert _totals(store, [_shard(1)]) == {"frame_signals": 3, "ingest_ledger": 2, "quarantine": 1,
                                           "raw_clips": 3, "source_videos": 1}
    assert _totals(store, []) == {}


# -- S3: requests of an open do not grow with the shards ----------------------------------------

@pytest.fixture(scope="module")
def logged_moto(tmp_path_factory):
    """A moto_server of its own whose access log (one line per request) the test reads."""
    from vidgraph_tests.conftest import start_moto_server

    log = tmp_path_factory.mktemp("moto") / "access.log"
    proc, url = start_moto_server(log)
    yield url, log
    proc.terminate()
    proc.wait(timeout=10)


_REQUEST = re.compile(rb'"(GET|PUT|HEAD|POST|DELETE) ')


def _requests(log: Path) -> int:
    time.sleep(0.2)  # the server writes its line after answering
    return len(_REQUEST.findall(log.read_bytes()))


def test_s3_catalog_open_is_o_assets_in_requests_once_compacted(logged_moto, monkeypatch):
    import boto3

    url, log = logged_moto
    for k, v in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    counts = {}
    for n in (3, 12):
        bucket = f"scale-{n}"
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=bucket)
        store = DatasetStore(f"s3://{bucket}/root")
        for i in range(n):
            write_ledger(store, _shard(i))
            publish_clips(store, _shard(i), 2)
        before = _requests(log)
        assert Catalog(store, compact_after=0).query("select count(*) n from raw_clips")[0]["n"] == 2 * n
        uncompacted = _requests(log) - before
        compact_all(store)
        publish_clips(store, _shard(1), 1, tag="v2")  # a re-run after compaction wins on S3 too
        compact_all(store)
        start = _requests(log)
        cat = Catalog(store, compact_after=0)
        assert cat.query("select count(*) n, count(*) filter (clip_id like '%-v2') v2 from raw_clips")[0] == {"n": 2 * n - 1, "v2": 1}
        cat.close()
        opened = _requests(log)
        assert ledger_shards(store) == [_shard(i) for i in range(n)]
        assert len(ingested_hashes(store)) == 2 * n
        ledger = _requests(log)
        counts[n] = (uncompacted, opened - start, ledger - opened)
    print("requests (uncompacted open, compacted open, ledger):", counts)
    (u3, q3, l3), (u12, q12, l12) = counts[3], counts[12]
    assert u12 > u3  # per-shard reading grows with the shards ...
    assert q12 == q3 and l12 == l3, counts  # ... the compacted catalog and ledger do not
    assert q12 < 12 and l12 < 12, counts


def test_an_unreadable_manifest_is_ignored_not_fatal(tmp_path, capsys):
    """A manifest cut short (or overwritten) is a cache lost: the tables are read directly."""
    from vidgraph.storage.catalog import COMPACTED_DIR, MANIFEST, Catalog, compact_all

    store = DatasetStore(str(tmp_path / "root"))
    for i in range(3):
        store.write_table("source_videos", f"shard-{i}", pa.table({"video_id": [f"v{i}"], "shard": [f"shard-{i}"]}))
    compact_all(store)
    manifest = tmp_path / "root" / COMPACTED_DIR / "source_videos" / MANIFEST
    assert manifest.is_file()
    manifest.write_bytes(b"")
    cat = Catalog(store)
    assert cat.query("select count(*) as n from source_videos")[0]["n"] == 3
    assert "not a readable manifest" in capsys.readouterr().err
