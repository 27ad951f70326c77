"""Probe a video file with PyAV under a strict input policy.

Video files are untrusted. FFmpeg is only allowed to open the file itself: the demuxer must be
on an allow-list (no HLS, concat or other playlist formats that open further URLs), and the
protocol whitelist is ``file`` alone.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

# Demuxers FFmpeg may use on an input. Playlist-like formats (hls, concat, dash, ...) are absent.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpeg",
    "mpegts",
    "flv",
    "ogg",
    "asf",
    "mxf",
    "m4v",
    "h264",
    "hevc",
    "mjpeg",
    "yuv4mpegpipe",
    "gif",
    "ivf",
    "nut",
    "wav",
    "mp3",
    "aac",
)
ALLOWED_DEMUXER_NAMES = frozenset(n for group in ALLOWED_DEMUXERS for n in group.split(","))
# Options every input open uses: nothing but the local file, and no nested opens.
SAFE_OPEN_OPTIONS = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(sorted(ALLOWED_DEMUXER_NAMES)),
}
# First bytes that mark a text playlist/concat list, refused before FFmpeg sees them.
_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"#EXT-X-", b"<?xml", b"[playlist]", b"file '", b"file \"")


class InputRejected(Exception):
    """The file is not accepted as a video; ``reason`` is short and readable."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InputPolicy:
    """Limits for what is accepted as a source video."""

    max_bytes: int = 4 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_width: int = 4096
    max_height: int = 4096
    min_duration_s: float = 0.0
    decode_timeout_s: float = 1800.0
    # Smaller frames cannot be cut into H.264 4:2:0 clips (a 1x1 video failed deep in the
    # encoder with "Errno 95") and carry nothing to caption.
    min_width: int = 16
    min_height: int = 16


@dataclass
class VideoProbe:
    path: str
    size_bytes: int
    sha256: str
    container: str
    video_codec: str
    pix_fmt: str
    bit_depth: int
    width: int
    height: int
    rotation: int
    duration_s: float
    avg_fps: float
    real_fps: float
    is_vfr: bool
    n_frames_declared: int
    time_base: str
    has_audio: bool
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    extra: dict = field(default_factory=dict)

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("extra")
        return row


