"""The whole bad-input corpus through ``vidgraph run``, as CI runs it: nothing crashes the run,
every input ends up exactly once in ``source_videos`` (with clips) or in the quarantine with the
outcome vidgraph_tests/bad_inputs.py states, and a re-run gives the same result.

The run is a subprocess (``python -m vidgraph.cli run LANDING --root ROOT``), watched the whole
time: the HLS and concat lists in the corpus point at a FIFO outside the landing zone and at a
TCP port this test listens on, and neither may be opened by anything the run does. Results are
read back through ``vidgraph query --json``, the way a user reads them.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import pytest

from vidgraph_tests.bad_inputs import CORPUS, OUTSIDE_FIFO, QUARANTINE_STAGE, BY_NAME, build_corpus, run_watching

pytestmark = pytest.mark.timeout(900)

RUN_TIMEOUT_S = 600
SHARD_SIZE = 8


def _env() -> dict:
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance, as in the other tests
    env.pop("VIDGRAPH_ROOT", None)
    env.pop("VIDGRAPH_LANDING", None)
    # Every clip of the corpus gets a file, so the clip-file check sees each input's pictures and sound.
    env["VIDGRAPH_CLIP_FILES"] = "all"
    return env


def _vidgraph(*args: str, watch=None) -> dict:
    cmd = [sys.executable, "-m", "vidgraph.cli", *args]
    fifo, listener = watch
    run = run_watching(cmd, fifo, listener, timeout_s=RUN_TIMEOUT_S, env=_env())
    assert not run["timed_out"], f"vidgraph {args[0]} did not finish in {RUN_TIMEOUT_S}s"
    return run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, listener):
    base = tmp_path_factory.mktemp("bad_inputs_run")
    landing, outside, root = base / "landing", base / "outside", base / "root"
    build_corpus(landing, outside, http_url=f"http://127.0.0.1:{listener.getsockname()[1]}/evil.ts")
    watch = (outside / OUTSIDE_FIFO, listener)

    def run(*extra: str) -> dict:
        return _vidgraph("run", str(landing), "--root", str(root), "--shard-size", str(SHARD_SIZE), *extra, watch=watch)

    def query(sql: str) -> list[dict]:
        q = _vidgraph("query", sql, "--root", str(root), "--json", watch=watch)
        assert q["rc"] == 0, q["err"][-3000:]
        return json.loads(q["out"])

    def snapshot() -> dict:
        return {
            "source_videos": query(
                "select relpath, video_id, sha256, shard, media_path, has_audio, is_vfr, rotation, width, height,"
                " bit_depth, pix_fmt, duration_s from source_videos order by all"
            ),
            "raw_clips": query("select clip_id, video_id, start_frame, end_frame, n_frames from raw_clips order by all"),
            "quarantine": query("select path, sha256, reason, stage, shard, video_id from quarantine order by all"),
            "ledger": query("select shard, sha256, relpath, landing_path from ingest_ledger order by all"),
        }

    first = run()
    state = snapshot()
    return {
        "landing": landing.resolve(),
        "root": root,
        "first": first,
        "state": state,
        "run": run,
        "snapshot": snapshot,
        "query": query,
        "watch": watch,
    }


def _summary(run: dict) -> dict:
    assert run["rc"] == 0, f"vidgraph run failed (rc {run['rc']}):\n{run['err'][-6000:]}"
    return json.loads(run["out"])


def _by_relpath(dataset) -> tuple[dict, dict, dict]:
    """source_videos rows, quarantine rows and clip rows, keyed by the input's landing relpath."""
    landing, state = dataset["landing"], dataset["state"]
    videos: dict[str, list[dict]] = {}
    for v in state["source_videos"]:
        videos.setdefault(v["relpath"], []).append(v)
    quarantined: dict[str, list[dict]] = {}
    for q in state["quarantine"]:
        quarantined.setdefault(os.path.relpath(q["path"], landing), []).append(q)
    clips: dict[str, list[dict]] = {}
    for c in state["raw_clips"]:
        clips.setdefault(c["video_id"], []).append(c)
    return videos, quarantined, clips


