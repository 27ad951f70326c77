"""The analysis pass's frame geometry and its keyframe images (issue 13 item 3)."""

import av
import cv2
import numpy as np
import pytest

from vidgraph.media.analysis import _small_bgr, analysis_frames, analysis_size
from vidgraph.media.decode import even_size
from vidgraph.media.shots import TINY_W
from vidgraph.media.synthetic import _canvas


@pytest.mark.parametrize("src", [(1280, 720), (480, 352), (768, 576), (640, 480), (320, 180), (1080, 1920)])
def test_the_analysis_height_is_a_whole_number_of_thumbnail_rows(src):
    w, h = analysis_size(128, *src)
    th = int(round(TINY_W * src[1] / src[0]))
    assert w == 128 and h % 2 == 0 and h == (128 // TINY_W) * th // 2 * 2
    # the aspect ratio moves by at most half a thumbnail row
    assert abs(h / w - src[1] / src[0]) <= 0.5 / TINY_W + 1e-9


def test_a_source_narrower_than_the_analysis_width_keeps_its_size():
    assert analysis_size(128, 96, 64) == even_size(128, 96, 64) == (96, 64)


def test_the_luma_plane_is_twice_the_detector_frame_where_the_source_allows():
    frame = av.VideoFrame.from_ndarray(_canvas(5, 640, 360), format="bgr24").reformat(format="yuv420p")
    luma, small, bgr = analysis_frames(frame, 128, 72)
    assert luma.shape == (144, 256) and small.shape == (72, 128) and bgr.shape == (72, 128, 3)
    # the small luma is the exact 2x2 area halving of the luma plane
    assert np.array_equal(small, cv2.resize(luma, (128, 72), interpolation=cv2.INTER_AREA))
    tiny = av.VideoFrame.from_ndarray(_canvas(5, 160, 90), format="bgr24").reformat(format="yuv420p")
    luma, small, _ = analysis_frames(tiny, 128, 72)
    assert luma is small and small.shape == (72, 128)


@pytest.mark.parametrize("fmt,color_range", [("yuv420p", 1), ("yuvj420p", 2), ("yuv444p", 1)])
def test_keyframes_shrunk_plane_by_plane_keep_swscales_colours(fmt, color_range):
    """Full-range and limited-range sources: the keyframe image has swscale's colours (its own
    scaled conversion) within two grey levels, compared on 16x16-px block means (the two scalers' filters differ on
    fine texture, which is not what this checks)."""
    src = av.VideoFrame.from_ndarray(_canvas(7, 1280, 720), format="bgr24")
    frame = src.reformat(format=fmt, dst_color_range=color_range)
    ref = frame.to_ndarray(width=512, height=288, format="bgr24").astype(int)
    got = _small_bgr(frame, 512, 288).astype(int)
    assert got.shape == ref.shape

    def blocks(img):
        return img.reshape(18, 16, 32, 16, 3).mean(axis=(1, 3))

    diff = blocks(got) - blocks(ref)
    assert np.abs(diff).max() < 4.5 and np.abs(diff.mean(axis=(0, 1))).max() < 2.0
    # read with the other range, the colours move by far more than that
    wrong = frame.reformat(format=fmt)
    wrong.color_range = 3 - color_range
    assert np.abs(blocks(_small_bgr(wrong, 512, 288).astype(int)) - blocks(ref)).max() > 6.0
