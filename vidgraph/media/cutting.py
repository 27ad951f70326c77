"""Frame-accurate clip files (H.264/HEVC + AAC in MP4) cut from a source video in one streaming pass.

Two ways, same frames out:

- **Smart cut** (H.264 or HEVC in MP4/MOV/Matroska, closed GOPs, 8-bit YUV): the clip's whole
  GOPs are copied as packets; only the frames from the cut to the next keyframe (the head) and
  from the end of the last whole GOP to the clip's end (the tail) are decoded and re-encoded,
  with ``ClipEncoding.seam_preset``. Of a tail, the longest run of its GOP's first packets that
  decodes to the tail's first frames alone (all of it without B-frames) is copied as well. Only
  GOPs that hold a re-encoded frame are decoded. The re-encoded parts carry their own parameter sets in-band, and the first copied
  keyframe gets the source's parameter sets (and an x264 source's version SEI) again, so a
  decoder switches cleanly at each seam. AAC-LC sound is copied as packets, trimmed to the
  clip's samples by an edit list (``ClipEncoding.copy_audio``).
- **Full re-encode** (every other source, or ``ClipEncoding.smart=False``): every frame is
  decoded and encoded with libx264.

Video frames are routed to clips by frame index (the same indices the analysis pass used);
audio that is not copied is decoded from a second, audio-only demux of the file, resampled to a
layout and rate AAC accepts (mono or stereo, at most 48 kHz) and cut at the clips' timestamps,
sample-accurately.
Only one clip is open at a time, so memory stays bounded.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidgraph.media.decode import MAX_FRAME_GAP_S, DecodeTimeout, iter_video_frames, sane_rate
from vidgraph.media.probe import InputRejected, open_input
from vidgraph.media.shots import Shot


@dataclass(frozen=True)
class ClipEncoding:
    crf: int = 20
    preset: str = "veryfast"
    audio_bitrate: int = 128_000
    # Copy whole GOPs of H.264/HEVC sources; False asks for a uniform libx264 encoding of every frame.
    smart: bool = True
    # Smart cut only: AAC-LC sound (mono/stereo, MP4/MOV) is copied packet by packet, trimmed to
    # the clip's samples by an edit list; other sound is re-encoded at ``audio_bitrate``.
    copy_audio: bool = True
    # Smart cut only: the re-encoded seams (the frames from a cut to the next keyframe, and a
    # tail that cannot be copied) at the same crf with a faster preset. "superfast" with x264's
    # macroblock tree kept (mbtree=1:rc-lookahead=10; superfast turns it off) costs about 25 %
    # less CPU than "veryfast" at the same size and PSNR (bench/README.md, "Smart cutting: where
    # the time goes"). Seams under SHORT_SEAM frames leave seam_x264_params out.
    seam_preset: str = "superfast"
    seam_x264_params: str = "mbtree=1:rc-lookahead=10"

    def describe(self) -> dict:
        out = {
            "video": "libx264", "crf": self.crf, "preset": self.preset, "audio": "aac",
            "audio_bitrate": self.audio_bitrate, "smart": self.smart,
        }
        if self.smart:
            out.update(copy_audio=self.copy_audio, seam_preset=self.seam_preset, seam_x264_params=self.seam_x264_params)
        return out


@dataclass
class ClipFile:
    path: Path
    n_frames: int
    has_audio: bool
    width: int
    height: int
    method: str = "encode"  # "smart" (GOPs copied) or "encode" (every frame re-encoded)
    copied_frames: int = 0


class _TrackEnd:
    """Muxes a clip's video packets one behind, so that the last one can be given the duration
    that makes the track last exactly as long as the clip's row: its last frame is shown until
    the clip's end (shots.frame_end_times), a stall after it included. The MP4 muxer ends the
    track (its edit list) at the last packet's pts plus its duration; the clip's first frame is
    at pts 0, and every other packet has no duration of its own (the encoder gives none)."""

    def __init__(self, out):
        self.out = out
        self.held: av.Packet | None = None

    def mux(self, packet: av.Packet) -> None:
        if self.held is not None:
            self.out.mux(self.held)
        self.held = packet

    def close(self, clip_s: float) -> None:
        p, self.held = self.held, None
        if p is None:
            return
        if p.pts is not None and p.time_base:
            last = int(round(clip_s / p.time_base)) - int(p.pts)
            if last > 0:
                p.duration = last
        self.out.mux(p)


# --- audio ---------------------------------------------------------------------------------

# Sample rates the AAC encoder accepts; anything else (192 kHz, odd rates) is resampled.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def aac_target(channels: int, rate: int) -> tuple[str, int]:
    """The (layout, rate) a source's sound is encoded at: mono stays mono, anything with more
    channels is downmixed to stereo (planar frames with many channels crash PyAV's
    ``to_ndarray``, and a dataset clip needs no surround), rates above 48 kHz come down to 48 kHz."""
    layout = "mono" if channels == 1 else "stereo"
    fitting = [r for r in AAC_RATES if r >= rate]
    return layout, (fitting[0] if fitting else AAC_RATES[-1])


def source_layout(cc) -> av.AudioLayout:
    """The decoder's channel layout, inferred from the channel count when the file has none
    (PCM in AVI or MKV often carries no layout)."""
    layout = cc.layout
    n = len(layout.channels) if layout is not None else 0
    if n == 0 or not layout.name or layout.name.startswith("0 "):
        n = int(getattr(cc, "channels", 0) or n)
        if n <= 0:
            raise ValueError("audio stream has no channels")
        return av.AudioLayout({1: "mono", 2: "stereo"}.get(n, f"{n} channels"))
    return layout


def audio_problem(path: str | Path) -> str:
    """Why the sound of ``path`` cannot be cut ("" when it can, or when there is none)."""
    try:
        with open_input(path) as c:
            if not c.streams.audio:
                return ""
            cc = c.streams.audio[0].codec_context
            if not cc.sample_rate or cc.sample_rate <= 0:
                return "audio stream has no sample rate"
            source_layout(cc)
    except Exception as e:  # noqa: BLE001 - any reason is reported, the video keeps its pictures
        return f"audio stream not usable: {type(e).__name__}: {e}"
    return ""


class _AudioCursor:
    """Decoded audio as a stream of float sample blocks (channels x samples), taken out by time range.

    Frames are resampled to packed float at the AAC target layout and rate before they become
    arrays. ``take`` walks the decoded blocks once: the whole file costs linear time, however
    long the clip, and the decode deadline is checked while it walks.
    """

    def __init__(self, path: str | Path, deadline: float | None = None):
        self.container = open_input(path)
        self.stream = self.container.streams.audio[0]
        cc = self.stream.codec_context
        in_layout = source_layout(cc)
        self.layout, self.rate = aac_target(len(in_layout.channels), int(cc.sample_rate))
        self.channels = 1 if self.layout == "mono" else 2
        self.resampler = av.AudioResampler(format="flt", layout=self.layout, rate=self.rate)
        self._fix_layout = not cc.layout or not cc.layout.name or len(cc.layout.channels) == 0
        self._in_layout = in_layout
        self.deadline = deadline
        self._frames = self._iter()
        self._blocks: deque[np.ndarray] = deque()
        self._buf_start = 0  # absolute sample index of the first sample of _blocks[0]
        self._exhausted = False

    def _iter(self) -> Iterator[np.ndarray]:
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for f in frames:
                if self._fix_layout or not f.layout.name:
                    f.layout = self._in_layout
                for rf in self.resampler.resample(f):
                    yield self._array(rf)
        for rf in self.resampler.resample(None):
            yield self._array(rf)

    def _array(self, rf: av.AudioFrame) -> np.ndarray:
        # Packed float: one plane of interleaved samples.
        return rf.to_ndarray().reshape(-1, self.channels).T

    def take(self, start_s: float, end_s: float, pad_limit_s: float = 1.0) -> np.ndarray:
        """Samples for [start_s, end_s) on the video's clock (audio starts with the video).

        Where the sound ends before the clip, up to ``pad_limit_s`` of silence completes it
        (encoder and rounding shortfalls); a longer shortfall is left short, never padded.
        """
        a, b = int(round(start_s * self.rate)), int(round(end_s * self.rate))
        parts: list[np.ndarray] = []
        got = 0
        n_checked = 0
        while got < b - a:
            if not self._blocks:
                if self._exhausted:
                    break
                block = next(self._frames, None)
                n_checked += 1
                if n_checked % 64 == 0 and self.deadline is not None and time.monotonic() > self.deadline:
                    raise DecodeTimeout("cutting the sound took longer than the decode limit")
                if block is None:
                    self._exhausted = True
                    break
                self._blocks.append(block)
            block = self._blocks[0]
            end_of_block = self._buf_start + block.shape[1]
            if end_of_block <= a:  # wholly before the clip: drop it
                self._blocks.popleft()
                self._buf_start = end_of_block
                continue
            lo = max(0, a + got - self._buf_start)
            hi = min(block.shape[1], b - self._buf_start)
            parts.append(block[:, lo:hi])
            got += hi - lo
            if hi >= block.shape[1]:
                self._blocks.popleft()
                self._buf_start = end_of_block
        out = np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), np.float32)
        short = (b - a) - out.shape[1]
        if 0 < short <= pad_limit_s * self.rate:
            out = np.pad(out, ((0, 0), (0, short)))
        return np.ascontiguousarray(out, dtype=np.float32)

    def close(self):
        self.container.close()


def _open_audio(source, deadline: float | None) -> _AudioCursor | None:
    """The sound to cut, or None without a (usable) audio stream: the clip is then silent."""
    with open_input(source) as c:
        if not c.streams.audio:
            return None
    if audio_problem(source):
        return None
    return _AudioCursor(source, deadline)


def _encode_audio(out, aus, audio: _AudioCursor, samples: np.ndarray) -> None:
    if samples.shape[1] == 0:
        return
    chunk = 1024
    for k in range(0, samples.shape[1], chunk):
        block = np.ascontiguousarray(samples[:, k:k + chunk].T).reshape(1, -1)
        f = av.AudioFrame.from_ndarray(block, format="flt", layout=audio.layout)
        f.sample_rate = audio.rate
        f.pts = k
        f.time_base = Fraction(1, audio.rate)
        for p in aus.encode(f):
            out.mux(p)


def _add_audio_stream(out, audio: _AudioCursor, enc: ClipEncoding):
    aus = out.add_stream("aac", rate=audio.rate, layout=audio.layout)
    aus.bit_rate = enc.audio_bitrate
    return aus


# --- sound copied as packets (smart cut) -----------------------------------------------------


@dataclass
class _AacIndex:
    """The AAC-LC packets of a source's sound, for copying them into clips: ``origin`` is the
    pts of the first decoded sample (sample 0 of the video's clock, as _AudioCursor counts it),
    and the packets follow each other without a gap (pts, in samples, in a 1/rate time base)."""

    rate: int
    frame: int  # samples per packet (1024)
    origin: int
    end: int  # pts after the last packet's last sample


def aac_copy_index(source: str | Path) -> _AacIndex | None:
    """How ``source``'s sound can be copied packet by packet, or None when it must be re-encoded:
    AAC-LC, mono or stereo, in a container that keeps a 1/rate time base (MP4/MOV), packets of
    1024 samples that follow each other without a gap or overlap. Read by demuxing, plus a decode
    of the first packets (the decoder's priming skip decides where sample 0 is)."""
    if audio_problem(source):
        return None
    with open_input(source) as c:
        if not c.streams.audio or not any(f in c.format.name for f in ("mov", "mp4")):
            return None
        s = c.streams.audio[0]
        cc = s.codec_context
        rate = int(cc.sample_rate or 0)
        if cc.name != "aac" or cc.profile != "LC" or rate <= 0 or s.time_base != Fraction(1, rate):
            return None
        if len(source_layout(cc).channels) > 2 or not cc.extradata:
            return None
        frame = 1024
        first_pts = end = None
        origin = None
        last_duration = frame
        for p in c.demux(s):
            if p.size == 0:
                continue
            if p.pts is None or p.duration is None or p.duration <= 0:
                return None
            if end is not None and p.pts != end:
                return None  # a gap or an overlap: the decoded samples would not follow the pts
            if end is not None and last_duration != frame:
                return None  # only the last packet may be short
            if first_pts is None:
                first_pts = p.pts
            if origin is None:
                try:
                    frames = p.decode()
                except av.error.FFmpegError:
                    return None
                if frames:
                    if frames[0].pts is None:
                        return None
                    origin = int(frames[0].pts)
            last_duration = int(p.duration)
            end = int(p.pts) + last_duration
    if origin is None or end is None or origin < first_pts:
        return None
    return _AacIndex(rate, frame, origin, end)


class _AacPackets:
    """The source's AAC packets, read forward once; ``take`` gives the packets of one clip."""

    def __init__(self, source: str | Path, index: _AacIndex):
        self.index = index
        self.container = open_input(source)
        self.stream = self.container.streams.audio[0]
        self._packets = (p for p in self.container.demux(self.stream) if p.size)
        self._held: deque[tuple[int, int, bytes]] = deque()  # (pts, duration, data), in order

    def covers(self, start_s: float, end_s: float) -> bool:
        """Whether the sound lasts the whole clip (else it is re-encoded, padded with silence)."""
        return int(round(end_s * self.index.rate)) + self.index.origin <= self.index.end

    def take(self, start_s: float, end_s: float) -> tuple[int, list[tuple[int, int, bytes]]]:
        """(a, packets): the clip's first sample's pts ``a`` and the packets that hold samples
        [a, b), with the one before them, which the decoder needs for the first frame's overlap
        (MDCT), and which the edit list then skips."""
        ix = self.index
        a = ix.origin + int(round(start_s * ix.rate))
        b = ix.origin + int(round(end_s * ix.rate))
        while self._held and self._held[0][0] + self._held[0][1] <= a - ix.frame:
            self._held.popleft()
        out = []
        k = 0
        while True:
            if k >= len(self._held):
                p = next(self._packets, None)
                if p is None:
                    break
                self._held.append((int(p.pts), int(p.duration), bytes(p)))
                if self._held[-1][0] + self._held[-1][1] <= a - ix.frame:
                    self._held.popleft()
                    continue
            pts, dur, data = self._held[k]
            if pts >= b:
                break
            out.append((pts, dur, data))
            k += 1
        # Packets wholly before the next clip's preroll are not needed again.
        while self._held and self._held[0][0] + self._held[0][1] <= b - ix.frame:
            self._held.popleft()
        return a, out

    def close(self):
        self.container.close()


class _ClipSound:
    """A smart cut's sound: AAC-LC packets copied with a sample-exact edit list where the source
    allows it (``ClipEncoding.copy_audio``), else decoded, cut and encoded as in a full re-encode."""

    def __init__(self, source, enc: ClipEncoding, deadline: float | None):
        self.source, self.deadline = source, deadline
        index = aac_copy_index(source) if enc.copy_audio else None
        self.packets = _AacPackets(source, index) if index is not None else None
        self._cursor: _AudioCursor | None = None
        self._cursor_opened = False
        self.enc = enc

    def cursor(self) -> _AudioCursor | None:
        if not self._cursor_opened:
            self._cursor_opened = True
            self._cursor = _open_audio(self.source, self.deadline)
        return self._cursor

    def add_stream(self, out, start_s: float, end_s: float):
        """The clip's audio stream: ("copy", stream), ("encode", stream) or None (no sound)."""
        if self.packets is not None and self.packets.covers(start_s, end_s):
            return "copy", out.add_stream_from_template(self.packets.stream)
        cur = self.cursor()
        if cur is None:
            return None
        return "encode", _add_audio_stream(out, cur, self.enc)

    def write(self, out, handle, start_s: float, end_s: float) -> None:
        if handle is None:
            return
        how, stream = handle
        if how == "encode":
            cur = self.cursor()
            _encode_audio(out, stream, cur, cur.take(start_s, end_s))
            for p in stream.encode():
                out.mux(p)
            return
        a, packets = self.packets.take(start_s, end_s)
        b = self.packets.index.origin + int(round(end_s * self.packets.index.rate))
        tb = self.packets.stream.time_base
        for k, (pts, dur, data) in enumerate(packets):
            if k % 256 == 0 and self.deadline is not None and time.monotonic() > self.deadline:
                raise DecodeTimeout("cutting the sound took longer than the decode limit")
            q = av.Packet(data)
            # Before the clip's first sample: negative pts, which the MP4 muxer turns into an
            # edit list that the decoder honours (it skips them, as it skips AAC priming).
            q.pts = q.dts = pts - a
            q.duration = b - pts if k == len(packets) - 1 else dur  # the track ends at the clip's end
            q.time_base = tb
            q.stream = stream
            out.mux(q)

    def close(self):
        if self.packets is not None:
            self.packets.close()
        if self._cursor is not None:
            self._cursor.close()


# --- entry point -----------------------------------------------------------------------------


def cut_clips(
    source: str | Path,
    shots: Sequence[Shot],
    out_paths: Sequence[str | Path],
    encoding: ClipEncoding = ClipEncoding(),
    decode_timeout_s: float | None = None,
) -> list[ClipFile]:
    """Write one MP4 per shot; frame ``start_frame`` of a shot is the first frame of its file.

    ``shots`` must be in frame order and must not overlap (a subset of a video's shots is fine).
    """
    assert len(shots) == len(out_paths)
    deadline = time.monotonic() + decode_timeout_s if decode_timeout_s else None
    if encoding.smart:
        plan = smart_plan(source, shots)
        if plan is not None:
            try:
                return _cut_smart(source, shots, out_paths, plan, encoding, deadline, decode_timeout_s)
            except _NotSmart:
                pass  # a surprise in the stream (a damaged packet, an unknown timestamp): encode it all
    return _cut_reencode(source, shots, out_paths, encoding, deadline, decode_timeout_s)


# --- full re-encode --------------------------------------------------------------------------


def _cut_reencode(source, shots, out_paths, encoding, deadline, decode_timeout_s) -> list[ClipFile]:
    results: list[ClipFile] = []
    with open_input(source) as container:
        stream = container.streams.video[0]
        audio = _open_audio(source, deadline)
        try:
            frames = iter_video_frames(container, stream, timeout_s=decode_timeout_s)
            tb = stream.time_base or Fraction(1, 90000)
            fps = sane_rate(stream)
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
                results.append(writer.close(n, shot.end_s - shot.start_s))
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
        self.aus = _add_audio_stream(self.out, audio, enc) if audio is not None else None
        self.track = _TrackEnd(self.out)

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
            self.track.mux(p)

    def add_audio(self, samples: np.ndarray) -> None:
        if self.aus is not None:
            _encode_audio(self.out, self.aus, self.audio, samples)

    def close(self, n_frames: int, clip_s: float) -> ClipFile:
        for p in self.vs.encode():
            self.track.mux(p)
        self.track.close(clip_s)
        if self.aus is not None:
            for p in self.aus.encode():
                self.out.mux(p)
        self.out.close()
        return ClipFile(self.path, n_frames, self.aus is not None, self.w, self.h, "encode", 0)


# --- smart cut -------------------------------------------------------------------------------

SMART_ENCODERS = {"h264": "libx264", "hevc": "libx265"}
# 8-bit YUV the seam encoders (libx264, libx265) write as well.
SMART_PIX_FMTS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})
# Demuxers whose packets carry length-prefixed NAL units, exact pts/dts and keyframe flags.
SMART_CONTAINERS = ("mov", "mp4", "matroska")


