"""DIBR: depth -> disparity, forward warping with occlusion order, background-side hole filling, the two eyes.

Images here are small and built by hand (uint8, values >= 1 so a stray hole reads as 0), so every expected pixel can
be written down. Direction +1 moves a pixel to x + d (left eye), -1 to x - d (right eye).
"""

from __future__ import annotations

import numpy as np
import pytest

from stereoconv.config import StereoConfig
from stereoconv.dibr import depth_to_disparity, fill_holes, forward_warp, render_stereo, synthesize_view

FG = np.array([255, 0, 255], np.uint8)  # the near square's colour; the background never has it


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 HxWx3 random texture in 1..200: no zero pixels, and never the foreground colour."""
    return np.random.default_rng(seed).integers(1, 201, (height, width, 3), dtype=np.uint8)


def square_scene(d_background: int, d_square: int) -> tuple[np.ndarray, np.ndarray]:
    """A FG-coloured square (rows 2..5, columns 15..24) at integer disparity ``d_square`` on a textured background at
    ``d_background``: (uint8 8x40x3 image, float32 8x40 disparity in pixels)."""
    image = textured(8, 40)
    image[2:6, 15:25] = FG
    disparity = np.full((8, 40), d_background, np.float32)
    disparity[2:6, 15:25] = d_square
    return image, disparity


def reference_view(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    """synthesize_view's contract spelled out pixel by pixel; slow, for small inputs."""
    height, width = disparity.shape
    out = np.zeros_like(image)
    landed = np.full((height, width), -np.inf)
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for y in range(height):
        for x in range(width):
            t = int(np.floor(x + direction * float(disparity[y, x]) + 0.5))  # nearest column, halves up
            if not 0 <= t < width:
                continue
            rank = (float(np.rint(float(disparity[y, x]) * 256)), x)  # 1/256 px steps, then the larger column
            if (y, t) not in best or rank > best[(y, t)]:
                best[(y, t)] = rank
                out[y, t] = image[y, x]
                landed[y, t] = disparity[y, x]
    filled = np.isfinite(landed)
    result = out.copy()
    for y in range(height):
        if not filled[y].any():
            continue
        for x in np.flatnonzero(~filled[y]):
            left = [c for c in range(x) if filled[y, c]]
            right = [c for c in range(x + 1, width) if filled[y, c]]
            sides = ([(landed[y, left[-1]], 0, left[-1])] if left else []) + (
                [(landed[y, right[0]], 1, right[0])] if right else []
            )
            result[y, x] = out[y, min(sides)[2]]  # the farther side; on a tie, the left one
    return result


# ------------------------------------------------------------------------------------------------ depth_to_disparity


def test_depth_to_disparity_spans_the_parallax_budget_about_convergence() -> None:
    config = StereoConfig(max_parallax=5.0, convergence=0.6)
    width = 200  # 5 % of 200 px = 10 px between z = 0 and z = 1, 5 px per eye
    depth = np.tile(np.array([0.0, 0.25, 0.6, 0.8, 1.0], np.float32), (3, 40))
    disparity = depth_to_disparity(depth, config)
    assert disparity.dtype == np.float32 and disparity.shape == (3, width)
    row = disparity[0, :5]
    assert row[2] == 0.0  # z = convergence is on the screen plane
    np.testing.assert_allclose(row[[0, 4]], [-0.6 * 5.0, 0.4 * 5.0], rtol=1e-6)
    assert np.all(np.diff(row) > 0)  # nearer -> larger disparity


def test_depth_to_disparity_is_zero_without_parallax() -> None:
    depth = np.random.default_rng(1).random((4, 9)).astype(np.float32)
    assert not np.any(depth_to_disparity(depth, StereoConfig(max_parallax=0.0)))


# ---------------------------------------------------------------------------------------------- shifts and zero


@pytest.mark.parametrize("direction", [1, -1])
def test_zero_disparity_returns_the_input(direction: int) -> None:
    image = textured(9, 13)
    np.testing.assert_array_equal(synthesize_view(image, np.zeros((9, 13), np.float32), direction), image)


def test_zero_parallax_gives_both_eyes_the_input() -> None:
    image = textured(9, 13)
    depth = np.random.default_rng(2).random((9, 13)).astype(np.float32)
    left, right = render_stereo(image, depth, StereoConfig(max_parallax=0.0))
    np.testing.assert_array_equal(left, image)
    np.testing.assert_array_equal(right, image)


@pytest.mark.parametrize("d", [1, 3, 7])
def test_constant_disparity_shifts_right_for_direction_plus_one(d: int) -> None:
    image = textured(6, 30)
    out = synthesize_view(image, np.full((6, 30), d, np.float32), +1)
    np.testing.assert_array_equal(out[:, d:], image[:, :-d])
    # The strip uncovered at the left edge has one side to fill from: the first column that moved in.
    np.testing.assert_array_equal(out[:, :d], np.repeat(image[:, :1], d, axis=1))


