"""End to end: decode -> cuts -> depth -> smoothing -> DIBR -> packing -> encode, checked on clips of known depth."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from synth import OracleEstimator, make_clip, shot_frames

from stereoconv import PipelineConfig, UsageError, convert
from stereoconv.depth import load_estimator
from stereoconv.engine import stereo_frames, threaded
from stereoconv.media import Frame
from stereoconv.temporal import depth_percentiles, normalize


def read_video(path: Path) -> tuple[list[np.ndarray], list[float], av.video.stream.VideoStream, list[float]]:
    """Decoded RGB frames, their times (s), the video stream, and the duration (s) of every audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
    return frames, times, stream, audio_durations(path)


def audio_durations(path: Path) -> list[float]:
    """Seconds of every audio stream, measured from its packets (MKV stores no per-stream duration)."""
    with av.open(str(path)) as container:
        ends = {s.index: 0.0 for s in container.streams.audio}
        if not ends:
            return []
        for packet in container.demux(*container.streams.audio):
            if packet.pts is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                ends[packet.stream.index] = max(ends[packet.stream.index], end)
        return list(ends.values())


def config(**overrides: object) -> PipelineConfig:
    return PipelineConfig().replace(overrides)


@pytest.mark.parametrize(
    ("layout", "size"),
    [("half-sbs", (96, 64)), ("full-sbs", (192, 64)), ("half-tb", (96, 64)), ("full-tb", (96, 128)),
     ("anaglyph", (96, 64))],
)  # fmt: skip
def test_layouts_keep_frames_timestamps_and_audio(two_shot_clip, tmp_path, layout, size):
    out = tmp_path / f"out-{layout}.mp4"
    result = convert(two_shot_clip.path, out, config(**{"output.format": layout}),
                     estimator=OracleEstimator(two_shot_clip.depths))  # fmt: skip

    frames, times, stream, audio = read_video(out)
    assert (stream.width, stream.height) == size
    assert len(frames) == len(two_shot_clip.frames) == result.frames
    assert times == pytest.approx(two_shot_clip.times, abs=1e-3)
    assert result.cuts == two_shot_clip.cuts
    assert len(audio) == 1 and audio[0] == pytest.approx(two_shot_clip.audio_seconds, abs=0.05)
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "temporary files left behind"


def test_variable_frame_rate_timestamps_survive(tmp_path):
    clip = make_clip(tmp_path / "vfr.mkv", (8, 8), vfr=True)
    assert len(set(np.diff(clip.times).round(4))) == 3, "the clip should really be VFR"
    out = tmp_path / "out.mkv"
    convert(clip.path, out, estimator=OracleEstimator(clip.depths))
    _, times, _, _ = read_video(out)
    assert times == pytest.approx(clip.times, abs=1e-3)


def test_zero_parallax_gives_both_eyes_equal_to_the_input(two_shot_clip, tmp_path):
    out = tmp_path / "flat.mp4"
    cfg = config(**{"stereo.max_negative_parallax": 0.0, "stereo.max_positive_parallax": 0.0,
                    "output.format": "full-sbs", "output.crf": 0, "output.pix_fmt": "yuv444p"})  # fmt: skip
    convert(two_shot_clip.path, out, cfg, estimator=OracleEstimator(two_shot_clip.depths))
    frames, _, _, _ = read_video(out)
    for got, source in zip(frames, two_shot_clip.frames, strict=True):
        left, right = got[:, :96].astype(int), got[:, 96:].astype(int)
        assert np.abs(left - source).mean() < 1.5  # only RGB<->YUV rounding
        assert np.abs(right - source).mean() < 1.5


def frames_of(images: list[np.ndarray]) -> list[Frame]:
    return [Frame(index=i, rgb=img, pts=i, time_base=1 / 24) for i, img in enumerate(images)]  # type: ignore[arg-type]