class _NotSmart(Exception):
    """The stream did not behave as its index promised; the caller re-encodes instead."""


@dataclass
class SmartPlan:
    codec: str
    pts: np.ndarray  # pts of frame i (presentation order), in the stream's time base
    gop_start: list[int]  # first frame index of each GOP (sorted)
    key_offset: list[int]  # pts - dts of each GOP's keyframe packet
    gop_of_packet: list[int] = field(default_factory=list)  # decode order -> GOP
    gop_last_packet: list[int] = field(default_factory=list)  # decode-order index of each GOP's last packet
    nal_length_size: int = 4
    param_sets: list[bytes] = field(default_factory=list)
    rank: list[int] = field(default_factory=list)  # decode order -> frame index
    # The encoder's version SEI of an x264 source (in its first packet only), length-prefixed:
    # FFmpeg's decoder reads the x264 build from it to undo old x264 bugs (4:4:4 before core 151),
    # so a decode that starts at a later keyframe needs it too.
    encoder_sei: bytes = b""

    def gop_end(self, g: int) -> int:
        return self.gop_start[g + 1] if g + 1 < len(self.gop_start) else len(self.pts)

    def gop_first_packet(self, g: int) -> int:
        return self.gop_last_packet[g - 1] + 1 if g > 0 else 0

    def prefix_is_closed(self, g: int, m: int) -> bool:
        """Whether GOP ``g``'s first ``m`` packets in decode order are exactly its first ``m``
        frames (always without B-frames): copied, they decode to those frames and no others,
        since a packet only refers to packets before it."""
        first = self.gop_first_packet(g)
        return 0 < m <= self.gop_end(g) - self.gop_start[g] and max(self.rank[first:first + m]) == self.gop_start[g] + m - 1

    def closed_prefix(self, g: int, m: int) -> int:
        """The longest closed prefix of GOP ``g`` (see prefix_is_closed) of at most ``m`` frames:
        all ``m`` without B-frames; with them, up to the last reference frame whose B-frames all
        come before it (0 when there is none)."""
        first, top, best = self.gop_first_packet(g), -1, 0
        for j in range(min(m, self.gop_end(g) - self.gop_start[g])):
            top = max(top, self.rank[first + j])
            if top == self.gop_start[g] + j:
                best = j + 1
        return best

    def segments(self, start: int, end: int) -> tuple[int, int]:
        """The run of whole GOPs [g1, g2) inside frames [start, end) (g1 == g2: none)."""
        g1 = bisect_right(self.gop_start, start - 1)  # first GOP starting at or after start
        g2 = g1
        while g2 < len(self.gop_start) and self.gop_end(g2) <= end:
            g2 += 1
        return g1, g2


