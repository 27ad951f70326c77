"""Real footage from ../shared/media: containers, codecs, audio, long takes. Skips without it."""

import pytest

from vidgraph.media.analysis import analyze_video
from vidgraph.media.cutting import cut_clips
from vidgraph.media.probe import probe_video

EXPECTED = {
    # file: (container word, codec, has audio, width, height)
    "wannaworktogether.mp4": ("mp4", "h264", True, 480, 352),
    "city_cc0.mpg": ("mpeg", "mpeg2video", False, 720, 405),
    "vtest.avi": ("avi", "msmpeg4", False, 768, 576),
    "diver.mov": ("mov", "mjpeg", True, 640, 480),
    "cockatoo.mp4": ("mp4", "h264", True, 1280, 720),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_real_media(shared_media, name):
    word, codec, audio, w, h = EXPECTED[name]
    p = probe_video(shared_media / name)
    assert word in p.container and p.video_codec == codec
    assert p.has_audio is audio and (p.width, p.height) == (w, h)
    assert p.duration_s > 5


def test_many_cuts_in_an_edited_short(shared_media):
    a = analyze_video(shared_media / "wannaworktogether.mp4")
    # A 3-minute animated short: a handful of hard cuts among whip-pans and motion graphics,
    # which ContentDetector over-splits (checked by eye; see bench/README.md, "Cut accuracy").
    assert len(a.shots) >= 5
    assert a.shots[-1].end_frame == a.n_frames


@pytest.mark.parametrize("name", ["vtest.avi", "diver.mov"])
def test_single_takes_are_not_split(shared_media, name):
    a = analyze_video(shared_media / name)
    assert len(a.shots) == 1, [s.as_dict() for s in a.shots]


def test_clip_cut_from_real_mjpeg_keeps_audio_and_length(shared_media, tmp_path):
    src = shared_media / "diver.mov"
    a = analyze_video(src)
    (clip,) = cut_clips(src, a.shots[:1], [tmp_path / "c.mp4"])
    p = probe_video(clip.path)
    assert p.has_audio and p.video_codec == "h264"
    assert abs(p.duration_s - a.shots[0].duration_s) <= 1 / a.fps + 1e-3