def test_first_frame_after_a_cut_does_not_depend_on_earlier_frames():
    # Same second shot after two different first shots: from the cut on, every stage's output must be identical.
    h, w = 64, 96
    shot_a, depth_a = shot_frames(9, h, w, seed=3)
    shot_b, depth_b = shot_frames(9, h, w, seed=40)
    depth_b = [d * 5.0 + 2.0 for d in depth_b]  # a very different depth range too
    shot_2, depth_2 = shot_frames(7, h, w, seed=77)
    cfg = config(**{"temporal.strength": 0.9, "temporal.alignment": 0.95, "stereo.convergence_smoothing": 0.95,
                    "stereo.floating_window": True})  # fmt: skip

    runs = []
    for first, first_depth in ((shot_a, depth_a), (shot_b, depth_b)):
        estimator = OracleEstimator(first_depth + depth_2)
        runs.append(list(stereo_frames(frames_of(first + shot_2), estimator, cfg)))

    for run in runs:
        assert [s.frame.index for s in run if s.is_cut] == [9]
    for a, b in zip(runs[0][9:], runs[1][9:], strict=True):
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.packed, b.packed)
    # ...and the first frame of the shot is its own unsmoothed normalized depth.
    lo, hi = depth_percentiles(depth_2[0], 2.0, 98.0)
    np.testing.assert_array_equal(runs[0][9].depth, normalize(depth_2[0], lo, hi))


def test_near_object_pops_out_and_occludes_in_the_rendered_views():
    shot, depths = shot_frames(1, 64, 96, seed=5)
    # The background (z = 0) is most of the frame, so its median puts it on the screen plane and the square (z = 1)
    # gets the whole crossed budget: 6.25 % of 96 px = 6 px of parallax, a whole 3 px per eye, so every pixel of the
    # square lands exactly.
    cfg = config(**{"output.format": "full-sbs", "stereo.max_negative_parallax": 6.25,
                    "stereo.convergence_percentile": 50.0})  # fmt: skip
    (item,) = stereo_frames(frames_of(shot), OracleEstimator(depths), cfg)
    shift = 3
    left, right = item.packed[:, :96], item.packed[:, 96:]
    square = depths[0] == depths[0].max()
    ys, xs = np.nonzero(square)
    y, x0, x1 = ys[0], xs.min(), xs.max()
    # The square moves right in the left eye and left in the right eye (crossed parallax: in front of the screen),
    # covering the background there.
    np.testing.assert_array_equal(left[y, x0 + shift : x1 + shift + 1], shot[0][y, x0 : x1 + 1])
    np.testing.assert_array_equal(right[y, x0 - shift : x1 - shift + 1], shot[0][y, x0 : x1 + 1])


def test_failing_stage_surfaces_its_error_and_leaves_no_file(two_shot_clip, tmp_path):
    class Broken(OracleEstimator):
        def __call__(self, frames):
            if self.calls == 2:
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().__call__(frames)

    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="simulated"):
        convert(two_shot_clip.path, out, estimator=Broken(two_shot_clip.depths))
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("stereoconv")]


def test_interrupt_leaves_no_file_and_no_threads(two_shot_clip, tmp_path):
    def interrupt(item) -> None:
        if item.frame.index == 5:
            raise KeyboardInterrupt

    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        convert(two_shot_clip.path, out, estimator=OracleEstimator(two_shot_clip.depths), on_frame=interrupt)
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("stereoconv")]


