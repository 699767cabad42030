"""DIBR: forward warping of disparity with occlusion order, same-surface sampling, background-side filling.

The known-geometry tests run on both the numpy path and the torch path (``BOTH_PATHS``); tests/test_dibr_torch.py
holds what is particular to torch (agreement with numpy, batches, dtypes).

Images here are small and built by hand (uint8, values >= 1 so a stray hole reads as 0), so expected pixels can be
written down. Direction +1 moves a pixel to x + d (left eye), -1 to x - d (right eye).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from stereoconv.dibr import (
    fill_disocclusions,
    sample_view,
    synthesize_view,
    synthesize_view_reference,
    synthesize_view_torch,
    warp_disparity,
)

FG = np.array([255, 0, 255], np.uint8)  # the near square's colour; the background never has it
BG = np.array([40, 120, 60], np.uint8)


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 HxWx3 random texture in 1..200: no zero pixels, and never the foreground colour."""
    return np.random.default_rng(seed).integers(1, 201, (height, width, 3), dtype=np.uint8)


def square_scene(d_background: float, d_square: float, background: np.ndarray | None = None):
    """A FG square (rows 2..5, columns 15..24) at ``d_square`` px over a background at ``d_background`` px:
    (uint8 8x40x3 image, float32 8x40 disparity)."""
    image = textured(8, 40) if background is None else np.broadcast_to(background, (8, 40, 3)).copy()
    image[2:6, 15:25] = FG
    disparity = np.full((8, 40), d_background, np.float32)
    disparity[2:6, 15:25] = d_square
    return image, disparity


def is_fg(image: np.ndarray) -> np.ndarray:
    return (image == FG).all(axis=-1)


