"""Stereo layouts: geometry for even and odd sizes, which eye goes where, anaglyph channels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stereoconv.packing import anaglyph, eye_size, pack, packed_size


@pytest.mark.parametrize(
    ("layout", "even", "odd"),
    [("half-sbs", (96, 64), (98, 66)), ("full-sbs", (192, 64), (194, 66)), ("half-tb", (96, 64), (98, 66)),
     ("full-tb", (96, 128), (98, 130)), ("anaglyph", (96, 64), (98, 66))],
)  # fmt: skip
def test_packed_sizes_are_even(layout, even, odd):
    assert packed_size(96, 64, layout) == even
    assert packed_size(97, 65, layout) == odd
    left = np.zeros((65, 97, 3), np.uint8)
    assert pack(left, left, layout).shape[1::-1] == odd


def test_left_eye_goes_left_and_top():
    left = np.full((64, 96, 3), 200, np.uint8)
    right = np.full((64, 96, 3), 20, np.uint8)
    sbs = pack(left, right, "half-sbs")
    assert (sbs[:, :48] == 200).all() and (sbs[:, 48:] == 20).all()
    tb = pack(left, right, "full-tb")
    assert (tb[:64] == 200).all() and (tb[64:] == 20).all()
    full = pack(left, right, "full-sbs")
    np.testing.assert_array_equal(full[:, :96], left)


def test_anaglyph_sends_left_to_red_and_right_to_cyan():
    white = np.full((4, 4, 3), 255, np.uint8)
    black = np.zeros((4, 4, 3), np.uint8)
    left_only = anaglyph(white, black)[0, 0].astype(int)
    right_only = anaglyph(black, white)[0, 0].astype(int)
    assert left_only[0] > 200 and left_only[1:].max() < 10
    assert right_only[0] < 10 and right_only[1:].min() > 200


def test_mismatched_views_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        pack(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8), "half-sbs")


@pytest.mark.parametrize("layout", ["half-sbs", "half-tb"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(("height", "width"), [(64, 96), (38, 50), (36, 2), (2, 36)])
def test_half_layouts_squeeze_each_eye_as_opencv_area_resampling_does(layout, dtype, height, width):
    """The half layouts halve the eyes straight into the packed frame; every pixel as cv2.resize(INTER_AREA) gives
    it (the pair's mean, ties to even)."""
    rng = np.random.default_rng(height * width)
    top = np.iinfo(dtype).max
    left, right = (rng.integers(0, top + 1, (height, width, 3), dtype=dtype) for _ in range(2))
    left[0, :2] = [[1, 2, 3], [2, 3, 4]]  # pair sums 3, 5, 7: ties that round to 2, 2, 4
    size = eye_size(width, height, layout)
    squeezed = [cv2.resize(view, size, interpolation=cv2.INTER_AREA) for view in (left, right)]
    expected = np.hstack(squeezed) if layout == "half-sbs" else np.vstack(squeezed)
    packed = pack(left, right, layout, (width, height))
    assert packed.dtype == dtype
    assert np.array_equal(packed, expected)
