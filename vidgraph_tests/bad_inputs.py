"""A corpus of hostile and broken video inputs, generated (never downloaded), with the outcome each must get.

    python -m vidgraph_tests.bad_inputs OUT_DIR      # writes OUT_DIR/landing and OUT_DIR/outside
    python -m vidgraph_tests.bad_inputs --markdown   # the outcome table of docs/reliability.md

``build_corpus(landing, outside)`` writes every input into ``landing`` (the landing zone) and the
targets that must never be reached into ``outside`` (a folder beside it): the target of a symlink
that leaves the zone, and a FIFO that the HLS playlist and the concat list point at (anything that
opens it blocks, so an open is detectable). Media is tiny (160x90 and 1-2 s; the 1281x721 and
4100x64 inputs are a quarter second) so the corpus builds in about two seconds.

Outcomes (``BadInput.expected``):

- ``processed``: legitimately odd; it must probe, decode and come through (a row in
  ``source_videos``, clips in ``raw_clips``, no quarantine row).
- ``quarantined``: refused with a readable reason that contains ``reason_contains`` (lowercase),
  one row in the quarantine.
- ``duplicate``: the same bytes as another file, which is ingested instead; one quarantine row
  whose reason names that file.
- ``skipped``: never becomes an input at all (a folder named ``x.mp4``, a symlinked folder).

``stage`` says which step decides: ``scan`` (the landing-zone scanner, ``vidgraph.ingest``),
``probe`` (``vidgraph.media.probe.probe_video``, in ``source_videos``) or ``decode`` (the
streaming decode of ``vidgraph.media.analysis.analyze_video``, in ``raw_clips``);
``QUARANTINE_STAGE`` maps it to the ``stage`` column of the quarantine.

    python -m vidgraph_tests.bad_inputs --write-doc  # rewrites that table in docs/reliability.md
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video

OUTCOMES = ("processed", "quarantined", "skipped", "duplicate")
STAGES = ("scan", "probe", "decode")
# The quarantine's ``stage`` column for each deciding step.
QUARANTINE_STAGE = {"scan": "ingest", "probe": "source_videos", "decode": "raw_clips"}

# Where the playlist files point: a FIFO outside the landing zone and a URL.
OUTSIDE_FIFO = "segment.ts"
OUTSIDE_VIDEO = "outside_video.mp4"
DEFAULT_HTTP_URL = "http://127.0.0.1:9/evil.ts"
# Declared duration of the "very long declared duration" input (2 s of frames).
LONG_DECLARED_S = 10 * 3600


@dataclass(frozen=True)
class BadInput:
    name: str
    relpath: str  # relative to the landing zone
    description: str
    expected: str  # one of OUTCOMES
    reason_contains: str | None = None  # lowercase substring of the quarantine reason
    stage: str = "probe"  # one of STAGES: the step that decides the outcome
    # For processed inputs: columns of its source_videos row (and ``n_frames``, the decoded
    # frames) that must have these values.
    facts: dict = field(default_factory=dict)

    def __post_init__(self):
        assert self.expected in OUTCOMES, self.expected
        assert self.stage in STAGES, self.stage
        assert (self.expected in ("quarantined", "duplicate")) == (self.reason_contains is not None), self.name
        assert self.expected not in ("duplicate", "skipped") or self.stage == "scan", self.name
        assert self.reason_contains is None or self.reason_contains == self.reason_contains.lower()
        assert not self.facts or self.expected == "processed", self.name

    @property
    def shown(self) -> str:
        """The relpath as the dataset's tables show it: bytes that are not UTF-8 as ``\\xNN``."""
        return os.fsencode(self.relpath).decode("utf-8", "backslashreplace")