def synthesize_view_via_torch(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    return synthesize_view_torch(torch.from_numpy(image), torch.from_numpy(disparity), direction).numpy()


# The known-geometry tests hold for the numpy path and the torch (GPU) path alike.
BOTH_PATHS = pytest.mark.parametrize("render", [synthesize_view, synthesize_view_via_torch], ids=["numpy", "torch"])


# ------------------------------------------------------------------------------------------ known geometry


@BOTH_PATHS
@pytest.mark.parametrize("direction", [1, -1])
def test_zero_disparity_returns_the_input(render, direction: int) -> None:
    image = textured(7, 11)
    np.testing.assert_array_equal(render(image, np.zeros((7, 11), np.float32), direction), image)


@BOTH_PATHS
@pytest.mark.parametrize("d", [1, 3, 7])
@pytest.mark.parametrize("direction", [1, -1])
def test_a_fronto_parallel_plane_shifts_by_exactly_d(render, d: int, direction: int) -> None:
    image = textured(6, 30)
    out = render(image, np.full((6, 30), d, np.float32), direction)
    if direction > 0:
        np.testing.assert_array_equal(out[:, d:], image[:, :-d])
        strip, edge = out[:, :d], image[:, :2]
    else:
        np.testing.assert_array_equal(out[:, :-d], image[:, d:])
        strip, edge = out[:, -d:], image[:, -2:]
    # The strip uncovered at the frame edge is filled from the only side there is: never left black.
    assert strip.min() >= edge.min() and strip.max() <= edge.max()


@pytest.mark.parametrize("direction", [1, -1])
def test_half_pixel_disparity_interpolates_between_neighbours(direction: int) -> None:
    image = textured(4, 30)
    out = synthesize_view(image, np.full((4, 30), 2.5, np.float32), direction)
    # out[x] shows the source at x - direction * 2.5: halfway between two pixels.
    mean = (image[:, :-1].astype(float) + image[:, 1:]) / 2
    if direction > 0:
        got, want = out[:, 3:], mean[:, : 30 - 3]  # x - 2.5 for x = 3.. -> between x-3 and x-2
    else:
        got, want = out[:, :27], mean[:, 2:29]  # x + 2.5 -> between x+2 and x+3
    # OpenCV 5 interpolates exactly and rounds; OpenCV 4 steps positions by 1/32 px, off by up to a level or so.
    assert np.abs(got.astype(float) - want).max() <= 1.0


@pytest.mark.parametrize("direction", [1, -1])
def test_a_slanted_surface_leaves_no_cracks(direction: int) -> None:
    # A surface stretched to 1.9x its width (disparity changes by 0.9 px per column, growing in the direction of
    # motion): nearest-pixel splatting would leave a gap every other column.
    width = 60
    disparity = np.tile(np.arange(width, dtype=np.float32) * 0.9 * direction, (5, 1))
    warped = warp_disparity(disparity, direction)
    landed = np.isfinite(warped)
    columns = np.nonzero(landed.all(axis=0))[0]
    assert columns.size > 20
    assert landed[:, columns.min() : columns.max() + 1].all(), "a crack inside the warped surface"


def test_warp_disparity_marks_disocclusions_and_keeps_the_nearest() -> None:
    _, disparity = square_scene(d_background=1, d_square=5)
    warped = warp_disparity(disparity, +1)
    assert warped.dtype == np.float32
    # Square columns 15..24 land on 20..29 and win over the background landing there too.
    assert (warped[2:6, 20:30] == 5).all()
    # The background behind the square's old place (columns 16..19 of the new view) is revealed: nothing lands.
    assert np.isneginf(warped[2:6, 16:20]).all()
    assert (warped[[0, 1, 6, 7], 1:] == 1).all() and np.isneginf(warped[:, 0]).all()


def test_pixels_pushed_off_frame_are_dropped() -> None:
    image = textured(3, 8)
    assert np.isneginf(warp_disparity(np.full((3, 8), 20, np.float32), +1)).all()
    # A row with nothing left in it stays black after filling.
    assert not synthesize_view(image, np.full((3, 8), -20, np.float32), +1).any()


# ------------------------------------------------------------------------------- occlusion and disocclusion


@BOTH_PATHS
@pytest.mark.parametrize(
    ("direction", "new", "revealed"), [(1, slice(20, 30), slice(16, 20)), (-1, slice(10, 20), slice(20, 24))]
)
def test_near_square_occludes_and_reveals_background_on_the_correct_side(render, direction, new, revealed) -> None:
    image, disparity = square_scene(d_background=1, d_square=5, background=BG)
    out = render(image, disparity, direction)
    fg = is_fg(out)
    assert fg[2:6, new].all(), "the square must cover the background that lands in its new place"
    assert fg.sum() == 40, "no foreground pixel outside the square's new position"
    # The disocclusion is on the side the square moved away from, and is filled with background colour exactly.
    assert (out[2:6, revealed] == BG).all()


@BOTH_PATHS
@pytest.mark.parametrize("direction", [1, -1])
def test_textured_background_fills_from_background_only(render, direction: int) -> None:
    image, disparity = square_scene(d_background=1, d_square=6)
    out = render(image, disparity, direction)
    fg = is_fg(out)
    assert fg.sum() == 40
    revealed = slice(16, 21) if direction > 0 else slice(20, 25)
    side = image[2:6, 11:15] if direction > 0 else image[2:6, 25:29]  # the background the fill continues from
    fill = out[2:6, revealed].astype(int)
    assert fill.min() >= side.min() - 1 and fill.max() <= side.max() + 1


@BOTH_PATHS
@pytest.mark.parametrize("direction", [1, -1])
def test_far_square_is_covered_by_near_surroundings(render, direction: int) -> None:
    # The reverse layering: the square at 1 px lies behind surroundings at 6 px, which move over its near edge.
    image, disparity = square_scene(d_background=6, d_square=1)
    out = render(image, disparity, direction)
    covered, cover = (slice(15, 21), slice(9, 15)) if direction > 0 else (slice(19, 25), slice(25, 31))
    np.testing.assert_array_equal(out[2:6, covered], image[2:6, cover])
    assert not is_fg(out[[0, 1, 6, 7]]).any()


@BOTH_PATHS
def test_sampling_never_blends_across_a_depth_edge(render) -> None:
    # Square at 5.5 px over background at 1.5 px: each view pixel reads between two source pixels. Where one of them
    # belongs to the other surface, its colour must not be mixed in.
    image, disparity = square_scene(d_background=1.5, d_square=5.5, background=BG)
    out = render(image, disparity, +1)
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert colours <= {tuple(FG), tuple(BG)}, f"blended colours at the edge: {colours - {tuple(FG), tuple(BG)}}"


def test_sample_view_and_fill_compose_into_synthesize_view() -> None:
    image, disparity = square_scene(d_background=1, d_square=5)
    warped = warp_disparity(disparity, -1)
    view, filled = sample_view(image, disparity, warped, -1)
    assert view.dtype == image.dtype and filled.dtype == bool
    assert (view[~filled] == 0).all() and not filled[2:6, 20:24].any()
    filled_in = fill_disocclusions(view, warped, filled)
    np.testing.assert_array_equal(np.clip(np.rint(filled_in), 0, 255).astype(np.uint8),
                                  synthesize_view(image, disparity, -1))  # fmt: skip


def test_fill_takes_the_far_side_and_the_one_side_at_edges() -> None:
    view = np.array([[0, 10, 0, 0, 20, 0], [0, 10, 0, 0, 20, 0], [0, 0, 0, 0, 0, 0]], np.float32)[..., None]
    ninf = -np.inf
    warped = np.array([[ninf, 1, ninf, ninf, 5, ninf], [ninf, 5, ninf, ninf, 1, ninf], [ninf] * 6], np.float32)
    before = view.copy()
    # One row at a time: the vertical smoothing only mixes hole pixels of neighbouring rows.
    for row, expected in ((0, [10, 10, 10, 10, 20, 20]), (1, [10, 10, 20, 20, 20, 20]), (2, [0] * 6)):
        out = fill_disocclusions(view[row : row + 1], warped[row : row + 1], np.isfinite(warped[row : row + 1]))
        np.testing.assert_array_equal(out[0, :, 0], expected)
    np.testing.assert_array_equal(view, before)  # a new array, not the input filled in place


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
    assert is_fg(right).sum() == 1
    np.testing.assert_array_equal(right[2, 13:23], left[2, 14:24])


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("direction", [0, 2, -2])
def test_direction_must_be_plus_or_minus_one(direction: int) -> None:
    with pytest.raises(ValueError, match="direction"):
        synthesize_view(textured(3, 5), np.zeros((3, 5), np.float32), direction)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        synthesize_view(textured(3, 5), np.zeros((3, 6), np.float32), 1)


# ------------------------------------------------------------------------------------ compiled kernel vs the reference


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 3), (np.uint8, 1), (np.uint16, 3)])
def test_the_compiled_kernel_renders_what_the_array_reference_renders(direction: int, dtype, channels: int) -> None:
    """synthesize_view (one compiled pass per row) against synthesize_view_reference (numpy and OpenCV over the whole
    array) on slanted, stretched, occluding surfaces with sub-pixel disparity and NaNs: within 1 level everywhere
    (OpenCV's remap rounds its interpolation its own way), equal almost everywhere."""
    rng = np.random.default_rng(7)
    height, width = 72, 120
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, (height, width, channels), dtype=dtype, endpoint=True)
    coarse = rng.random((9, 15)).astype(np.float32) * 14 - 4
    disparity = cv2.GaussianBlur(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST), (0, 0), 1.2)
    disparity[30:34, 50:54] = np.nan  # non-finite disparities are dropped alike
    ours = synthesize_view(image, disparity, direction).astype(np.int64)
    reference = synthesize_view_reference(image, disparity, direction).astype(np.int64)
    assert np.abs(ours - reference).max() <= 1
    assert (ours == reference).mean() > 0.99
