"""Hostile and broken videos at the media layer: the probe's input policy and the streaming decode.

Each corpus entry (vidgraph_tests/bad_inputs.py) gets the outcome the corpus states: probe +
full analysis decode for what must come through, a readable quarantine reason for the rest.
The security tests check that FFmpeg never opens anything but the file it is given: the HLS
and concat lists point at a FIFO outside the landing zone (opening it would block, and a
reader on it is visible from here) and at a TCP port this test listens on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from vidgraph.media.analysis import analyze_video
from vidgraph.media.cutting import cut_clips
from vidgraph.media.decode import DecodeTimeout
from vidgraph.media.probe import InputPolicy, InputRejected, probe_video, sha256_file
from vidgraph_tests.bad_inputs import (
    BY_NAME,
    CORPUS,
    LONG_DECLARED_S,
    OUTSIDE_FIFO,
    TABLE_END,
    TABLE_START,
    build_corpus,
    doc_table,
    concat_list_text,
    hls_playlist_text,
    main,
    markdown_table,
    run_watching,
    write_doc,
)

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]
PLAYLISTS = ("hls_playlist", "concat_list", "hls_playlist_bom")
# What the probe alone says about inputs the landing scan refuses: anything that is not a
# regular file is refused by the probe too (defence in depth); the rest are valid videos.
PROBE_ON_SCAN_REFUSALS = {
    "fifo": "fifo",
    "folder": "folder",
    "symlink_outside": "symbolic link",
    "symlink_loop": "symbolic link",
    "symlink_folder": "symbolic link",
    "name_dotdot": None,
    "duplicate_b": None,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, listener):
    root = tmp_path_factory.mktemp("bad_inputs")
    landing, outside = root / "landing", root / "outside"
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/evil.ts"
    build_corpus(landing, outside, http_url=url)
    return {"landing": landing, "outside": outside, "url": url}


def _run_watching(code: str, args: list[str], fifo: Path, listener: socket.socket, timeout_s: float = 20.0):
    """``code`` in a fresh interpreter, watched (see ``bad_inputs.run_watching``)."""
    return run_watching([sys.executable, "-c", code, *args], fifo, listener, timeout_s)


# Arguments: PATH MODE [PATH MODE ...]; prints one JSON line per pair.
_PROBE_IN_CHILD = """
import json, sys
from vidgraph.media.probe import InputRejected, open_input, probe_video
args = sys.argv[1:]
for path, mode in zip(args[::2], args[1::2]):
    try:
        {"probe": probe_video, "open": open_input}[mode](path)
        print(json.dumps({"path": path, "mode": mode, "ok": True}), flush=True)
    except InputRejected as e:
        print(json.dumps({"path": path, "mode": mode, "ok": False, "reason": e.reason}), flush=True)
