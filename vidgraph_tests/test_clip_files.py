"""Clip files only where used, and smart cutting: the same raw_clips rows with and without clip
files, spans read through clip_media, and frame-accurate smart-cut clips (copied GOPs bit-exact)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from vidgraph.ingest import ingest
from vidgraph.media.clip_media import clip_media_for_shard, local_clip_file
from vidgraph.media.cutting import ClipEncoding, cut_clips, smart_plan
from vidgraph.media.decode import iter_video_frames
from vidgraph.media.probe import open_input
from vidgraph.media.shots import Shot
from vidgraph.media.synthetic import Scene, SyntheticSpec, render_frames, write_video
from vidgraph.stages.clip_files import build_clip_files
from vidgraph.stages.raw_clips import RawClipsSettings, build_raw_clips
from vidgraph.stages.source_videos import build_source_videos
from vidgraph.storage.store import DatasetStore

FPS = 25
GOP = 25  # a keyframe every second: known GOPs


def gop_video(path: Path, n: int = 200, codec: str = "libx264", extra: dict | None = None) -> Path:
    """A pan with fixed GOPs (keyframe every 25 frames, no scene-cut keyframes) and B-frames."""
    options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", **(extra or {})}
    spec = SyntheticSpec([Scene(n, "pan", seed=3, speed=1.5)], width=160, height=96, fps=FPS, codec=codec,
                         extra_options=options)
    if codec == "libx264":
        return write_video(path, spec)
    with av.open(str(path), "w") as out:  # HEVC: x265 takes its GOP settings as x265-params
        vs = out.add_stream(codec, rate=FPS)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
        open_gop = (extra or {}).get("open-gop", "0")
        vs.options = {"x265-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop={open_gop}:log-level=error"}
        for i, img in enumerate(render_frames(spec)):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def decoded(path) -> list[tuple[float, np.ndarray]]:
    with open_input(path) as c:
        return [(df.t_s, df.frame.to_ndarray(format="gray")) for df in iter_video_frames(c, c.streams.video[0])]


def shots_at(frames, cuts: list[int]) -> list[Shot]:
    n = len(frames)
    end_t = frames[-1][0] + 1.0 / FPS
    return [Shot(a, b, frames[a][0], frames[b][0] if b < n else end_t) for a, b in zip(cuts, cuts[1:])]


def test_smart_cut_copies_whole_gops_and_is_frame_accurate(tmp_path):
    src = gop_video(tmp_path / "gop.mp4")
    plan = smart_plan(src)
    assert plan is not None and plan.codec == "h264"
    assert plan.gop_start == list(range(0, 200, GOP))
    assert max(plan.key_offset) > 0, "the source has B-frames (dts < pts)"
    ref = decoded(src)
    # Cuts off keyframes (37, 110, 113), on one (50) and a clip inside one GOP (110-113).
    cuts = [0, 37, 50, 110, 113, 200]
    shots = shots_at(ref, cuts)
    files = cut_clips(src, shots, [tmp_path / f"c{i}.mp4" for i in range(len(shots))])
    # Copied frames: the whole GOPs inside each clip, and of a tail from a keyframe the longest
    # run of packets that decodes to its first frames alone (here B-frames end it early).
    tails = {c: plan.closed_prefix(e // GOP, e % GOP) for c, e in enumerate(cuts[1:]) if e % GOP and e // GOP * GOP >= cuts[c]}
    assert 0 < tails[0] < 12 and 0 < tails[2] < 10 and set(tails) == {0, 2}
    assert [(f.method, f.copied_frames) for f in files] == [
        ("smart", 25 + tails[0]), ("encode", 0), ("smart", 50 + tails[2]), ("encode", 0), ("smart", 75)]
    for s, f in zip(shots, files):
        got = decoded(f.path)
        assert len(got) == s.n_frames == f.n_frames
        for j, (t, img) in enumerate(got):
            i = s.start_frame + j
            assert t == pytest.approx(ref[i][0] - ref[s.start_frame][0], abs=1e-9)
            gop = i // GOP * GOP
            copied = gop >= s.start_frame and gop + GOP <= s.end_frame
            err = np.abs(img.astype(int) - ref[i][1].astype(int)).mean()
            if copied:
                assert err == 0, f"copied frame {i} differs"
            else:
                assert err < 4, f"re-encoded frame {i} is not the source's frame ({err:.1f})"
        with av.open(str(f.path)) as c:  # sound cut to the clip
            a = c.streams.audio[0]
            assert float(a.duration * a.time_base) == pytest.approx(s.duration_s, abs=0.03)
    # The rest of clip 0's tail (fewer than SHORT_SEAM frames) is encoded without the macroblock
    # tree; the 13-frame head of clip 1 (37-50) with it.
    assert "mbtree=0" in _x264_options(files[0].path)[-1] and "subme=1" in _x264_options(files[0].path)[-1]
    assert "mbtree=1" in _x264_options(files[1].path)[0]


def test_uniform_encoding_and_open_gops_are_re_encoded(tmp_path):
    src = gop_video(tmp_path / "gop.mp4", n=100)
    shots = shots_at(decoded(src), [0, 30, 100])
    files = cut_clips(src, shots, [tmp_path / "u0.mp4", tmp_path / "u1.mp4"], ClipEncoding(smart=False))
    assert [f.method for f in files] == ["encode", "encode"]
    # Open GOPs (recovery-point I frames with leading B-frames) cannot be cut by copying.
    open_gop = gop_video(tmp_path / "open.mp4", n=100, extra={"x264-params": "open-gop=1:bframes=3:b-adapt=0:keyint=26:min-keyint=26:scenecut=0"})
    assert smart_plan(open_gop) is None
    # Another codec: MPEG-4 part 2.
    mp4v = write_video(tmp_path / "mp4v.mp4", SyntheticSpec([Scene(30, "pan")], width=160, height=96, codec="mpeg4", audio=False))
    assert smart_plan(mp4v) is None
    files = cut_clips(mp4v, shots_at(decoded(mp4v), [0, 13, 30]), [tmp_path / "m0.mp4", tmp_path / "m1.mp4"])
    assert [f.n_frames for f in files] == [13, 17] and {f.method for f in files} == {"encode"}


def test_smart_cut_hevc(tmp_path):
    # x265's default open GOPs (CRA + leading pictures) are refused, closed ones are cut smart.
    assert smart_plan(gop_video(tmp_path / "open.mp4", n=75, codec="libx265", extra={"open-gop": "1"})) is None
    src = gop_video(tmp_path / "hevc.mp4", n=75, codec="libx265")
    plan = smart_plan(src)
    assert plan is not None and plan.codec == "hevc" and plan.gop_start[:3] == [0, 25, 50]
    ref = decoded(src)
    shots = shots_at(ref, [0, 10, 75])
    files = cut_clips(src, shots, [tmp_path / "h0.mp4", tmp_path / "h1.mp4"])
    head = plan.closed_prefix(0, 10)  # clip 0: the first packets of GOP 0, the rest re-encoded
    assert 0 < head < 10
    assert [(f.method, f.copied_frames) for f in files] == [("smart", head), ("smart", 50)]
    got0 = decoded(files[0].path)
    assert len(got0) == 10 and all(np.array_equal(got0[i][1], ref[i][1]) for i in range(head))
    assert all(np.abs(got0[i][1].astype(int) - ref[i][1].astype(int)).mean() < 4 for i in range(head, 10))
    got = decoded(files[1].path)
    assert len(got) == 65
    assert np.array_equal(got[-1][1], ref[-1][1]) and np.array_equal(got[15][1], ref[25][1])


def test_smart_cut_on_real_footage(shared_media, tmp_path):
    src = shared_media / "wannaworktogether.mp4"
    plan = smart_plan(src)
    assert plan is not None
    # From frame 7 to just past the second keyframe: a head, one whole copied GOP, a tail. The
    # source has no B-frames, so the tail is the next GOP's first 12 packets: copied as well.
    g1, g2 = plan.gop_start[1], plan.gop_start[2]
    assert plan.prefix_is_closed(2, 12)
    with open_input(src) as c:
        ref = []
        for df in iter_video_frames(c, c.streams.video[0]):
            if df.index > g2 + 12:
                break
            ref.append((df.t_s, df.frame.to_ndarray(format="gray")))
    shot = Shot(7, g2 + 12, ref[7][0], ref[g2 + 12][0])
    (f,) = cut_clips(src, [shot], [tmp_path / "w.mp4"])
    assert f.method == "smart" and f.copied_frames == g2 + 12 - g1
    got = decoded(f.path)
    assert len(got) == shot.n_frames
    assert np.array_equal(got[g1 - 7][1], ref[g1][1])  # the copied keyframe, bit-exact
    assert all(np.array_equal(got[i - 7][1], ref[i][1]) for i in range(g2, g2 + 12))  # the copied tail
    assert np.abs(got[0][1].astype(int) - ref[7][1].astype(int)).mean() < 3
    assert got[-1][0] == pytest.approx(ref[g2 + 11][0] - ref[7][0], abs=1e-6)


def _shard(tmp_path: Path, videos: list[Path], root: str = "root") -> tuple[DatasetStore, str]:
    landing = tmp_path / f"landing-{root}"
    landing.mkdir(exist_ok=True)
    for v in videos:
        os.link(v, landing / v.name)
    store = DatasetStore(str(tmp_path / root))
    (shard,) = ingest(landing, store, min_age_s=0.0).new_shards
    build_source_videos(store, shard, landing_root=landing)
    return store, shard


def test_raw_clips_rows_do_not_depend_on_clip_files(tmp_path):
    spec = SyntheticSpec([Scene(40, "pan", seed=1), Scene(30, "zoom", seed=2)], width=160, height=96, fps=FPS)
    video = write_video(tmp_path / "two.mp4", spec)
    results = {}
    for mode in ("all", "none", "passing"):
        store, shard = _shard(tmp_path, [video], root=mode)
        results[mode] = (store, shard, build_raw_clips(store, shard, RawClipsSettings(clip_files=mode)).table.to_pylist())
    rows = {m: r for m, (_, _, r) in results.items()}
    assert len(rows["all"]) == 2 and rows["all"] == rows["none"] == rows["passing"]
    # all: raw_clips' files; none: spans of the source video.
    store, shard, clips = results["all"]
    media = clip_media_for_shard(store, shard)
    assert all(m.is_clip_file and m.start_s == 0.0 for m in media.values())
    store, shard, clips = results["none"]
    media = clip_media_for_shard(store, shard)
    assert [(m.is_clip_file, m.start_s) for m in media.values()] == [(False, 0.0), (False, clips[1]["start_s"])]
    # A span, cut on demand to a file, holds exactly the clip's frames.
    with local_clip_file(store, media[clips[1]["clip_id"]], clips[1]) as local:
        assert len(decoded(local)) == 30
    # passing: the long_takes step cuts only the clips that pass; clip_media then finds them.
    store, shard, clips = results["passing"]
    table = build_clip_files(store, shard, RawClipsSettings(clip_files="passing"), {clips[1]["clip_id"]}).to_pylist()
    assert [(r["clip_id"], r["error"]) for r in table] == [(clips[1]["clip_id"], "")]
    media = clip_media_for_shard(store, shard)
    assert [m.is_clip_file for m in media.values()] == [False, True]
    assert len(decoded(media[clips[1]["clip_id"]].path)) == 30
    # A setting change publishes an empty clip_files shard: no stale file is read.
    build_clip_files(store, shard, RawClipsSettings(clip_files="none"))
    assert not any(m.is_clip_file for m in clip_media_for_shard(store, shard).values())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_smart_cut_of_an_old_x264_source_keeps_its_version_sei(shared_media, tmp_path):
    """cockatoo.mp4 is 4:4:4 from x264 core 142, whose bug FFmpeg undoes only after reading the
    version SEI of the first frame: a clip starting at a later keyframe (copied, or decoded for a
    head) carries that SEI, else every frame of it decodes to garbage (about 6 dB)."""
    src = shared_media / "cockatoo.mp4"
    plan = smart_plan(src)
    assert plan is not None and b"x264 - core 142" in plan.encoder_sei
    k1 = plan.gop_start[1]  # 76
    with open_input(src) as c:
        ref = [df.frame.to_ndarray(format="yuv444p") for df in iter_video_frames(c, c.streams.video[0])]
    shots = [Shot(k1, k1 + 30, k1 / 20, (k1 + 30) / 20), Shot(k1 + 40, k1 + 60, (k1 + 40) / 20, (k1 + 60) / 20)]
    files = cut_clips(src, shots, [tmp_path / "a.mp4", tmp_path / "b.mp4"])
    assert [(f.method, f.copied_frames) for f in files] == [("smart", 30), ("encode", 0)]
    for s, f in zip(shots, files):
        with open_input(f.path) as c:
            got = [df.frame.to_ndarray(format="yuv444p") for df in iter_video_frames(c, c.streams.video[0])]
        assert len(got) == s.n_frames
        worst = min(_psnr(g, ref[s.start_frame + j]) for j, g in enumerate(got))
        assert worst > 40, f"{f.method} clip at {s.start_frame}: {worst:.1f} dB"


def _x264_options(path: Path) -> list[str]:
    """The option strings of the x264 version SEIs in a file's video packets, in file order."""
    out = []
    with av.open(str(path)) as c:
        for p in c.demux(video=0):
            data = bytes(p)
            at = data.find(b"x264 - core ")
            if at >= 0:
                out.append(data[at:data.find(b"\x00", at)].decode("latin-1"))
    return out


