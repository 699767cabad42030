"""Preview: one frame rendered through convert's own stages, warmed up on its shot, written as a PNG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synth import make_clip

from stereoconv import PipelineConfig, UsageError
from stereoconv.engine import stereo_frames
from stereoconv.media import decode, probe
from stereoconv.packing import pack
from stereoconv.preview import colorize_depth, grid_band_height, preview, preview_frame
from stereoconv.temporal import depth_percentiles, normalize

FPS = 24
CUT = 12  # two_shot_clip: shots of 12 and 10 frames
BAND = 14  # the grid's label band above each tile (grid_band_height(64))
SIZES = {"sbs": (192, 64), "anaglyph": (96, 64), "depth": (96, 64), "grid": (192, 128 + 2 * BAND)}


class KeyedOracle:
    """The true depth of each frame, looked up by its pixels: right whichever frame a run starts from."""

    batch_size = 3

    def __init__(self, frames: list[np.ndarray], depths: list[np.ndarray]) -> None:
        self._depths = {frame.tobytes(): depth for frame, depth in zip(frames, depths, strict=True)}
        assert len(self._depths) == len(frames), "frames must be unique to be looked up"

    def __call__(self, frames):
        return [self._depths[frame.tobytes()].copy() for frame in frames]


def config() -> PipelineConfig:
    # Strong smoothing and the floating window on: a preview that skipped the warm-up would differ visibly.
    return PipelineConfig().replace({"temporal.strength": 0.9, "stereo.convergence_smoothing": 0.95,
                                     "stereo.floating_window": True, "stereo.max_negative_parallax": 3.0})  # fmt: skip


@pytest.fixture(scope="module")
def reference(two_shot_clip):
    """What convert's stages make of every frame of the clip (eyes full side-by-side), decoded as convert does."""
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    cfg = config().replace({"output.format": "full-sbs"})
    return list(stereo_frames(decode(probe(two_shot_clip.path)), oracle, cfg))


