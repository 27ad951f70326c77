"""Frame-accurate clip files (H.264 + AAC in MP4) cut from a source video in one streaming pass.

Video frames are routed to clips by frame index (the same indices the analysis pass used);
audio is decoded from a second, audio-only demux of the file and cut at the clips' timestamps,
sample-accurately. Only one clip encoder is open at a time, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidgraph.media.decode import iter_video_frames
from vidgraph.media.probe import open_input
from vidgraph.media.shots import Shot


@dataclass(frozen=True)
class ClipEncoding:
    crf: int = 20
    preset: str = "veryfast"
    audio_bitrate: int = 128_000

    def describe(self) -> dict:
        return {"video": "libx264", "crf": self.crf, "preset": self.preset, "audio": "aac", "audio_bitrate": self.audio_bitrate}


@dataclass
class ClipFile:
    path: Path
    n_frames: int
    has_audio: bool
    width: int
    height: int


class _AudioCursor:
    """Decoded audio as a stream of float planar sample blocks, taken out by time range."""

    def __init__(self, path: str | Path):
        self.container = open_input(path)
        self.stream = self.container.streams.audio[0]
        self.rate = int(self.stream.codec_context.sample_rate)
        self.layout = self.stream.codec_context.layout.name
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._frames = self._iter()
        self._buf = np.zeros((len(self.stream.codec_context.layout.channels), 0), np.float32)
        self._buf_start = 0  # absolute sample index of _buf[:, 0]
        self._t0: float | None = None

    def _iter(self) -> Iterator[np.ndarray]:
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for f in frames:
                for rf in self.resampler.resample(f):
                    yield rf.to_ndarray()
        for rf in self.resampler.resample(None):
            yield rf.to_ndarray()

    def take(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples for [start_s, end_s) on the video's clock (audio starts with the video)."""
        a, b = int(round(start_s * self.rate)), int(round(end_s * self.rate))
        while self._buf_start + self._buf.shape[1] < b:
            block = next(self._frames, None)
            if block is None:
                break
            self._buf = np.concatenate([self._buf, block], axis=1)
        lo, hi = max(0, a - self._buf_start), max(0, b - self._buf_start)
        out = self._buf[:, lo:hi]
        if out.shape[1] < b - a:  # audio ended early: pad with silence to the clip's length
            out = np.pad(out, ((0, 0), (0, (b - a) - out.shape[1])))
        # Drop what no later clip needs.
        keep_from = min(hi, self._buf.shape[1])
        self._buf = self._buf[:, keep_from:]
        self._buf_start += keep_from
        return np.ascontiguousarray(out, dtype=np.float32)

    def close(self):
        self.container.close()


def cut_clips(
    source: str | Path,
    shots: Sequence[Shot],
    out_paths: Sequence[str | Path],
    encoding: ClipEncoding = ClipEncoding(),
    decode_timeout_s: float | None = None,
) -> list[ClipFile]:
    """Write one MP4 per shot; frame ``start_frame`` of a shot is the first frame of its file."""
    assert len(shots) == len(out_paths)
    results: list[ClipFile] = []
    with open_input(source) as container:
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        audio = _AudioCursor(source) if has_audio else None
        try:
            frames = iter_video_frames(container, stream, timeout_s=decode_timeout_s)
            tb = stream.time_base or Fraction(1, 90000)
            fps = stream.average_rate or stream.guessed_rate or Fraction(25)
            pending = None
            for shot, out_path in zip(shots, out_paths):
                writer = None
                n = 0
                while True:
                    df = pending if pending is not None else next(frames, None)
                    pending = None
                    if df is None:
                        break
                    if df.index >= shot.end_frame:
                        pending = df
                        break
                    if df.index < shot.start_frame:
                        continue
                    if writer is None:
                        writer = _ClipWriter(out_path, df.frame, fps, tb, audio, encoding)
                    writer.add_video(df, shot.start_s)
                    n += 1
                if writer is None:
                    raise ValueError(f"shot {shot.as_dict()} has no frames in {source}")
                if audio is not None:
                    writer.add_audio(audio.take(shot.start_s, shot.end_s))
                results.append(writer.close(n))
        finally:
            if audio is not None:
                audio.close()
    return results


class _ClipWriter:
    def __init__(self, path, first: av.VideoFrame, fps: Fraction, tb: Fraction, audio: _AudioCursor | None, enc: ClipEncoding):
        self.path = Path(path)
        self.out = av.open(str(self.path), mode="w", format="mp4")
        # Even sizes for yuv420p.
        self.w, self.h = first.width // 2 * 2, first.height // 2 * 2
        self.vs = self.out.add_stream("libx264", rate=fps)
        self.vs.width, self.vs.height, self.vs.pix_fmt = self.w, self.h, "yuv420p"
        self.vs.codec_context.time_base = tb  # keep source timestamps: exact on VFR
        self.vs.options = {"crf": str(enc.crf), "preset": enc.preset}
        if first.rotation:
            self.vs.set_display_rotation(first.rotation)
        self.tb = tb
        self.audio = audio
        self.aus = None
        if audio is not None:
            self.aus = self.out.add_stream("aac", rate=audio.rate, layout=audio.layout)
            self.aus.bit_rate = enc.audio_bitrate

    def add_video(self, df, clip_start_s: float) -> None:
        frame = df.frame
        if frame.width != self.w or frame.height != self.h or frame.format.name != "yuv420p":
            # Odd sizes lose at most one pixel per side to the even size libx264 needs.
            frame = frame.reformat(width=self.w, height=self.h, format="yuv420p")
        new = frame
        # The decoder's picture type would be taken by libx264 as a forced frame type.
        new.pict_type = av.video.frame.PictureType.NONE
        new.pts = int(round((df.t_s - clip_start_s) / self.tb))
        new.time_base = self.tb
        for p in self.vs.encode(new):
            self.out.mux(p)

    def add_audio(self, samples: np.ndarray) -> None:
        if self.aus is None or samples.shape[1] == 0:
            return
        rate = self.audio.rate
        chunk = 1024
        for k in range(0, samples.shape[1], chunk):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + chunk]), format="fltp", layout=self.audio.layout)
            f.sample_rate = rate
            f.pts = k
            f.time_base = Fraction(1, rate)
            for p in self.aus.encode(f):
                self.out.mux(p)

    def close(self, n_frames: int) -> ClipFile:
        for p in self.vs.encode():
            self.out.mux(p)
        if self.aus is not None:
            for p in self.aus.encode():
                self.out.mux(p)
        self.out.close()
        return ClipFile(self.path, n_frames, self.aus is not None, self.w, self.h)