def test_smart_cut_copies_closed_tails_and_sound_and_encodes_seams_with_the_seam_preset(tmp_path):
    """A source without B-frames (GOP 25): a tail from a keyframe to the clip's end is its GOP's
    first packets, so it is copied; only heads (cut to keyframe) are encoded, with the seam preset
    (superfast, mbtree kept), at the source's quality (PSNR). AAC sound is copied, bit-exact."""
    src = gop_video(tmp_path / "ip.mp4", n=200, extra={"bf": "0"})
    plan = smart_plan(src)
    assert plan is not None and max(plan.key_offset) == 0
    ref = decoded(src)
    with open_input(src) as c:
        ref_yuv = [df.frame.to_ndarray(format="yuv420p") for df in iter_video_frames(c, c.streams.video[0])]
    with av.open(str(src)) as c:
        sound = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
        rate = c.streams.audio[0].codec_context.sample_rate
    # [0, 37): GOP 0 + a 12-frame tail; [37, 60): a head decoded from the GOP whose first packets
    # clip 0 copied, then a tail; [60, 110): head, GOPs 75-99, tail; [110, 200): head, GOPs 125-199.
    cuts = [0, 37, 60, 110, 200]
    shots = shots_at(ref, cuts)
    files = cut_clips(src, shots, [tmp_path / f"t{i}.mp4" for i in range(len(shots))])
    assert [(f.method, f.copied_frames) for f in files] == [("smart", 37), ("smart", 10), ("smart", 35), ("smart", 75)]
    heads = {37: 50, 60: 75, 110: 125}  # encoded frames: [cut, next keyframe)
    worst = 99.0
    for s, f in zip(shots, files):
        with open_input(f.path) as c:
            got = [(df.t_s, df.frame.to_ndarray(format="yuv420p")) for df in iter_video_frames(c, c.streams.video[0])]
        with av.open(str(f.path)) as c:
            a = c.streams.audio[0]
            track_s = float(a.duration * a.time_base)
            clip_sound = np.concatenate([fr.to_ndarray() for fr in c.decode(a)], axis=1)
        assert len(got) == s.n_frames == f.n_frames
        for j, (t, img) in enumerate(got):
            i = s.start_frame + j
            assert t == pytest.approx(ref[i][0] - ref[s.start_frame][0], abs=1e-9)
            if s.start_frame <= i < heads.get(s.start_frame, s.start_frame):
                worst = min(worst, _psnr(img, ref_yuv[i]))
            else:
                assert np.array_equal(img, ref_yuv[i]), f"copied frame {i} differs"
        # Sound: the source's own samples from the clip's first one, and the track ends with the clip.
        lo, hi = round(s.start_s * rate), round(s.end_s * rate)
        assert track_s == pytest.approx(s.duration_s, abs=1e-3)
        assert clip_sound.shape[1] >= hi - lo and np.array_equal(clip_sound[:, :hi - lo], sound[:, lo:hi])
    assert worst > 38, f"a seam frame at {worst:.1f} dB"
    # The seams were encoded with the seam preset; the copied keyframes keep the source's SEI.
    enc = ClipEncoding()
    assert enc.describe()["seam_preset"] == "superfast" and "mbtree" in enc.describe()["seam_x264_params"]
    seam, source_sei = _x264_options(files[1].path)[0], _x264_options(src)[0]
    assert "subme=1" in seam and "me=dia" in seam and "mbtree=1" in seam and "rc_lookahead=10" in seam and "bframes=0" in seam
    assert "subme=2" in source_sei and "me=hex" in source_sei  # veryfast
    assert _x264_options(files[1].path)[1] == source_sei