# The corpus, in table order. Files are written by the builders in ``_BUILDERS`` (same names).
CORPUS: tuple[BadInput, ...] = (
    BadInput("empty", "empty.mp4", "zero bytes", "quarantined", "empty file"),
    BadInput("random_bytes", "random_bytes.mp4", "64 KiB of random bytes named .mp4", "quarantined", "cannot be opened"),
    BadInput("text_file", "text_file.mp4", "a plain text file named .mp4", "quarantined", "cannot be opened"),
    BadInput("truncated_10", "truncated_10.mp4", "mp4 (index first) cut at 10% of its bytes", "quarantined", "truncated"),
    BadInput("truncated_50", "truncated_50.mp4", "mp4 (index first) cut at 50% of its bytes", "quarantined", "truncated"),
    BadInput("truncated_90", "truncated_90.mp4", "mp4 (index first) cut at 90% of its bytes", "quarantined", "truncated"),
    BadInput(
        "truncated_50_index_last", "truncated_50_index_last.mp4", "mp4 (index at the end) cut at 50%",
        "quarantined", "truncated",
    ),
    BadInput("moov_missing", "moov_missing.mp4", "mp4 with its moov box (the index) cut out", "quarantined", "moov"),
    BadInput(
        "corrupt_packets", "corrupt_packets.mp4",
        "mp4 with random bytes over 3% of the media data, in the middle (boxes intact)", "processed",
    ),
    BadInput(
        "corrupt_heavy", "corrupt_heavy.mp4",
        "mp4 with random bytes over the second half of the media data", "quarantined", "damaged", "decode",
    ),
    BadInput("audio_only", "audio_only.mp4", "AAC audio in mp4, no video stream", "quarantined", "audio only"),
    BadInput("no_audio", "no_audio.mp4", "video without an audio stream", "processed", facts={"has_audio": False}),
    BadInput("single_frame", "single_frame.mp4", "a video of one frame", "processed", facts={"n_frames": 1}),
    BadInput(
        "vfr", "vfr.mp4", "variable frame rate (frame durations alternate 1 and 1.5 periods)", "processed",
        facts={"is_vfr": True, "n_frames": 40},
    ),
    BadInput("rotation", "rotation.mp4", "display-matrix rotation of 90 degrees", "processed", facts={"rotation": 90}),
    BadInput(
        "odd_dimensions", "odd_dimensions.mp4", "1281x721 (odd width and height), MPEG-4 Part 2", "processed",
        facts={"width": 1281, "height": 721},
    ),
    BadInput(
        "ten_bit", "ten_bit.mp4", "10-bit H.264 (yuv420p10le)", "processed",
        facts={"bit_depth": 10, "pix_fmt": "yuv420p10le"},
    ),
    BadInput(
        "long_declared_headers", "long_declared_headers.mp4",
        "mvhd/tkhd/mdhd durations patched to 10 h over 2 s of frames (FFmpeg takes the sample table)", "processed",
        facts={"duration_s": 2.0, "n_frames": 48},
    ),
    BadInput(
        "long_declared_duration", "long_declared_duration.mp4",
        "sample table and edit lists patched to declare 10 h over 2 s of frames", "quarantined", "over the limit",
    ),
    BadInput("too_wide", "too_wide.mp4", "4100x64: wider than the 4096 limit", "quarantined", "resolution"),
    BadInput(
        "one_pixel", "one_pixel.mp4", "a 1x1 video (MPEG-4 Part 2): too small to cut or caption", "quarantined",
        "below the minimum 16x16",
    ),
    BadInput(
        "hls_playlist", "hls_playlist.mp4",
        "HLS playlist pointing at a FIFO outside the landing zone and at an http URL", "quarantined", "playlist",
    ),
    BadInput(
        "concat_list", "concat_list.mp4",
        "FFmpeg concat list pointing at a FIFO outside the landing zone and at an http URL", "quarantined", "playlist",
    ),
    BadInput(
        "hls_playlist_bom", "hls_playlist_bom.mp4",
        "the HLS playlist behind a UTF-8 byte-order mark (passes the first-bytes check)", "quarantined",
        "cannot be opened",
    ),
    BadInput(
        "symlink_outside", "symlink_outside.mp4", "symlink to a valid video outside the landing zone",
        "quarantined", "symbolic link", "scan",
    ),
    BadInput("symlink_loop", "symlink_loop.mp4", "a symlink that points at itself", "quarantined", "symbolic link", "scan"),
    BadInput(
        "symlink_folder", "outside_link", "symlink to the folder outside the landing zone (not followed)",
        "skipped", None, "scan",
    ),
    BadInput("fifo", "fifo.mp4", "a FIFO (named pipe) with no writer", "quarantined", "fifo", "scan"),
    BadInput("folder", "folder.mp4", "a folder named .mp4 (walked like any folder)", "skipped", None, "scan"),
    BadInput("inside_folder", "folder.mp4/inside.mp4", "a valid video inside the folder named .mp4", "processed"),
    BadInput("name_spaces", "name with spaces.mp4", "spaces in the name", "processed"),
    BadInput("name_unicode", "ünïcødé 動画.mp4", "non-ASCII name", "processed"),
    BadInput("name_newline", "new\nline.mp4", "a newline in the name", "processed"),
    BadInput("name_dash", "-leading-dash.mp4", "a leading '-' (an option to a command line)", "processed"),
    BadInput(
        "name_not_utf8", os.fsdecode(b"caf\xe9 latin-1.mp4"),
        "a name in Latin-1, not valid UTF-8 (tables show \\xe9; the exact bytes are kept in the ledger)", "processed",
    ),
    BadInput("name_url", "http:evil.mp4", "a name that parses as a URL", "processed"),
    BadInput("name_traversal", "traversal..\\..\\escape.mp4", "'..' and backslashes in the name", "processed"),
    BadInput(
        "name_dotdot", "..\\..\\escape.mp4", "a name that starts with '..' (a hidden file, as partial uploads are)",
        "quarantined", "hidden file", "scan",
    ),
    BadInput("duplicate_a", "dup_a.mp4", "a valid video, the first of two identical files", "processed",
             facts={"has_audio": True}),
    BadInput(
        "duplicate_b", "dup_b (copy).mp4", "a byte-identical copy of dup_a.mp4 under another name", "duplicate",
        "same content as 'dup_a.mp4'", "scan",
    ),
    # Media hazards of the second reliability round (issue 14): sound that crashed or was refused,
    # and a stream that grows past the resolution limit after its first frames.
    BadInput("audio_7_1_pcm", "audio_7_1_pcm.mkv", "8-channel (7.1) PCM in Matroska: crashed PyAV's to_ndarray",
             "processed", facts={"has_audio": True}),
    BadInput("audio_7_1_aac", "audio_7_1_aac.mp4", "7.1 AAC in MP4, as any 7.1 movie has", "processed",
             facts={"has_audio": True}),
    BadInput("audio_16ch_pcm", "audio_16ch_pcm.mkv", "16-channel PCM in Matroska", "processed",
             facts={"has_audio": True}),
    BadInput("pcm_no_layout", "pcm_no_layout.avi", "webcam-style MJPEG + mono PCM in AVI (no channel layout)",
             "processed", facts={"has_audio": True}),
    BadInput("audio_192k", "audio_192k.mkv", "192 kHz 24-bit PCM (above what AAC accepts)", "processed",
             facts={"has_audio": True}),
    BadInput(
        "resolution_switch", "resolution_switch.ts",
        "MPEG-TS that starts at 64x64 and switches to 4160x64 (above the limit) after 12 frames",
        "quarantined", "above the limit", "decode",
    ),
)
BY_NAME = {b.name: b for b in CORPUS}


