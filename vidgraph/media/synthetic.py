"""Synthetic videos with known cuts, motion and audio, for exact tests and the sample set.

Each scene is drawn from its own seeded texture with its own dominant colour, so a hard cut is
a large content change; motion is a moving crop of a larger canvas (pan/tilt), a scale change
(zoom), a moving object on a still background, or random jitter (shaky). Transitions can be
hard cuts, cross-dissolves or fades through black. Every scene gets a different audio tone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

KINDS = ("static", "pan", "tilt", "zoom", "object", "shaky", "black", "blur", "text")


@dataclass
class Scene:
    n_frames: int
    kind: str = "pan"
    seed: int = 0
    speed: float = 2.0  # pixels per frame at the output size
    # How this scene begins: "cut", "dissolve" or "fade" (through black) from the previous one.
    transition: str = "cut"
    transition_frames: int = 0


@dataclass
class SyntheticSpec:
    scenes: list[Scene]
    width: int = 320
    height: int = 180
    fps: int = 24
    audio: bool = True
    sample_rate: int = 44100
    vfr: bool = False  # alternate frame durations (1/fps and 1.5/fps)
    rotation: int = 0  # display-matrix rotation to write, degrees
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    extra_options: dict = field(default_factory=dict)
    # Real speech mixed into the soundtrack: (start_s, sentence) spoken by eSpeak NG (media/tts.py).
    speech: list[tuple[float, str]] = field(default_factory=list)
    # A variable-frame-rate capture: rendered frames that are never written (their time passes:
    # the frame before is shown longer), and stalls, (frame, seconds): the frame is held that
    # much longer before the next one. Either one writes explicit pts on a 1/90000 time base.
    drop_frames: tuple[int, ...] = ()
    stalls: tuple[tuple[int, float], ...] = ()

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.scenes)

    def cut_frames(self) -> list[int]:
        """Frame indices where a hard cut starts a new scene."""
        out, pos = [], 0
        for i, s in enumerate(self.scenes):
            if i and s.transition == "cut":
                out.append(pos)
            pos += s.n_frames
        return out

    def transition_spans(self) -> list[tuple[str, int, int]]:
        """(kind, first frame, end frame) of every gradual transition."""
        out, pos = [], 0
        for i, s in enumerate(self.scenes):
            if i and s.transition != "cut":
                out.append((s.transition, pos - s.transition_frames // 2, pos + (s.transition_frames + 1) // 2))
            pos += s.n_frames
        return out

    def boundaries(self) -> list[int]:
        """Frame index at which every scene after the first starts (cuts and transition centres)."""
        out, pos = [], 0
        for i, s in enumerate(self.scenes):
            if i:
                out.append(pos)
            pos += s.n_frames
        return out

    def frame_times(self) -> list[float]:
        """Presentation time of every rendered frame (dropped ones included), stalls applied."""
        held = dict(self.stalls)
        t, out = 0.0, []
        for i in range(self.n_frames):
            out.append(t)
            t += (1.5 if (self.vfr and i % 2) else 1.0) / self.fps + held.get(i, 0.0)
        return out

    def written_frames(self) -> list[int]:
        """Indices (among the rendered frames) of the frames the file holds."""
        dropped = set(self.drop_frames)
        return [i for i in range(self.n_frames) if i not in dropped]

    def truth(self) -> dict:
        """What a decoder must find in the written file, by frame index of the file: timestamps,
        the frames where scenes start (a dropped first frame moves it to the next one written),
        and the stream's end (shots.frame_end_times: the last frame lasts one nominal frame)."""
        from vidgraph.media.shots import frame_end_times

        times = self.frame_times()
        kept = self.written_frames()
        t = [times[i] for i in kept]
        starts = [sum(s.n_frames for s in self.scenes[:k]) for k in range(1, len(self.scenes))]
        boundaries = [next(j for j, i in enumerate(kept) if i >= b) for b in starts]
        ends = frame_end_times(t, self.fps)
        return {"t_s": t, "n_frames": len(t), "boundaries": boundaries, "duration_s": float(ends[-1]),
                "stalled_frames": [kept.index(i) for i, _ in self.stalls if i in kept]}

    @property
    def explicit_pts(self) -> bool:
        return bool(self.drop_frames or self.stalls)


