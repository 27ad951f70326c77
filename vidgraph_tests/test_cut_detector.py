"""vidgraph's shot detector on small synthetic videos: hard cuts, fades, dissolves, motion."""

import pytest

from vidgraph.media.analysis import analyze_video
from vidgraph.media.shots import DETECTORS, ShotDetectorConfig, ShotSplitter
from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video


def _video(tmp_path, name, scenes, fps=24):
    spec = SyntheticSpec(scenes, width=160, height=90, fps=fps, audio=False)
    return spec, write_video(tmp_path / name, spec)


def _starts(path, **kw):
    return [s.start_frame for s in analyze_video(path, ShotDetectorConfig(**kw)).shots[1:]]


def test_vidgraph_is_the_default_and_describes_itself():
    cfg = ShotDetectorConfig()
    assert cfg.detector == "vidgraph" and set(DETECTORS) >= {"vidgraph", "content", "adaptive"}
    d = ShotSplitter(cfg, 24.0).describe()
    assert d["name"] == "vidgraph" and d["library"] == "vidgraph"
    assert d["threshold"] == cfg.effective_threshold and d["min_scene_len"] == 6 and "cut_ratio" in d
    with pytest.raises(ValueError):
        ShotDetectorConfig(detector="nope")


def test_hard_cuts_are_frame_exact(tmp_path):
    spec, path = _video(tmp_path, "cuts.mp4", [
        Scene(40, "pan", seed=21, speed=2), Scene(30, "static", seed=22),
        Scene(35, "shaky", seed=23), Scene(30, "zoom", seed=24),
    ])
    found = _starts(path)
    assert len(found) == len(spec.cut_frames())
    assert all(abs(f - t) <= 1 for f, t in zip(found, spec.cut_frames())), (found, spec.cut_frames())


def test_fade_through_black_and_dissolve_are_found_at_their_middle(tmp_path):
    spec, path = _video(tmp_path, "gradual.mp4", [
        Scene(45, "static", seed=31), Scene(45, "pan", seed=32, speed=1.0, transition="fade", transition_frames=16),
        Scene(45, "tilt", seed=33, speed=1.0, transition="dissolve", transition_frames=16),
    ])
    a = analyze_video(path)
    found = [s.start_frame for s in a.shots[1:]]
    truth = spec.boundaries()  # [45 (fade), 90 (dissolve)]
    assert len(found) == 2 and all(abs(f - t) <= 2 for f, t in zip(found, truth)), (found, truth)
    # content_val is still the per-frame score, and it stays low through the gradual transitions
    assert len(a.frames["content_val"]) == spec.n_frames and a.frames["content_val"][0] == 0


@pytest.mark.parametrize("kind,speed", [("shaky", 2.0), ("pan", 9.0)])
def test_no_cut_in_a_shaky_or_fast_panning_single_shot(tmp_path, kind, speed):
    _, path = _video(tmp_path, f"{kind}.mp4", [Scene(150, kind, seed=41, speed=speed)])
    assert _starts(path) == []


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_pyscenedetect_detectors_stay_selectable(tmp_path, detector):
    spec, path = _video(tmp_path, "two.mp4", [Scene(40, "pan", seed=51), Scene(40, "object", seed=52, speed=3)])
    a = analyze_video(path, ShotDetectorConfig(detector=detector))
    assert a.detector["name"] == detector and a.detector["library"] == "scenedetect"
    assert [abs(s.start_frame - 40) <= 1 for s in a.shots[1:]] == [True]