def sha256_file(path: str | Path, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a local file for decoding with the safe options; refuses non-allow-listed demuxers."""
    p = os.path.abspath(os.fspath(path))  # absolute: a name like "http:x.mp4" is never a URL
    try:
        container = av.open(p, mode="r", options=dict(SAFE_OPEN_OPTIONS))
    except av.error.FFmpegError as e:
        raise InputRejected(f"cannot be opened as a video: {_ffmpeg_message(e)}") from e
    names = set(container.format.name.split(","))
    if not names & ALLOWED_DEMUXER_NAMES:
        container.close()
        raise InputRejected(f"container format {container.format.name!r} is not on the allow-list")
    return container


def _ffmpeg_message(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).split(": '/")[0].strip()


def check_regular_file(path: Path) -> os.stat_result:
    """Refuse anything that is not a plain file (FIFOs, devices, folders)."""
    st = os.stat(path, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise InputRejected("is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "FIFO" if stat.S_ISFIFO(st.st_mode) else "special file"
        raise InputRejected(f"is a {kind}, not a regular file")
    return st


def probe_video(path: str | Path, policy: InputPolicy = InputPolicy(), sha256: str | None = None) -> VideoProbe:
    """Read container and stream facts; raise InputRejected with a reason when out of policy."""
    path = Path(path)
    st = check_regular_file(path)
    if st.st_size == 0:
        raise InputRejected("empty file (0 bytes)")
    if st.st_size > policy.max_bytes:
        raise InputRejected(f"file is {st.st_size} bytes, over the limit of {policy.max_bytes}")
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    if any(head.startswith(m) for m in _PLAYLIST_MAGIC):
        raise InputRejected("is a playlist or concat list, not a media file")
    _check_mp4_boxes(path, st.st_size)

    with open_input(path) as c:
        if not c.streams.video:
            raise InputRejected("no video stream" + (" (audio only)" if c.streams.audio else ""))
        vs = c.streams.video[0]
        cc = vs.codec_context
        if not cc.width or not cc.height:
            raise InputRejected("video stream has no frame size")
        if cc.width > policy.max_width or cc.height > policy.max_height:
            raise InputRejected(
                f"resolution {cc.width}x{cc.height} is above the limit {policy.max_width}x{policy.max_height}"
            )
        if cc.width < policy.min_width or cc.height < policy.min_height:
            raise InputRejected(
                f"resolution {cc.width}x{cc.height} is below the minimum {policy.min_width}x{policy.min_height}: "
                "too small to cut into clips or to caption"
            )
        duration = _duration_s(c, vs)
        if duration <= 0:
            raise InputRejected("zero or unknown duration")
        if duration > policy.max_duration_s:
            raise InputRejected(f"duration {duration:.1f}s is over the limit of {policy.max_duration_s:.0f}s")
        if duration < policy.min_duration_s:
            raise InputRejected(f"duration {duration:.2f}s is under the minimum {policy.min_duration_s}s")
        avg = vs.average_rate or vs.guessed_rate or Fraction(0)
        real = vs.base_rate or avg
        pix_fmt = cc.pix_fmt or (cc.format.name if cc.format else "unknown")
        bit_depth = _bit_depth(pix_fmt)
        aud = c.streams.audio[0] if c.streams.audio else None
        # VFR: average and real (r_frame_rate) rates disagree by more than rounding.
        is_vfr = bool(avg and real and abs(float(avg) - float(real)) / float(real) > 0.01)
        probe = VideoProbe(
            path=str(path),
            size_bytes=st.st_size,
            sha256=sha256 or sha256_file(path),
            container=c.format.name,
            video_codec=cc.name,
            pix_fmt=pix_fmt,
            bit_depth=bit_depth,
            width=cc.width,
            height=cc.height,
            rotation=0,
            duration_s=round(duration, 6),
            avg_fps=float(avg) if avg else 0.0,
            real_fps=float(real) if real else 0.0,
            is_vfr=is_vfr,
            n_frames_declared=int(vs.frames or 0),
            time_base=str(vs.time_base),
            has_audio=aud is not None,
            audio_codec=aud.codec_context.name if aud else None,
            audio_sample_rate=int(aud.codec_context.sample_rate) if aud else None,
            audio_channels=int(aud.codec_context.channels) if aud else None,
        )
        if probe.avg_fps <= 0:
            raise InputRejected("no usable frame rate")
        # The display matrix is read off a decoded frame (degrees, counter-clockwise).
        probe.rotation = _first_frame_rotation(c)
    return probe


def _check_mp4_boxes(path: Path, size: int) -> None:
    """An MP4/MOV (first box ``ftyp``) must have its index (``moov``) and no media box cut short.

    FFmpeg opens a file whose index is intact but whose media data was cut off (an interrupted
    upload) and decodes only the frames that are present, so a half file would pass as a
    shorter video; only the top-level box headers are read here.
    """
    with open(path, "rb") as f:
        if f.read(8)[4:8] != b"ftyp":
            return
        pos, seen, cut = 0, set(), False
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(16)
            box_size, box_type = struct.unpack(">I4s", hdr[:8])
            if box_size == 1 and len(hdr) == 16:
                box_size = struct.unpack(">Q", hdr[8:16])[0]
            elif box_size == 0:  # runs to the end of the file
                box_size = size - pos
            if box_size < 8:
                break  # not a box header: leave the rest to the demuxer
            seen.add(box_type)
            if pos + box_size > size:
                if box_type in (b"mdat", b"moov", b"moof"):
                    name = box_type.decode("ascii")
                    raise InputRejected(f"file is truncated: its {name} box needs {pos + box_size} bytes, the file has {size}")
                cut = True
                break
            pos += box_size
    if b"moov" not in seen:
        raise InputRejected("mp4 index (moov box) is missing" + (" (the file may be truncated)" if cut else ""))


def _first_frame_rotation(c) -> int:
    """Decode the first video frame: a file whose codec cannot produce a frame is rejected early."""
    try:
        for frame in c.decode(video=0):
            return int(frame.rotation or 0) % 360
    except av.error.FFmpegError as e:
        raise InputRejected(f"video does not decode: {_ffmpeg_message(e)}") from e
    raise InputRejected("video stream has no decodable frame")


def _duration_s(c, vs) -> float:
    if vs.duration is not None and vs.time_base:
        return float(vs.duration * vs.time_base)
    if c.duration is not None:
        return c.duration / 1_000_000
    return 0.0


def _bit_depth(pix_fmt: str) -> int:
    for depth in (16, 14, 12, 10, 9):
        if f"p{depth}" in pix_fmt or pix_fmt.endswith(f"{depth}le") or pix_fmt.endswith(f"{depth}be"):
            return depth
    return 8
