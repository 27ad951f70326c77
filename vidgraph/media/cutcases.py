"""Hard cases for shot detection, built from any footage with known truth.

Cases that a cut detector meets in the wild and that matter most inside long takes: a camera
flash (2-3 over-exposed frames, no cut), a shot of 8-14 frames between two cuts, a jump cut
inside one static scene, a slow 40-frame cross-dissolve, a fade through white, and a fast camera
swoop (no transition). The same builders serve the tests (synthetic frames) and ``bench/cuts.py``
(real footage from ../shared/media).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidgraph.media.synthetic import REPRODUCIBLE_X264


@dataclass
class Case:
    name: str
    frames: list[np.ndarray]  # BGR, all one size
    truth: list[int] = field(default_factory=list)  # boundary frames (a transition's middle)
    kinds: list[str] = field(default_factory=list)  # per boundary: cut, dissolve, fade, white
    fps: int = 25
    lengths: list[int] = field(default_factory=list)  # per boundary: the transition's frames (0: cut)


def blend(a: np.ndarray, b: np.ndarray, wb: float, kind: str) -> np.ndarray:
    """Frame of a transition from a to b with b's weight wb in [0, 1]."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if kind == "dissolve":
        img = a * (1 - wb) + b * wb
    else:  # through black ("fade") or white ("white"): out over the first half, in over the second
        level = 255.0 if kind == "white" else 16.0
        img = a + (level - a) * (2 * wb) if wb < 0.5 else level + (b - level) * (2 * wb - 1)
    return np.clip(img, 0, 255).astype(np.uint8)


def join(segments: list[list[np.ndarray]], transitions: list[tuple[str, int]]) -> tuple[list[np.ndarray], list[int], list[str], list[int]]:
    """Join segments; transitions[i] = (kind, frames) between segment i and i + 1.

    A gradual transition of tf frames is centred on the join: the last tf // 2 frames of the
    earlier segment blend towards the later one's first frame, and its first (tf + 1) // 2
    frames from the earlier one's last frame; the truth is the join (the blend's middle).
    """
    frames = list(segments[0])
    truth, kinds, lengths = [], [], []
    for seg, (kind, tf) in zip(segments[1:], transitions):
        seg = list(seg)
        if kind != "cut" and tf:
            half_a, half_b = tf // 2, (tf + 1) // 2
            last, first = frames[-1], seg[0]
            for k in range(half_a):
                j = len(frames) - half_a + k
                frames[j] = blend(frames[j], first, (k + 0.5) / tf, kind)
            for k in range(half_b):
                seg[k] = blend(last, seg[k], 0.5 + (k + 0.5) / tf, kind)
        truth.append(len(frames))
        kinds.append(kind)
        lengths.append(tf if kind != "cut" else 0)
        frames.extend(seg)
    return frames, truth, kinds, lengths


def flash(frames: list[np.ndarray], at: int, n: int = 2) -> list[np.ndarray]:
    """Over-expose frames [at, at + n): a camera flash (the picture stays, blown out)."""
    out = list(frames)
    for j in range(at, min(at + n, len(out))):
        out[j] = np.clip(out[j].astype(np.float32) * 2.2 + 90, 0, 255).astype(np.uint8)
    return out


def swoop(still: np.ndarray, w: int, h: int, n: int, top_speed: float) -> list[np.ndarray]:
    """A fast camera swoop across a still picture: the view pans from one side to the other,
    accelerating to ``top_speed`` pixels per frame and slowing again, with motion blur along
    the pan. ``still`` must be larger than (w, h)."""
    sh, sw = still.shape[:2]
    # a smooth speed profile that covers at most the picture's free width
    prof = np.sin(np.linspace(0, np.pi, n)) ** 2
    xs = np.concatenate([[0.0], np.cumsum(prof)])[:n]
    xs = xs / max(xs[-1], 1e-6) * min(sw - w, top_speed * prof.sum())
    ys = np.linspace(0, max(0, min(sh - h, 0.3 * (sh - h))), n)
    out = []
    for j in range(n):
        x, y = int(round(xs[j])), int(round(ys[j]))
        img = still[y:y + h, x:x + w]
        speed = int(round((xs[min(j + 1, n - 1)] - xs[max(j - 1, 0)]) / 2))
        if speed >= 2:  # horizontal motion blur as long as the step
            k = np.full((1, speed), 1.0 / speed, np.float32)
            img = cv2.filter2D(img, -1, k)
        out.append(np.ascontiguousarray(img))
    return out


def write_frames(path: str | Path, frames: list[np.ndarray], fps: int, crf: int = 20,
                 codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    """Encode BGR frames with PyAV (frame i at i / fps): H.264 at ``crf`` by default, or
    another encoder with its defaults (the container follows the path's suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.codec_context.time_base = Fraction(1, fps)
        if codec == "libx264":
            vs.options = {"crf": str(crf), "preset": "veryfast", "x264-params": REPRODUCIBLE_X264}
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            f.pts = i
            f.time_base = Fraction(1, fps)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def hard_cases(take, still: np.ndarray, fps: int = 25, w: int | None = None, h: int | None = None) -> list[Case]:
    """The six cases from a footage source.

    ``take(source, start, n)`` returns n consecutive BGR frames of shot ``source`` (an int:
    0, 1, 2 are three different shots, 3 a static-camera scene with people or objects moving)
    starting at frame ``start``; ``still`` is a picture larger than the frames for the swoop.
    """
    h0, w0 = take(0, 0, 1)[0].shape[:2]
    w, h = w or w0, h or h0
    cases = []
    # a flash inside one shot, and a 3-frame one in another: no boundary
    f = flash(take(0, 0, 60), 25, 2)
    g = flash(take(1, 0, 60), 30, 3)
    frames, truth, kinds, lengths = join([f, g], [("cut", 0)])
    cases.append(Case("flash (2 and 3 frames) + one cut", frames, truth, kinds, fps, lengths))
    # a 10-frame shot between two cuts
    frames, truth, kinds, lengths = join([take(0, 0, 50), take(1, 0, 10), take(2, 0, 50)], [("cut", 0), ("cut", 0)])
    cases.append(Case("10-frame shot", frames, truth, kinds, fps, lengths))
    # a jump cut inside one static scene: the same place, a moment later
    frames, truth, kinds, lengths = join([take(3, 0, 50), take(3, 6 * fps, 50)], [("cut", 0)])
    cases.append(Case("jump cut, static scene", frames, truth, kinds, fps, lengths))
    # a slow cross-dissolve of 40 frames
    frames, truth, kinds, lengths = join([take(0, 0, 70), take(2, 0, 70)], [("dissolve", 40)])
    cases.append(Case("40-frame dissolve", frames, truth, kinds, fps, lengths))
    # a fade through white
    frames, truth, kinds, lengths = join([take(1, 0, 60), take(2, 0, 60)], [("white", 16)])
    cases.append(Case("fade through white", frames, truth, kinds, fps, lengths))
    # a fast camera swoop inside one shot: no boundary
    sw = swoop(still, w, h, 30, top_speed=0.12 * w)
    lead = [sw[0]] * 30
    tail = [sw[-1]] * 30
    cases.append(Case("fast camera swoop", lead + sw + tail, [], [], fps))
    return cases
