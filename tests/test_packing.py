"""Stereo layouts: geometry for even and odd sizes, which eye goes where, anaglyph channels."""

from __future__ import annotations

import numpy as np
import pytest

from stereoconv.packing import anaglyph, pack, packed_size


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