def test_run_exits_0_and_every_check_passes(dataset):
    summary = _summary(dataset["first"])
    assert summary["shards"], "no shard was processed"
    for shard, result in summary["shards"].items():
        assert result["success"], (shard, result)
        checks = result["checks"]
        # The accounting and clip checks of source_videos and raw_clips are blocking and must pass;
        # later assets may flag this odd corpus with WARN-severity checks, but nothing may fail.
        ours = {k: v for k, v in checks.items() if k.split(":")[0] in ("source_videos", "raw_clips")}
        assert "source_videos:every_input_accounted_for" in ours and len(ours) >= 2, checks
        assert all(v == "passed" for v in ours.values()), (shard, checks)
        assert "FAILED" not in checks.values(), (shard, checks)
        assert "source_videos" in result["assets"] and "raw_clips" in result["assets"], (shard, result["assets"])
    inputs = [b for b in CORPUS if b.expected != "skipped" and b.stage != "scan"]
    assert summary["ingest"]["new_videos"] == len(inputs)
    assert len(summary["shards"]) == -(-len(inputs) // SHARD_SIZE)


def test_the_run_never_opened_the_outside_fifo_or_the_url(dataset):
    assert dataset["first"]["opened_fifo"] is False
    assert dataset["first"]["connections"] == 0


@pytest.mark.parametrize("entry", CORPUS, ids=[b.name for b in CORPUS])
def test_outcome_of_each_input(dataset, entry):
    videos, quarantined, clips = _by_relpath(dataset)
    rel = entry.shown  # as the tables show it (a name that is not UTF-8 appears escaped)
    rows_v, rows_q = videos.get(rel, []), quarantined.get(rel, [])
    if entry.expected == "skipped":
        assert not rows_v and not rows_q, (rows_v, rows_q)
        return
    if entry.expected == "processed":
        assert len(rows_v) == 1 and not rows_q, (rows_v, rows_q)
        (v,) = rows_v
        vclips = clips.get(v["video_id"], [])
        assert vclips, f"{rel!r} has no clips"
        facts = dict(entry.facts)
        if "n_frames" in facts:
            assert sum(c["n_frames"] for c in vclips) == facts.pop("n_frames")
        for key, want in facts.items():
            assert v[key] == (pytest.approx(want, abs=0.05) if isinstance(want, float) else want), (key, v[key])
        # The copy in the dataset root is named by content, never by the landing name.
        assert v["media_path"].startswith(f"source_videos/{v['shard']}/media/{v['video_id']}.")
        assert (dataset["root"] / v["media_path"]).is_file()
        return
    # quarantined or duplicate: exactly one quarantine row, with the expected reason and stage
    assert len(rows_q) == 1, rows_q
    (q,) = rows_q
    assert entry.reason_contains in q["reason"].lower(), q["reason"]
    assert q["stage"] == QUARANTINE_STAGE[entry.stage], q
    if entry.stage == "decode":
        # It passed the probe (so it is in source_videos) but has no clips.
        assert len(rows_v) == 1 and not clips.get(rows_v[0]["video_id"]), rows_v
        assert q["video_id"] == rows_v[0]["video_id"]
    else:
        assert not rows_v, rows_v
    if entry.expected == "duplicate":
        kept = videos[BY_NAME["duplicate_a"].relpath][0]
        assert q["sha256"] == kept["sha256"] and q["video_id"] == kept["video_id"]


def test_nothing_but_the_corpus_and_each_input_once(dataset):
    videos, quarantined, _ = _by_relpath(dataset)
    expected = {b.shown for b in CORPUS if b.expected != "skipped"}
    assert set(videos) | set(quarantined) == expected
    assert all(len(v) == 1 for v in videos.values()) and all(len(q) == 1 for q in quarantined.values())
    # Only decode-stage refusals are in both: they passed the probe, then failed the decode.
    both = set(videos) & set(quarantined)
    assert both == {b.shown for b in CORPUS if b.stage == "decode" and b.expected == "quarantined"}
    ids = [v["video_id"] for v in dataset["state"]["source_videos"]]
    assert len(ids) == len(set(ids))


def test_every_shard_accounts_for_its_inputs(dataset):
    state = dataset["state"]
    ledger = Counter(r["shard"] for r in state["ledger"])
    processed = Counter(v["shard"] for v in state["source_videos"])
    refused = Counter(q["shard"] for q in state["quarantine"] if q["stage"] == "source_videos")
    assert ledger and set(ledger) == set(processed) | set(refused)
    for shard, n in ledger.items():
        assert n == processed[shard] + refused[shard], shard
    # Per shard and stage, raw_clips' inputs (the shard's videos) = videos with clips + quarantined.
    with_clips = {c["video_id"] for c in state["raw_clips"]}
    decode_refused = {q["video_id"] for q in state["quarantine"] if q["stage"] == "raw_clips"}
    assert {v["video_id"] for v in state["source_videos"]} == with_clips | decode_refused
    assert not with_clips & decode_refused


def test_query_shows_every_quarantined_file_with_its_reason(dataset):
    q = _vidgraph("query", "select reason, path from quarantine order by path", "--root", str(dataset["root"]),
                  watch=dataset["watch"])
    assert q["rc"] == 0, q["err"]
    lines = q["out"].splitlines()
    assert lines[0].split() == ["reason", "path"]
    rows = dataset["state"]["quarantine"]
    assert len(lines) >= 1 + len(rows)
    for r in rows:
        assert r["reason"][:60] in q["out"], r


def test_rerunning_changes_nothing(dataset):
    again = dataset["run"]()
    summary = _summary(again)
    assert summary["ingest"]["new_videos"] == 0 and summary["shards"] == {}
    assert dataset["snapshot"]() == dataset["state"]
    # Re-materializing a shard gives the same rows again: the shard with a decode-stage refusal,
    # so quarantine rows of both stages and clips are rewritten (one shard keeps the test short).
    decode_refused = [q for q in dataset["state"]["quarantine"] if q["stage"] == "raw_clips"]
    assert decode_refused
    shard = decode_refused[0]["shard"]
    every = dataset["run"]("--shard", shard)
    summary = _summary(every)
    assert list(summary["shards"]) == [shard] and summary["shards"][shard]["success"], summary["shards"]
    assert dataset["snapshot"]() == dataset["state"]
    for run in (again, every):
        assert not run["opened_fifo"] and run["connections"] == 0
