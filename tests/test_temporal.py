"""Temporal smoothing: resets exactly at cuts, calms noise, follows motion, one code path for stream and sequence."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from synth import NEAR, shot_frames
from temporal_reference import ReferenceSmoother

from stereoconv.config import TemporalConfig
from stereoconv.device_temporal import DeviceSmoother, remap_linear
from stereoconv.engine import motion_workers, with_motion
from stereoconv.errors import ConfigError
from stereoconv.temporal import (
    TemporalSmoother,
    _median,
    _percentiles,
    depth_percentiles,
    normalize,
    smooth_sequence,
    transition_level,
)


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


def test_a_missed_cut_restarts_the_smoother_by_itself():
    rng = np.random.default_rng(7)
    frames_a, depths_a = shot_frames(8, 48, 64, seed=1)
    frames_b, depths_b = shot_frames(8, 48, 64, seed=2)
    depths = [d + rng.normal(0, 0.05, d.shape).astype(np.float32) for d in depths_a + [3 * d + 1 for d in depths_b]]
    frames = frames_a + frames_b
    detected = smooth_sequence(depths, frames, cuts=[8])
    smoother = TemporalSmoother()
    missed, restarted = [], []
    for depth, rgb in zip(depths, frames, strict=True):
        missed.append(smoother(depth, rgb))
        restarted.append(smoother.restarted)
    assert restarted == [i == 8 for i in range(16)]  # at the missed cut only, never inside a shot
    for x, y in zip(detected[8:], missed[8:], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("length", [1, 2])
def test_after_a_flash_the_smoother_goes_on_from_before_it(length):
    frames, depths = noisy_static(12)
    rng = np.random.default_rng(3)
    for i in range(5, 5 + length):  # white frames, and the network's guesses at their depth
        frames[i] = np.full_like(frames[i], 255)
        depths[i] = rng.random(depths[i].shape, dtype=np.float32)
    smoother = TemporalSmoother()
    out, restarted = [], []
    for depth, rgb in zip(depths, frames, strict=True):
        out.append(smoother(depth, rgb))
        restarted.append(smoother.restarted)
    assert restarted == [i == 5 for i in range(12)]  # one restart at the flash; the shot resumes after it
    after = 5 + length
    unflashed = smooth_sequence(depths[:5] + depths[after:], frames[:5] + frames[after:])
    np.testing.assert_array_equal(out[after], unflashed[5])  # exactly as if the flash had not been there


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


def drifting(depths: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Estimates that drift in scale and offset from frame to frame, plus pixel noise (a monocular network's way)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in depths:
        scale, offset = rng.uniform(0.8, 1.25), rng.uniform(-0.3, 0.3)
        out.append((scale * d + offset + rng.normal(0, 0.02, d.shape)).astype(np.float32))
    return out


def test_alignment_keeps_the_background_still_while_a_near_object_jitters():
    # The near square's own estimate jumps around from frame to frame, and with it the 98th percentile that sets each
    # frame's range: per frame, the static background would jump too. Aligned to the running estimate on unchanged
    # pixels, it stays put.
    frames, depths = shot_frames(1, 48, 64, seed=7)
    frames = frames * 16
    ramp = np.tile(np.linspace(0.2, 1.0, 64, dtype=np.float32), (48, 1))  # a sloped background: some depth range
    rng = np.random.default_rng(1)
    estimates = [np.where(depths[0] > 2, 3.0 + rng.uniform(-0.8, 0.8), ramp).astype(np.float32) for _ in frames]
    background = depths[0] < 2
    unsmoothed = smooth_sequence(estimates, frames, strength=0.0, alignment=0.0)
    aligned = smooth_sequence(estimates, frames, strength=0.0, alignment=0.9)
    assert flicker([a[background] for a in aligned]) < 0.3 * flicker([u[background] for u in unsmoothed])


def test_alignment_does_not_drift_over_a_long_shot():
    frames, depths = noisy_static(240, seed=3)
    out = smooth_sequence(depths, frames, alignment=0.95, strength=0.8, depth_sigma=0.5)
    own = [normalize(d, *depth_percentiles(d, 2.0, 98.0)) for d in depths]
    gap = [abs(float(o.mean() - n.mean())) for o, n in zip(out, own, strict=True)]
    assert max(gap[-40:]) < 0.05  # still where each frame's own normalization puts it after 240 frames


def test_a_cross_fade_does_not_drag_the_old_shots_depth():
    # Shot A fades into shot B over 12 frames, with no cut. The estimate switches to B's depth at the middle of the
    # fade; the output must follow within a frame even at full strength.
    frames_a, depths_a = shot_frames(10, 48, 64, seed=11, speed=0)
    frames_b, depths_b = shot_frames(10, 48, 64, seed=12, speed=0)
    depths_b = [np.flipud(d).copy() for d in depths_b]  # the near square elsewhere
    fade = [((1 - t) * frames_a[0] + t * frames_b[0]).astype(np.uint8) for t in np.linspace(0, 1, 12)]
    frames = frames_a + fade + frames_b
    depths = depths_a + [depths_a[0]] * 6 + [depths_b[0]] * 6 + depths_b
    out = smooth_sequence(
        depths, frames, strength=0.95, depth_sigma=10.0, color_sigma=255.0
    )  # only the fade can stop it
    own = normalize(depths_b[0], *depth_percentiles(depths_b[0], 2.0, 98.0))
    assert np.abs(out[17] - own).mean() < 0.05, "the old shot's depth is dragged through the fade"


def test_transition_level_sees_fades_not_motion():
    frames, _ = shot_frames(3, 48, 64, seed=5, speed=4)
    gray = [f.mean(axis=2).astype(np.float32) for f in frames]
    assert transition_level(gray[1], gray[0]) == 0.0  # a moving object changes few pixels
    assert transition_level(gray[0] * 0.9, gray[0]) > 0.5  # a fade to black changes every pixel
    assert transition_level(gray[0], gray[0]) == 0.0


def test_motion_compensation_smooths_a_pan_without_ghosts():
    # A textured scene panning 3 px per frame with noisy depth that moves with it.
    rng = np.random.default_rng(0)
    world = np.repeat(np.repeat(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), 4, 0), 4, 1)
    world_depth = np.repeat(np.repeat(rng.uniform(1, 3, (40, 60)).astype(np.float32), 4, 0), 4, 1)
    world_depth = cv2.GaussianBlur(world_depth, (0, 0), 6)
    frames = [world[20:120, 3 * i : 3 * i + 160].copy() for i in range(20)]
    truth = [world_depth[20:120, 3 * i : 3 * i + 160].copy() for i in range(20)]
    estimates = [t + rng.normal(0, 0.05, t.shape).astype(np.float32) for t in truth]
    own = [normalize(t, *depth_percentiles(t, 2.0, 98.0)) for t in truth]

    def error(maps: list[np.ndarray]) -> float:
        """Mean error after each map's best scale and offset (what relative depth cannot know), away from the edges."""
        errors = []
        for m, o in zip(maps[5:], own[5:], strict=True):
            m, o = m[10:-10, 10:-10], o[10:-10, 10:-10]
            a, b = np.polyfit(m.ravel(), o.ravel(), 1)
            errors.append(np.abs(a * m + b - o).mean())
        return float(np.mean(errors))

    plain = smooth_sequence(estimates, frames, strength=0.0, alignment=0.0)
    compensated = smooth_sequence(estimates, frames, strength=0.9, depth_sigma=0.3, motion_compensation=True)
    assert error(compensated) < 0.7 * error(plain)


