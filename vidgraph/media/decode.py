"""Streaming video decode shared by every pass: one frame at a time, bounded memory.

Both the analysis pass and the clip cutter walk frames through ``iter_video_frames`` so they
agree exactly on frame indices and timestamps, including on files with damaged packets.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from vidgraph.media.probe import InputRejected, _ffmpeg_message

# Planar 8-bit YUV layouts whose planes can be read directly (Y, U, V).
_PLANAR_YUV8 = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p", "yuv440p", "yuvj440p"}
)
# A file with more damaged packets than this share is refused rather than half-used.
MAX_DAMAGED_PACKET_SHARE = 0.2
# A gap between two frames longer than this is a broken or hostile timestamp, not footage: it is
# clamped to one nominal frame, so no clip (nor its padded sound) grows to the gap's length.
MAX_FRAME_GAP_S = 10.0
# Every decoded frame is checked against these (a stream may switch resolution mid-file);
# raw_clips sets them from its InputPolicy with ``frame_size_limit``.
_FRAME_LIMIT: tuple[int, int] = (4096, 4096)


@contextlib.contextmanager
def frame_size_limit(max_width: int, max_height: int) -> Iterator[None]:
    """Limit the size of every frame ``iter_video_frames`` yields while the block runs."""
    global _FRAME_LIMIT
    old, _FRAME_LIMIT = _FRAME_LIMIT, (int(max_width), int(max_height))
    try:
        yield
    finally:
        _FRAME_LIMIT = old


class DecodeTimeout(InputRejected):
    pass


@dataclass
class DecodedFrame:
    index: int
    t_s: float  # presentation time relative to the first frame
    frame: av.VideoFrame


def sane_rate(stream) -> Fraction:
    """The stream's frame rate, or a plausible one (its base rate, else 25) when the average
    comes from absurd timestamps (two frames an hour apart give 0.0006 fps)."""
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r and 1 <= r <= 1000:
            return Fraction(r)
    return Fraction(25)


def iter_video_frames(container, stream, timeout_s: float | None = None) -> Iterator[DecodedFrame]:
    """Decode every frame of ``stream`` in presentation order, skipping damaged packets.

    Timestamps come from the frames' pts (so variable-frame-rate sources are exact), made
    strictly increasing and relative to the first frame; a gap over ``MAX_FRAME_GAP_S`` is
    clamped to one nominal frame. Every frame's size is checked against the frame limit
    (``frame_size_limit``), and the timeout is checked every 32 frames.
    """
    max_w, max_h = _FRAME_LIMIT
    rate = float(sane_rate(stream))
    tb = stream.time_base
    start = time.monotonic()
    index = 0
    t0: float | None = None
    last_t = -1.0
    packets = damaged = 0
    for packet in container.demux(stream):
        packets += 1
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            damaged += 1
            continue
        for frame in frames:
            if frame.pts is not None and tb is not None:
                t = float(frame.pts * tb)
            else:
                t = last_t + 1.0 / rate if t0 is not None else 0.0
            if t0 is None:
                t0 = t
            if frame.width > max_w or frame.height > max_h:
                raise InputRejected(
                    f"frame {index} is {frame.width}x{frame.height}, above the limit {max_w}x{max_h}"
                )
            rel = t - t0
            if rel <= last_t:  # broken or duplicate timestamps: keep order, nudge forward
                rel = last_t + 1.0 / rate
            elif index and rel - last_t > MAX_FRAME_GAP_S:
                t0 += rel - last_t - 1.0 / rate  # later frames keep their spacing after the gap
                rel = last_t + 1.0 / rate
            last_t = rel
            yield DecodedFrame(index, rel, frame)
            index += 1
            if timeout_s is not None and index % 32 == 0 and time.monotonic() - start > timeout_s:
                raise DecodeTimeout(f"decoding took longer than the limit of {timeout_s:g}s")
    if packets and damaged / packets > MAX_DAMAGED_PACKET_SHARE:
        raise InputRejected(f"{damaged} of {packets} video packets are damaged")
    if index == 0:
        raise InputRejected("video stream has no decodable frame")


def plane_array(plane) -> np.ndarray:
    """A view of one 8-bit plane without its line padding."""
    buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return buf[:, : plane.width]


def even_size(width: int, src_w: int, src_h: int) -> tuple[int, int]:
    """Analysis size with the source's aspect ratio; both sides even (I420 needs it)."""
    w = max(2, min(width, src_w) // 2 * 2)
    h = max(2, int(round(w * src_h / src_w / 2)) * 2)
    return w, h


def rotate_for_display(img: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    cw = (-rotation) % 360
    if cw == 90:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if cw == 180:
        return cv2.rotate(img, cv2.ROTATE_180)
    if cw == 270:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def decode_error_message(e: Exception) -> str:
    return _ffmpeg_message(e)
