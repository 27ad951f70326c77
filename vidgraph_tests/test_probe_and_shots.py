"""Probe and shot detection on synthetic videos with known cuts, and the `vidgraph shots` command."""

import json
import subprocess
import sys

import pytest

from vidgraph.media.analysis import analyze_video
from vidgraph.media.probe import probe_video
from vidgraph.media.shots import ShotDetectorConfig
from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video
from vidgraph_tests.conftest import CUT_SPEC


def test_probe_reports_streams_and_stable_facts(cut_video):
    p = probe_video(cut_video)
    assert (p.width, p.height) == (160, 90)
    assert p.avg_fps == pytest.approx(24.0)
    assert p.duration_s == pytest.approx(CUT_SPEC.n_frames / 24, abs=1 / 24)
    assert p.video_codec == "h264" and p.has_audio and p.audio_channels == 2 and p.audio_sample_rate == 44100
    assert p.bit_depth == 8 and not p.is_vfr and p.rotation == 0
    assert len(p.sha256) == 64 and p.sha256 == probe_video(cut_video).sha256


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_pyscenedetect_detectors_find_the_known_cuts(cut_video, detector):
    shots = analyze_video(cut_video, ShotDetectorConfig(detector=detector)).shots
    starts = [s.start_frame for s in shots[1:]]
    assert len(starts) == len(CUT_SPEC.cut_frames())
    for found, truth in zip(starts, CUT_SPEC.cut_frames()):
        assert abs(found - truth) <= 1
    # Shots tile the video: no gap, no overlap.
    assert shots[0].start_frame == 0 and shots[-1].end_frame == CUT_SPEC.n_frames
    assert all(a.end_frame == b.start_frame for a, b in zip(shots, shots[1:]))


def test_vfr_source_gets_timestamps_from_pts(tmp_path):
    spec = SyntheticSpec([Scene(30, "pan", seed=1), Scene(30, "object", seed=2)], width=160, height=90, fps=20, vfr=True, audio=False)
    path = write_video(tmp_path / "vfr.mp4", spec)
    assert probe_video(path).is_vfr
    analysis = analyze_video(path)
    truth = spec.frame_times()
    assert analysis.n_frames == spec.n_frames
    assert max(abs(a - b) for a, b in zip(analysis.frames["t_s"], truth)) < 1e-3
    cut = analysis.shots[1]
    assert abs(cut.start_frame - 30) <= 1
    assert cut.start_s == pytest.approx(truth[cut.start_frame], abs=1e-3)


def test_shots_command_prints_the_shot_list_as_json(cut_video):
    out = subprocess.run(
        [sys.executable, "-m", "vidgraph.cli", "shots", str(cut_video), "--detector", "content"],
        capture_output=True, text=True, check=True,
    )
    shots = json.loads(out.stdout)
    assert [set(s) for s in shots] == [{"start_frame", "end_frame", "start_s", "end_s"}] * len(shots)
    assert [s["start_frame"] for s in shots] == [0, *CUT_SPEC.cut_frames()]
    assert shots[1]["start_s"] == pytest.approx(48 / 24, abs=1 / 24)
