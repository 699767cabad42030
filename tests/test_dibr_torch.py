"""DIBR in torch: the numpy path's rules on torch tensors, with a batch dimension, on CPU tensors here.

The warp has no interpolation and uses the numpy path's float32 arithmetic, so it must agree bit for bit. The
sampling interpolates exactly where the numpy path's cv2.remap rounds to uint8 first (and, before OpenCV 5, moves
positions to a 1/32 px grid), so views agree to within a stated number of levels; scenes with whole-pixel disparities
and sharp depth edges involve no interpolation at all and agree exactly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from synth import SHARED_DATA
from test_dibr import square_scene, textured

from stereoconv.dibr import (
    fill_disocclusions,
    fill_disocclusions_torch,
    sample_view,
    sample_view_torch,
    synthesize_view,
    synthesize_view_torch,
    warp_disparity,
    warp_disparity_torch,
)

STEREO_DATA = SHARED_DATA / "stereo"
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "stereo_views.py"

# How far a torch view may be from the numpy one, in uint8 levels (max, mean over noise views, mean over Middlebury).
# OpenCV 5's remap interpolates exactly and rounds to uint8 (off by at most 0.5 + 1e-5); the numpy path fills holes
# from those rounded pixels and rounds halves up where torch rounds to even. Each value is then within 1 of the exact
# one's rounding; measured: max 1, mean 0.006 on the noise scenes here (0.024 for the worst single view), mean 0.0064
# on Middlebury. OpenCV 4 moves positions to a 1/32 px grid: up to 255/64 ~ 4 levels between very different
# neighbours; measured with 4.10: max 4, mean 0.64 on noise, max 2, mean 0.104 on Middlebury.
CV2_EXACT_REMAP = int(cv2.__version__.split(".")[0]) >= 5
MAX_LEVELS, NOISE_MEAN, MIDDLEBURY_MEAN = (1, 0.02, 0.01) if CV2_EXACT_REMAP else (5, 0.8, 0.15)
SAMPLE_TOLERANCE = 0.51 if CV2_EXACT_REMAP else 4.6  # the unrounded view against sample_view's uint8 one


def tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def synthesize_both(image: np.ndarray, disparity: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """(numpy view, torch view) as int arrays."""
    want = synthesize_view(image, disparity, direction).astype(int)
    got = synthesize_view_torch(*tensors(image, disparity), direction).numpy().astype(int)
    return want, got


def random_disparity(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32 disparity of one of several kinds, with a few non-finite values sprinkled in."""
    kind = rng.integers(6)
    if kind == 0:  # anything, most of it pushed off-frame
        disparity = rng.uniform(-width, width, (height, width))
    elif kind == 1:  # halves and whole pixels: every rounding tie
        disparity = np.round(rng.uniform(-8, 8, (height, width)) * 2) / 2
    elif kind == 2:  # a plane: stretched, squeezed and folded surfaces
        y, x = np.mgrid[:height, :width]
        disparity = rng.uniform(-3, 3) + x * rng.uniform(-1.6, 1.6) + y * rng.uniform(-1, 1)
    elif kind == 3:  # sharp rectangles over a constant background
        disparity = np.full((height, width), rng.uniform(-5, 5))
        for _ in range(3):
            y, x = rng.integers(height), rng.integers(width)
            disparity[y : y + rng.integers(1, 6), x : x + rng.integers(1, 12)] = rng.uniform(-8, 8)
    elif kind == 4:  # neighbours about one surface apart: segments joined or not
        disparity = np.cumsum(rng.uniform(-1.2, 1.2, (height, width)), axis=1)
    else:  # far off-frame, up to values whose new column does not fit an int64
        disparity = rng.uniform(-1, 1, (height, width)) * rng.choice([3.0 * width, 1e20])
    disparity = disparity.astype(np.float32)
    sprinkle = rng.random((height, width)) < 0.05
    disparity[sprinkle] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), sprinkle.sum())
    return disparity


def smooth_field(rng: np.random.Generator, height: int, width: int, amplitude: float) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    waves = [rng.uniform(0, 0.2, 2) for _ in range(3)]
    return sum(amplitude / 3 * np.sin(fx * x + fy * y + rng.uniform(0, 6.3)) for fx, fy in waves)