@pytest.mark.parametrize("d", [1, 3, 7])
def test_constant_disparity_shifts_left_for_direction_minus_one(d: int) -> None:
    image = textured(6, 30)
    out = synthesize_view(image, np.full((6, 30), d, np.float32), -1)
    np.testing.assert_array_equal(out[:, :-d], image[:, d:])
    np.testing.assert_array_equal(out[:, -d:], np.repeat(image[:, -1:], d, axis=1))


@pytest.mark.parametrize("direction", [1, -1])
def test_half_pixel_disparity_shifts_every_pixel_alike(direction: int) -> None:
    # Rounding halves to even would send x=1 and x=2 both to column 4 (d=2.5) and leave holes between them.
    image = textured(6, 40)
    warped, _, filled = forward_warp(image, np.full((6, 40), 2.5, np.float32), direction)
    shift = 3 if direction > 0 else -2  # floor(x + 2.5 + 0.5) = x + 3; floor(x - 2.5 + 0.5) = x - 2
    inside = slice(3, 40) if direction > 0 else slice(0, 38)
    assert filled[:, inside].all()
    np.testing.assert_array_equal(warped[:, inside], np.roll(image, shift, axis=1)[:, inside])


def test_forward_warp_marks_holes() -> None:
    image = textured(4, 10)[..., 0]  # HxW works as well as HxWxC
    warped, warped_disparity, filled = forward_warp(image, np.full((4, 10), 3, np.float32), +1)
    assert warped.shape == image.shape and warped.dtype == image.dtype
    assert warped_disparity.dtype == np.float32 and filled.dtype == bool
    assert not filled[:, :3].any() and filled[:, 3:].all()
    assert (warped[:, :3] == 0).all() and np.isneginf(warped_disparity[:, :3]).all()
    assert (warped_disparity[:, 3:] == 3).all()
    np.testing.assert_array_equal(warped[:, 3:], image[:, :-3])


def test_pixels_pushed_off_frame_are_dropped() -> None:
    image = textured(3, 8)
    warped, _, filled = forward_warp(image, np.full((3, 8), 20, np.float32), +1)
    assert not filled.any() and not warped.any()
    # A row with nothing left in it stays black after filling.
    assert not synthesize_view(image, np.full((3, 8), -20, np.float32), +1).any()


# ------------------------------------------------------------------------------- occlusion and disocclusion


def test_near_square_covers_background_moving_right() -> None:
    image, disparity = square_scene(d_background=1, d_square=5)
    out = synthesize_view(image, disparity, +1)
    bg = image[2:6]
    # Square columns 15..24 -> 20..29. Background columns 25..28 also land on 26..29 and must lose; the
    # background that was behind the square's old place (16..19) is revealed and filled from the left, the far side.
    fg = np.broadcast_to(FG, (4, 10, 3))
    expected = np.concatenate([bg[:, :1], bg[:, 0:15], np.repeat(bg[:, 14:15], 4, axis=1), fg, bg[:, 29:39]], axis=1)
    np.testing.assert_array_equal(out[2:6], expected)
    is_fg = (out == FG).all(axis=-1)
    assert is_fg[2:6, 20:30].all()
    assert not is_fg[:, :20].any() and not is_fg[:, 30:].any() and not is_fg[[0, 1, 6, 7]].any()
    np.testing.assert_array_equal(out[[0, 1, 6, 7], 1:], image[[0, 1, 6, 7], :-1])


def test_near_square_covers_background_moving_left() -> None:
    image, disparity = square_scene(d_background=1, d_square=5)
    out = synthesize_view(image, disparity, -1)
    bg = image[2:6]
    # Square columns 15..24 -> 10..19; background columns 11..14 also land on 10..13 and must lose. Columns 20..23
    # are revealed and filled from the right, the far side.
    fg = np.broadcast_to(FG, (4, 10, 3))
    expected = np.concatenate([bg[:, 1:11], fg, np.repeat(bg[:, 25:26], 4, axis=1), bg[:, 25:40], bg[:, 39:]], axis=1)
    np.testing.assert_array_equal(out[2:6], expected)
    is_fg = (out == FG).all(axis=-1)
    assert is_fg[2:6, 10:20].all()
    assert not is_fg[:, :10].any() and not is_fg[:, 20:].any()


@pytest.mark.parametrize(
    ("direction", "covered", "cover"), [(1, slice(15, 21), slice(9, 15)), (-1, slice(19, 25), slice(25, 31))]
)
def test_far_square_is_covered_by_near_surroundings(direction: int, covered: slice, cover: slice) -> None:
    # The reverse layering: the square at 1 px is behind its surroundings at 6 px, which move over its edge
    # (+1: columns 9..14 land on 15..20; -1: columns 25..30 land on 19..24).
    image, disparity = square_scene(d_background=6, d_square=1)
    out = synthesize_view(image, disparity, direction)
    np.testing.assert_array_equal(out[2:6, covered], image[2:6, cover])
    assert not (out[[0, 1, 6, 7]] == FG).all(axis=-1).any()