"""


def _outcome(path: Path, policy: InputPolicy = InputPolicy()):
    """('processed', probe, analysis) or ('quarantined', stage, reason)."""
    try:
        probe = probe_video(path, policy)
    except InputRejected as e:
        return "quarantined", "probe", e.reason
    try:
        analysis = analyze_video(path, policy=policy)
    except InputRejected as e:
        return "quarantined", "decode", e.reason
    return "processed", probe, analysis


def test_corpus_is_well_formed(corpus):
    landing = corpus["landing"]
    assert len({b.name for b in CORPUS}) == len({b.relpath for b in CORPUS}) == len(CORPUS)
    for b in CORPUS:
        assert os.path.lexists(landing / b.relpath), b.relpath
        assert b.description and "\n" not in b.description
    # Identical content only where the corpus says so.
    digests = {}
    for b in CORPUS:
        p = landing / b.relpath
        if p.is_file() and not p.is_symlink() and p.stat().st_size:
            digests.setdefault(sha256_file(p), []).append(b.name)
    assert sorted(v for v in digests.values() if len(v) > 1) == [["duplicate_a", "duplicate_b"]]
    assert (corpus["outside"] / OUTSIDE_FIFO).is_fifo()


@pytest.mark.parametrize("entry", CORPUS, ids=[b.name for b in CORPUS])
def test_probe_and_decode_outcome(corpus, listener, entry):
    path = corpus["landing"] / entry.relpath
    if entry.name in PLAYLISTS:
        # In a child process: a regression that made FFmpeg follow the list would block here.
        run = _run_watching(_PROBE_IN_CHILD, [str(path), "probe"], corpus["outside"] / OUTSIDE_FIFO, listener)
        assert run["rc"] == 0, run
        assert not run["opened_fifo"] and run["connections"] == 0, run
        result = json.loads(run["out"])
        assert result["ok"] is False
        assert entry.reason_contains in result["reason"].lower()
        return

    outcome = _outcome(path)
    if entry.stage == "scan":
        assert entry.name in PROBE_ON_SCAN_REFUSALS, f"say what the probe does with {entry.name}"
        want = PROBE_ON_SCAN_REFUSALS[entry.name]
        if want is None:
            assert outcome[0] == "processed", f"{entry.name}: {outcome}"
        else:
            assert outcome[:2] == ("quarantined", "probe") and want in outcome[2].lower(), outcome
        return
    if entry.expected == "quarantined":
        assert outcome[0] == "quarantined", f"{entry.name} came through: {outcome}"
        _, stage, reason = outcome
        assert entry.reason_contains in reason.lower(), reason
        assert stage == entry.stage, (stage, reason)
        return
    assert entry.expected == "processed"
    assert outcome[0] == "processed", f"{entry.name}: {outcome}"
    _, probe, analysis = outcome
    assert analysis.n_frames >= 1 and analysis.shots
    assert (analysis.width, analysis.height) == (probe.width, probe.height)
    assert analysis.shots[0].start_frame == 0 and analysis.shots[-1].end_frame == analysis.n_frames
    assert analysis.duration_s == pytest.approx(probe.duration_s, abs=0.1)
    for key, want in entry.facts.items():
        got = getattr(analysis if key == "n_frames" else probe, key)
        assert got == (pytest.approx(want) if isinstance(want, float) else want), (key, got)


def test_damaged_packets_are_skipped_not_fatal(corpus):
    """A burst of garbage inside the media data loses a few frames; the rest decode in order."""
    analysis = analyze_video(corpus["landing"] / BY_NAME["corrupt_packets"].relpath)
    assert 40 <= analysis.n_frames <= 48
    t = analysis.frames["t_s"]
    assert all(b > a for a, b in zip(t, t[1:]))


@pytest.mark.parametrize("name", ["vfr", "rotation", "odd_dimensions", "ten_bit", "single_frame", "corrupt_packets"])
def test_odd_but_valid_inputs_cut_into_clips(corpus, tmp_path, name):
    path = corpus["landing"] / BY_NAME[name].relpath
    analysis = analyze_video(path)
    clips = cut_clips(path, analysis.shots, [tmp_path / f"{i}.mp4" for i in range(len(analysis.shots))])
    assert sum(c.n_frames for c in clips) == analysis.n_frames
    first = probe_video(clips[0].path)
    assert first.rotation == probe_video(path).rotation
    assert (first.width, first.height) == (analysis.width // 2 * 2, analysis.height // 2 * 2)


# --- FFmpeg opens nothing but the file itself ------------------------------------------------

_RAW_OPEN = """
import sys, av
opts = {"protocol_whitelist": sys.argv[2]}
if sys.argv[3]:
    opts["safe"] = "0"
try:
    with av.open(sys.argv[1], format=sys.argv[3] or None, options=opts) as c:
        for _ in c.demux():
            pass
except Exception as e:
    print(type(e).__name__)
