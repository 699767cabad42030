"""Temporal smoothing: resets exactly at cuts, calms noise, follows motion, one code path for stream and sequence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from synth import NEAR, shot_frames

from stereoconv.config import TemporalConfig
from stereoconv.errors import ConfigError
from stereoconv.temporal import TemporalSmoother, depth_percentiles, normalize, smooth_sequence


def noisy_static(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames, depths = shot_frames(1, 48, 64, seed=seed)
    rng = np.random.default_rng(seed)
    noisy = [depths[0] + rng.normal(0, 0.08, depths[0].shape).astype(np.float32) for _ in range(n)]
    return frames * n, noisy


def flicker(maps: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(maps)]))


def test_first_frame_of_every_shot_is_its_own_normalized_depth():
    frames, depths = noisy_static(12)
    depths[6] = depths[6] * 4 + 3  # a new shot with a different range
    out = smooth_sequence(depths, frames, cuts=[6], strength=0.9)
    for i in (0, 6):
        lo, hi = depth_percentiles(depths[i], 2.0, 98.0)
        np.testing.assert_array_equal(out[i], normalize(depths[i], lo, hi))


def test_frames_after_a_cut_do_not_depend_on_the_previous_shot():
    frames, depths = noisy_static(10)
    other = [d[::-1].copy() * 3 for d in depths[:5]]
    a = smooth_sequence(depths, frames, cuts=[5])
    b = smooth_sequence(other + depths[5:], [f[::-1].copy() for f in frames[:5]] + frames[5:], cuts=[5])
    for x, y in zip(a[5:], b[5:], strict=True):
        np.testing.assert_array_equal(x, y)


def test_static_scene_with_noisy_estimates_converges():
    frames, depths = noisy_static(30)
    raw = smooth_sequence(depths, frames, strength=0.0)
    smoothed = smooth_sequence(depths, frames, strength=0.8, depth_sigma=0.5)
    assert flicker(smoothed[10:]) < 0.5 * flicker(raw[10:])


def test_moving_object_depth_follows_within_two_frames():
    frames, depths = shot_frames(10, 48, 64, seed=2, speed=6)
    out = smooth_sequence(depths, frames, strength=0.9)
    for i in range(2, 10):
        near = depths[i] == NEAR
        assert out[i][near].mean() > 0.9, f"frame {i}: the square lags behind"
        left_behind = (depths[i - 1] == NEAR) & ~near  # where the square was one frame ago
        assert out[i][left_behind].mean() < 0.1, f"frame {i}: ghost trail"


def test_streaming_stage_and_smooth_sequence_are_identical():
    frames, depths = noisy_static(15, seed=4)
    cuts = [7]
    smoother = TemporalSmoother(TemporalConfig(strength=0.6))
    streamed = [smoother(d, f, cut=i in cuts) for i, (d, f) in enumerate(zip(depths, frames, strict=True))]
    for a, b in zip(streamed, smooth_sequence(depths, frames, cuts=cuts, strength=0.6), strict=True):
        np.testing.assert_array_equal(a, b)


def test_output_is_normalized_float32_and_larger_is_nearer():
    frames, depths = noisy_static(3)
    out = smooth_sequence(depths, frames)
    for o in out:
        assert o.dtype == np.float32 and o.min() >= 0.0 and o.max() <= 1.0
    square = depths[0] > 2
    assert out[0][square].mean() > out[0][~square].mean()


def test_percentiles_ignore_outliers():
    depth = np.ones((50, 50), np.float32)
    depth[:25] = 2.0
    depth[0, 0] = 1e6  # one wild pixel must not set the range
    lo, hi = depth_percentiles(depth, 2.0, 98.0)
    assert (lo, hi) == (1.0, 2.0)


def test_bad_settings_and_inputs_are_refused():
    frames, depths = noisy_static(2)
    with pytest.raises(ConfigError, match=r"unknown setting temporal\.strenght"):
        smooth_sequence(depths, strenght=0.5)
    with pytest.raises(ValueError, match="frames for"):
        smooth_sequence(depths, frames[:1])
    with pytest.raises(ValueError, match="sizes differ"):
        TemporalSmoother()(depths[0], frames[0][:10])