def textured_scene(
    rng: np.random.Generator, sharp: bool, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Full-range noise (the worst case for interpolation differences) over a smooth disparity of one sign, at least
    1.5 px at the frame edges (so every row has a hole at one edge), with rectangles up to 6 px nearer or farther
    on it when ``sharp``; of a random size unless given one."""
    height, width = size or (rng.integers(10, 40), rng.integers(40, 90))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    disparity = rng.choice([-1.0, 1.0]) * (1.5 + np.abs(smooth_field(rng, height, width, 4)))
    if sharp:
        for _ in range(4):
            y, x = rng.integers(height - 2), rng.integers(10, width - 30)
            disparity[y : y + rng.integers(2, height // 2), x : x + rng.integers(3, 20)] += rng.uniform(-6, 6)
    return image, disparity.astype(np.float32)


# ------------------------------------------------------------------------------------------ warp: bit for bit


def test_warp_matches_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        disparity = random_disparity(rng, rng.integers(1, 12), rng.integers(1, 50))
        for direction in (1, -1):
            want = warp_disparity(disparity, direction)
            got = warp_disparity_torch(torch.from_numpy(disparity), direction)
            assert got.dtype == torch.float32 and got.shape == disparity.shape
            np.testing.assert_array_equal(got.numpy(), want)


def test_warp_leaves_its_input_alone_and_returns_a_new_tensor() -> None:
    disparity = torch.tensor([[0.0, 1.0, float("nan"), 2.5]])
    before = disparity.clone()
    warped = warp_disparity_torch(disparity, 1)
    torch.testing.assert_close(disparity, before, equal_nan=True)
    assert warped.is_contiguous() and warped.data_ptr() != disparity.data_ptr()


# ------------------------------------------------------------------------------------------ known geometry


@pytest.mark.parametrize("direction", [1, -1])
def test_half_pixel_disparity_interpolates_exactly(direction: int) -> None:
    image = textured(4, 30)
    out = synthesize_view_torch(torch.from_numpy(image), torch.full((4, 30), 2.5), direction).numpy()
    mean = np.rint((image[:, :-1].astype(np.float32) + image[:, 1:]) / 2)  # halves to even, as the view is rounded
    got, want = (out[:, 3:], mean[:, :27]) if direction > 0 else (out[:, :27], mean[:, 2:29])
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------------------ sampling and filling


def test_sample_view_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    for sharp in (False, True):
        for _ in range(10):
            image, disparity = textured_scene(rng, sharp)
            for direction in (1, -1):
                warped = warp_disparity(disparity, direction)
                want, want_filled = sample_view(image, disparity, warped, direction)
                got, filled = sample_view_torch(*tensors(image, disparity, warped), direction)
                assert got.dtype == torch.float32 and filled.dtype == torch.bool
                np.testing.assert_array_equal(filled.numpy(), want_filled)
                assert np.abs(got.numpy() - want).max() <= SAMPLE_TOLERANCE
                assert (got.numpy()[~want_filled] == 0).all()


def test_a_whole_pixel_position_reads_that_pixel() -> None:
    # New pixel 3 shows source pixel 0's place at 3 px, but source pixel 0 is at 0 px and pixel 1 at 3 px: only the
    # right neighbour shows that surface, and its weight is 0. Like sample_view (cv2.remap), read pixel 0.
    image = np.array([[[10], [20], [30], [40]]], np.uint8)
    disparity = np.array([[0, 3, 3, 3]], np.float32)
    warped = np.array([[0, -np.inf, -np.inf, 3]], np.float32)
    want, _ = sample_view(image, disparity, warped, 1)
    got, _ = sample_view_torch(*tensors(image, disparity, warped), 1)
    assert got[0, :, 0].tolist() == want[0, :, 0].tolist() == [10, 0, 0, 10]


def test_fill_matches_numpy() -> None:
    # Random hole masks, including heights under the 7-row smoothing window, where the reflected border wraps.
    rng = np.random.default_rng(2)
    for _ in range(150):
        height, width = rng.integers(1, 20), rng.integers(1, 40)
        filled = rng.random((height, width)) < rng.uniform(0.2, 1.0)
        disparity = rng.integers(0, 4, (height, width)) + rng.choice([0.0, 0.5])
        warped = np.where(filled, disparity, -np.inf).astype(np.float32)
        levels = np.where(filled[..., None], rng.integers(0, 256, (height, width, 3)), 0).astype(np.uint8)
        got = fill_disocclusions_torch(*tensors(levels, warped, filled))
        assert got.dtype == torch.float32
        # Whole levels (what sample_view gives): exact, as the window sums are then exact in float32 too.
        np.testing.assert_array_equal(got.numpy(), fill_disocclusions(levels, warped, filled))
        # Any float32: the window sums (at most 7 * 255) are float32 here and float64 in cv2.blur.
        view = np.where(filled[..., None], rng.uniform(0, 255, (height, width, 3)), 0).astype(np.float32)
        got = fill_disocclusions_torch(*tensors(view, warped, filled)).numpy()
        np.testing.assert_allclose(got, fill_disocclusions(view, warped, filled), rtol=0, atol=2e-4)


def test_fill_takes_the_far_side_and_the_one_side_at_edges() -> None:
    view = torch.tensor([[0, 10, 0, 0, 20, 0], [0, 10, 0, 0, 20, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    view = view.unsqueeze(-1)
    ninf = -torch.inf
    warped = torch.tensor([[ninf, 1, ninf, ninf, 5, ninf], [ninf, 5, ninf, ninf, 1, ninf], [ninf] * 6])
    before = view.clone()
    for row, expected in ((0, [10, 10, 10, 10, 20, 20]), (1, [10, 10, 20, 20, 20, 20]), (2, [0] * 6)):
        rows = slice(row, row + 1)
        out = fill_disocclusions_torch(view[rows], warped[rows], torch.isfinite(warped[rows]))
        assert out[0, :, 0].tolist() == expected
    assert torch.equal(view, before)  # a new tensor, not the input filled in place


def diagonal_runs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(view, warped, filled) where row 0 ends its holes at column 3 and row 1 starts its at column 4: one diagonal
    step apart, but two runs. Row 1's hole has its background (1 px, level 20) on the left."""
    ninf = -np.inf
    warped = np.array([[5, 5, ninf, ninf, 1, 1, 1, 1], [1, 1, 1, 1, ninf, 5, 5, 5]], np.float32)
    view = np.array([[90, 90, 0, 0, 10, 10, 10, 10], [20, 20, 20, 20, 0, 70, 70, 70]], np.float32)[..., None]
    return view, warped, np.isfinite(warped)


def test_a_hole_run_stays_in_its_row() -> None:
    out = fill_disocclusions_torch(*tensors(*diagonal_runs()))
    assert out[..., 0].tolist() == [[90, 90, 10, 10, 10, 10, 10, 10], [20, 20, 20, 20, 20, 70, 70, 70]]


def test_numpy_fill_keeps_a_hole_run_in_its_row() -> None:
    assert fill_disocclusions(*diagonal_runs())[1, 4, 0] == 20


# ------------------------------------------------------------------------------------------ whole views against numpy


@pytest.mark.parametrize("sharp", [False, True])
def test_synthesize_view_matches_numpy_on_textured_scenes(sharp: bool) -> None:
    rng = np.random.default_rng(3 + sharp)
    differences = []
    for _ in range(15):
        image, disparity = textured_scene(rng, sharp)
        for direction in (1, -1):
            want, got = synthesize_both(image, disparity, direction)
            differences.append(np.abs(got - want).ravel())
    differences = np.concatenate(differences)
    assert differences.max() <= MAX_LEVELS and differences.mean() < NOISE_MEAN


@pytest.mark.parametrize("direction", [1, -1])
def test_synthesize_view_matches_numpy_exactly_without_interpolation(direction: int) -> None:
    # Whole-pixel disparities with every jump over one surface: every position is a whole pixel.
    rng = np.random.default_rng(5)
    for _ in range(10):
        height, width = rng.integers(8, 30), rng.integers(40, 80)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        disparity = np.full((height, width), rng.choice([-1, 1]) * rng.integers(2, 5), np.float32)
        for _ in range(3):
            y, x = rng.integers(height - 2), rng.integers(10, width - 25)
            patch = disparity[y : y + rng.integers(2, height), x : x + rng.integers(3, 15)]
            patch += rng.choice([-6, -3, 3, 6])
        want, got = synthesize_both(image, disparity, direction)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("direction", [1, -1])
def test_sixteen_bit_images_render_like_eight_bit_ones_at_full_precision(direction: int) -> None:
    # A deep source's picture: the same geometry as its 8-bit view, every one of the 16 bits kept, numpy = torch.
    rng = np.random.default_rng(6)
    image = rng.integers(0, 65536, (24, 64, 3)).astype(np.uint16)
    disparity = np.full((24, 64), 2.0, np.float32)
    disparity[6:18, 20:40] = 6.0
    want = synthesize_view(image, disparity, direction)
    got = synthesize_view_torch(*tensors(image, disparity), direction).numpy()
    assert want.dtype == got.dtype == np.uint16
    np.testing.assert_array_equal(got, want)
    eight = synthesize_view((image >> 8).astype(np.uint8), disparity, direction)
    assert np.abs((want >> 8).astype(int) - eight).max() <= 1
    assert np.any(want & 0xFF)  # the low byte is rendered, not dropped


def middlebury_scenes():
    if not BENCHMARK.is_file() or not STEREO_DATA.is_dir():
        pytest.skip(f"Middlebury data or its loader not available: {STEREO_DATA}")
    spec = importlib.util.spec_from_file_location("stereo_views", BENCHMARK)
    loader = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("stereo_views", loader)  # dataclasses look their module up there
    spec.loader.exec_module(loader)
    for scene in loader.SCENES:
        folder = STEREO_DATA / scene.folder
        if not all((folder / name).is_file() for name in (scene.left, scene.disparity)):
            pytest.skip(f"Middlebury scene not available: {folder}")
        left = loader.read_rgb(folder / scene.left)
        yield scene.name, left, loader.fill_unknown(loader.read_disparity(folder / scene.disparity, scene.scale))


def test_synthesize_view_matches_numpy_on_middlebury() -> None:
    for name, left, disparity in middlebury_scenes():  # float64 disparity, as the benchmark has it
        for direction in (-1, 1):
            want, got = synthesize_both(left, disparity, direction)
            difference = np.abs(got - want)
            assert difference.max() <= MAX_LEVELS and difference.mean() < MIDDLEBURY_MEAN, (name, direction)


# ------------------------------------------------------------------------------------------ batches and dtypes


@pytest.mark.parametrize("direction", [1, -1])
def test_a_batch_renders_like_its_frames_one_by_one(direction: int) -> None:
    rng = np.random.default_rng(6)
    frames = [textured_scene(rng, sharp=True, size=(24, 60)) for _ in range(3)]
    images = torch.from_numpy(np.stack([image for image, _ in frames]))
    disparities = torch.from_numpy(np.stack([d for _, d in frames]))
    warped = warp_disparity_torch(disparities, direction)
    views, filled = sample_view_torch(images, disparities, warped, direction)
    batch = fill_disocclusions_torch(views, warped, filled)
    out = synthesize_view_torch(images, disparities, direction)
    assert out.shape == images.shape and out.dtype == torch.uint8
    for i in range(3):
        one_warped = warp_disparity_torch(disparities[i], direction)
        one_view, one_filled = sample_view_torch(images[i], disparities[i], one_warped, direction)
        assert torch.equal(warped[i], one_warped) and torch.equal(filled[i], one_filled)
        assert torch.equal(views[i], one_view)
        assert torch.equal(batch[i], fill_disocclusions_torch(one_view, one_warped, one_filled))
        assert torch.equal(out[i], synthesize_view_torch(images[i], disparities[i], direction))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_disparities_are_taken_as_float32(dtype: torch.dtype) -> None:
    image, disparity = square_scene(d_background=1.25, d_square=5.5)
    as_float32 = torch.from_numpy(disparity).to(dtype).to(torch.float32)
    other = torch.from_numpy(disparity).to(dtype)
    assert torch.equal(warp_disparity_torch(other, 1), warp_disparity_torch(as_float32, 1))
    assert warp_disparity_torch(other, 1).dtype == torch.float32
    image = torch.from_numpy(image)
    assert torch.equal(synthesize_view_torch(image, other, -1), synthesize_view_torch(image, as_float32, -1))
    # ...as the numpy path converts them too.
    np.testing.assert_array_equal(warp_disparity_torch(other, -1).numpy(), warp_disparity(other.numpy(), -1))


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("direction", [0, 2, -2])
def test_direction_must_be_plus_or_minus_one(direction: int) -> None:
    image, disparity = torch.from_numpy(textured(3, 5)), torch.zeros(3, 5)
    with pytest.raises(ValueError, match="direction"):
        synthesize_view_torch(image, disparity, direction)
    with pytest.raises(ValueError, match="direction"):
        warp_disparity_torch(disparity, direction)
    with pytest.raises(ValueError, match="direction"):
        sample_view_torch(image, disparity, disparity, direction)


@pytest.mark.parametrize(
    ("image_shape", "disparity_shape"),
    [((3, 5, 3), (3, 6)), ((3, 5, 3), (4, 5)), ((2, 3, 5, 3), (3, 3, 5)), ((3, 5), (3, 5)), ((2, 3, 5, 3), (3, 5))],
)
def test_mismatched_shapes_are_refused(image_shape, disparity_shape) -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        synthesize_view_torch(torch.zeros(image_shape, dtype=torch.uint8), torch.zeros(disparity_shape), 1)


def test_other_layouts_and_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        warp_disparity_torch(torch.zeros(5), 1)
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        warp_disparity_torch(torch.zeros(1, 1, 3, 5), 1)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        synthesize_view_torch(torch.zeros(3, 5, 3), torch.zeros(3, 5), 1)
    with pytest.raises(ValueError, match="of one size"):
        fill_disocclusions_torch(torch.zeros(3, 5, 3), torch.zeros(3, 5), torch.zeros(3, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ on a GPU


@pytest.mark.gpu
def test_cuda_renders_like_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(7)
    for sharp in (False, True):
        image, disparity = textured_scene(rng, sharp)
        image, disparity = tensors(image, disparity)
        for direction in (1, -1):
            warped = warp_disparity_torch(disparity.cuda(), direction)
            assert warped.is_cuda and torch.equal(warped.cpu(), warp_disparity_torch(disparity, direction))
            out = synthesize_view_torch(image.cuda(), disparity.cuda(), direction)
            assert out.is_cuda and torch.equal(out.cpu(), synthesize_view_torch(image, disparity, direction))