@pytest.mark.parametrize("direction", [1, -1])
def test_equal_quantized_disparity_goes_to_the_larger_source_column(direction: int) -> None:
    # Two pixels land on column 2 with disparities less than 1/256 px apart: they count as equal, and the one from
    # the larger source column wins. For +1 that is the one with the (slightly) smaller disparity.
    image = np.array([[10, 20, 30, 40, 50]], np.uint8)
    disparity = np.zeros((1, 5), np.float32)
    if direction == 1:
        disparity[0, 1], disparity[0, 2] = 0.5009, 0.499  # 1 + 0.5009 -> 2 and 2 + 0.499 -> 2
        winner = 30
    else:
        disparity[0, 2], disparity[0, 3] = 0.499, 0.5009  # 2 - 0.499 -> 2 and 3 - 0.5009 -> 2
        winner = 40
    warped, _, filled = forward_warp(image, disparity, direction)
    assert filled[0, 2] and warped[0, 2] == winner


def test_fill_holes_takes_the_far_side_and_the_one_side_at_edges() -> None:
    warped = np.array([[0, 10, 0, 0, 20, 0], [0, 10, 0, 0, 20, 0], [0, 0, 0, 0, 0, 0]], np.uint8)
    ninf = -np.inf
    warped_disparity = np.array(
        [[ninf, 1, ninf, ninf, 5, ninf], [ninf, 5, ninf, ninf, 1, ninf], [ninf] * 6], np.float32
    )
    filled = np.isfinite(warped_disparity)
    before = warped.copy()
    out = fill_holes(warped, warped_disparity, filled)
    np.testing.assert_array_equal(out[0], [10, 10, 10, 10, 20, 20])
    np.testing.assert_array_equal(out[1], [10, 10, 20, 20, 20, 20])
    np.testing.assert_array_equal(out[2], 0)  # nothing to fill from
    np.testing.assert_array_equal(warped, before)  # a new array, not the input filled in place


# ------------------------------------------------------------------------------------------ conventions


def test_middlebury_left_image_to_right_view() -> None:
    # Middlebury: left(x) = right(x - d). A marker at x = 12 with d = 4 (nearer than its surroundings at 1 px)
    # shows up at x = 8 in the right view, and the rest of its row moves by 1.
    left = textured(5, 24)
    left[2, 12] = FG
    disparity = np.ones((5, 24), np.float32)
    disparity[2, 12] = 4
    right = synthesize_view(left, disparity, -1)
    np.testing.assert_array_equal(right[2, 8], FG)
    assert (right == FG).all(axis=-1).sum() == 1
    np.testing.assert_array_equal(right[2, 12:23], left[2, 13:24])


def test_render_stereo_moves_the_eyes_apart_symmetrically() -> None:
    image = textured(6, 100)
    # Everything at z = 1 with convergence 0: 4 % of 100 px = 4 px of parallax, 2 px per eye, in front of the screen.
    left, right = render_stereo(image, np.ones((6, 100), np.float32), StereoConfig(max_parallax=4.0, convergence=0.0))
    np.testing.assert_array_equal(left[:, 2:], image[:, :-2])
    np.testing.assert_array_equal(right[:, :-2], image[:, 2:])


@pytest.mark.parametrize("seed", range(12))
def test_matches_per_pixel_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(1, 6)), int(rng.integers(1, 24))
    image = rng.integers(1, 256, (height, width, 3), dtype=np.uint8)
    # Coarse steps make collisions, ties in the 1/256 px quantization and off-frame pixels common.
    disparity = (rng.integers(-12, 13, (height, width)) / 4 * rng.choice([1, 3])).astype(np.float32)
    for direction in (1, -1):
        original = (image.copy(), disparity.copy())
        np.testing.assert_array_equal(
            synthesize_view(image, disparity, direction), reference_view(image, disparity, direction)
        )
        np.testing.assert_array_equal(image, original[0])  # inputs are left alone
        np.testing.assert_array_equal(disparity, original[1])


# ----------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("direction", [0, 2, -2])
def test_direction_must_be_plus_or_minus_one(direction: int) -> None:
    image, disparity = textured(3, 4), np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="direction"):
        synthesize_view(image, disparity, direction)
    with pytest.raises(ValueError, match="direction"):
        forward_warp(image, disparity, direction)


@pytest.mark.parametrize("disparity_shape", [(3, 5), (4, 4), (4, 3)])
def test_mismatched_shapes_are_refused(disparity_shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="differ"):
        synthesize_view(textured(3, 4), np.zeros(disparity_shape, np.float32), +1)