def _parameter_sets(codec: str, extradata: bytes) -> tuple[int, list[bytes]] | None:
    """NAL length size and parameter sets (SPS/PPS, or VPS/SPS/PPS) of an avcC/hvcC record."""
    try:
        if codec == "h264":
            if len(extradata) < 7 or extradata[0] != 1:
                return None
            size = (extradata[4] & 3) + 1
            sets, pos = [], 5
            for count_mask in (0x1F, 0xFF):  # SPS count (low 5 bits), then PPS count
                count = extradata[pos] & count_mask
                pos += 1
                for _ in range(count):
                    ln = int.from_bytes(extradata[pos:pos + 2], "big")
                    sets.append(bytes(extradata[pos + 2:pos + 2 + ln]))
                    pos += 2 + ln
            return size, sets
        if codec == "hevc":
            if len(extradata) < 23 or extradata[0] != 1:
                return None
            size = (extradata[21] & 3) + 1
            pos, sets = 23, []
            for _ in range(extradata[22]):
                n = int.from_bytes(extradata[pos + 1:pos + 3], "big")
                pos += 3
                for _ in range(n):
                    ln = int.from_bytes(extradata[pos:pos + 2], "big")
                    sets.append(bytes(extradata[pos + 2:pos + 2 + ln]))
                    pos += 2 + ln
            return size, sets
    except IndexError:
        return None
    return None