def test_threaded_reraises_producer_errors_and_stops_early():
    def produce():
        yield 1
        raise ValueError("decoder broke")

    items = threaded(produce())
    assert next(items) == 1
    with pytest.raises(ValueError, match="decoder broke"):
        next(items)

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    items = threaded(endless(), maxsize=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # the consumer stops: the producer must stop too, and its thread must be joined
    assert not [t for t in threading.enumerate() if t.name.startswith("stereoconv")]
    assert len(produced) < 10


def test_start_and_end_select_frames_and_shift_timestamps(two_shot_clip, tmp_path):
    out = tmp_path / "range.mp4"
    start, end = 4 / 24, 16 / 24  # frames 4..15
    estimator = OracleEstimator(two_shot_clip.depths[4:16])
    result = convert(two_shot_clip.path, out, config(**{"media.start": start, "media.end": end}), estimator=estimator)
    frames, times, _, audio = read_video(out)
    assert len(frames) == result.frames == 12
    assert times == pytest.approx([t - start for t in two_shot_clip.times[4:16]], abs=1e-3)
    assert result.cuts == [12 - 4]
    assert audio and audio[0] == pytest.approx(end - start, abs=0.05)


def test_end_to_end_with_a_real_depth_anything_model(two_shot_clip, tiny_model, tmp_path):
    out = tmp_path / "tiny.mkv"
    cfg = config(**{"depth.model": str(tiny_model), "depth.input_size": 56, "depth.batch_size": 4})
    result = convert(two_shot_clip.path, out, cfg)
    frames, times, stream, audio = read_video(out)
    assert len(frames) == result.frames == len(two_shot_clip.frames)
    assert (stream.width, stream.height) == (96, 64)
    assert times == pytest.approx(two_shot_clip.times, abs=1e-3)
    assert audio


def test_depth_cache_serves_a_second_run_with_other_settings(two_shot_clip, tiny_model, tmp_path):
    cfg = config(**{"depth.model": str(tiny_model), "depth.input_size": 56})
    cache = tmp_path / "cache"
    first = convert(two_shot_clip.path, tmp_path / "a.mkv", cfg, depth_cache=cache)
    n = len(two_shot_clip.frames)
    assert first.depth_cache == f"depth cache: 0 of {n} frames read, {n} computed"
    retuned = cfg.replace({"stereo.max_positive_parallax": 2.5, "temporal.strength": 0.5, "output.format": "half-tb"})
    second = convert(two_shot_clip.path, tmp_path / "b.mkv", retuned, depth_cache=cache)
    assert second.depth_cache == f"depth cache: {n} of {n} frames read, 0 computed"
    assert second.frames == n and second.cuts == first.cuts
    with pytest.raises(UsageError, match="depth cache needs the configured model"):
        convert(two_shot_clip.path, tmp_path / "c.mkv", cfg, estimator=OracleEstimator([]), depth_cache=cache)


def test_output_is_identical_with_one_and_several_render_workers():
    shot_a, depth_a = shot_frames(9, 64, 96, seed=3)
    shot_b, depth_b = shot_frames(8, 64, 96, seed=44)
    frames, depths = shot_a + shot_b, depth_a + depth_b
    runs = []
    for workers, queue in ((1, 1), (3, 2), (4, 16)):
        cfg = config(**{"runtime.render_workers": workers, "runtime.queue_frames": queue, "depth.batch_size": 1})
        runs.append(list(stereo_frames(frames_of(frames), OracleEstimator(depths, batch_size=2), cfg)))
    for run in runs[1:]:
        assert [s.frame.index for s in run] == list(range(len(frames)))
        for a, b in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(a.packed, b.packed)
            assert a.is_cut == b.is_cut


DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_on_the_device_the_depth_stays_there_from_the_model_to_the_render(two_shot_clip, tiny_model, device):
    """The GPU-resident path (here on CPU tensors; on CUDA with -m gpu, each stage on its own stream): with the render
    stage on the model's device, the model's maps stay tensors there through smoothing and planning (the plan's
    disparity too), and what comes out - the smoothed depth on the host, the plan, the packed frames - is the host
    path's, within float32 rounding and the renderers' one-level tolerance. Two shots, the cut missed (no detector),
    flow on: every state machine is exercised."""
    settings = {"depth.model": str(tiny_model), "depth.input_size": 56, "depth.device": device,
                "depth.fp16": False, "scenes.enabled": False, "stereo.floating_window": True}  # fmt: skip
    estimator = load_estimator(config(**settings).depth)
    device_maps, kinds = estimator.device_maps, []
    estimator.device_maps = lambda rgbs: [kinds.append(type(m)) or m for m in device_maps(rgbs)]
    frames = frames_of(two_shot_clip.frames)
    runs = {}
    for renderer in ("numpy", "torch"):
        runs[renderer] = list(stereo_frames(frames, estimator, config(**settings, **{"runtime.renderer": renderer})))
    assert kinds == [torch.Tensor] * len(frames), "the maps did not stay on the device"
    for host, device in zip(runs["numpy"], runs["torch"], strict=True):
        assert isinstance(device.plan.disparity, torch.Tensor) and isinstance(device.depth, np.ndarray)
        np.testing.assert_allclose(device.depth, host.depth, rtol=0, atol=1e-5)
        assert device.plan.convergence == pytest.approx(host.plan.convergence, abs=1e-6)
        assert device.plan.window == pytest.approx(host.plan.window, abs=1e-3)
        assert np.abs(device.packed.astype(int) - host.packed.astype(int)).max() <= 1


def test_the_torch_renderer_matches_the_numpy_one_in_the_pipeline():
    frames, depths = shot_frames(6, 64, 96, seed=8)
    outputs = {}
    for renderer in ("numpy", "torch"):
        cfg = config(**{"runtime.renderer": renderer})
        outputs[renderer] = [s.packed for s in stereo_frames(frames_of(frames), OracleEstimator(depths), cfg)]
    for a, b in zip(outputs["numpy"], outputs["torch"], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # the stated numpy/torch tolerance (OpenCV 5)