def _remux(src: Path, dst: Path, edit) -> Path:
    """Copy a clip file's packets, letting ``edit(index, packet)`` drop (None) or change one."""
    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        vs = out.add_stream_from_template(c.streams.video[0])
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        for i, p in enumerate(packets):
            q = edit(i, p)
            if q is not None:
                q.stream = vs
                out.mux(q)
    return dst


def test_the_cut_time_check_counts_every_packet_and_decodes_the_first_and_last_gop(tmp_path):
    """decode="ends" (the stages, right after cutting) finds what decode="all" (the blocking
    checks) finds in a smart-cut clip: a lost frame, and a last GOP that no longer decodes."""
    from vidgraph.stages.raw_clips import clip_file_problem

    src = gop_video(tmp_path / "gop.mp4")
    ref = decoded(src)
    (shot,) = shots_at(ref, [37, 150])  # head seam 37-49, GOPs 50-124 copied, tail from 125
    (f,) = cut_clips(src, [shot], [tmp_path / "clip.mp4"])
    row = {"n_frames": shot.n_frames, "fps": FPS, "duration_s": round(shot.duration_s, 6)}
    assert f.method == "smart" and clip_file_problem(f.path, row, decode="ends") == clip_file_problem(f.path, row) == ""
    with av.open(str(f.path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert len(keys) >= 3  # the seam's, the copied GOPs', the tail's

    lost = _remux(f.path, tmp_path / "lost.mp4", lambda i, p: None if i == keys[1] + 3 else p)
    assert "has 112 frames" in clip_file_problem(lost, row, decode="ends")

    # The last GOP's keyframe overwritten with noise: it no longer decodes.
    def broken_tail(i, p):
        if i == keys[-1]:
            q = av.Packet(np.random.default_rng(0).integers(0, 256, p.size, dtype=np.uint8).tobytes())
            q.pts, q.dts, q.time_base, q.is_keyframe = p.pts, p.dts, p.time_base, True
            return q
        return p

    broken = _remux(f.path, tmp_path / "broken.mp4", broken_tail)
    assert "has 112 frames" in clip_file_problem(broken, row)  # the full decode skips the damaged packet
    assert clip_file_problem(broken, row, decode="ends").startswith("the clip file does not decode")


def test_a_clip_copied_whole_is_checked_by_its_packets(tmp_path):
    from vidgraph.stages.raw_clips import clip_file_problem, cut_time_check

    src = gop_video(tmp_path / "gop.mp4")
    (shot,) = shots_at(decoded(src), [50, 125])  # GOPs 50-74, 75-99, 100-124
    (f,) = cut_clips(src, [shot], [tmp_path / "clip.mp4"])
    assert (f.method, f.copied_frames, f.n_frames) == ("smart", 75, 75) and cut_time_check(f) == "packets"
    row = {"n_frames": 75, "fps": FPS, "duration_s": round(shot.duration_s, 6)}
    assert clip_file_problem(f.path, row, decode="packets") == clip_file_problem(f.path, row) == ""
    lost = _remux(f.path, tmp_path / "lost.mp4", lambda i, p: None if i == 30 else p)
    assert "has 74 frames" in clip_file_problem(lost, row, decode="packets")
