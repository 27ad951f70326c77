"""Media hazards of issue 14: sound that crashed PyAV or was refused, a crashing decoder, resource
bombs (a resolution switch, an hour-long gap between two frames, quadratic audio cutting).
Every input is generated here with PyAV."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import time
from pathlib import Path

import av
import numpy as np
import pytest

from vidgraph.media.analysis import analyze_video
from vidgraph.media.cutting import ClipEncoding, _AudioCursor, cut_clips
from vidgraph.media.decode import DecodeTimeout, frame_size_limit, iter_video_frames
from vidgraph.media.isolate import WorkerCrashed, run_isolated
from vidgraph.media.probe import InputPolicy, InputRejected, open_input
from vidgraph.media.shots import Shot
from vidgraph.stages.raw_clips import RawClipsSettings, analyze_job, build_raw_clips, cut_job
from vidgraph_tests.bad_inputs import write_audio_video, write_frame_gap, write_resolution_switch

SOUND = {
    # name: (container, codec, layout, rate, video codec), and the layout/rate the clip gets
    "pcm_7_1.mkv": (("matroska", "pcm_s16le", "7.1", 48000, "libx264"), ("stereo", 48000)),
    "aac_7_1.mp4": (("mp4", "aac", "7.1", 48000, "libx264"), ("stereo", 48000)),
    "pcm_16ch.mkv": (("matroska", "pcm_s16le", "16 channels", 48000, "libx264"), ("stereo", 48000)),
    "pcm_no_layout.avi": (("avi", "pcm_s16le", "mono", 16000, "mjpeg"), ("mono", 16000)),
    "pcm_192k.mkv": (("matroska", "pcm_s24le", "stereo", 192000, "libx264"), ("stereo", 48000)),
}


@pytest.mark.parametrize("name", sorted(SOUND))
def test_unusual_sound_is_cut_not_crashed_or_refused(tmp_path, name):
    """8/16 channels segfaulted PyAV (planar to_ndarray); PCM without a layout and 192 kHz made
    avcodec_open2(aac) fail. In a worker, a crash shows as WorkerCrashed instead of killing pytest."""
    (fmt, codec, layout, rate, vcodec), (want_layout, want_rate) = SOUND[name]
    src = write_audio_video(tmp_path / name, fmt, codec, layout, rate, vcodec=vcodec)
    shots = [Shot(0, 10, 0.0, 0.4), Shot(10, 25, 0.4, 1.0)]
    outs = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    files = run_isolated(cut_job, str(src), shots, outs, ClipEncoding(), InputPolicy(), timeout_s=120)
    assert [f.n_frames for f in files] == [10, 15] and all(f.has_audio for f in files)
    with av.open(str(outs[1])) as c:
        a = c.streams.audio[0]
        assert (a.codec_context.layout.name, a.codec_context.sample_rate) == (want_layout, want_rate)
        assert float(a.duration * a.time_base) == pytest.approx(0.6, abs=0.05)
        samples = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        assert np.abs(samples).max() > 0.1  # the tone survived the downmix/resampling


def crash_on(local: str, detector, analysis, policy, crash_sha: str):
    """analyze_job, except that it dies by SIGSEGV on the video with ``crash_sha``, as a decoder
    crashing in native code would."""
    if hashlib.sha256(Path(local).read_bytes()).hexdigest() == crash_sha:
        ctypes.string_at(0)  # a read of address 0: SIGSEGV in this worker
    return analyze_job(local, detector, analysis, policy)


def test_a_crashing_decoder_quarantines_only_its_video(tmp_path):
    from vidgraph_tests.test_clip_files import _shard

    good = write_audio_video(tmp_path / "good.mp4", "mp4", "aac", "stereo", 44100)
    bad = write_audio_video(tmp_path / "bad.mkv", "matroska", "pcm_s16le", "7.1", 48000, seconds=0.5)
    store, shard = _shard(tmp_path, [good, bad])
    job = functools.partial(crash_on, crash_sha=hashlib.sha256(bad.read_bytes()).hexdigest())
    result = build_raw_clips(store, shard, RawClipsSettings(clip_files="all"), job=job)
    (q,) = result.quarantine.to_pylist()
    assert q["path"].endswith("bad.mkv") and "crashed (SIGSEGV)" in q["reason"]
    rows = result.table.to_pylist()
    assert rows and {r["video_id"] for r in rows} != {q["video_id"]} and all(r["has_audio"] for r in rows)
    assert not [p for p in (tmp_path / "root").iterdir() if p.name.startswith(".staging")]


def test_a_worker_that_aborts_or_hangs_is_reported(tmp_path):
    with pytest.raises(WorkerCrashed, match="SIGABRT"):
        run_isolated(os.abort, timeout_s=30)
    with pytest.raises(InputRejected, match="limit of 0.5s"):
        run_isolated(time.sleep, 30, timeout_s=0.5)
    assert run_isolated(sum, [1, 2, 3], timeout_s=30) == 6


def test_every_frame_is_checked_against_the_size_limit(tmp_path):
    """The stream passes a first-frame check at 64x64, then grows to 4160x64."""
    path = write_resolution_switch(tmp_path / "switch.ts", (64, 64), (4160, 64))
    with open_input(path) as c:  # the probe's view: the first frame is small
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (64, 64)
    with pytest.raises(InputRejected, match=r"frame 12 is 4160x64, above the limit 4096x4096"):
        analyze_video(path)
    with frame_size_limit(32, 32), open_input(path) as c, pytest.raises(InputRejected, match="frame 0"):
        list(iter_video_frames(c, c.streams.video[0]))


def test_an_hour_between_two_frames_is_clamped(tmp_path):
    """Two frames an hour apart and 1 s of sound: the clip lasts two frames, not 7,200 s of
    padded silence."""
    path = write_frame_gap(tmp_path / "gap.mp4", gap_s=3600.0)
    a = analyze_video(path)
    assert a.n_frames == 2 and a.duration_s < 1.0
    (f,) = cut_clips(path, a.shots, [tmp_path / "c.mp4"])
    with av.open(str(f.path)) as c:
        assert all(float(s.duration * s.time_base) < 1.0 for s in c.streams)


def _long_pcm(path: Path, seconds: float, rate: int = 48000) -> Path:
    """Only sound: ``seconds`` of stereo PCM in 1024-sample packets (cheap to write and decode)."""
    from fractions import Fraction

    with av.open(str(path), "w", format="matroska") as out:
        s = out.add_stream("pcm_s16le", rate=rate, layout="stereo")
        block = np.zeros((1, 2048), np.float32)
        for k in range(0, int(seconds * rate), 1024):
            f = av.AudioFrame.from_ndarray(block, format="flt", layout="stereo")
            f.sample_rate, f.pts, f.time_base = rate, k, Fraction(1, rate)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_audio_cut_of_a_long_take_is_linear_and_bounded_by_the_deadline(tmp_path, monkeypatch):
    """One long take with sound: the old cursor concatenated its whole buffer for every decoded
    block (quadratic: 21.7 s for 120 s, past 600 s for 10 min). Counted in samples copied, not
    seconds, so the shared machine's load cannot make it pass or fail."""
    path = _long_pcm(tmp_path / "long.mkv", 60.0)
    copied = [0]
    real = np.concatenate

    def counting(arrays, *a, **k):
        out = real(arrays, *a, **k)
        copied[0] += out.size
        return out

    monkeypatch.setattr(np, "concatenate", counting)
    cursor = _AudioCursor(path)
    out = cursor.take(0.0, 60.0)
    cursor.close()
    monkeypatch.undo()
    assert out.shape == (2, 60 * 48000)
    # Linear: each sample is copied into the output once (the old cursor: ~1400 times on average).
    assert copied[0] <= 2 * out.size, f"{copied[0] / out.size:.0f} copies per sample"
    cursor = _AudioCursor(path, deadline=time.monotonic() - 1)  # already past: the walk stops
    with pytest.raises(DecodeTimeout):
        cursor.take(0.0, 60.0)
    cursor.close()
