"""Depth refinement: soft depth edges from a low-resolution model come back as steps, slopes and flat depth stay.

Every case runs on the numpy path and the torch path (``BOTH_PATHS``); depth is made soft the way the pipeline
makes it: area-downsampled (what the model effectively sees), then brought back up with interpolation.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from stereoconv.config import StereoConfig
from stereoconv.dibr import refine_disparity, refine_disparity_torch, synthesize_view
from stereoconv.parallax import StereoRenderer
from stereoconv.refine import _TILE, refine_disparity_reference, refine_radius


def refine_via_torch(image: np.ndarray | None, disparity: np.ndarray, **kwargs) -> np.ndarray:
    pixels = torch.from_numpy(image if image is not None else np.zeros((*disparity.shape, 3), np.uint8))
    return refine_disparity_torch(pixels, torch.from_numpy(disparity), **kwargs).numpy()


BOTH_PATHS = pytest.mark.parametrize("refine", [refine_disparity, refine_via_torch], ids=["numpy", "torch"])


def soften(disparity: np.ndarray, factor: int, blur: float = 0.0) -> np.ndarray:
    """``disparity`` as a model ``factor`` times coarser delivers it: area-downsampled, blurred, bicubic back up."""
    height, width = disparity.shape
    small = cv2.resize(disparity, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    if blur:
        small = cv2.GaussianBlur(small, (0, 0), blur)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def two_planes(width: int = 96, height: int = 48, edge: int = 48, near: float = 12.0, far: float = 2.0):
    """A near plane left of column ``edge`` over a far one, with a sharp colour edge in the same place:
    (uint8 image, float32 true disparity)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:, :edge] = (200, 60, 40)
    image[:, edge:] = (40, 90, 200)
    disparity = np.full((height, width), far, np.float32)
    disparity[:, :edge] = near
    return image, disparity


@BOTH_PATHS
@pytest.mark.parametrize(("factor", "beside"), [(2, -1), (2, 0), (2, 1), (4, -2), (4, 0), (4, 2)])
def test_a_soft_ramp_across_a_colour_edge_becomes_a_step_on_it(refine, factor: int, beside: int) -> None:
    """The model's ramp centred on the colour edge, or beside it (into the far or the near plane) by up to half the
    upsampling factor: the step lands on the colour edge, not on the ramp's middle."""
    image, _ = two_planes()
    soft = soften(two_planes(edge=48 + beside)[1], factor, blur=0.5)
    row = soft[24]
    assert np.count_nonzero((row > 2.5) & (row < 11.5)) >= factor  # really a ramp, several pixels wide
    refined = refine(image, soft, scale=factor)[24]
    # Nearly all the depth change now happens within two pixels (one of them anti-aliased)...
    jumps = refined[:-2] - refined[2:]
    step = int(np.argmax(jumps))
    assert jumps[step] > 0.9 * (12.0 - 2.0)
    assert abs((step + 1) - 47.5) <= 1  # ...on the colour edge (between columns 47 and 48)
    # Away from the edge both planes are exactly where they were.
    reach = 48 + beside
    np.testing.assert_allclose(refined[: reach - 2 * factor - 6], soft[24, : reach - 2 * factor - 6], atol=1e-5)
    np.testing.assert_allclose(refined[reach + 2 * factor + 6 :], soft[24, reach + 2 * factor + 6 :], atol=1e-5)


@BOTH_PATHS
def test_without_colour_the_ramp_decides(refine) -> None:
    """Where the two sides look alike (or no image is given) the step goes where the ramp says, not elsewhere."""
    image, _ = two_planes()
    grey = np.full_like(image, 128)
    soft = soften(two_planes(edge=51)[1], 2, blur=0.5)  # the depth edge at 51, the (invisible) colour edge at 48
    for picture in (grey, None):
        refined = refine(picture, soft, scale=2)[24]
        jumps = refined[:-2] - refined[2:]
        assert jumps.max() > 0.9 * 10.0
        assert abs((int(np.argmax(jumps)) + 1) - 50.5) <= 1.5


@BOTH_PATHS
def test_refined_edges_render_without_a_halo(refine) -> None:
    """Rendered from the soft depth, the far plane next to the edge is dragged along with the near one (a halo of
    stretched background); from the refined depth the far plane's pixels stay where the true depth puts them."""
    image, truth = two_planes()
    image = image.copy()
    image[:, 48:] += np.random.default_rng(1).integers(0, 40, (48, 48, 1), dtype=np.uint8)  # texture to compare
    soft = soften(truth, 4, blur=0.5)
    expected = synthesize_view(image, truth, -1)
    # In the right view the near plane moves 12 px left and the far one 2 px: columns 36..46 are background the left
    # view did not see, filled from the background side; a soft ramp stretches the near plane's edge over them.
    far = slice(30, 56)
    error_soft = np.abs(synthesize_view(image, soft, -1)[:, far].astype(int) - expected[:, far]).mean()
    error_refined = np.abs(synthesize_view(image, refine(image, soft, scale=4), -1)[:, far].astype(int)
                           - expected[:, far]).mean()  # fmt: skip
    assert error_refined < 0.25 * error_soft


