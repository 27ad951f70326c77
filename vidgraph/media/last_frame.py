"""The last frame of a span of a video file (ShareGPT4Video always keeps a clip's last frame).

The analysis pass samples keyframes on 2-s marks, so a clip's last frame is read here: one seek to
a few seconds before the span's end, then decode to the end. Times are seconds from the file's
first frame, as everywhere in vidgraph.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

from vidgraph.media.decode import rotate_for_display


def read_last_frame(path: str, start_s: float, end_s: float, max_side: int = 512,
                    lookback_s: float = 3.0) -> tuple[float, np.ndarray]:
    """``(t_s, rgb)``: the last frame whose time lies in ``[start_s, end_s)``, scaled to at most
    ``max_side`` pixels. Raises ``ValueError`` when the span holds no decodable frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        best = _scan(container, stream, t0, start_s, end_s, max(start_s, end_s - lookback_s))
        if best is None and end_s - lookback_s > start_s:
            # The seek landed past the frames (odd index): decode the span from its start.
            best = _scan(container, stream, t0, start_s, end_s, start_s)
    if best is None:
        raise ValueError(f"no decodable frame in [{start_s:.3f}, {end_s:.3f}) s")
    t, frame = best
    img = frame.to_ndarray(format="rgb24")
    img = rotate_for_display(img, int(getattr(frame, "rotation", 0) or 0))
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (max(2, int(w * scale)), max(2, int(h * scale))), interpolation=cv2.INTER_AREA)
    return t, np.ascontiguousarray(img)


def _scan(container, stream, t0: float, start_s: float, end_s: float, from_s: float):
    tb = stream.time_base
    if from_s > 0:
        container.seek(int((t0 + from_s) / tb), stream=stream, backward=True, any_frame=False)
    else:
        container.seek(int(t0 / tb) if t0 else 0, stream=stream, backward=True, any_frame=False)
    best = None
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * tb) - t0
            if t >= end_s - 1e-3:
                break
            if t >= start_s - 1e-3:
                best = (t, frame)
    except av.error.FFmpegError:
        pass  # a damaged tail: the last good frame before it is the last frame
    return best