# ---------------------------------------------------------------------------------------------
# ISO BMFF (mp4) box surgery


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int, int]]:
    """(type, offset, size, header size) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    out, pos = [], start
    while pos + 8 <= end:
        size, typ = struct.unpack(">I4s", data[pos:pos + 8])
        hdr = 8
        if size == 1:
            size, hdr = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < hdr:
            break
        out.append((typ.decode("latin-1"), pos, size, hdr))
        pos += size
    return out


_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "edts"}


def mp4_walk(data: bytes, start: int = 0, end: int | None = None, out=None) -> list[tuple[str, int, int, int]]:
    out = [] if out is None else out
    for box in mp4_boxes(data, start, end):
        out.append(box)
        if box[0] in _CONTAINERS:
            mp4_walk(data, box[1] + box[3], box[1] + box[2], out)
    return out


def _set_durations(data: bytearray, seconds: float, sample_table: bool) -> bytearray:
    """Patch mvhd/tkhd/mdhd (and, with ``sample_table``, stts and elst) to declare ``seconds``."""
    boxes = mp4_walk(data)
    mvhd = next(b for b in boxes if b[0] == "mvhd")
    movie_ts = struct.unpack(">I", data[mvhd[1] + mvhd[3] + 12:mvhd[1] + mvhd[3] + 16])[0]
    media_ts = None
    for typ, pos, size, hdr in boxes:
        body = pos + hdr
        if typ in ("mvhd", "mdhd", "tkhd", "elst", "stts"):
            assert data[body] == 0, f"only version-0 {typ} boxes are handled here"
        if typ in ("mvhd", "mdhd"):
            ts = struct.unpack(">I", data[body + 12:body + 16])[0]
            if typ == "mdhd":
                media_ts = ts
            data[body + 16:body + 20] = struct.pack(">I", min(int(seconds * ts), 2**32 - 1))
        elif typ == "tkhd":
            data[body + 20:body + 24] = struct.pack(">I", int(seconds * movie_ts))
        elif sample_table and typ == "elst":
            n = struct.unpack(">I", data[body + 4:body + 8])[0]
            for i in range(n):
                data[body + 8 + 12 * i:body + 12 + 12 * i] = struct.pack(">I", int(seconds * movie_ts))
        elif sample_table and typ == "stts" and media_ts is not None:
            n = struct.unpack(">I", data[body + 4:body + 8])[0]
            n_samples = sum(struct.unpack(">I", data[body + 8 + 8 * i:body + 12 + 8 * i])[0] for i in range(n))
            delta = int(seconds * media_ts / n_samples)  # every sample lasts the same
            for i in range(n):
                data[body + 12 + 8 * i:body + 16 + 8 * i] = struct.pack(">I", min(delta, 2**32 - 1))
    return data


def _faststart(src: Path, dst: Path) -> Path:
    """Remux with the moov box in front (as web-optimised files have it)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is None:
                continue
            p.stream = streams[p.stream.index]
            o.mux(p)
    return dst


