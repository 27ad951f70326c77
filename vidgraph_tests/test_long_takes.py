"""Long-take metrics on synthetic clips with a known answer, and the long_takes asset with its checks."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from vidgraph.media.analysis import analyze_video
from vidgraph.media.longtake import LongTakeConfig, evaluate_clip, failure_reasons, select_keyframes
from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video

FPS = 24
S = FPS  # frames per second, for readability

# One 12 s take per case (above the 10 s minimum), 320x180.
CASES = {
    "static": [Scene(12 * S, "static", seed=1)],
    "pan": [Scene(12 * S, "pan", seed=2, speed=0.5)],
    "tilt": [Scene(12 * S, "tilt", seed=3, speed=1.2)],
    "zoom": [Scene(12 * S, "zoom", seed=4)],
    "shaky": [Scene(12 * S, "shaky", seed=6)],
    "object": [Scene(12 * S, "object", seed=5, speed=3)],
    "black": [Scene(12 * S, "black", seed=7)],
    "blur": [Scene(12 * S, "blur", seed=8)],
    # Two pans joined by a 1 s fade through black, a 1 s cross-dissolve, or a hard cut at frame 144.
    "fade": [Scene(6 * S, "pan", seed=10, speed=1.5), Scene(6 * S, "pan", seed=11, speed=1.5, transition="fade", transition_frames=24)],
    "dissolve": [Scene(6 * S, "pan", seed=12, speed=1.5), Scene(6 * S, "tilt", seed=13, speed=1.5, transition="dissolve", transition_frames=24)],
    "cut": [Scene(6 * S, "pan", seed=14, speed=0.5), Scene(6 * S, "pan", seed=15, speed=0.5)],
}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    """Every case analysed once and evaluated as one clip spanning the whole video."""
    folder = tmp_path_factory.mktemp("longtake")
    out = {}
    for name, scenes in CASES.items():
        path = write_video(folder / f"{name}.mp4", SyntheticSpec(scenes, width=320, height=180, fps=FPS, audio=False))
        a = analyze_video(path)
        out[name] = evaluate_clip(0, a.n_frames, 0.0, a.duration_s, a.frames, a.samples, LongTakeConfig(), fps=a.fps)
    return out


def test_static_clip_is_rejected_as_too_static(metrics):
    m = metrics["static"]
    assert m["reasons"] == ["too_static"] and not m["passed"]
    assert m["dynamic_degree"] < 0.001 and m["static_pair_frac"] == 1.0
    assert m["camera_motion"] == "static"
    assert m["inner_cut_frames"] == [] and json.loads(m["gradual_transitions"]) == []


def test_pan_passes_with_the_pan_speed_as_dynamic_degree(metrics):
    m = metrics["pan"]
    assert m["passed"] and m["reasons"] == []
    assert m["camera_motion"] == "pan"
    # 0.5 px/frame at 24 fps on a 320x180 frame: 12 px/s over a 367 px diagonal.
    assert m["dynamic_degree"] == pytest.approx(12 / (320**2 + 180**2) ** 0.5, rel=0.15)
    assert m["static_pair_frac"] == 0.0
    assert m["flow_pairs"] >= 20  # 2 fps over 12 s
    assert m["duration_s"] == pytest.approx(12.0)


@pytest.mark.parametrize("name,motion", [("tilt", "tilt"), ("zoom", "zoom"), ("shaky", "shaky"), ("object", "static")])
def test_camera_motion_class(metrics, name, motion):
    m = metrics[name]
    assert m["camera_motion"] == motion
    # A moving object under a still camera is still a dynamic clip.
    assert m["passed"], m["reasons"]


def test_fade_inside_is_found(metrics):
    m = metrics["fade"]
    fades = [t for t in json.loads(m["gradual_transitions"]) if t["kind"] == "fade"]
    assert len(fades) == 1 and fades[0]["start"] <= 144 <= fades[0]["end"]
    assert "gradual_transition_inside" in m["reasons"] and not m["passed"]


def test_dissolve_inside_is_found(metrics):
    m = metrics["dissolve"]
    found = json.loads(m["gradual_transitions"])
    assert [t["kind"] for t in found] == ["dissolve"] and found[0]["start"] <= 144 <= found[0]["end"]
    assert m["reasons"] == ["gradual_transition_inside"]


def test_hot_windows_whose_spans_overlap_are_one_dissolve():
    """Encoder noise can dip the windowed histogram change inside a dissolve below its bar (a
    320x180 dissolve once came out as spans 130-151 and 138-156): hot windows whose spans
    overlap are one transition, not two."""
    import numpy as np

    from vidgraph.media.longtake import gradual_transitions

    n, w = 288, 18  # 12 s at 24 fps; the 0.75 s window is 18 frames
    hist = np.full(n, 0.006)
    hist[128:140] = hist[150:162] = 0.045  # two bursts of change, 10 quiet frames between
    windowed = np.convolve(hist, np.ones(w), mode="valid")
    hot = np.flatnonzero(windowed >= 0.5)
    first, second = hot[hot < 140], hot[hot >= 140]
    assert first.size and second.size and second[0] - first[-1] > 1  # two runs of hot windows ...
    assert second[0] <= first[-1] + w  # ... whose spans overlap
    found = gradual_transitions({"luma_mean": np.full(n, 110.0), "hist_delta": hist}, 24.0, LongTakeConfig())
    assert found == [{"kind": "dissolve", "start": int(first[0]), "end": int(second[-1] + w)}]
    # two dissolves far apart stay two
    hist2 = np.full(n, 0.006)
    hist2[40:64] = hist2[200:224] = 0.04
    found2 = gradual_transitions({"luma_mean": np.full(n, 110.0), "hist_delta": hist2}, 24.0, LongTakeConfig())
    assert [t["kind"] for t in found2] == ["dissolve", "dissolve"] and found2[0]["end"] < found2[1]["start"]


def test_hard_cut_inside_is_found(metrics):
    m = metrics["cut"]
    assert m["inner_cut_frames"] == [144]
    assert m["reasons"] == ["cut_inside"]


def test_black_clip_is_rejected(metrics):
    m = metrics["black"]
    assert m["black_frac"] == 1.0 and m["uniform_frac"] == 1.0
    assert {"black", "uniform", "too_static"} <= set(m["reasons"])


def test_blurred_clip_is_rejected(metrics):
    m = metrics["blur"]
    assert "blurry" in m["reasons"] and m["blurry_frac"] == 1.0
    assert m["sharpness_median"] < LongTakeConfig().min_sharpness < metrics["static"]["sharpness_median"]
    assert "black" not in m["reasons"]


def test_duration_threshold(metrics, tmp_path):
    # The same pan, judged with a 13 s minimum, is too short; nothing else changes.
    path = write_video(tmp_path / "pan.mp4", SyntheticSpec(CASES["pan"], width=320, height=180, fps=FPS, audio=False))
    a = analyze_video(path)
    m = evaluate_clip(0, a.n_frames, 0.0, a.duration_s, a.frames, a.samples, LongTakeConfig(min_duration_s=13), fps=a.fps)
    assert m["reasons"] == ["too_short"]
    assert m["dynamic_degree"] == pytest.approx(metrics["pan"]["dynamic_degree"])


def test_failure_reasons_catch_a_wrongly_passed_row(metrics):
    row = dict(metrics["pan"])
    assert failure_reasons(row, LongTakeConfig()) == []
    assert failure_reasons(row, LongTakeConfig(min_duration_s=20)) == ["too_short"]
    assert "too_static" in failure_reasons(row, LongTakeConfig(min_dynamic_degree=0.5))
    assert "too_jittery" in failure_reasons(row, LongTakeConfig(max_dynamic_degree=0.01))
    assert failure_reasons({**row, "semantic_score": 0.1}, LongTakeConfig()) == ["low_semantic_quality"]


def test_select_keyframes_within_clip_and_spacing():
    frames = [0, 48, 97, 144, 192, 240]
    times = [0.0, 2.0, 4.04, 6.0, 8.0, 10.0]  # the 4 s keyframe landed a frame late
    assert select_keyframes(40, 200, frames, times, 2.0) == [1, 2, 3, 4]
    assert select_keyframes(40, 200, frames, times, 4.0) == [1, 3]
    assert select_keyframes(250, 300, frames, times, 2.0) == []


def test_analyze_command_prints_metrics_and_starts_without_dagster_or_torch(tmp_path):
    path = write_video(tmp_path / "cut.mp4", SyntheticSpec(CASES["cut"], width=320, height=180, fps=FPS, audio=False))
    code = (
        "import sys, json\n"
        "from vidgraph.cli import main\n"
        f"rc = main(['analyze', {str(path)!r}, '--compact', '--min-duration', '5'])\n"
        "heavy = [m for m in ('dagster', 'torch', 'transformers') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report_line, heavy_line = done.stdout.strip().splitlines()
    assert json.loads(heavy_line) == []
    report = json.loads(report_line)
    assert [(s["start_frame"], s["end_frame"]) for s in report["shots"]] == [(0, 144), (144, 288)]
    for shot in report["shots"]:
        assert shot["passed"] and shot["camera_motion"] == "pan" and shot["duration_s"] == pytest.approx(6.0)
    assert report["passed"] == 2 and report["thresholds"]["min_duration_s"] == 5


def test_clip_scorer_scores_keyframes_with_a_tiny_offline_model(tiny_models):
    import numpy as np

    from vidgraph.models.clip_scorer import ClipScorer

    scorer = ClipScorer(tiny_models["scorer"], name="tiny:scorer")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(5)]
    scores = scorer.score_images(images)
    assert len(scores) == 5 and all(0.0 < s < 1.0 for s in scores)
    # Batching does not change a score.
    assert ClipScorer(tiny_models["scorer"], batch_size=2).score_images(images) == pytest.approx(scores, abs=1e-5)
    assert scorer.describe()["model"] == "tiny:scorer"


def test_config_replace_keeps_other_thresholds():
    c = replace(LongTakeConfig(), min_duration_s=5)
    assert c.min_duration_s == 5 and c.min_dynamic_degree == LongTakeConfig().min_dynamic_degree


@pytest.mark.parametrize("kind,speed", [("pan", 1.5), ("tilt", 1.0)])
def test_flow_reads_a_brisk_camera_move_at_its_true_speed(kind, speed):
    """The 2 fps flow (Farneback on 80-px frames) on frames of known motion: speed px/frame at
    24 fps on 320x180 is 12 * speed px between samples, in fractions of the diagonal."""
    import cv2
    import numpy as np

    from vidgraph.media.analysis import AnalysisConfig, _flow_stats, shrink
    from vidgraph.media.decode import even_size
    from vidgraph.media.synthetic import render_frames

    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in render_frames(
        SyntheticSpec([Scene(40, kind, seed=21, speed=speed)], width=320, height=180, fps=FPS, audio=False))]
    fw, fh = even_size(AnalysisConfig().flow_width, 320, 180)
    small = [shrink(f, fw, fh) for f in frames[::12]]
    got = [_flow_stats(a, b, AnalysisConfig().static_flow_threshold) for a, b in zip(small, small[1:])]
    truth = 12 * speed / np.hypot(320, 180)
    for g in got:
        assert g["flow_mean"] == pytest.approx(truth, rel=0.12)
        # the camera model reads the same motion, along the right axis
        along, across = (g["pan_x"], g["pan_y"]) if kind == "pan" else (g["pan_y"], g["pan_x"])
        assert abs(along) == pytest.approx(truth, rel=0.12) and abs(across) < 0.1 * truth


def test_flow_percentiles_are_numpys():
    import numpy as np

    from vidgraph.media.analysis import _percentiles

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 3680):
        x = rng.random(n).astype(np.float32)
        assert _percentiles(x, (50, 90)) == pytest.approx(list(np.percentile(x, [50, 90])), rel=1e-6)


def test_flow_median_is_numpys_to_the_bit():
    import numpy as np

    from vidgraph.media.analysis import _median

    rng = np.random.default_rng(4)
    for n in (1, 2, 3, 4, 1200, 1201):
        for _ in range(20):
            x = rng.random(n) * rng.choice([1e-4, 1.0, 1e4])
            assert _median(x) == np.median(x)


def test_sharpness_is_the_float64_laplacian_variance_to_the_bit():
    import cv2
    import numpy as np

    from vidgraph.media.analysis import sharpness

    rng = np.random.default_rng(5)
    planes = [rng.integers(0, 256, (144, 256), dtype=np.uint8), np.full((144, 256), 255, np.uint8)]
    planes.append((np.indices((144, 256)).sum(axis=0) % 2 * 255).astype(np.uint8))  # a checkerboard: +-1020
    for y in planes:
        assert sharpness(y) == float(cv2.Laplacian(y, cv2.CV_64F).var())
    assert sharpness(planes[1]) == 0.0 and sharpness(planes[2]) > 1e5