def read_png(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("layout", list(SIZES))
def test_preview_in_the_second_shot_equals_convert_frame(two_shot_clip, reference, tmp_path, layout):
    index = CUT + 5
    at = two_shot_clip.times[index] - 0.01  # the first frame at or after TIME is frame 17
    out = tmp_path / f"{layout}.png"
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    assert preview(two_shot_clip.path, at, out, config(), layout=layout, estimator=oracle) == out

    image = read_png(out)
    assert (image.shape[1], image.shape[0]) == SIZES[layout]
    ref = reference[index]
    left, right = ref.packed[:, :96], ref.packed[:, 96:]
    expected = {
        "sbs": ref.packed,
        "anaglyph": pack(left, right, "anaglyph"),
        "depth": colorize_depth(ref.depth),
        "grid": np.vstack((np.hstack((two_shot_clip.frames[index], colorize_depth(ref.depth))),
                           np.hstack((pack(left, right, "anaglyph"), pack(left, right, "half-sbs"))))),
    }[layout]  # fmt: skip
    if layout == "grid":  # the tiles under their label bands
        assert grid_band_height(64) == BAND
        labels, image = image[np.r_[0:BAND, 64 + BAND : 64 + 2 * BAND]], np.delete(
            image, np.r_[0:BAND, 64 + BAND : 64 + 2 * BAND], axis=0)  # fmt: skip
        # Every band holds text (white glyphs); the depth tile's is its legend: the colour map, far to near.
        for top, left_x in ((0, 0), (0, 96), (BAND, 0), (BAND, 96)):
            assert labels[top : top + BAND, left_x : left_x + 96].max() > 200
        ramp = colorize_depth(np.linspace(0, 1, 96, dtype=np.float32)[None])[0]
        legend_top = labels[0, 96:]  # the bar's first row: above the words
        np.testing.assert_array_equal(legend_top, ramp)
    np.testing.assert_array_equal(image, expected)
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "temporary files left behind"


def test_warm_up_starts_at_the_last_cut_and_matches_exactly(two_shot_clip, reference):
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    frame = preview_frame(two_shot_clip.path, two_shot_clip.times[CUT + 5], config(), estimator=oracle)
    assert frame.exact
    assert frame.run_start == pytest.approx(two_shot_clip.times[CUT])
    assert frame.warmup_frames == 5
    assert frame.time == pytest.approx(two_shot_clip.times[CUT + 5])
    np.testing.assert_array_equal(frame.item.depth, reference[CUT + 5].depth)
    np.testing.assert_array_equal(frame.item.packed, reference[CUT + 5].packed)


def test_preview_in_the_first_shot_warms_up_from_the_start(two_shot_clip, reference):
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    frame = preview_frame(two_shot_clip.path, two_shot_clip.times[9], config(), estimator=oracle)
    assert frame.exact and frame.warmup_frames == 9 and frame.run_start == 0.0
    np.testing.assert_array_equal(frame.item.depth, reference[9].depth)
    np.testing.assert_array_equal(frame.item.packed, reference[9].packed)


def test_first_frame_after_a_cut_is_its_own_unsmoothed_depth(two_shot_clip, reference):
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    frame = preview_frame(two_shot_clip.path, two_shot_clip.times[CUT], config(), estimator=oracle)
    assert frame.warmup_frames == 0 and frame.exact
    truth = two_shot_clip.depths[CUT]
    np.testing.assert_array_equal(frame.item.depth, normalize(truth, *depth_percentiles(truth, 2.0, 98.0)))
    np.testing.assert_array_equal(frame.item.packed, reference[CUT].packed)


def test_preview_follows_the_configured_start_as_convert_does(two_shot_clip):
    # convert --start 4/24 starts every state at frame 4: so does the preview, and it matches exactly.
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    start = two_shot_clip.times[4]
    cfg = config().replace({"media.start": start})
    frame = preview_frame(two_shot_clip.path, two_shot_clip.times[9], cfg, estimator=oracle)
    assert frame.exact and frame.run_start == start and frame.warmup_frames == 5
    ranged = list(
        stereo_frames(decode(probe(two_shot_clip.path), start), oracle, cfg.replace({"output.format": "full-sbs"}))
    )
    np.testing.assert_array_equal(frame.item.depth, ranged[5].depth)
    np.testing.assert_array_equal(frame.item.packed, ranged[5].packed)


def test_short_warm_up_starts_mid_shot(two_shot_clip):
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    at = two_shot_clip.times[10]
    frame = preview_frame(two_shot_clip.path, at, config(), estimator=oracle, warmup_seconds=3 / FPS)
    assert not frame.exact
    assert frame.run_start == pytest.approx(two_shot_clip.times[7])
    assert frame.warmup_frames == 3


def test_preview_with_a_real_depth_anything_model(two_shot_clip, tiny_model, tmp_path):
    cfg = PipelineConfig().replace({"depth.model": str(tiny_model), "depth.input_size": 56})
    out = preview(two_shot_clip.path, 0.5, tmp_path / "grid.png", cfg, layout="grid")
    assert read_png(out).shape == (128 + 2 * BAND, 192, 3)


def test_preview_reads_the_depth_cache_without_loading_the_model(two_shot_clip, tiny_model, tmp_path, monkeypatch):
    import stereoconv.cache

    cfg = PipelineConfig().replace({"depth.model": str(tiny_model), "depth.input_size": 56})
    cache = tmp_path / "cache"
    first = preview_frame(two_shot_clip.path, 0.5, cfg, depth_cache=cache)
    assert any(cache.rglob("*.depth")), "the frames computed were not stored"

    def no_model(config):
        raise AssertionError("the model was loaded although every frame is cached")

    monkeypatch.setattr(stereoconv.cache, "load_estimator", no_model)
    again = preview_frame(two_shot_clip.path, 0.5, cfg, depth_cache=cache)
    np.testing.assert_array_equal(again.item.packed, first.item.packed)
    with pytest.raises(UsageError, match="cache"):
        preview_frame(two_shot_clip.path, 0.5, cfg, depth_cache=cache, estimator=lambda frames: [])


@pytest.mark.parametrize("at", [5.0, 100.0, -1.0])
def test_time_outside_the_video_is_refused_before_loading_a_model(two_shot_clip, tmp_path, at):
    cfg = PipelineConfig().replace({"depth.model": str(tmp_path / "no-such-model")})
    with pytest.raises(UsageError, match=r"0\.917 s|>= 0"):
        preview(two_shot_clip.path, at, tmp_path / "out.png", cfg)
    assert list(tmp_path.iterdir()) == []


def test_time_outside_the_configured_range_is_refused(two_shot_clip, tmp_path):
    cfg = PipelineConfig().replace({"media.start": 0.25, "media.end": 0.5})
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    for at in (0.1, 0.5):
        with pytest.raises(UsageError, match="media"):
            preview(two_shot_clip.path, at, tmp_path / "out.png", cfg, estimator=oracle)


def test_bad_layout_and_output_name_are_refused(two_shot_clip, tmp_path):
    oracle = KeyedOracle(two_shot_clip.frames, two_shot_clip.depths)
    with pytest.raises(UsageError, match="sbs, anaglyph, depth, grid"):
        preview(two_shot_clip.path, 0.1, tmp_path / "out.png", layout="tb", estimator=oracle)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"\.png"):
        preview(two_shot_clip.path, 0.1, tmp_path / "out.jpg", estimator=oracle)
    with pytest.raises(UsageError, match="does not exist"):
        preview(two_shot_clip.path, 0.1, tmp_path / "missing" / "out.png", estimator=oracle)


def test_odd_frame_size_grid_tiles_are_even(tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", (4,), height=45, width=67)
    oracle = KeyedOracle(clip.frames, clip.depths)
    frame = preview_frame(clip.path, clip.times[2], estimator=oracle)
    assert frame.image("sbs").shape == (46, 134, 3)
    assert frame.image("depth").shape == (45, 67, 3)
    assert frame.image("grid").shape == (92 + 2 * BAND, 136, 3)  # even: the bands are too