"""


def test_playlists_never_make_ffmpeg_open_the_outside_file_or_the_url(corpus, listener, tmp_path):
    fifo = corpus["outside"] / OUTSIDE_FIFO
    landing = corpus["landing"]
    # Under names FFmpeg would recognise on its own, the first-bytes check is bypassed by
    # calling open_input directly: the demuxer allow-list alone must refuse them.
    m3u8 = shutil.copy(landing / BY_NAME["hls_playlist"].relpath, tmp_path / "list.m3u8")
    ffconcat = shutil.copy(landing / BY_NAME["concat_list"].relpath, tmp_path / "list.ffconcat")
    pairs = [(m3u8, "open"), (m3u8, "probe"), (ffconcat, "open"), (ffconcat, "probe")]
    pairs += [(landing / BY_NAME[n].relpath, "open") for n in PLAYLISTS]
    run = _run_watching(_PROBE_IN_CHILD, [str(a) for pair in pairs for a in pair], fifo, listener)
    assert run["rc"] == 0, run
    assert not run["opened_fifo"], run
    assert run["connections"] == 0, run
    results = [json.loads(line) for line in run["out"].splitlines()]
    assert [(r["path"], r["mode"]) for r in results] == [(str(p), m) for p, m in pairs]
    assert not [r for r in results if r["ok"]], results
    # The allow-list itself refuses the formats FFmpeg detected (EINVAL: "format not on whitelist").
    assert "invalid argument" in results[0]["reason"].lower() and "invalid argument" in results[2]["reason"].lower()


def test_the_fifo_and_listener_do_detect_an_unsafe_open(corpus, listener, tmp_path):
    """Positive controls: without the allow-list FFmpeg follows the lists, and we see it."""
    fifo = corpus["outside"] / OUTSIDE_FIFO
    m3u8 = shutil.copy(corpus["landing"] / BY_NAME["hls_playlist"].relpath, tmp_path / "list.m3u8")
    run = _run_watching(_RAW_OPEN, [str(m3u8), "file", ""], fifo, listener)
    assert run["opened_fifo"], run
    url_only = tmp_path / "url.ffconcat"
    url_only.write_text(concat_list_text([corpus["url"]]))
    run = _run_watching(_RAW_OPEN, [str(url_only), "file,http,tcp", "concat"], fifo, listener)
    assert run["connections"] >= 1, run
    url_hls = tmp_path / "url.m3u8"
    url_hls.write_text(hls_playlist_text([corpus["url"]]))
    # With only the protocol whitelist (file), the URL is refused even by the HLS demuxer.
    run = _run_watching(_RAW_OPEN, [str(url_hls), "file", ""], fifo, listener)
    assert run["connections"] == 0, run


@pytest.mark.parametrize("name", ["name_url", "name_dash", "name_newline", "name_unicode"])
def test_names_that_look_like_urls_or_options_open_as_local_files(corpus, monkeypatch, name):
    entry = BY_NAME[name]
    monkeypatch.chdir(corpus["landing"])
    probe = probe_video(entry.relpath)  # relative, as a caller might pass it
    assert probe.sha256 == sha256_file(entry.relpath)
    assert probe.width == 160


def test_a_relative_url_like_name_would_be_a_url_without_the_absolute_path(corpus, monkeypatch):
    """Why open_input makes paths absolute: FFmpeg reads 'http:evil.mp4' as a URL."""
    import av

    monkeypatch.chdir(corpus["landing"])
    with pytest.raises(av.error.FFmpegError):
        av.open(BY_NAME["name_url"].relpath, options={"protocol_whitelist": "file"})


# --- Configurable limits -----------------------------------------------------------------------


def test_decode_time_limit_triggers_with_its_own_reason(corpus, tmp_path):
    path = corpus["landing"] / BY_NAME["long_declared_headers"].relpath  # 48 frames
    tiny = InputPolicy(decode_timeout_s=1e-9)
    with pytest.raises(DecodeTimeout) as e:
        analyze_video(path, policy=tiny)
    assert "decoding took longer than the limit of 1e-09s" in e.value.reason
    analysis = analyze_video(path)  # the default limit lets it through
    with pytest.raises(DecodeTimeout):
        cut_clips(path, analysis.shots, [tmp_path / "a.mp4"], decode_timeout_s=1e-9)


def test_size_resolution_and_duration_limits_each_trigger_with_their_own_reason(corpus):
    path = corpus["landing"] / BY_NAME["no_audio"].relpath  # 160x90, 1 s
    size = path.stat().st_size
    cases = {
        "bytes": (InputPolicy(max_bytes=size - 1), f"file is {size} bytes, over the limit of {size - 1}"),
        "width": (InputPolicy(max_width=159), "resolution 160x90 is above the limit 159x4096"),
        "height": (InputPolicy(max_height=89), "resolution 160x90 is above the limit 4096x89"),
        "duration": (InputPolicy(max_duration_s=0.5), "duration 1.0s is over the limit of"),
        "min_duration": (InputPolicy(min_duration_s=2.0), "duration 1.00s is under the minimum 2.0s"),
    }
    for key, (policy, reason) in cases.items():
        with pytest.raises(InputRejected) as e:
            probe_video(path, policy)
        assert reason in e.value.reason, (key, e.value.reason)
    # Exactly at each limit, the file is accepted.
    probe = probe_video(path, InputPolicy(max_bytes=size, max_width=160, max_height=90, max_duration_s=1.0, min_duration_s=1.0))
    assert (probe.width, probe.height, probe.size_bytes) == (160, 90, size)


def test_limits_are_configurable_upwards_and_decoding_stays_bounded(corpus):
    wide = probe_video(corpus["landing"] / BY_NAME["too_wide"].relpath, InputPolicy(max_width=4100))
    assert (wide.width, wide.height) == (4100, 64)
    long_path = corpus["landing"] / BY_NAME["long_declared_duration"].relpath
    relaxed = InputPolicy(max_duration_s=LONG_DECLARED_S + 1)
    probe = probe_video(long_path, relaxed)
    assert probe.duration_s == pytest.approx(LONG_DECLARED_S, rel=0.01)
    # Ten declared hours, 48 real frames: the decode walks the frames that exist.
    t0 = time.monotonic()
    analysis = analyze_video(long_path, policy=relaxed)
    assert analysis.n_frames == 48
    assert time.monotonic() - t0 < 10


# --- The table of docs/reliability.md --------------------------------------------------------


def test_reliability_doc_table_matches_the_corpus(capsys):
    assert main(["--markdown"]) == 0
    printed = capsys.readouterr().out
    assert printed == markdown_table()
    assert len(re.findall(r"^\| \d+ \|", printed, re.M)) == len(CORPUS)
    # Every entry's outcome, reason and properties are in its row.
    for i, b in enumerate(CORPUS, 1):
        (row,) = [line for line in printed.splitlines() if line.startswith(f"| {i} | {b.name} |")]
        assert f"| {b.expected} |" in row
        assert all(f"`{k}={v}`" in row for k, v in b.facts.items())
        assert b.reason_contains is None or f"`{b.reason_contains}`" in row
    doc = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert TABLE_START in doc and TABLE_END in doc, "docs/reliability.md lost its table markers"
    assert doc_table(doc) == printed, "regenerate with: python -m vidgraph_tests.bad_inputs --write-doc"


def test_write_doc_replaces_only_the_table(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# Title\n\nbefore\n\n{TABLE_START}\n| stale |\n{TABLE_END}\n\nafter\n", encoding="utf-8")
    assert write_doc(doc) is True
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{TABLE_END}\n\nafter\n")
    assert doc_table(text) == markdown_table() and "| stale |" not in text
    assert write_doc(doc) is False  # already up to date
    doc.write_text("no markers\n")
    with pytest.raises(ValueError):
        write_doc(doc)