def _canvas(seed: int, w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hue = (seed * 47) % 180
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = hue
    base[..., 1] = 150 + rng.integers(0, 80)
    base[..., 2] = 90 + rng.integers(0, 100)
    img = cv2.cvtColor(base, cv2.COLOR_HSV2BGR).astype(np.float32)
    # Smooth blobs plus fine texture give Farneback something to track.
    noise = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    blobs = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * 40
    fine = rng.normal(0, 18, (h, w, 1)).astype(np.float32)
    img = img + blobs + fine
    for _ in range(12):
        c = tuple(int(x) for x in rng.integers(0, 255, 3))
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, p, int(rng.integers(6, max(8, h // 6))), c, -1)
        q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.rectangle(img, q, (q[0] + int(rng.integers(8, 40)), q[1] + int(rng.integers(8, 40))), c, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


class _SceneRenderer:
    def __init__(self, scene: Scene, w: int, h: int):
        self.s, self.w, self.h = scene, w, h
        margin = int(abs(scene.speed) * scene.n_frames) + 8
        self.cw, self.ch = w + (margin if scene.kind == "pan" else 16), h + (margin if scene.kind == "tilt" else 16)
        if scene.kind in ("zoom", "shaky"):
            self.cw, self.ch = w * 2, h * 2
        self.canvas = _canvas(scene.seed, self.cw, self.ch)
        self.rng = np.random.default_rng(scene.seed + 1000)

    def frame(self, i: int) -> np.ndarray:
        s, w, h = self.s, self.w, self.h
        if s.kind == "black":
            return np.full((h, w, 3), 16, np.uint8)
        if s.kind == "pan":
            x = int(round(i * s.speed))
            return self.canvas[8:8 + h, x:x + w].copy()
        if s.kind == "tilt":
            y = int(round(i * s.speed))
            return self.canvas[y:y + h, 8:8 + w].copy()
        if s.kind == "zoom":
            scale = 1.0 + 0.6 * i / max(1, s.n_frames)
            cw, ch = int(self.cw / 2 / scale * 1.6), int(self.ch / 2 / scale * 1.6)
            x0, y0 = (self.cw - cw) // 2, (self.ch - ch) // 2
            return cv2.resize(self.canvas[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
        if s.kind == "shaky":
            dx, dy = (int(v) for v in self.rng.integers(-10, 11, 2))
            x0, y0 = self.cw // 4 + dx, self.ch // 4 + dy
            return cv2.resize(self.canvas[y0:y0 + h * 1, x0:x0 + w * 1], (w, h))
        base = self.canvas[8:8 + h, 8:8 + w].copy()
        if s.kind == "object":
            # Back and forth (a triangle wave): wrapping around would teleport the object, which
            # is a jump cut inside a static scene, and the detector rightly finds those.
            span = max(1, w - 40)
            p = int(i * s.speed) % (2 * span)
            x = p if p < span else 2 * span - p
            cv2.rectangle(base, (x, h // 3), (x + 40, h // 3 + 40), (255, 255, 255), -1)
        elif s.kind == "blur":
            base = cv2.GaussianBlur(base, (0, 0), 6)
        elif s.kind == "text":
            cv2.putText(base, "BREAKING NEWS 24/7", (4, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
            cv2.putText(base, "LIVE", (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        return base  # static


def render_frames(spec: SyntheticSpec):
    """Yield BGR frames of the whole video, transitions blended in."""
    renderers = [_SceneRenderer(s, spec.width, spec.height) for s in spec.scenes]
    for si, (scene, r) in enumerate(zip(spec.scenes, renderers)):
        nxt = spec.scenes[si + 1] if si + 1 < len(spec.scenes) else None
        for i in range(scene.n_frames):
            img = r.frame(i).astype(np.float32)
            # The second half of an incoming transition happens at the start of this scene,
            # the first half at the end of the previous one.
            if si and scene.transition != "cut" and i < (scene.transition_frames + 1) // 2:
                half = scene.transition_frames
                a = 0.5 + (i + 0.5) / half  # weight of this scene, 0.5..1
                img = _blend(renderers[si - 1].frame(spec.scenes[si - 1].n_frames - 1 + 0), img, a, scene.transition)
            if nxt is not None and nxt.transition != "cut" and i >= scene.n_frames - nxt.transition_frames // 2:
                half = nxt.transition_frames
                k = i - (scene.n_frames - nxt.transition_frames // 2)
                a = (k + 0.5) / half  # weight of the next scene, 0..0.5
                img = _blend(img, renderers[si + 1].frame(0), a, nxt.transition)
            yield np.clip(img, 0, 255).astype(np.uint8)


def _blend(a_img, b_img, w_b: float, kind: str) -> np.ndarray:
    a_img = np.asarray(a_img, np.float32)
    b_img = np.asarray(b_img, np.float32)
    if kind == "dissolve":
        return a_img * (1 - w_b) + b_img * w_b
    # Fade through black: out over the first half, in over the second.
    black = np.full_like(a_img, 16)
    if w_b < 0.5:
        f = w_b * 2
        return a_img * (1 - f) + black * f
    f = (w_b - 0.5) * 2
    return black * (1 - f) + b_img * f


# With x264's macroblock tree the same frames encode to other bits once the process has allocated
# and freed memory (after torch has run, say), even on one thread, as if it read memory it had
# not written; without it, test inputs are the same bits in any process.
REPRODUCIBLE_X264 = "mbtree=0"


def write_video(path: str | Path, spec: SyntheticSpec) -> Path:
    """Encode ``spec`` to ``path`` (H.264 + AAC in MP4 by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    times = spec.frame_times()
    dropped = set(spec.drop_frames)
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream(spec.codec, rate=spec.fps)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, spec.pix_fmt
        if spec.explicit_pts:
            tb = Fraction(1, 90000)
        else:
            tb = Fraction(1, spec.fps * 2) if spec.vfr else Fraction(1, spec.fps)
        vs.codec_context.time_base = tb
        if spec.codec == "libx264":
            vs.options = {"crf": "18", "preset": "veryfast", "x264-params": REPRODUCIBLE_X264, **spec.extra_options}
        if spec.rotation:
            vs.set_display_rotation(spec.rotation)
        aus = None
        if spec.audio:
            aus = out.add_stream("aac", rate=spec.sample_rate, layout="stereo")
        for i, img in enumerate(render_frames(spec)):
            if i in dropped:
                continue
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = int(round(times[i] / tb))
            frame.time_base = tb
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if aus is not None:
            _write_audio(out, aus, spec, times)
    return path


def _write_audio(out, aus, spec: SyntheticSpec, times: list[float]) -> None:
    sr = spec.sample_rate
    total = times[-1] + (1.5 if (spec.vfr and (spec.n_frames - 1) % 2) else 1.0) / spec.fps + dict(spec.stalls).get(spec.n_frames - 1, 0.0)
    n = int(round(total * sr))
    t = np.arange(n) / sr
    tone = np.zeros(n, np.float32)
    pos = 0
    for si, s in enumerate(spec.scenes):
        a = int(round(times[pos] * sr))
        end = pos + s.n_frames
        b = n if end >= spec.n_frames else int(round(times[end] * sr))
        tone[a:b] = 0.2 * np.sin(2 * np.pi * (220 + 110 * si) * t[a:b])
        pos = end
    for start_s, sentence in spec.speech:
        _mix_speech(tone, sr, start_s, sentence)
    stereo = np.stack([tone, tone])
    chunk = 1024
    for k in range(0, n, chunk):
        block = np.ascontiguousarray(stereo[:, k:k + chunk])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
        frame.sample_rate = sr
        frame.pts = k
        frame.time_base = Fraction(1, sr)
        for p in aus.encode(frame):
            out.mux(p)
    for p in aus.encode():
        out.mux(p)


def _mix_speech(track: np.ndarray, sr: int, start_s: float, sentence: str) -> None:
    """Speak ``sentence`` into ``track`` at ``start_s``, ducking the tone under it (as a mix would)."""
    from vidgraph.media.tts import speak

    voice, vsr = speak(sentence)
    n = int(round(len(voice) * sr / vsr))
    voice = np.interp(np.arange(n) * vsr / sr, np.arange(len(voice)), voice).astype(np.float32)
    a = int(round(start_s * sr))
    b = min(len(track), a + n)
    track[a:b] = 0.15 * track[a:b] + 0.8 * voice[: b - a]


def write_audio_video(path: str | Path, audio: np.ndarray, sample_rate: int, layout: str = "mono",
                      codec: str = "aac", video: SyntheticSpec | None = None) -> Path:
    """A short synthetic video with ``audio`` (channels x samples, float32) as its soundtrack.

    For audio tests: any channel layout (``5.1``, ``7.1``...), rate and codec PyAV can encode.
    """
    path = Path(path)
    audio = np.atleast_2d(np.asarray(audio, np.float32))
    seconds = audio.shape[1] / sample_rate
    spec = video or SyntheticSpec([Scene(max(1, int(round(seconds * 8))), "pan", seed=3, speed=1.0)],
                                  width=64, height=48, fps=8, audio=False)
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=spec.fps)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
        aus = out.add_stream(codec, rate=sample_rate, layout=layout)
        for i, img in enumerate(render_frames(spec)):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        chunk = 1024
        for k in range(0, audio.shape[1], chunk):
            block = audio[:, k:k + chunk]
            # Packed float frames (the encoder converts them): PyAV mis-sizes planar frames of 8+ channels.
            packed = np.ascontiguousarray(block.T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = k
            frame.time_base = Fraction(1, sample_rate)
            for p in aus.encode(frame):
                out.mux(p)
        for p in aus.encode():
            out.mux(p)
    return path


# Spoken over the first take of sample_pan_cut.mp4, so `make demo` shows a real transcript.
SAMPLE_SENTENCE = "Good morning. Today we are going to talk about the weather in the mountains."


# The sample set for the demo: long takes that pass, a static one, black, blur, a short shot.
def sample_specs(fps: int = 24) -> dict[str, SyntheticSpec]:
    s = fps  # frames per second, for readability
    return {
        "sample_pan_cut.mp4": SyntheticSpec(
            [Scene(12 * s, "pan", seed=1, speed=1.5), Scene(3 * s, "object", seed=2, speed=4),
             Scene(11 * s, "zoom", seed=3)], fps=fps, speech=[(2.0, SAMPLE_SENTENCE)]),
        "sample_static_black.mp4": SyntheticSpec(
            [Scene(11 * s, "static", seed=4), Scene(11 * s, "black", seed=5),
             Scene(12 * s, "tilt", seed=6, speed=1.2)], fps=fps),
        "sample_blur_object.mp4": SyntheticSpec(
            [Scene(11 * s, "blur", seed=7), Scene(12 * s, "object", seed=8, speed=3)], fps=fps, audio=False),
    }


def write_samples(folder: str | Path, fps: int = 24) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, spec in sample_specs(fps).items():
        p = folder / name
        if not p.exists():
            write_video(p.with_suffix(".tmp.mp4"), spec).replace(p)
        out.append(p)
    return out
