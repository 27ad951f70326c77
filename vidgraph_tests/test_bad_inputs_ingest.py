"""Hostile and broken inputs at the landing zone: what the ingest scanner does with each corpus entry.

Tested against ``vidgraph.ingest.scan_landing(landing) -> ScanResult`` with
``candidates: list[Candidate(path, relpath, size, sha256)]``, ``rejected: list[Rejected(relpath,
reason)]`` and ``duplicates: list[Duplicate(relpath, sha256, same_as)]``. The scan runs in a child
process under a time limit, so a scanner that opened the FIFO (and blocked) fails instead of
hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from vidgraph.ingest import duplicate_reason, ingest, scan_landing  # noqa: E402
from vidgraph.media.probe import sha256_file  # noqa: E402
from vidgraph.stages.source_videos import build_source_videos, video_id_for  # noqa: E402
from vidgraph.storage.catalog import Catalog  # noqa: E402
from vidgraph.storage.store import DatasetStore  # noqa: E402
from vidgraph_tests.bad_inputs import BY_NAME, CORPUS, OUTSIDE_VIDEO, build_corpus  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SCAN_TIMEOUT_S = 60
_SCAN = """
import json, sys
from vidgraph.ingest import scan_landing
r = scan_landing(sys.argv[1])
print(json.dumps({
    "candidates": [{"path": str(c.path), "relpath": c.relpath, "size": c.size, "sha256": c.sha256} for c in r.candidates],
    "rejected": [{"relpath": x.relpath, "reason": x.reason} for x in r.rejected],
    "duplicates": [{"relpath": d.relpath, "sha256": d.sha256, "same_as": d.same_as} for d in r.duplicates],
}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs_ingest")
    build_corpus(root / "landing", root / "outside")
    return root / "landing", root / "outside"


@pytest.fixture(scope="module")
def scan(corpus):
    landing, _ = corpus
    try:
        run = subprocess.run(
            [sys.executable, "-c", _SCAN, str(landing)], capture_output=True, text=True, timeout=SCAN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scan_landing did not finish in {SCAN_TIMEOUT_S}s: it blocks on the FIFO or a symlink loop")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_scan_finishes_with_a_fifo_and_a_symlink_loop_in_the_zone(scan):
    # The fixture ran the scan under a time limit; here, both were reported rather than opened.
    reasons = {r["relpath"]: r["reason"] for r in scan["rejected"]}
    assert reasons[BY_NAME["fifo"].relpath] == "not a regular file (FIFO)"
    assert reasons[BY_NAME["symlink_loop"].relpath] == "symbolic link cannot be resolved (a loop)"
    assert reasons[BY_NAME["symlink_outside"].relpath] == "symbolic link leaves the landing zone"


@pytest.mark.parametrize("entry", CORPUS, ids=[b.name for b in CORPUS])
def test_scan_outcome(corpus, scan, entry):
    landing, _ = corpus
    candidates = {c["relpath"]: c for c in scan["candidates"]}
    rejected = {r["relpath"]: r["reason"] for r in scan["rejected"]}
    duplicates = {d["relpath"]: d for d in scan["duplicates"]}
    rel = entry.relpath
    if entry.stage == "scan" and entry.expected == "quarantined":
        assert rel in rejected, f"{rel!r} not rejected by the scan"
        assert entry.reason_contains in rejected[rel].lower(), rejected[rel]
        assert rel not in candidates and rel not in duplicates
    elif entry.expected == "skipped":
        everything = [*candidates, *rejected, *duplicates]
        assert rel not in everything, f"{rel!r} became an input"
        if entry.name == "symlink_folder":  # not followed: nothing from the outside folder shows up
            assert not [r for r in everything if r.startswith(rel + "/")]
    elif entry.expected == "duplicate":
        assert rel in duplicates and rel not in candidates and rel not in rejected
        original = BY_NAME["duplicate_a"].relpath
        assert duplicates[rel]["same_as"] == original
        assert duplicates[rel]["sha256"] == candidates[original]["sha256"] == sha256_file(landing / rel)
        assert entry.reason_contains in duplicate_reason(duplicates[rel]["same_as"]).lower()
    else:  # processed, or refused later by the probe/decode: the scan hands it on as it is
        assert entry.stage != "scan"
        assert rel in candidates, f"{rel!r} missing from the candidates"
        c = candidates[rel]
        assert Path(c["path"]) == (landing / rel).resolve()
        assert c["size"] == os.lstat(landing / rel).st_size
        assert c["sha256"] == sha256_file(landing / rel)


def test_scan_reports_exactly_the_corpus(scan):
    reported = [c["relpath"] for c in scan["candidates"]] + [r["relpath"] for r in scan["rejected"]]
    reported += [d["relpath"] for d in scan["duplicates"]]
    expected = [b.relpath for b in CORPUS if b.expected != "skipped"]
    assert sorted(reported) == sorted(expected)
    assert len(reported) == len(set(reported))  # each input once


def test_every_candidate_stays_inside_the_landing_zone(corpus, scan):
    landing, outside = corpus
    root = landing.resolve()
    for c in scan["candidates"]:
        path = Path(c["path"])
        assert path.is_absolute() and path.resolve() == path
        assert path.is_relative_to(root), path
        assert not path.resolve().is_relative_to(outside.resolve())
        # The relpath names the file under the zone and has no '..' or absolute component.
        parts = PurePosixPath(c["relpath"]).parts
        assert ".." not in parts and not PurePosixPath(c["relpath"]).is_absolute()
        assert (root / c["relpath"]).resolve() == path
    assert OUTSIDE_VIDEO not in {Path(c["path"]).name for c in scan["candidates"]}


def test_identical_content_is_ingested_once(corpus, scan, tmp_path):
    """Through the ledger: the copy is a duplicate, and a second ingest adds nothing."""
    from vidgraph.ingest import ingested_hashes

    landing, _ = corpus
    store = DatasetStore(str(tmp_path / "root"))
    first = ingest(landing, store)
    dup = BY_NAME["duplicate_b"].relpath
    assert [(d.relpath, d.same_as) for d in first.duplicates] == [(dup, BY_NAME["duplicate_a"].relpath)]
    ingested = [c for group in first.new_shards.values() for c in group]
    assert len({c.sha256 for c in ingested}) == len(ingested) == len(scan["candidates"])
    assert BY_NAME["duplicate_b"].relpath not in {c.relpath for c in ingested}
    assert sha256_file(landing / BY_NAME["duplicate_a"].relpath) in ingested_hashes(store)
    again = ingest(landing, store)
    assert again.new_shards == {}
    assert len(again.already_ingested) == len(ingested)
    assert [(d.relpath, d.same_as) for d in again.duplicates] == [(dup, BY_NAME["duplicate_a"].relpath)]
    # The duplicate is in the quarantine once, pointing at the video that was kept.
    rows = [r for r in Catalog(store).query("select * from quarantine") if r["path"] == str(landing.resolve() / dup)]
    assert len(rows) == 1, rows
    assert rows[0]["stage"] == "ingest" and rows[0]["sha256"] == sha256_file(landing / dup)
    assert rows[0]["reason"] == duplicate_reason(BY_NAME["duplicate_a"].relpath)
    assert rows[0]["video_id"] == video_id_for(rows[0]["sha256"])


# --- Later scans, the dataset root, and ledger entries that changed after ingest ---------------


def _small_video(path: Path, seed: int) -> Path:
    from vidgraph_tests.bad_inputs import _video

    return _video(path, seed=seed, seconds=0.5, audio=False)


def test_a_copy_landing_later_is_a_duplicate_of_the_ingested_file(tmp_path):
    landing = tmp_path / "landing"
    original = _small_video(landing / "a.mp4", 300)
    store = DatasetStore(str(tmp_path / "root"))
    first = ingest(landing, store)
    assert len(first.new_shards) == 1 and not first.duplicates
    (landing / "later copy.mp4").write_bytes(original.read_bytes())
    second = ingest(landing, store)
    assert second.new_shards == {} and [c.relpath for c in second.already_ingested] == ["a.mp4"]
    assert [(d.relpath, d.same_as) for d in second.duplicates] == [("later copy.mp4", "a.mp4")]
    ingest(landing, store)  # a third scan records nothing twice
    rows = Catalog(store).query("select path, reason, stage from quarantine")
    assert rows == [{"path": str(landing.resolve() / "later copy.mp4"), "reason": duplicate_reason("a.mp4"), "stage": "ingest"}]


def test_a_dataset_root_inside_the_landing_zone_is_never_ingested(tmp_path):
    landing = tmp_path / "landing"
    _small_video(landing / "a.mp4", 301)
    store = DatasetStore(str(landing / "vidgraph-data"))
    (shard,) = ingest(landing, store).new_shards
    build_source_videos(store, shard, landing_root=landing)  # copies a.mp4 into the root
    assert list((landing / "vidgraph-data").rglob("*.mp4")), "the root holds a copy of the video"
    (landing / "vidgraph-data" / "stray.mp4").write_bytes(b"\0" * 10)
    again = ingest(landing, store)
    assert again.new_shards == {} and not again.duplicates and not again.rejected
    # The sensor passes its own scan (made without the exclusion): ingest drops the root too.
    again = ingest(landing, store, scan=scan_landing(landing))
    assert again.new_shards == {} and not again.duplicates and not again.rejected
    assert Catalog(store).query("select count(*) n from ingest_ledger")[0]["n"] == 1


@pytest.mark.parametrize("change", ["outside", "symlink", "fifo", "swapped"])
def test_ledger_entries_that_changed_after_ingest_are_quarantined(tmp_path, change, monkeypatch):
    import pyarrow as pa

    import vidgraph.stages.source_videos as sv

    landing, outside = tmp_path / "landing", tmp_path / "outside"
    video = _small_video(landing / "a.mp4", 302)
    other = _small_video(outside / "b.mp4", 303)
    store = DatasetStore(str(tmp_path / "root"))
    (shard,) = ingest(landing, store).new_shards
    want = {
        "outside": "path is outside the landing zone",
        "symlink": "became a symbolic link since ingest",
        "fifo": "is a fifo, not a regular file",
        "swapped": "content changed since ingest (sha256 differs)",
    }[change]
    if change == "outside":  # a ledger row whose path leads out of the zone through '..'
        ledger = store.read_table("ingest_ledger", shard).to_pylist()
        ledger[0]["landing_path"] = str(landing / ".." / "outside" / "b.mp4")
        ledger[0]["landing_path_bytes"] = os.fsencode(ledger[0]["landing_path"])  # the path actually opened
        store.write_table("ingest_ledger", shard, pa.Table.from_pylist(ledger, schema=store.read_table("ingest_ledger", shard).schema))
    elif change == "symlink":  # to a file inside the zone (one outside is "outside the landing zone")
        inside = landing / "sub" / "c.mp4"
        inside.parent.mkdir()
        inside.write_bytes(video.read_bytes())
        video.unlink()
        video.symlink_to(inside)
    elif change == "fifo":
        video.unlink()
        os.mkfifo(video)
    else:  # the probe sees the ingested file, the copy another one
        real_probe = sv.probe_video

        def probe_then_swap(path, policy):
            probe = real_probe(path, policy)
            Path(path).write_bytes(other.read_bytes())
            return probe

        monkeypatch.setattr(sv, "probe_video", probe_then_swap)
    result = build_source_videos(store, shard, landing_root=landing)
    assert result.table.num_rows == 0
    (row,) = result.quarantine.to_pylist()
    assert row["reason"].lower() == want and row["stage"] == "source_videos"
    assert not list((tmp_path / "root" / "source_videos" / shard).rglob("*.mp4"))
