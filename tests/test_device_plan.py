"""The plan on a torch device (run here on CPU tensors; on CUDA too where there is one, with -m gpu): frame after frame
it is the numpy plan of the same depth, the convergence and the disparity bit for bit, the window bands, the frame,
the edges and the trackers' restarts alike, through cuts given and missed, flashes, both convergence modes, window
violations at both edges and a frame size change; and such a plan renders as the numpy plan does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parallax import edge_scene, layout, textured

from stereoconv.config import StereoConfig
from stereoconv.device_plan import DeviceConvergenceTracker, DeviceFloatingWindow, DeviceStereoRenderer
from stereoconv.device_render import render_packed, upload
from stereoconv.parallax import (
    StereoPlan,
    StereoRenderer,
    block_means,
    convergence_depth,
    render_plan,
    window_violations,
)

CPU = torch.device("cpu")
DEVICES = [CPU]
if torch.cuda.is_available():
    DEVICES.append(pytest.param(torch.device("cuda"), marks=pytest.mark.gpu))


def near(where: str, n: int, seed: int, height: int, width: int) -> list[np.ndarray]:
    """A shot whose nearest part touches the ``"left"`` or ``"right"`` frame edge (a ramp across the columns)."""
    frames = layout("columns", n, seed, height, width)
    return frames if where == "left" else [np.ascontiguousarray(d[:, ::-1]) for d in frames]


def stream(height: int = 40, width: int = 72) -> list[tuple[np.ndarray, bool, tuple[int, int]]]:
    """``(depth, cut, frame)`` in decode order: a shot, a cut the detector gave, a cut it missed, a one-frame and a
    two-frame flash inside a shot, violations at each edge, a frame size change (to a 1080p frame's working grid,
    where the convergence subsamples and a grid column is a fraction of frame pixels wide), and another missed cut
    at that size."""
    frame = (2 * height, 2 * width)
    rng = np.random.default_rng(7)

    def noise(h: int = height, w: int = width) -> np.ndarray:  # the depth of a white frame
        return rng.random((h, w), dtype=np.float32)

    rows = layout("rows", 8, seed=1, height=height, width=width)
    left = near("left", 9, seed=2, height=height, width=width)
    right = [0.6 * d for d in near("right", 4, seed=3, height=height, width=width)]
    big = (520, 924)
    big_rows = layout("rows", 3, seed=4, height=big[0], width=big[1])
    big_left = near("left", 3, seed=5, height=big[0], width=big[1])
    depths = [
        *(rows[:3]),  # the first shot
        *(left[:3]),  # a missed cut
        noise(),  # a flash...
        *(left[3:5]),  # ...and the shot goes on
        noise(),
        noise(),  # a flash two frames long...
        *(left[5:]),  # ...and the shot goes on
        *right,  # a cut the detector gave (below)
        *(rows[3:]),  # another missed cut
        *big_rows,  # the frame size changes
        *big_left,  # a missed cut at that size
    ]
    cut_at = 3 + 3 + 1 + 2 + 2 + 4
    frames = []
    for i, depth in enumerate(depths):
        size = (1080, 1920) if depth.shape == big else frame
        frames.append((depth, i == cut_at, size))
    return frames


def assert_same_plan(got: StereoPlan, expected: StereoPlan, device: torch.device) -> dict[str, float]:
    """``got`` (planned on ``device``) is ``expected`` (planned on the host); returns the differences measured."""
    assert isinstance(got.disparity, torch.Tensor) and got.disparity.dtype == torch.float32
    assert got.disparity.device.type == device.type
    disparity = got.disparity.cpu().numpy()
    assert disparity.shape == expected.disparity.shape
    np.testing.assert_array_equal(disparity, expected.disparity)  # the same float32 operations
    assert type(got.convergence) is float and got.convergence == expected.convergence
    assert all(type(band) is float for band in got.window)
    assert got.window == pytest.approx(expected.window, abs=1e-4)
    assert got.frame == expected.frame and got.edges == expected.edges
    return {
        "disparity": float(np.abs(disparity - expected.disparity).max()),
        "convergence": abs(got.convergence - expected.convergence),
        "window": max(abs(a - b) for a, b in zip(got.window, expected.window, strict=True)),
    }


def plan_both(config: StereoConfig, frames, device: torch.device, depth_shape=None):
    """Both renderers over ``frames``; checks every plan and restart, returns the numpy plans, the restarts seen
    (per frame: convergence, window) and the largest differences."""
    host, dev = StereoRenderer(config, depth_shape), DeviceStereoRenderer(config, depth_shape)
    plans, restarts, worst = [], [], dict.fromkeys(("disparity", "convergence", "window"), 0.0)
    for depth, cut, frame in frames:
        expected = host.plan(depth, cut, frame)
        got = dev.plan(torch.from_numpy(depth).to(device), cut, frame)
        for key, value in assert_same_plan(got, expected, device).items():
            worst[key] = max(worst[key], value)
        assert dev.convergence.restarted == host.convergence.restarted
        windows = (dev.window.restarted, host.window.restarted) if config.floating_window else (False, False)
        assert windows[0] == windows[1]
        plans.append(expected)
        restarts.append((host.convergence.restarted, windows[1]))
    return plans, restarts, worst


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["percentile", "subject"])
@pytest.mark.parametrize("edges", ["off", "own grid", "model grid"])
def test_the_device_plan_is_the_numpy_plan_frame_after_frame(device, mode, edges):
    config = StereoConfig(
        convergence=mode,
        convergence_percentile=37.5,
        max_negative_parallax=4.0,
        floating_window=True,
        refine_edges=edges != "off",
    )
    depth_shape = (lambda h, w: (h // 5, w // 5)) if edges == "model grid" else None
    frames = stream()
    plans, restarts, _ = plan_both(config, frames, device, depth_shape)
    # The stream does what it is for: the missed cuts restart both trackers by themselves (and the flashes do not
    # keep them restarted), and the window masks violations at both edges.
    missed = [i for i, (convergence, _) in enumerate(restarts) if convergence]
    assert 3 in missed and len(missed) >= 3, missed
    assert any(window for _, window in restarts)
    assert any(plan.window[0] > 0 for plan in plans) and any(plan.window[1] > 0 for plan in plans)
    if edges == "model grid":
        assert plans[0].edges is not None and plans[0].edges.source == (16, 28)


def test_without_the_floating_window_and_with_an_integer_percentile():
    frames = [(d, False, (120, 200)) for d in layout("rows", 4, seed=8, height=60, width=100)]
    frames += [(d, False, (120, 200)) for d in near("left", 4, seed=9, height=60, width=100)]
    config = StereoConfig(convergence_percentile=60, floating_window=False, refine_edges=False)
    plans, restarts, _ = plan_both(config, frames, CPU)
    assert restarts[4] == (True, False) and all(plan.window == (0.0, 0.0) for plan in plans)


# -------------------------------------------------------------------------------- the measures, one frame at a time


depth_maps = st.tuples(st.integers(1, 48), st.integers(1, 48), st.integers(0, 2**32 - 1), st.sampled_from([0, 3, 50]))


def depth_map(height: int, width: int, seed: int, levels: int) -> np.ndarray:
    """float32 normalized depth; ``levels`` > 0: only that many distinct values (ties in the ranking)."""
    rng = np.random.default_rng(seed)
    if levels:
        return (rng.integers(0, levels, (height, width)) / levels).astype(np.float32)
    return rng.random((height, width), dtype=np.float32)


@settings(max_examples=300, deadline=None)
@given(
    shape=depth_maps,
    mode=st.sampled_from(["percentile", "subject"]),
    percentile=st.one_of(st.floats(0.0, 100.0), st.integers(0, 100), st.sampled_from([0.0, 50.0, 100.0])),
)
def test_the_convergence_measured_on_the_device_is_numpys_percentile_or_median(shape, mode, percentile):
    depth = depth_map(*shape)
    tracker = DeviceConvergenceTracker(StereoConfig(convergence=mode, convergence_percentile=percentile))
    blocks, value = tracker.measure(torch.from_numpy(depth))
    assert value == convergence_depth(depth, mode, percentile)  # bit for bit: numpy's arithmetic on the same values
    expected = block_means(depth)
    assert blocks.dtype == np.float64 and blocks.shape == expected.shape
    np.testing.assert_allclose(blocks, expected, rtol=1e-12, atol=1e-15)


@settings(max_examples=300, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 30), st.integers(1, 60)),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.4, 3.0, 20.0]),
    column=st.sampled_from([1.0, 0.5, 2.0779220779220777, 7.0]),
)
def test_the_window_measured_on_the_device_is_window_violations(shape, seed, scale, column):
    disparity = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    blocks, bands = DeviceFloatingWindow().measure(torch.from_numpy(disparity), column)
    assert bands == window_violations(disparity, column)
    np.testing.assert_allclose(blocks, block_means(disparity), rtol=1e-12, atol=1e-12)


def test_a_depth_map_that_is_not_a_tensor_is_refused():
    with pytest.raises(TypeError, match="torch tensors"):
        DeviceStereoRenderer().plan(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="HxW"):
        DeviceStereoRenderer().plan(torch.zeros(2, 4, 4))


# ------------------------------------------------------------------------------------------- using a device plan


def planned_scene() -> tuple[np.ndarray, StereoPlan, StereoPlan]:
    """A frame with a near block at its left edge on a 4x coarser depth grid, planned on the host and on the device
    (edges refined against the model's grid, a window band on the left)."""
    image = textured(48, 100)
    _, depth = edge_scene("left", width=25)
    depth = np.clip(depth + np.linspace(0.0, 0.3, 25, dtype=np.float32), 0.0, 1.0)
    config = StereoConfig(max_negative_parallax=8.0, convergence_percentile=50.0, floating_window=True)
    depth_shape = lambda h, w: (h // 8, w // 8)  # noqa: E731
    expected = StereoRenderer(config, depth_shape).plan(depth, frame=(48, 100))
    got = DeviceStereoRenderer(config, depth_shape).plan(torch.from_numpy(depth), frame=(48, 100))
    assert expected.window[0] > 0 and expected.edges is not None
    return image, expected, got


@pytest.mark.parametrize("size", [(48, 100), (48, 50), (12, 25), (30, 70)])
def test_the_disparity_of_a_device_plan_at_any_size_is_the_numpy_plans(size):
    image, expected, got = planned_scene()
    at = got.at(*size)
    assert isinstance(at, np.ndarray) and at.dtype == np.float32
    np.testing.assert_array_equal(at, expected.at(*size))
    at[:] = 123.0  # a new array: the plan's tensor is untouched
    assert not (got.disparity == 123.0).any()
    np.testing.assert_array_equal(got.eye_disparity(image, 48, 100), expected.eye_disparity(image, 48, 100))


@pytest.mark.parametrize("layout_", ["half-sbs", "full-tb", "anaglyph"])
@pytest.mark.parametrize("packed_size", [False, True])
def test_a_device_plan_renders_on_the_device_as_the_numpy_plan(layout_, packed_size):
    image, expected, got = planned_scene()
    on_device = render_packed(image, image, got, layout_, CPU, packed_size)
    np.testing.assert_array_equal(on_device, render_packed(image, image, expected, layout_, CPU, packed_size))
    # ...and on the host, as any plan does (render_plan brings the disparity over).
    np.testing.assert_array_equal(render_plan(image, got)[0], render_plan(image, expected)[0])


def test_upload_passes_a_tensor_through():
    tensor = torch.zeros(3, 4)
    assert upload(tensor, CPU) is tensor
    np.testing.assert_array_equal(upload(np.ones((3, 4), np.float32), CPU).numpy(), np.ones((3, 4)))
