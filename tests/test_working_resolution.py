"""Depth at its working resolution, brought to the eyes' size only where they are rendered.

The depth a model delivers holds no detail finer than its own grid, so normalization, smoothing and the stereo plan
run on that grid (the frame's aspect at about the model's size, never finer than the frame); the plan's disparity is
in pixels of the frame whatever its grid; the eyes get it at their own size (the frame's, or a half layout's packed
size with ``output.render_size = "packed"``), with depth edges refined there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synth import make_clip

from stereoconv import PipelineConfig
from stereoconv.config import StereoConfig, TemporalConfig
from stereoconv.depth import load_estimator, to_working, working_shape
from stereoconv.engine import frame_stream
from stereoconv.media import probe
from stereoconv.parallax import EdgeRefinement, StereoPlan, StereoRenderer, render_plan, window_violations
from stereoconv.temporal import TemporalSmoother


@pytest.mark.parametrize(
    ("frame", "model", "expected"),
    [
        ((1080, 1920), (518, 924), (520, 924)),  # Depth Anything V2 at 518: the frame's aspect at the model's detail
        ((2160, 3840), (518, 924), (520, 924)),  # 4K: the same grid, 16x fewer pixels than the frame
        ((1080, 1920), (384, 384), (384, 683)),  # a square model: square pixels, its larger ratio kept
        ((48, 64), (518, 686), (48, 64)),  # a model finer than the frame: the frame's own size
    ],
)
def test_working_shape_keeps_the_frame_aspect_at_the_model_detail(frame, model, expected):
    assert working_shape(*frame, *model) == expected


def test_to_working_resizes_raw_maps_to_the_working_grid():
    raw = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    maps = to_working(raw, 40, 60)  # the frame is 10x the model: the grid is the model's
    assert [m.shape for m in maps] == [(4, 6), (4, 6)]
    np.testing.assert_array_equal(maps[1], raw[1].numpy())
    small = to_working(raw, 2, 3)  # a frame smaller than the model's maps: the frame's size
    assert [m.shape for m in small] == [(2, 3), (2, 3)]


def test_the_estimator_delivers_depth_on_the_working_grid(tiny_model):
    from stereoconv.config import DepthConfig

    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu"))
    frame = np.random.default_rng(0).integers(0, 256, (120, 180, 3), dtype=np.uint8)
    rows, cols = estimator.prep.input_shape(120, 180)
    (depth,) = estimator([frame])
    assert depth.shape == working_shape(120, 180, rows, cols) and depth.shape[0] < 120


def test_plan_disparity_is_in_frame_pixels_on_any_grid():
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (36, 1))
    config = StereoConfig(refine_edges=False, floating_window=False)
    coarse = StereoRenderer(config).plan(depth, frame=(144, 256))  # the depth 4x coarser than the frame
    fine = StereoRenderer(config).plan(depth, frame=(36, 64))
    np.testing.assert_allclose(coarse.disparity, fine.disparity * 4, rtol=1e-5)  # same parallax, in the frame's px
    at = coarse.at(144, 256)
    assert at.shape == (144, 256)
    np.testing.assert_allclose([at.min(), at.max()], [coarse.disparity.min(), coarse.disparity.max()], atol=0.05)
    half = coarse.at(144, 128)  # a half-width eye: half the pixels, half the disparity
    np.testing.assert_allclose(half.max(), at.max() / 2, rtol=1e-3)


def test_window_violations_on_a_coarse_grid_match_the_frame_grid():
    rng = np.random.default_rng(3)
    for _ in range(20):
        coarse = rng.uniform(-2, 12, (9, 16)).astype(np.float32)
        fine = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)  # each coarse column is 4 frame columns
        assert window_violations(coarse, column=4.0) == pytest.approx(window_violations(fine), abs=1e-5)


def constant_plan(d: float, height: int, width: int, grid: tuple[int, int]) -> StereoPlan:
    return StereoPlan(np.full(grid, d, np.float32), 0.5, (0.0, 0.0), (height, width), None)


def test_a_half_width_eye_shifts_by_half_the_disparity():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (32, 96, 3), dtype=np.uint8)
    plan = constant_plan(4.0, 32, 96, (8, 24))  # 4 px of the frame, planned on a 4x coarser grid
    left, right = render_plan(image, plan)
    np.testing.assert_array_equal(left[:, 10:90], image[:, 6:86])  # a pixel moves to x + 4 in the left eye
    np.testing.assert_array_equal(right[:, 10:90], image[:, 14:94])
    squeezed = render_plan(image, plan, (32, 48))
    assert squeezed[0].shape == (32, 48, 3)
    eye = np.asarray(image[:, ::2] / 2 + image[:, 1::2] / 2)  # the frame at half width (area)
    np.testing.assert_allclose(squeezed[0][:, 5:45], eye[:, 3:43], atol=1)  # 2 px of the half-width eye
    np.testing.assert_allclose(squeezed[1][:, 5:45], eye[:, 7:47], atol=1)


def test_window_bands_scale_with_the_eye_width():
    image = np.full((16, 64, 3), 200, np.uint8)
    plan = StereoPlan(np.zeros((4, 16), np.float32), 0.5, (6.0, 4.0), (16, 64), None)
    left, right = render_plan(image, plan, (16, 32))
    assert (left[:, :3] == 0).all() and (left[:, 3:] == 200).all()  # 6 px of the frame, 3 of the eye
    assert (right[:, -2:] == 0).all() and (right[:, :-2] == 200).all()


def test_edges_are_refined_at_the_size_the_eye_is_rendered():
    # A soft ramp (a depth map 4x coarser than the frame, upsampled) across a sharp colour edge comes out a step on
    # the colour edge, whichever size the eye has.
    image = np.zeros((16, 64, 3), np.uint8)
    image[:, 32:] = 255
    coarse = np.where(np.arange(16) >= 8, 8.0, 0.0).astype(np.float32)[None].repeat(4, axis=0)
    plan = StereoPlan(coarse, 0.5, (0.0, 0.0), (16, 64), EdgeRefinement(0.2, False, (4, 16)))
    for size in ((16, 64), (16, 32)):
        eye = np.zeros((*size, 3), np.uint8)
        eye[:, size[1] // 2 :] = 255
        refined, soft = plan.eye_disparity(eye, *size)[8], plan.at(*size)[8]
        near, edge = 8.0 * size[1] / 64, size[1] // 2
        jump = np.abs(np.diff(refined))
        assert jump.max() >= 0.7 * near > np.abs(np.diff(soft)).max()  # a step the warp treats as an occlusion
        assert abs(int(jump.argmax()) - (edge - 1)) <= 1  # ...on the colour edge
        np.testing.assert_allclose(refined[edge + 1 :], near, atol=1e-3)
        np.testing.assert_allclose(refined[: edge - 2], 0.0, atol=1e-3)


def test_temporal_smoothing_runs_on_the_depth_grid():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)] * 3
    coarse = [np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1)) + 0.01 * i for i in range(3)]
    smoother = TemporalSmoother(TemporalConfig())
    out = [smoother(depth, frame, cut=i == 0) for i, (depth, frame) in enumerate(zip(coarse, frames, strict=True))]
    assert all(o.shape == (30, 40) for o in out) and not smoother.restarted


def test_the_pipeline_plans_on_the_working_grid_and_packs_at_the_frame_size(tiny_model, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", (4, 3), width=160, height=96)
    config = PipelineConfig.from_dict({"depth": {"model": str(tiny_model), "input_size": 28, "device": "cpu"}})
    estimator = load_estimator(config.depth)
    info = probe(clip.path)
    packed_config = config.replace({"output.render_size": "packed"})
    outputs = {}
    for name, cfg in (("frame", config), ("packed", packed_config)):
        with frame_stream(info, cfg, estimator, start=0.0, end=None) as items:
            outputs[name] = list(items)
    rows, cols = estimator.prep.input_shape(96, 160)
    for item in outputs["frame"]:
        assert item.depth.shape == working_shape(96, 160, rows, cols) and item.depth.shape[0] < 96
        assert item.plan.disparity.shape == item.depth.shape and item.plan.frame == (96, 160)
        assert item.packed.shape == (96, 160, 3)
    for a, b in zip(outputs["frame"], outputs["packed"], strict=True):
        np.testing.assert_array_equal(a.plan.disparity, b.plan.disparity)  # one plan, rendered two ways
        assert b.packed.shape == a.packed.shape
        assert np.abs(a.packed.astype(int) - b.packed.astype(int)).mean() < 12


@pytest.mark.parametrize(
    ("setting", "on_cpu", "cores", "expected"),
    [(0, True, 2, 2), (0, True, 16, 8), (0, True, 64, 8), (0, True, 6, 3), (0, False, 16, 2), (5, True, 2, 5)],
)
def test_render_workers_follow_the_machine_unless_set(setting, on_cpu, cores, expected):
    from stereoconv.engine import render_workers

    assert render_workers(setting, on_cpu, cores) == expected


def test_a_caption_drawn_into_a_half_width_eye_keeps_its_place_and_parallax():
    from stereoconv.subtitles import Caption

    fill = np.zeros((8, 20), np.float32)
    fill[2:6, 4:16] = 1.0
    caption = Caption(fill, fill, 40, 50, 6)  # in a 64x128 frame
    half = caption.resized((64, 128), (64, 64))
    assert (half.x, half.y, half.disparity, half.fill.shape) == (20, 50, 3, (8, 10))
    full_eye, half_eye = np.zeros((64, 128, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    caption.draw(full_eye, +1)
    half.draw(half_eye, +1)
    columns = np.flatnonzero(full_eye[:, :, 0].any(axis=0))
    half_columns = np.flatnonzero(half_eye[:, :, 0].any(axis=0))
    assert (columns.min() + columns.max()) / 2 == pytest.approx(half_columns.min() + half_columns.max(), abs=1.5)