def _write_audio_only(path: Path, seconds: float = 1.0, rate: int = 44100) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=rate, layout="mono")
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            f = av.AudioFrame.from_ndarray(tone[None, k:k + 1024].copy(), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, k, Fraction(1, rate)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def _overwrite_mdat(data: bytes, start_frac: float, length_frac: float, seed: int) -> bytes:
    """Random bytes over part of the mdat payload; every box header stays intact."""
    _, pos, size, hdr = next(b for b in mp4_boxes(data) if b[0] == "mdat")
    payload = size - hdr
    a = pos + hdr + int(payload * start_frac)
    n = int(payload * length_frac)
    out = bytearray(data)
    out[a:a + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The corpus


def _video(path: Path, seed: int, seconds: float = 1.0, **kw) -> Path:
    """A small, distinct video (its own seed, so no two corpus files are identical by accident)."""
    fps = kw.pop("fps", 24)
    n = max(1, int(round(seconds * fps)))
    kw.setdefault("width", 160)
    kw.setdefault("height", 90)
    scenes = kw.pop("scenes", None) or [Scene(n, "pan", seed=seed, speed=1.0)]
    return write_video(path, SyntheticSpec(scenes, fps=fps, **kw))


def hls_playlist_text(targets: list[str]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:10", "#EXT-X-MEDIA-SEQUENCE:0"]
    for t in targets:
        lines += ["#EXTINF:10.0,", t]
    return "\n".join(lines + ["#EXT-X-ENDLIST", ""])


def concat_list_text(targets: list[str]) -> str:
    return "ffconcat version 1.0\n" + "".join(f"file '{t}'\n" for t in targets)


def build_corpus(landing: Path, outside: Path, http_url: str = DEFAULT_HTTP_URL) -> list[BadInput]:
    """Write every corpus input under ``landing`` (and the out-of-zone targets under ``outside``)."""
    landing, outside = Path(landing), Path(outside)
    landing.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    scratch = outside / ".scratch"
    scratch.mkdir(exist_ok=True)

    def at(name: str) -> Path:
        p = landing / BY_NAME[name].relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.exists() and not p.is_dir():
            p.unlink()
        return p

    # Out-of-zone targets: a valid video and a FIFO that nothing may open.
    _video(outside / OUTSIDE_VIDEO, seed=900)
    fifo_target = outside / OUTSIDE_FIFO
    if not fifo_target.exists():
        os.mkfifo(fifo_target)

    at("empty").write_bytes(b"")
    at("random_bytes").write_bytes(np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    at("text_file").write_text("This is not a video. It is a text file with a video's name.\n" * 40)

    # A 2 s H.264 + AAC source, as PyAV writes it (moov at the end), and a faststart remux.
    base = _video(scratch / "base.mp4", seed=101, seconds=2.0, audio=True)
    fast = _faststart(base, scratch / "fast.mp4")
    base_b, fast_b = base.read_bytes(), fast.read_bytes()
    for pct in (10, 50, 90):
        at(f"truncated_{pct}").write_bytes(fast_b[: len(fast_b) * pct // 100])
    at("truncated_50_index_last").write_bytes(base_b[: len(base_b) // 2])
    _, mpos, msize, _ = next(b for b in mp4_boxes(base_b) if b[0] == "moov")
    at("moov_missing").write_bytes(base_b[:mpos] + base_b[mpos + msize:])
    at("corrupt_packets").write_bytes(_overwrite_mdat(_video(scratch / "c1.mp4", 102, 2.0).read_bytes(), 0.5, 0.03, 1))
    at("corrupt_heavy").write_bytes(_overwrite_mdat(_video(scratch / "c2.mp4", 103, 2.0).read_bytes(), 0.5, 0.5, 2))

    _write_audio_only(at("audio_only"))
    _video(at("no_audio"), seed=104, audio=False)
    _video(at("single_frame"), seed=105, seconds=1 / 24, audio=False)
    _video(at("vfr"), seed=106, fps=20, vfr=True, audio=False,
           scenes=[Scene(20, "pan", seed=106), Scene(20, "object", seed=107, speed=3)])
    _video(at("rotation"), seed=108, rotation=90, audio=False)
    # libx264 refuses odd sizes in 4:2:0; MPEG-4 Part 2 stores 1281x721 as is.
    _video(at("odd_dimensions"), seed=109, seconds=0.25, width=1281, height=721, codec="mpeg4", audio=False)
    _video(at("ten_bit"), seed=110, pix_fmt="yuv420p10le", audio=False)
    long_src = _video(scratch / "long.mp4", seed=111, seconds=2.0, audio=True).read_bytes()
    at("long_declared_headers").write_bytes(_set_durations(bytearray(long_src), LONG_DECLARED_S, sample_table=False))
    long_src = _video(scratch / "long2.mp4", seed=112, seconds=2.0, audio=True).read_bytes()
    at("long_declared_duration").write_bytes(_set_durations(bytearray(long_src), LONG_DECLARED_S, sample_table=True))
    _video(at("too_wide"), seed=113, seconds=0.25, width=4100, height=64, audio=False,
           scenes=[Scene(6, "static", seed=113)])

    _video(at("one_pixel"), seed=115, seconds=0.5, width=1, height=1, codec="mpeg4", audio=False,
           scenes=[Scene(12, "static", seed=115)])

    abs_fifo = str(fifo_target.resolve())
    rel_fifo = os.path.relpath(abs_fifo, landing.resolve())
    at("hls_playlist").write_text(hls_playlist_text([abs_fifo, rel_fifo, http_url]))
    at("concat_list").write_text(concat_list_text([abs_fifo, http_url]))
    at("hls_playlist_bom").write_bytes(b"\xef\xbb\xbf" + hls_playlist_text([abs_fifo, http_url]).encode())

    at("symlink_outside").symlink_to((outside / OUTSIDE_VIDEO).resolve())
    at("symlink_folder").symlink_to(outside.resolve(), target_is_directory=True)
    loop = at("symlink_loop")
    loop.symlink_to(loop.name)
    fifo = at("fifo")
    os.mkfifo(fifo)
    (landing / BY_NAME["folder"].relpath).mkdir(exist_ok=True)
    _video(at("inside_folder"), seed=114)

    for seed, name in enumerate(("name_spaces", "name_unicode", "name_newline", "name_dash", "name_url",
                                 "name_traversal", "name_dotdot", "name_not_utf8"), start=120):
        _video(at(name), seed=seed)
    dup = _video(at("duplicate_a"), seed=130)
    at("duplicate_b").write_bytes(dup.read_bytes())

    write_audio_video(at("audio_7_1_pcm"), "matroska", "pcm_s16le", "7.1", 48000)
    write_audio_video(at("audio_7_1_aac"), "mp4", "aac", "7.1", 48000)
    write_audio_video(at("audio_16ch_pcm"), "matroska", "pcm_s16le", "16 channels", 48000)
    write_audio_video(at("pcm_no_layout"), "avi", "pcm_s16le", "mono", 16000, vcodec="mjpeg")
    write_audio_video(at("audio_192k"), "matroska", "pcm_s24le", "stereo", 192000)
    write_resolution_switch(at("resolution_switch"), (64, 64), (4160, 64))

    for p in scratch.iterdir():
        p.unlink()
    scratch.rmdir()
    return list(CORPUS)


def write_audio_video(path: Path, fmt: str, acodec: str, layout: str, rate: int, seconds: float = 1.0,
                      vcodec: str = "libx264") -> Path:
    """A 64x48 video with a 440 Hz tone on every channel of ``layout`` at ``rate``.

    Frames are handed over packed (``flt``): PyAV's planar ``from_ndarray`` fails past 8 channels.
    The AVI muxer writes PCM without a channel mask, so its layout reads back as unspecified.
    """
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(vcodec, rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, ("yuvj420p" if vcodec == "mjpeg" else "yuv420p")
        aus = out.add_stream(acodec, rate=rate, layout=layout)
        for i in range(int(seconds * 25)):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9 % 256, np.uint8), format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        ch = len(av.AudioLayout(layout).channels)
        n = int(seconds * rate)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        for k in range(0, n, 1024):
            block = np.repeat(tone[k:k + 1024, None], ch, axis=1).reshape(1, -1)
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="flt", layout=layout)
            f.sample_rate, f.pts, f.time_base = rate, k, Fraction(1, rate)
            for p in aus.encode(f):
                out.mux(p)
        for p in aus.encode():
            out.mux(p)
    return path


def write_resolution_switch(path: Path, small: tuple[int, int], big: tuple[int, int], n_small: int = 12, n_big: int = 3) -> Path:
    """H.264 in MPEG-TS whose pictures grow from ``small`` to ``big`` mid-stream (new SPS in-band)."""
    with av.open(str(path), "w", format="mpegts") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = small[0], small[1], "yuv420p"
        big_enc = av.CodecContext.create("libx264", "w")
        big_enc.width, big_enc.height, big_enc.pix_fmt = big[0], big[1], "yuv420p"
        big_enc.time_base = Fraction(1, 25)
        big_enc.framerate = Fraction(25)
        big_enc.options = {"preset": "ultrafast"}
        for i in range(n_small + n_big):
            w, h = small if i < n_small else big
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), i * 9 % 256, np.uint8), format="rgb24")
            f.pts = i
            f.time_base = Fraction(1, 25)
            if i < n_small:
                packets = vs.encode(f)
            else:
                f = f.reformat(format="yuv420p")
                packets = big_enc.encode(f)
            if i == n_small - 1:
                packets = list(packets) + list(vs.encode(None))
            for p in packets:
                if i >= n_small:
                    p.stream = vs
                out.mux(p)
        for p in big_enc.encode(None):
            p.stream = vs
            out.mux(p)
    return path


def write_frame_gap(path: Path, gap_s: float = 3600.0, audio_s: float = 1.0) -> Path:
    """Two frames ``gap_s`` apart plus ``audio_s`` of sound (a hostile timestamp, 10 KB)."""
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        aus = out.add_stream("aac", rate=8000, layout="mono")
        for i, t in enumerate((0.0, gap_s)):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 60 + 100 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = int(t * 1000), Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(audio_s * 8000)) / 8000)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            f = av.AudioFrame.from_ndarray(tone[None, k:k + 1024].copy(), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 8000, k, Fraction(1, 8000)
            for p in aus.encode(f):
                out.mux(p)
        for p in aus.encode():
            out.mux(p)
    return path


# ---------------------------------------------------------------------------------------------
# Watching a process: did it open the FIFO outside the landing zone, or connect to the URL?


def count_connections(srv: socket.socket, wait_s: float = 0.0) -> int:
    """Accept (and close) every pending connection on a non-blocking listening socket."""
    n = 0
    while select.select([srv], [], [], wait_s)[0]:
        conn, _ = srv.accept()
        conn.close()
        n += 1
    return n


def run_watching(cmd: list[str], fifo: Path, listener: socket.socket, timeout_s: float = 20.0, **popen) -> dict:
    """Run ``cmd``; report its exit status and output, and whether it opened ``fifo`` or
    connected to ``listener`` meanwhile. A reader that opens a FIFO with no writer blocks, and
    while it does, a non-blocking open for writing succeeds: that is how an open is seen from
    here (the reader then gets end of file and goes on)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    out_parts: dict[str, list[str]] = {"out": [], "err": []}
    readers = [
        threading.Thread(target=lambda s, k: out_parts[k].extend(s), args=(stream, key), daemon=True)
        for stream, key in ((proc.stdout, "out"), (proc.stderr, "err"))
    ]
    for t in readers:
        t.start()
    opened_fifo = False
    connections = 0
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody has it open for reading
            pass
        else:
            opened_fifo = True
            os.close(fd)
        connections += count_connections(listener, 0.02)
    timed_out = proc.poll() is None
    if timed_out:
        proc.kill()
    proc.wait()
    for t in readers:
        t.join(10)
    connections += count_connections(listener, 0.05)
    return {
        "rc": proc.returncode,
        "out": "".join(out_parts["out"]).strip(),
        "err": "".join(out_parts["err"]),
        "opened_fifo": opened_fifo,
        "connections": connections,
        "timed_out": timed_out,
    }


# ---------------------------------------------------------------------------------------------
# The table of docs/reliability.md

TABLE_START = "<!-- bad-inputs-table:start (generated by `python -m vidgraph_tests.bad_inputs --write-doc`) -->"
TABLE_END = "<!-- bad-inputs-table:end -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
_STAGE_WORDS = {"scan": "landing scan", "probe": "probe", "decode": "decode"}


def _fact(key: str, value) -> str:
    return f"`{key}={value}`"


def markdown_table() -> str:
    rows = [
        "| # | input | file (in the landing zone) | what it is | outcome | reason contains / properties | decided by (quarantine `stage`) |",
        "|---:|---|---|---|---|---|---|",
    ]
    for i, b in enumerate(CORPUS, 1):
        rel = b.shown.replace("\n", "\\n") + ("/" if b.name == "folder" else "")
        if b.reason_contains:
            detail = f"`{b.reason_contains}`"
        else:
            detail = ", ".join(_fact(k, v) for k, v in b.facts.items())
        if b.expected == "processed":
            stage = "—"
        elif b.expected == "skipped":
            stage = _STAGE_WORDS[b.stage]
        else:
            stage = f"{_STAGE_WORDS[b.stage]} (`{QUARANTINE_STAGE[b.stage]}`)"
        rows.append(f"| {i} | {b.name} | `{rel}` | {b.description} | {b.expected} | {detail} | {stage} |")
    return "\n".join(rows) + "\n"


def doc_table(text: str) -> str:
    """The generated table between the markers of a docs/reliability.md text."""
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError("docs/reliability.md lost its table markers")
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"


def write_doc(path: Path = DOC) -> bool:
    """Replace the table in ``path`` with the one rendered from CORPUS; True when it changed."""
    text = path.read_text(encoding="utf-8")
    old = doc_table(text)
    new = markdown_table()
    if old == new:
        return False
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    path.write_text(f"{head}{TABLE_START}\n{new}{TABLE_END}{tail}", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vidgraph_tests.bad_inputs", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", type=Path, help="writes OUT_DIR/landing and OUT_DIR/outside")
    ap.add_argument("--markdown", action="store_true", help="print the outcome table (docs/reliability.md)")
    ap.add_argument("--write-doc", action="store_true", help="rewrite the outcome table in docs/reliability.md")
    ap.add_argument("--http-url", default=DEFAULT_HTTP_URL)
    args = ap.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    if args.write_doc:
        changed = write_doc()
        print(f"{DOC}: {'table rewritten' if changed else 'table already up to date'}")
        return 0
    if args.out_dir is None:
        ap.error("OUT_DIR is required unless --markdown or --write-doc is given")
    corpus = build_corpus(args.out_dir / "landing", args.out_dir / "outside", args.http_url)
    for b in corpus:
        detail = f" ({b.reason_contains})" if b.reason_contains else ""
        print(f"{b.expected:12} {b.name:24} {b.relpath!r}{detail}")
    print(f"{len(corpus)} inputs in {args.out_dir / 'landing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