@BOTH_PATHS
def test_flat_and_sloped_depth_stay_as_they_are(refine) -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 80, 3), dtype=np.uint8)
    flat = np.full((40, 80), 3.25, np.float32)
    np.testing.assert_array_equal(refine(image, flat, scale=4), flat)
    slope = np.tile(np.linspace(-10.0, 30.0, 80, dtype=np.float32), (40, 1))  # a floor seen at an angle
    np.testing.assert_allclose(refine(image, slope, scale=4), slope, atol=1e-4)


@BOTH_PATHS
def test_sharp_depth_passes_through_unchanged(refine) -> None:
    """Depth whose edges are already steps (ground truth, a model at the frame's own size) is not touched."""
    image, truth = two_planes()
    truth[10:20, 60:70] = 20.0  # a second, nearer object
    np.testing.assert_allclose(refine(image, truth, scale=3), truth, atol=1e-5)


@BOTH_PATHS
def test_a_thin_near_structure_blurred_away_in_depth_comes_back_at_its_own_disparity(refine) -> None:
    """A one-pixel-wide pole, plain in colour, that the model's coarse grid blurs into a faint wide bump."""
    height, width, pole, d_pole = 64, 64, 32, 6.0
    image = np.full((height, width, 3), 100, np.uint8)
    image[:, pole] = 220
    truth = np.zeros((height, width), np.float32)
    truth[:, pole] = d_pole
    soft = soften(truth, 2, blur=0.5)
    assert soft[:, pole].max() < 0.5 * d_pole  # blurred away: less than half its disparity is left
    refined = refine(image, soft, scale=2, thin=True)
    np.testing.assert_allclose(refined[8:-8, pole], d_pole, atol=0.5)  # lands on the same pixel when rendered
    assert np.abs(refined[8:-8, pole - 3 : pole]).max() < 0.3  # the bump's spill is background again
    assert np.abs(refined[8:-8, pole + 1 : pole + 4]).max() < 0.3
    # Rendered: the pole lands at its own disparity (right eye: x - d), not smeared over the background.
    view = synthesize_view(image, refined, -1)
    assert (view[8:-8, pole - 6] == 220).all()


def test_numpy_and_torch_agree_on_a_random_scene() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    coarse = rng.random((8, 12)).astype(np.float32) * 20
    soft = cv2.resize(coarse, (90, 60), interpolation=cv2.INTER_NEAREST)
    soft = soften(soft, 3, blur=0.7)
    for thin in (False, True):
        np.testing.assert_allclose(
            refine_disparity(image, soft, scale=3, thin=thin), refine_via_torch(image, soft, scale=3, thin=thin),
            atol=1e-4,
        )  # fmt: skip


