"""The render stage on a torch device (the GPU path, run here on CPU tensors): a planned frame rendered and packed
there equals the CPU path's packed frame within a few levels, for every layout, with edges refined, window bands,
eyes at the frame's or the packed size, and 16-bit sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereoconv.config import PipelineConfig
from stereoconv.device_render import pack_torch, render_packed
from stereoconv.engine import choose_synthesizer, render_stage
from stereoconv.media import Frame
from stereoconv.packing import eye_size, pack
from stereoconv.parallax import EdgeRefinement, StereoPlan, render_plan

CPU = torch.device("cpu")


def scene(height: int = 48, width: int = 96, seed: int = 0) -> tuple[np.ndarray, StereoPlan]:
    """A textured frame and a plan on a 4x coarser grid: a near box on a slanted background, soft-edged as a
    model's depth is, refined at rendering, with a floating-window band on each side."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    image[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = (230, 40, 40)
    grid = np.tile(np.linspace(-2.0, 1.0, width // 4, dtype=np.float32), (height // 4, 1))
    grid[height // 16 : 3 * height // 16, width // 12 : 2 * width // 12] = 6.0
    plan = StereoPlan(grid, 0.5, (3.0, 2.0), (height, width), EdgeRefinement(0.2, False, (height // 4, width // 4)))
    return image, plan


def cpu_packed(image: np.ndarray, plan: StereoPlan, layout: str, packed_size: bool) -> np.ndarray:
    height, width = image.shape[:2]
    size = None
    if packed_size:
        eye_width, eye_height = eye_size(width, height, layout)
        size = (eye_height, eye_width)
    left, right = render_plan(image, plan, size)
    return pack(left, right, layout, (width, height))


@pytest.mark.parametrize("layout", ["half-sbs", "full-sbs", "half-tb", "full-tb", "anaglyph"])
@pytest.mark.parametrize("packed_size", [False, True])
def test_the_device_path_packs_what_the_cpu_path_packs(layout, packed_size):
    image, plan = scene()
    expected = cpu_packed(image, plan, layout, packed_size)
    got = render_packed(image, image, plan, layout, CPU, packed_size)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert np.percentile(difference, 99) <= 2 and difference.mean() < 0.5, (difference.mean(), difference.max())


def test_window_bands_and_flat_frames_on_the_device():
    image, _ = scene()
    flat = StereoPlan(np.zeros((12, 24), np.float32), 0.5, (4.0, 0.0), (48, 96), None)
    packed = render_packed(image, image, flat, "full-sbs", CPU)
    left, right = packed[:, :96], packed[:, 96:]
    assert (left[:, :4] == 0).all()
    np.testing.assert_array_equal(left[:, 4:], image[:, 4:])
    np.testing.assert_array_equal(right, image)


def test_a_deep_source_renders_at_16_bits_on_the_device():
    image, plan = scene()
    deep = image.astype(np.uint16) * 257 + 100
    got = render_packed(deep, image, plan, "half-sbs", CPU)
    expected = cpu_packed(deep, plan, "half-sbs", False)
    assert got.dtype == np.uint16
    difference = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert np.percentile(difference, 99) <= 2 * 257


def test_pack_torch_is_pack():
    rng = np.random.default_rng(2)
    left, right = (rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(2))
    for layout in ("half-sbs", "full-sbs", "half-tb", "full-tb", "anaglyph"):
        got = pack_torch(torch.from_numpy(left), torch.from_numpy(right), layout, (30, 20)).numpy()
        np.testing.assert_allclose(got.astype(int), pack(left, right, layout).astype(int), atol=1)


def test_the_pipeline_renders_on_the_device_when_told_to():
    class OnCpu:
        device = CPU

    config = PipelineConfig.from_dict({"runtime": {"renderer": "torch"}})
    renderer = choose_synthesizer(config, OnCpu())
    assert renderer == CPU
    image, plan = scene()
    frame = Frame(0, image, 0, 1)
    items = [(frame, True, np.zeros((12, 24), np.float32), plan, None)]
    (item,) = render_stage(iter(items), "half-sbs", renderer)
    np.testing.assert_array_equal(item.packed, render_packed(image, image, plan, "half-sbs", CPU))