def smart_plan(source: str | Path, shots: Sequence[Shot] = ()) -> SmartPlan | None:
    """The GOP index of ``source`` when its clips can be cut by copying packets, else None.

    Read by demuxing alone (no decode). Refused: other codecs or containers, pixel formats the
    re-encoded seams could not match, missing timestamps, and open GOPs (a frame that shows
    before its GOP's keyframe, or after the next one).
    """
    with open_input(source) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        if cc.name not in SMART_ENCODERS or not any(f in c.format.name for f in SMART_CONTAINERS):
            return None
        if (cc.pix_fmt or "") not in SMART_PIX_FMTS or cc.width % 2 or cc.height % 2:
            return None
        ps = _parameter_sets(cc.name, bytes(cc.extradata or b""))
        if ps is None:
            return None
        tb = s.time_base or Fraction(1, 90000)
        pts, dts, keys = [], [], []
        encoder_sei = b""
        for p in c.demux(s):
            if p.size == 0:
                continue
            if p.pts is None or p.dts is None:
                return None
            if not pts and cc.name == "h264":
                encoder_sei = _x264_sei(bytes(p), ps[0])
            pts.append(p.pts)
            dts.append(p.dts)
            keys.append(bool(p.is_keyframe))
    if not pts or not keys[0]:
        return None
    order = np.argsort(np.asarray(pts), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    if np.any(np.diff(sorted_pts) <= 0):
        return None
    if len(sorted_pts) > 1 and float(np.diff(sorted_pts).max() * tb) > MAX_FRAME_GAP_S:
        return None  # the decode clamps such a gap; copied packets would keep it
    if shots and shots[-1].end_frame > len(pts):
        return None
    rank = np.empty(len(pts), dtype=np.int64)
    rank[order] = np.arange(len(pts))
    gop_start, key_offset, gop_of_packet, gop_last = [], [], [], []
    lo = hi = -1
    for i, (r, key) in enumerate(zip(rank, keys)):
        if key:
            if gop_start:
                if lo != gop_start[-1] or hi != int(r) - 1:  # frames of a GOP: a contiguous run from its keyframe
                    return None
                gop_last.append(i - 1)
            gop_start.append(int(r))
            key_offset.append(pts[i] - dts[i])
            lo = hi = int(r)
        else:
            lo, hi = min(lo, int(r)), max(hi, int(r))
        gop_of_packet.append(len(gop_start) - 1)
    if lo != gop_start[-1] or hi != len(pts) - 1:
        return None
    gop_last.append(len(pts) - 1)
    return SmartPlan(cc.name, sorted_pts, gop_start, key_offset, gop_of_packet, gop_last, ps[0], ps[1], rank.tolist(),
                     encoder_sei)


def _x264_sei(data: bytes, size: int) -> bytes:
    """The length-prefixed SEI NAL units of an H.264 sample that carry x264's version string."""
    out, pos = b"", 0
    while pos + size <= len(data):
        ln = int.from_bytes(data[pos:pos + size], "big")
        nal = data[pos + size:pos + size + ln]
        if nal and nal[0] & 0x1F == 6 and b"x264 - core " in nal:
            out += data[pos:pos + size + ln]
        pos += size + ln
    return out


def _annexb_to_length_prefixed(data: bytes, size: int) -> bytes:
    """Annex B (start codes) to the length-prefixed NAL units MP4 samples hold."""
    out = bytearray()
    n = len(data)
    i = 0
    starts = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, st in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        if k + 1 < len(starts) and end > st and data[end - 1] == 0:
            end -= 1  # a 4-byte start code's leading zero
        nal = data[st:end]
        out += len(nal).to_bytes(size, "big") + nal
    return bytes(out)


# Seams shorter than this are encoded without ``seam_x264_params`` (the macroblock tree, whose
# lookahead they are shorter than): with it, a lone frame came out at 34.6 dB against 42.2 dB.
SHORT_SEAM = 10


class _Segment:
    """Frames re-encoded between copied GOPs: their own encoder, flushed before the next copy."""

    def __init__(self, plan: SmartPlan, stream, enc: ClipEncoding, offset: int, n_frames: int):
        name = SMART_ENCODERS[plan.codec]
        self.ctx = av.CodecContext.create(name, "w")
        cc = stream.codec_context
        self.ctx.width, self.ctx.height, self.ctx.pix_fmt = cc.width, cc.height, cc.pix_fmt
        self.ctx.time_base = stream.time_base
        self.ctx.framerate = sane_rate(stream)
        if name == "libx264":
            # No B-frames: packets come out in presentation order, so dts = pts - offset stays
            # below the next copied keyframe's dts. SPS/PPS are repeated in-band.
            params = "bframes=0:scenecut=0:keyint=100000"
            if enc.seam_x264_params and n_frames >= SHORT_SEAM:
                params += f":{enc.seam_x264_params}"
            self.ctx.options = {"crf": str(enc.crf), "preset": enc.seam_preset, "x264-params": params}
        else:
            self.ctx.options = {"crf": str(enc.crf), "preset": enc.seam_preset, "x265-params": "bframes=0:scenecut=0:keyint=100000:repeat-headers=1:log-level=error"}
        self.offset = offset
        self.frames = 0

    def encode(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        if frame is not None:
            self.frames += 1
        return list(self.ctx.encode(frame))


class _SmartClipWriter:
    def __init__(self, path, plan: SmartPlan, stream, shot: Shot, sound: _ClipSound, enc: ClipEncoding):
        self.path = Path(path)
        self.plan = plan
        self.src = stream
        self.enc = enc
        self.out = av.open(str(self.path), mode="w", format="mp4")
        self.vs = self.out.add_stream_from_template(stream)
        self.vs.time_base = stream.time_base
        self.p0 = int(plan.pts[shot.start_frame])
        self.sound = sound
        self.aus = sound.add_stream(self.out, shot.start_s, shot.end_s)
        self.segment: _Segment | None = None
        self.frames = 0
        self.copied = 0
        self.need_param_sets = False
        self.track = _TrackEnd(self.out)

    def _mux_encoded(self, packets, offset: int) -> None:
        for p in packets:
            data = _annexb_to_length_prefixed(bytes(p), self.plan.nal_length_size)
            q = av.Packet(data)
            q.pts = p.pts
            q.dts = p.pts - offset
            q.is_keyframe = p.is_keyframe
            q.time_base = self.src.time_base
            q.stream = self.vs
            self.track.mux(q)

    def add_frame(self, frame: av.VideoFrame, index: int, offset: int, run: int) -> None:
        """Re-encode frame ``index``; ``run``: how many re-encoded frames follow from it on."""
        if self.segment is None:
            self.segment = _Segment(self.plan, self.src, self.enc, offset, run)
        if frame.format.name != self.src.codec_context.pix_fmt:
            frame = frame.reformat(format=self.src.codec_context.pix_fmt)
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = int(self.plan.pts[index]) - self.p0
        frame.time_base = self.src.time_base
        self._mux_encoded(self.segment.encode(frame), self.segment.offset)
        self.frames += 1

    def end_segment(self) -> None:
        if self.segment is not None:
            self._mux_encoded(self.segment.encode(None), self.segment.offset)
            self.segment = None
            self.need_param_sets = True

    def add_packet(self, packet: av.Packet, first_of_gop: bool) -> None:
        self.end_segment()
        data = bytes(packet)
        if first_of_gop and (self.need_param_sets or self.copied == 0):
            # The source encoder's SEI, which the decoder may need for these frames (x264 bugs).
            data = self.plan.encoder_sei + data
        if first_of_gop and self.need_param_sets:
            # The re-encoded seam replaced the decoder's parameter sets: restore the source's.
            size = self.plan.nal_length_size
            data = b"".join(len(ps).to_bytes(size, "big") + ps for ps in self.plan.param_sets) + data
            self.need_param_sets = False
        q = av.Packet(data)
        q.pts = packet.pts - self.p0
        q.dts = packet.dts - self.p0
        q.is_keyframe = packet.is_keyframe
        q.time_base = self.src.time_base
        q.stream = self.vs
        self.track.mux(q)
        self.frames += 1 if packet.size else 0
        self.copied += 1

    def close(self, shot: Shot) -> ClipFile:
        self.end_segment()
        self.track.close(shot.end_s - shot.start_s)
        self.sound.write(self.out, self.aus, shot.start_s, shot.end_s)
        self.out.close()
        cc = self.src.codec_context
        method = "smart" if self.copied else "encode"
        return ClipFile(self.path, self.frames, self.aus is not None, cc.width, cc.height, method, self.copied)


def _with_prefix(packet: av.Packet, prefix: bytes) -> av.Packet:
    q = av.Packet(prefix + bytes(packet))
    q.pts, q.dts, q.time_base, q.is_keyframe = packet.pts, packet.dts, packet.time_base, packet.is_keyframe
    return q


def _cut_smart(source, shots, out_paths, plan: SmartPlan, encoding, deadline, decode_timeout_s) -> list[ClipFile]:
    n = len(plan.pts)
    index_of_pts = {int(p): i for i, p in enumerate(plan.pts)}
    starts = [s.start_frame for s in shots]
    # Per clip: its copied GOP run [g1, g2); frames outside it are re-encoded, except the tail's
    # longest closed prefix (the next GOP's first frames in decode order, all of them without
    # B-frames): those packets are copied too, frames [tail_start[c], tail_end[c]); the rest of
    # the tail, if any, is re-encoded (tail_start == tail_end == the clip's end: no copied tail).
    runs = [plan.segments(s.start_frame, s.end_frame) for s in shots]
    copy_clip: dict[int, int] = {}
    for c, (g1, g2) in enumerate(runs):
        for g in range(g1, g2):
            copy_clip[g] = c
    tail_start = [s.end_frame for s in shots]
    tail_end = [s.end_frame for s in shots]
    tail_of_packet: dict[int, int] = {}  # decode-order index of a copied tail packet -> clip
    tail_last: dict[int, int] = {}  # clip -> decode-order index of its last copied tail packet
    for c, (s, (g1, g2)) in enumerate(zip(shots, runs)):
        if g2 < len(plan.gop_start) and plan.gop_start[g2] < s.end_frame:
            m = plan.closed_prefix(g2, s.end_frame - plan.gop_start[g2])
            if m:
                tail_start[c], tail_end[c] = plan.gop_start[g2], plan.gop_start[g2] + m
                first = plan.gop_first_packet(g2)
                tail_of_packet.update((k, c) for k in range(first, first + m))
                tail_last[c] = first + m - 1
    # The first copied frame of each clip (its end when none is): the head ends there.
    copy_start = [plan.gop_start[g1] if g1 < g2 else tail_start[c] for c, (g1, g2) in enumerate(runs)]
    # GOPs that hold at least one re-encoded frame of some clip must be decoded.
    decode_gops: set[int] = set()
    for c, (s, (g1, g2)) in enumerate(zip(shots, runs)):
        enc_ranges = [(s.start_frame, copy_start[c]), (tail_end[c], s.end_frame)]
        if g1 < g2:
            enc_ranges.append((plan.gop_end(g2 - 1), tail_start[c]))
        for a, b in enc_ranges:
            if a < b:
                ga = bisect_right(plan.gop_start, a) - 1
                gb = bisect_right(plan.gop_start, b - 1) - 1
                decode_gops.update(range(ga, gb + 1))

    results: list[ClipFile | None] = [None] * len(shots)
    writers: dict[int, _SmartClipWriter] = {}
    start = time.monotonic()
    with open_input(source) as container:
        stream = container.streams.video[0]
        try:
            stream.thread_type = "AUTO"
        except Exception:  # noqa: BLE001 - threading is an optimisation only
            pass
        dec = stream.codec_context
        sound = _ClipSound(source, encoding, deadline)
        decoding = False

        def clip_of(i: int) -> int | None:
            c = bisect_right(starts, i) - 1
            return c if c >= 0 and i < shots[c].end_frame else None

        def writer(c: int) -> _SmartClipWriter:
            if c not in writers:
                # Clips finish in order: any earlier clip still open is complete.
                writers[c] = _SmartClipWriter(out_paths[c], plan, stream, shots[c], sound, encoding)
            return writers[c]

        def finish(c: int) -> None:
            w = writers.pop(c)
            results[c] = w.close(shots[c])
            if results[c].n_frames != shots[c].n_frames:
                raise _NotSmart(f"clip {c}: {results[c].n_frames} frames written, {shots[c].n_frames} expected")

        def on_frame(frame: av.VideoFrame) -> None:
            if frame.pts is None or int(frame.pts) not in index_of_pts:
                raise _NotSmart("a decoded frame's timestamp is not in the index")
            i = index_of_pts[int(frame.pts)]
            c = clip_of(i)
            if c is None:
                return
            g1, g2 = runs[c]
            if g1 < g2 and plan.gop_start[g1] <= i < plan.gop_end(g2 - 1):
                raise _NotSmart("a frame of a copied GOP came out of the decoder")
            if tail_start[c] <= i < tail_end[c]:
                return  # decoded as a reference for frames re-encoded next; this clip has its packet
            # Re-encoded packets get dts = pts - offset: the head ends below the first copied
            # keyframe's dts, the tail starts at its own keyframe's source dts. After a copied
            # prefix of the tail's GOP, dts = pts: above every copied packet's dts (<= its pts).
            if i < copy_start[c] < shots[c].end_frame:
                offset = plan.key_offset[g1 if g1 < g2 else g2]
            elif i >= tail_end[c] > tail_start[c]:
                offset = 0
            elif g1 < g2:
                offset = plan.key_offset[g2]
            else:
                offset = 0
            run = min([a for a in (plan.gop_start[g1] if g1 < g2 else -1, tail_start[c]) if a > i] + [shots[c].end_frame]) - i
            writer(c).add_frame(frame, i, offset, run)
            if i == shots[c].end_frame - 1:
                finish(c)

        def drain() -> None:
            nonlocal decoding
            if decoding:
                for f in dec.decode(None):
                    on_frame(f)
                dec.flush_buffers()
                decoding = False

        try:
            k = 0  # decode-order packet index
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if k >= n:
                    raise _NotSmart("more packets than in the index")
                g = plan.gop_of_packet[k]
                if g in copy_clip:
                    drain()
                    c = copy_clip[g]
                    first = k == 0 or plan.gop_of_packet[k - 1] != g
                    writer(c).add_packet(packet, first)
                    g1, g2 = runs[c]
                    if k == plan.gop_last_packet[g2 - 1] and plan.gop_end(g2 - 1) == shots[c].end_frame:
                        finish(c)
                else:
                    if k in tail_of_packet:
                        c = tail_of_packet[k]
                        first = k == plan.gop_first_packet(g)
                        if first:
                            drain()  # the head's frames go before the copied keyframe
                        writer(c).add_packet(packet, first)
                        if k == tail_last[c] and tail_end[c] == shots[c].end_frame:
                            finish(c)
                    if g in decode_gops:  # also a copied tail's packets: the next clip's head needs them
                        decoding = True
                        if plan.encoder_sei and k == plan.gop_first_packet(g) and k > 0:
                            packet = _with_prefix(packet, plan.encoder_sei)
                        try:
                            frames = dec.decode(packet)
                        except av.error.FFmpegError as e:
                            raise _NotSmart(f"damaged packet: {e}") from e
                        for f in frames:
                            on_frame(f)
                    elif decoding:
                        drain()
                k += 1
                if decode_timeout_s is not None and k % 64 == 0 and time.monotonic() - start > decode_timeout_s:
                    raise DecodeTimeout(f"cutting took longer than the limit of {decode_timeout_s:g}s")
            drain()
        finally:
            sound.close()
            for w in writers.values():  # only on an error: close what was open
                w.out.close()
    if any(r is None for r in results):
        raise _NotSmart("some clips were not completed")
    return results  # type: ignore[return-value]


__all__ = [
    "ClipEncoding", "ClipFile", "cut_clips", "smart_plan", "audio_problem", "aac_target", "InputRejected",
]