# The compiled path against the plain numpy one (tests/temporal_reference.py, the code before it), on the temporal
# benchmark's synthetic video: textured layers panning, zooming and crossing the frame, a per-frame estimator's drift
# and noise, hard cuts; and the same shots with the cuts not given, a cross-fade and a white flash. The frames are
# larger than the depth grid and that grid wider than the optical flow's, so every resize runs. The two agree to
# the bit but for the alignment fit's sums (running float64 sums instead of BLAS's np.dot, itself thread-count
# dependent): a last-bit change of its scale or offset can move an output by a float32 ulp or two.
FAST_PATH_TOLERANCE = 1e-5  # normalized depth
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "temporal.py"


@pytest.fixture(scope="module")
def benchmark_video() -> dict[str, tuple[list[np.ndarray], list[np.ndarray], list[int]]]:
    spec = importlib.util.spec_from_file_location("temporal_benchmark", BENCHMARK)
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("temporal_benchmark", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    video = bench.make_sequence(5, width=480, height=272, frames=(8, 10))
    depths = [cv2.resize(e, (360, 204), interpolation=cv2.INTER_LINEAR) for e in video.estimates]
    frames = list(video.frames)
    first, second, third = video.shots
    # A cross-fade from the first shot into the second instead of the cut, the estimate switching halfway
    fade = [
        ((1 - t) * frames[first.stop - 1] + t * frames[second.start]).astype(np.uint8) for t in np.linspace(0, 1, 6)
    ]
    fade_depths = [depths[first.stop - 1]] * 3 + [depths[second.start]] * 3
    edited = frames[: first.stop] + fade + frames[second.start :]
    edited_depths = depths[: first.stop] + fade_depths + depths[second.start :]
    flash = third.start + len(fade) + 3  # a white frame in the third shot, and the estimator's guess at it
    edited[flash] = np.full_like(edited[flash], 255)
    edited_depths[flash] = np.random.default_rng(0).random(depths[0].shape, dtype=np.float32)
    return {"cuts given": (frames, depths, video.cuts), "no cuts, a fade, a flash": (edited, edited_depths, [])}


# The smoother's settings the faster paths are held to the reference with ("colour": False: frames without colour)
SMOOTHER_SETTINGS = pytest.mark.parametrize(
    "settings",
    [
        {},
        {"motion_compensation": False},
        {"strength": 0.0},
        {"alignment": 0.0},
        {"strength": 0.95, "depth_sigma": 0.5, "color_sigma": 25.0, "low_percentile": 0.0, "high_percentile": 100.0},
        {"colour": False},
    ],
    ids=["defaults", "no-motion", "no-blend", "no-alignment", "other-settings", "no-colour"],
)


def configured(settings: dict) -> tuple[TemporalConfig, bool]:
    """A SMOOTHER_SETTINGS case as the smoother's config, and whether the frames keep their colour."""
    settings = dict(settings)
    colour = settings.pop("colour", True)
    return TemporalConfig.from_dict(settings), colour


@SMOOTHER_SETTINGS
def test_compiled_path_matches_the_numpy_reference(benchmark_video, settings):
    config, colour = configured(settings)
    for name, (frames, depths, cuts) in benchmark_video.items():
        fast, reference = TemporalSmoother(config), ReferenceSmoother(config)
        restarts = []
        for i, (depth, rgb) in enumerate(zip(depths, frames, strict=True)):
            rgb = rgb if colour else None
            got, want = fast(depth, rgb, cut=i in cuts), reference(depth, rgb, cut=i in cuts)
            assert got.dtype == np.float32 and got.shape == want.shape
            gap = float(np.abs(got - want).max())
            assert gap <= FAST_PATH_TOLERANCE, f"{name}, frame {i}: {gap:.3g} from the reference"
            assert fast.restarted == reference.restarted, f"{name}, frame {i}"
            restarts.append(fast.restarted)
        if colour and not cuts:
            assert any(restarts), "the missed cuts were not seen: the restart path went untested"


DEVICE_TOLERANCE = 1e-5  # normalized depth: numpy's and torch's float32 exponentials round apart (6e-8 measured)


@SMOOTHER_SETTINGS
def test_the_device_smoother_is_the_host_smoother(benchmark_video, settings):
    """The GPU path's smoother, run here on CPU tensors, gives the host smoother's depth and restart decisions frame
    after frame, with the motion computed ahead as the pipeline does, on clips with cuts given and with a missed
    cut, a cross-fade and a flash."""
    config, colour = configured(settings)
    for name, (frames, depths, cuts) in benchmark_video.items():
        host, device = TemporalSmoother(config), DeviceSmoother(config, "cpu")
        items = [(_Frame(rgb), i in cuts, depth) for i, (rgb, depth) in enumerate(zip(frames, depths, strict=True))]
        restarts = []
        for i, (frame, is_cut, depth, motion) in enumerate(with_motion(iter(items), 2, config.motion_compensation)):
            rgb = frame.rgb if colour else None
            want = host(depth, rgb, cut=is_cut, motion=motion if colour else None)
            got = device(torch.from_numpy(depth), rgb, cut=is_cut, motion=motion if colour else None)
            assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and tuple(got.shape) == want.shape
            gap = float(np.abs(got.numpy() - want).max())
            assert gap <= DEVICE_TOLERANCE, f"{name}, frame {i}: {gap:.3g} from the host smoother"
            assert device.restarted == host.restarted, f"{name}, frame {i}"
            restarts.append(device.restarted)
        if colour and not cuts:
            assert any(restarts), "the missed cuts were not seen: the restart path went untested"


def test_the_device_remap_is_opencvs():
    rng = np.random.default_rng(5)
    image = rng.random((40, 60), dtype=np.float32)
    coordinates = np.stack((rng.uniform(-5, 65, (40, 60)), rng.uniform(-5, 45, (40, 60))), axis=-1)
    coordinates = coordinates.astype(np.float32)
    coordinates[0, :4] = [[0, 0], [59, 39], [59.5, 12.25], [-0.5, 39.5]]  # on and just beyond the borders
    want = cv2.remap(image, coordinates, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    got = remap_linear(torch.from_numpy(image), torch.from_numpy(coordinates)).numpy()
    np.testing.assert_array_equal(got, want)  # to the bit: OpenCV 5 interpolates with fused multiply-adds


def test_order_statistics_are_numpys():
    rng = np.random.default_rng(3)
    for trial in range(400):
        size = int(rng.integers(1, 5000))
        signed_zeros = rng.choice([-0.0, 0.0, 1.0, -1e30], size)  # ties at both zeros
        values = [rng.normal(size=size), rng.integers(0, 4, size).astype(float), rng.exponential(size=size) * 1e-6,
                  signed_zeros, np.full(size, rng.normal())]  # fmt: skip
        values = values[trial % 5].astype(np.float32 if trial % 2 else np.float64)
        percents = tuple(
            float(p) for p in rng.choice([0.0, 2.0, 49.0, 50.0, 51.0, 98.0, 100.0, rng.uniform(0, 100)], 2)
        )
        np.testing.assert_array_equal(_percentiles(values.copy(), percents), np.percentile(values, percents))
        median = _median(values.copy())
        assert median == np.median(values) and np.asarray(median).dtype == values.dtype
    depth = rng.normal(size=(520, 924)).astype(np.float32)  # subsampled every second row and column
    assert depth_percentiles(depth, 2.0, 98.0) == tuple(float(v) for v in np.percentile(depth[::2, ::2], (2.0, 98.0)))


def test_normalize_is_the_numpy_formula():
    rng = np.random.default_rng(4)
    depth = rng.normal(1.0, 0.5, (60, 90))  # float64, taken every other column: neither float32 nor contiguous
    depth[3, 4] = np.nan
    for values in (depth[:, ::2], depth.astype(np.float32)):
        want = (values.astype(np.float32) - np.float32(0.4)) * np.float32(1.0 / (1.7 - 0.4))
        np.testing.assert_array_equal(normalize(values, 0.4, 1.7), np.clip(want, 0.0, 1.0))  # NaN where NaN


class _Frame:
    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb


@pytest.mark.parametrize("workers", [1, 3])
def test_motion_computed_ahead_on_other_threads_gives_the_same_depth(benchmark_video, workers):
    """The pipeline computes each frame's grey and optical flow ahead of the smoother, on a pool of threads: the
    smoothed depth and the restart decisions are exactly those of the smoother computing them itself, and the flow
    computed ahead is what it uses (it computes its own only where it follows another frame: after a restart)."""
    for name, (frames, depths, cuts) in benchmark_video.items():
        inline, ahead = TemporalSmoother(), TemporalSmoother()
        own_flows = []
        flow = ahead._motion
        ahead._motion = lambda gray, previous, flow=flow, calls=own_flows: calls.append(1) or flow(gray, previous)
        items = [(_Frame(rgb), i in cuts, depth) for i, (rgb, depth) in enumerate(zip(frames, depths, strict=True))]
        followed = 0
        for i, (frame, is_cut, depth, motion) in enumerate(with_motion(iter(items), workers)):
            want = inline(depth, frame.rgb, cut=is_cut)
            got = ahead(depth, frame.rgb, cut=is_cut, motion=motion)
            np.testing.assert_array_equal(got, want, err_msg=f"{name}, frame {i}")
            assert ahead.restarted == inline.restarted
            followed += motion.warp is not None
        assert followed >= len(frames) - len(cuts) - 1
        assert len(own_flows) <= 6, f"{name}: the smoother computed {len(own_flows)} flows itself"


def test_motion_ahead_stops_its_threads_and_passes_the_sources_error_on():
    def frames(count, error=None):
        rng = np.random.default_rng(0)
        for i in range(count):
            yield _Frame(rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)), i == 0, np.zeros((18, 32), np.float32)
        if error is not None:
            raise error

    before = set(threading.enumerate())
    with pytest.raises(OSError, match="decoder gave up"):
        list(with_motion(frames(4, OSError("decoder gave up")), 2))
    stream = with_motion(frames(20), 2)
    assert next(stream)[3].warp is None  # the first frame follows none
    assert next(stream)[3].warp is not None
    stream.close()  # the consumer stops early
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("stereoconv-flow")]
    assert [motion_workers(c) for c in (1, 2, 8, 16, 64)] == [1, 1, 2, 4, 4]
