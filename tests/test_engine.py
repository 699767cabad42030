"""The engine's frame stream: cuts detected or given, a range with a pre-roll, as every driver runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereoconv import PipelineConfig
from stereoconv.engine import frame_stream, scan, with_depth
from stereoconv.media import Frame, probe

CUT = 12  # two_shot_clip: shots of 12 and 10 frames


class KeyedOracle:
    """The true depth of each frame, looked up by its pixels: right whichever frame a run starts from."""

    batch_size = 3

    def __init__(self, frames: list[np.ndarray], depths: list[np.ndarray]) -> None:
        self._depths = {frame.tobytes(): depth for frame, depth in zip(frames, depths, strict=True)}

    def __call__(self, frames):
        return [self._depths[frame.tobytes()].copy() for frame in frames]


def run(clip, start=0.0, end=None, **options):
    info = probe(clip.path)
    config = PipelineConfig().replace({"temporal.strength": 0.9, "stereo.convergence_smoothing": 0.95})
    with frame_stream(info, config, KeyedOracle(clip.frames, clip.depths), start=start, end=end, **options) as items:
        return list(items)


@pytest.fixture(scope="module")
def detected(two_shot_clip):
    return run(two_shot_clip)


def test_given_cuts_render_what_detected_cuts_render(two_shot_clip, detected):
    with scan(probe(two_shot_clip.path), PipelineConfig(), start=0.0, end=None) as decided:
        cuts = [frame.index for frame, is_cut in decided if is_cut]
    assert cuts == [CUT]
    given = run(two_shot_clip, cuts=cuts)
    assert [i.is_cut for i in given] == [i.is_cut for i in detected]
    assert all(np.array_equal(a.packed, b.packed) for a, b in zip(given, detected, strict=True))


def test_preroll_is_processed_not_rendered(two_shot_clip, detected):
    items = run(two_shot_clip, preroll=5)
    assert [i.packed is None for i in items] == [k < 5 for k in range(len(detected))]
    # The pre-roll went through every stateful stage: what follows is the full run's, exactly.
    assert all(np.array_equal(a.packed, b.packed) for a, b in zip(items[5:], detected[5:], strict=True))


def test_a_range_from_a_given_cut_renders_the_single_run_frames(two_shot_clip, detected):
    items = run(two_shot_clip, start=two_shot_clip.times[CUT], cuts=[CUT], first_index=CUT)
    assert items[0].is_cut and len(items) == len(detected) - CUT
    assert all(np.array_equal(a.packed, b.packed) for a, b in zip(items, detected[CUT:], strict=True))


class DeviceMaps:
    """An estimator whose maps stay on its device (``device_maps``), recording the order of its calls."""

    batch_size = 2

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __call__(self, frames):  # the host path: never taken when the maps can stay on the device
        raise AssertionError("the host path was taken")

    def device_maps(self, frames):
        self.events.append(f"batch of {len(frames)}")
        return [torch.full((2, 3), float(frame[0, 0, 0])) for frame in frames]


def test_on_the_device_a_batch_comes_out_once_the_next_one_is_queued():
    """With the maps left on the device, the model's next batch is queued before the last one's maps go on (the
    device works on it meanwhile), every frame comes out once and in order, and the last batch is not held back."""
    events: list[str] = []
    frames = [Frame(index=i, rgb=np.full((4, 6, 3), i, np.uint8), pts=i, time_base=1 / 24) for i in range(5)]
    for frame, is_cut, depth in with_depth(((f, f.index == 0) for f in frames), DeviceMaps(events), on_device=True):
        events.append(f"frame {frame.index}")
        assert isinstance(depth, torch.Tensor) and float(depth[0, 0]) == frame.index
        assert is_cut == (frame.index == 0)
    assert events == ["batch of 2", "batch of 2", "frame 0", "frame 1", "batch of 1", "frame 2", "frame 3", "frame 4"]