def test_the_plan_refines_where_the_eyes_are_rendered_and_can_be_switched_off() -> None:
    image, truth = two_planes()
    depth = (soften(truth, 4, blur=0.5) - 2.0) / 10.0  # normalized: 0 far, 1 near
    wide = {"max_negative_parallax": 8.0, "max_positive_parallax": 8.0, "screen_width": 0.5}  # ~8 px of parallax
    quarter = lambda height, width: (height // 4, width // 4)  # noqa: E731  the model's map: a quarter of the frame
    on = StereoRenderer(StereoConfig(**wide), quarter).plan(depth).eye_disparity(image, *depth.shape)
    off = (
        StereoRenderer(StereoConfig(**wide, refine_edges=False), quarter).plan(depth).eye_disparity(None, *depth.shape)
    )
    assert (on[24, :-2] - on[24, 2:]).max() > 0.9 * (on.max() - on.min())  # a step
    assert (off[24, :-2] - off[24, 2:]).max() < 0.6 * (off.max() - off.min())  # still the ramp
    np.testing.assert_allclose(on[:, :30], off[:, :30], atol=1e-5)


# ---------------------------------------------------------------------------- the tiled path vs the whole-frame one


def edged_scene(height: int, width: int, scale: float, seed: int, channels: int = 3):
    """A frame and its soft disparity (-30..30 px, upsampled by ``scale`` from a coarse map as a model's is): a slope,
    and objects whose edges fall on and beside the tiles' borders and the frame's, colour edges with them."""
    rng = np.random.default_rng(seed)
    disparity = np.tile(np.linspace(-8.0, 8.0, width, dtype=np.float32), (height, 1))
    image = rng.integers(0, 30, (height, width, channels), dtype=np.uint8)
    tile_rows, tile_cols = _TILE
    rows = sorted(
        {1, 2, height - 3, height - 2} | {t + d for t in range(tile_rows, height, tile_rows) for d in (-2, 0, 1)}
    )
    cols = sorted(
        {1, 3, width - 4, width - 2} | {t + d for t in range(tile_cols, width, tile_cols) for d in (-1, 0, 2)}
    )
    for k, (y, x) in enumerate(zip(rows, cols * (len(rows) // len(cols) + 1), strict=False)):
        near = rng.uniform(-30.0, 30.0)
        y0, x0 = max(0, y - int(rng.integers(2, 12))), max(0, x - int(rng.integers(2, 12)))
        disparity[y0 : y + 1, x0 : x + 1] = near  # corners on tile and frame borders
        disparity[y:, x : x + 1 + k % 3] = -near / 2  # and a strip down from it
        image[y0 : y + 1, x0 : x + 1] = rng.integers(0, 256, channels)
    coarse = (max(1, round(width / scale)), max(1, round(height / scale)))
    small = cv2.resize(disparity, coarse, interpolation=cv2.INTER_AREA)
    method = cv2.INTER_CUBIC if seed % 2 else cv2.INTER_LINEAR
    return image, cv2.resize(small, (width, height), interpolation=method).astype(np.float32)


def assert_same_bits(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == reference.dtype == np.float32 and ours.shape == reference.shape
    differ = np.flatnonzero(ours.view(np.uint32) != reference.view(np.uint32))
    assert differ.size == 0, f"{differ.size} pixels differ, first at {np.unravel_index(differ[0], ours.shape)}"


@pytest.mark.parametrize("scale", [1.0, 2.08, 4.17, 8.3])  # radius 3, 5, 7 and 11 (wider sums than 16 bits)
@pytest.mark.parametrize("size", [(75, 150), (131, 200), (9, 13)])
def test_the_tiled_path_equals_the_whole_frame_path_to_the_bit(scale: float, size: tuple[int, int]) -> None:
    """refine_disparity (a tile at a time, smooth tiles skipped) against refine_disparity_reference (OpenCV's window
    filters over the whole frame, then the per-pixel rule): not one bit apart, with colour of 3, 1 or 4 channels,
    16-bit colour, or none, edges on tile and frame borders, and where the step goes (split) at either end."""
    assert refine_radius(8.3) == 11  # (2 r + 1)^2 * 255 >= 65536: the window sums take 32-bit lanes
    height, width = size
    image, soft = edged_scene(height, width, scale, seed=int(scale * 10) + height)
    grey, _ = edged_scene(height, width, scale, seed=1, channels=1)
    deep = image.astype(np.uint16) * 257 + 100
    rgba = np.concatenate([image, grey], axis=2)
    for picture in (image, grey[..., 0], deep, rgba, None):
        for split in (0.2, 0.0, 1.0):
            ours = refine_disparity(picture, soft, scale=scale, split=split)
            assert_same_bits(ours, refine_disparity_reference(picture, soft, scale=scale, split=split))
    # Zeros of either sign, which only a careless shortcut would tell apart.
    zeros = np.where(np.abs(soft) < 3.0, np.float32(0.0), soft)
    zeros[::2, ::3] = np.where(zeros[::2, ::3] == 0.0, np.float32(-0.0), zeros[::2, ::3])
    assert_same_bits(refine_disparity(image, zeros, scale=scale), refine_disparity_reference(image, zeros, scale=scale))
    # Every window on a ramp: depth noise, upsampled.
    noise = np.random.default_rng(height).uniform(-30.0, 30.0, (max(1, height // 2), max(1, width // 2)))
    noisy = cv2.resize(noise.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    assert_same_bits(refine_disparity(image, noisy, scale=scale), refine_disparity_reference(image, noisy, scale=scale))
    assert_same_bits(refine_disparity(None, noisy, scale=scale), refine_disparity_reference(None, noisy, scale=scale))


def test_the_tiled_path_copies_smooth_tiles_and_refines_the_rest() -> None:
    """A frame mostly smooth, one object: the tiles away from it come back as they went in, the object's edge is
    refined, and the two paths agree on it."""
    image, soft = edged_scene(96, 192, 2.08, seed=5)
    soft[:, 100:] = np.linspace(0.0, 2.0, 92, dtype=np.float32)  # a gentle slope: within SAME_SURFACE per window
    ours = refine_disparity(image, soft, scale=2.08)
    np.testing.assert_array_equal(ours[:, 120:], soft[:, 120:])
    assert not np.array_equal(ours[:, :90], soft[:, :90])
    assert_same_bits(ours, refine_disparity_reference(image, soft, scale=2.08))


def test_thin_needs_the_image() -> None:
    with pytest.raises(ValueError, match="needs the image"):
        refine_disparity(None, np.zeros((8, 8), np.float32), thin=True)


def test_the_plan_knows_how_much_the_model_s_depth_was_upsampled(tiny_model, two_shot_clip, tmp_path) -> None:
    """Loaded or behind a depth cache, the estimator says what size of map its model delivers, so the refinement's
    window follows the model's own input size (here the tiny model's), not a fixed guess."""
    from stereoconv.cache import cached_estimator
    from stereoconv.config import DepthConfig
    from stereoconv.depth import load_estimator
    from stereoconv.engine import depth_shape

    config = DepthConfig(model=str(tiny_model), input_size=56)
    loaded = depth_shape(load_estimator(config))
    cached = depth_shape(cached_estimator(tmp_path / "cache", two_shot_clip.path, config))
    assert loaded is not None and cached is not None
    assert loaded(112, 224) == cached(112, 224) == (56, 112)
    assert depth_shape(None) is None
