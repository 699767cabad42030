"""Parallax from the viewing setup: the budget holds, convergence resets at cuts, the floating window masks the right
edge of the right eye; outputs are labelled with their stereo layout and named by it in an output directory.

Conventions (stereoconv.parallax): normalized depth z in [0, 1], larger = nearer; per-eye disparity d in pixels,
larger = nearer; screen parallax P = x_right - x_left = -2 d pixels, in % of the width P = -200 d / W.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import OracleEstimator, make_clip

from stereoconv import PipelineConfig, convert, parallax
from stereoconv.cli import main
from stereoconv.config import StereoConfig
from stereoconv.dibr import synthesize_view
from stereoconv.encode import check_output_path, output_name
from stereoconv.errors import UsageError
from stereoconv.parallax import (
    ConvergenceTracker,
    FloatingWindow,
    ParallaxBudget,
    StereoRenderer,
    convergence_depth,
    depth_to_disparity,
    parallax_scale,
    render_views,
    window_violations,
)

RTOL = 1e-5  # float32 rounding of the disparity


def parallax_percent(disparity: np.ndarray) -> np.ndarray:
    """Screen parallax in % of the width from per-eye disparity in pixels."""
    return -200.0 * disparity.astype(np.float64) / disparity.shape[1]


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 HxWx3 random texture in 1..200: a masked (black) pixel can never be mistaken for content."""
    return np.random.default_rng(seed).integers(1, 201, (height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------------- budget


stereo_settings = st.fixed_dictionaries(
    {
        "screen_width": st.floats(0.05, 100.0),
        "interocular": st.floats(0.03, 0.1),
        "viewing_distance": st.floats(0.1, 100.0),
        "max_negative_parallax": st.floats(0.0, 10.0),
        "max_positive_parallax": st.floats(0.0, 10.0),
        "convergence": st.sampled_from(["percentile", "subject"]),
        "convergence_percentile": st.floats(0.0, 100.0),
        "convergence_smoothing": st.floats(0.0, 0.99),
    }
)


@settings(max_examples=150, deadline=None)
@given(settings_=stereo_settings, seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 4),
       width=st.integers(1, 300), height=st.integers(1, 40))  # fmt: skip
def test_parallax_never_exceeds_the_budget_nor_the_interocular_distance(settings_, seed, frames, width, height):
    config = StereoConfig(**settings_)
    budget = ParallaxBudget.from_config(config)
    tracker = ConvergenceTracker(config)
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        # Random maps of every kind: uniform noise, a few flat levels, all one value.
        kind = rng.integers(3)
        if kind == 0:
            depth = rng.random((height, width), dtype=np.float32)
        elif kind == 1:
            depth = rng.choice(np.array([0.0, 0.3, 1.0], np.float32), size=(height, width))
        else:
            depth = np.full((height, width), rng.random(), np.float32)
        depth[rng.random(depth.shape) < 0.05] = rng.choice([0.0, 1.0])  # the extremes, often
        c = tracker(depth)
        parallax = parallax_percent(depth_to_disparity(depth, c, budget))

        assert parallax.max() <= budget.positive * (1 + RTOL) + 1e-9
        assert parallax.min() >= -config.max_negative_parallax * (1 + RTOL) - 1e-9
        # Uncrossed parallax, in metres on the target screen, never reaches beyond the eyes' separation.
        assert parallax.max() / 100 * config.screen_width <= config.interocular * (1 + RTOL) + 1e-12
        # The mapping spends the budget: at z = 0 or at z = 1 the parallax equals its limit.
        k = parallax_scale(c, budget)
        assert k * c == pytest.approx(budget.positive) or k * (1 - c) == pytest.approx(config.max_negative_parallax)


def test_positive_budget_is_capped_at_the_interocular_distance_on_the_screen():
    cinema = ParallaxBudget.from_config(StereoConfig(screen_width=10.0, max_positive_parallax=3.0))
    assert cinema.positive == pytest.approx(100 * 0.063 / 10.0)  # 0.63 % of a 10 m screen = 63 mm
    assert cinema.distance(cinema.positive) == math.inf  # at the cap the eyes are parallel: infinitely far
    tv = ParallaxBudget.from_config(StereoConfig(screen_width=1.2, max_positive_parallax=1.5))
    assert tv.positive == 1.5  # 18 mm on a 1.2 m screen: well inside 63 mm


def test_viewing_distance_converts_parallax_to_angles_and_distances_only():
    near, far = (StereoConfig(viewing_distance=v) for v in (1.0, 5.0))
    depth = np.random.default_rng(0).random((10, 50), dtype=np.float32)
    np.testing.assert_array_equal(
        depth_to_disparity(depth, 0.4, ParallaxBudget.from_config(near)),
        depth_to_disparity(depth, 0.4, ParallaxBudget.from_config(far)),
    )
    budget = ParallaxBudget.from_config(StereoConfig())  # 1.2 m screen at 2.5 m
    assert budget.angle(0.0) == 0.0 and budget.distance(0.0) == pytest.approx(2.5)
    # 1.5 % of 1.2 m = 18 mm behind the screen: about 18 mm / 2.5 m = 0.41 degrees, seen farther than the screen.
    assert budget.angle(1.5) == pytest.approx(math.degrees(0.018 / 2.5), rel=1e-3)
    assert budget.distance(1.5) == pytest.approx(2.5 * 0.063 / (0.063 - 0.018))
    assert budget.angle(-1.0) < 0 and budget.distance(-1.0) < 2.5  # crossed: in front of the screen


@pytest.mark.parametrize("c", [0.0, 0.25, 0.6, 1.0])
def test_convergence_depth_is_on_the_screen_and_nearer_is_more_crossed(c):
    budget = ParallaxBudget.from_config(StereoConfig(max_negative_parallax=2.0, max_positive_parallax=1.0))
    z = np.linspace(0, 1, 101, dtype=np.float32)
    depth = np.vstack([z, np.full_like(z, c)])
    parallax = parallax_percent(depth_to_disparity(depth, c, budget))
    assert np.all(parallax[1] == 0.0)  # z == c: on the screen plane
    assert np.all(np.diff(parallax[0]) < 0)  # nearer -> more crossed (smaller, more negative parallax)
    # Linear: the same depth step gives the same parallax step everywhere, in front of the screen and behind it.
    np.testing.assert_allclose(np.diff(parallax[0]), np.diff(parallax[0])[0], rtol=1e-4)


def test_one_side_without_budget_flattens_unless_convergence_is_at_that_end():
    budget = ParallaxBudget.from_config(StereoConfig(max_negative_parallax=0.0, max_positive_parallax=1.5))
    assert parallax_scale(0.5, budget) == 0.0  # anything in front of the screen would exceed 0
    assert parallax_scale(1.0, budget) == 1.5  # everything behind the screen: the whole positive budget
    with pytest.raises(ValueError, match="convergence"):
        parallax_scale(1.2, budget)


# ---------------------------------------------------------------------------------------------------- convergence


def test_convergence_resets_exactly_at_a_cut():
    config = StereoConfig(convergence_smoothing=0.9, convergence_percentile=40.0)
    rng = np.random.default_rng(1)
    shot_a = [rng.random((20, 30), dtype=np.float32) * 0.3 for _ in range(5)]  # far scenes
    shot_b = [0.7 + rng.random((20, 30), dtype=np.float32) * 0.3 for _ in range(5)]  # near scenes
    shot_2 = [rng.random((20, 30), dtype=np.float32) for _ in range(6)]

    runs = []
    for first in (shot_a, shot_b):
        tracker = ConvergenceTracker(config)
        runs.append([tracker(d, cut=i == len(first)) for i, d in enumerate(first + shot_2)])
    assert runs[0][5:] == runs[1][5:]  # from the cut on nothing of the first shot remains
    assert runs[0][5] == convergence_depth(shot_2[0], "percentile", 40.0)  # the first frame: its own value
    assert runs[0][6] != convergence_depth(shot_2[1], "percentile", 40.0)  # ...then smoothed within the shot

    tracker = ConvergenceTracker(config)
    uncut = [tracker(d) for d in shot_a + shot_2]
    assert uncut[5] != runs[0][5]  # without the cut the previous shot would leak in


def layout(kind: str, n: int, seed: int, height: int = 20, width: int = 30) -> list[np.ndarray]:
    """``n`` frames of one shot's normalized depth: a ramp (``"rows"``: far at the top, ``"columns"``: near at the
    left) with a little noise on it, float32 HxW in [0, 1]."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.1, 0.9, height if kind == "rows" else width, dtype=np.float32)
    base = np.broadcast_to(ramp[:, None] if kind == "rows" else ramp[::-1][None, :], (height, width))
    return [np.clip(base + rng.normal(0.0, 0.02, base.shape).astype(np.float32), 0, 1) for _ in range(n)]


def test_a_missed_cut_restarts_the_convergence_by_itself():
    config = StereoConfig(convergence_smoothing=0.9)
    frames = layout("rows", 6, seed=1) + [0.5 * d for d in layout("columns", 6, seed=2)]
    detected, missed = ConvergenceTracker(config), ConvergenceTracker(config)
    with_cut = [detected(d, cut=i == 6) for i, d in enumerate(frames)]
    without = []
    for d in frames:
        without.append(missed(d))
        assert missed.restarted == (len(without) == 7)
    assert without[6:] == with_cut[6:]  # from the first frame of the new shot on, nothing of the old one


@pytest.mark.parametrize("length", [1, 2])
def test_a_flash_inside_a_shot_leaves_the_convergence_as_it_was(length):
    config = StereoConfig(convergence_smoothing=0.9)
    shot = layout("rows", 10, seed=3)
    rng = np.random.default_rng(4)
    junk = [rng.random((20, 30), dtype=np.float32) for _ in range(length)]  # the depth of white frames: noise
    flashed, plain = ConvergenceTracker(config), ConvergenceTracker(config)
    with_flash = [flashed(d) for d in [*shot[:5], *junk, *shot[5:]]]
    without = [plain(d) for d in shot]
    assert with_flash[5 + length :] == without[5:]  # the picture came back: as if there had been no flash


def test_a_missed_cut_restarts_the_floating_window_by_itself():
    budget = ParallaxBudget.from_config(StereoConfig())
    near_left = [depth_to_disparity(d, 0.3, budget) for d in layout("columns", 5, seed=5, width=200)]
    other = [depth_to_disparity(d, 0.9, budget) for d in layout("rows", 5, seed=6, width=200)]
    detected, missed = FloatingWindow(0.9), FloatingWindow(0.9)
    with_cut = [detected(d, cut=i == 5) for i, d in enumerate(near_left + other)]
    without = [missed(d) for d in near_left + other]
    assert without[4][0] > 0.0 and without[5:] == with_cut[5:] == [(0.0, 0.0)] * 5


def test_percentile_mode_puts_that_share_of_the_pixels_behind_the_screen():
    depth = np.random.default_rng(2).random((50, 80), dtype=np.float32)
    c = convergence_depth(depth, "percentile", 70.0)
    assert np.mean(depth < c) == pytest.approx(0.70, abs=0.01)


def test_subject_mode_follows_the_centre():
    config = StereoConfig(convergence="subject", convergence_smoothing=0.0)
    tracker = ConvergenceTracker(config)
    for subject in (0.3, 0.7, 0.5):
        depth = np.full((40, 60), 1.0, np.float32)  # something near all around the border...
        depth[8:32, 12:48] = subject  # ...and the subject filling the centre
        depth[18:20, 28:30] = 0.0  # a few other pixels in the centre do not move it
        assert tracker(depth) == pytest.approx(subject)
        assert convergence_depth(depth, "percentile", 50.0) == 1.0  # the border dominates the whole frame


# ------------------------------------------------------------------------------------------------ floating window


def edge_scene(where: str, width: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A near block (z = 1) over 10 columns at the left edge, the right edge or the middle of a far (z = 0) frame."""
    depth = np.zeros((12, width), np.float32)
    columns = {"left": slice(0, 10), "right": slice(width - 10, width), "middle": slice(45, 55)}[where]
    depth[3:9, columns] = 1.0
    return textured(12, width), depth


def floating(**settings_: object) -> StereoConfig:
    # The background fills most of the frame, so the median puts it on the screen plane and the block gets the whole
    # crossed budget: 4 % of 100 px = 4 px of parallax, 2 px per eye.
    base = {"max_negative_parallax": 4.0, "convergence_percentile": 50.0, "floating_window": True}
    return StereoConfig(**{**base, **settings_})


def is_black(columns: np.ndarray) -> bool:
    return bool(np.all(columns == 0))


def test_floating_window_masks_the_left_edge_of_the_left_eye():
    image, depth = edge_scene("left")
    views = StereoRenderer(floating())(image, depth)
    assert views.convergence == 0.0 and views.window == (4.0, 0.0)
    assert is_black(views.left[:, :4]) and not is_black(views.left[:, 4])  # a band as wide as the parallax
    assert not (views.right[:, :4] == 0).all(axis=-1).any()  # the right eye keeps its left edge
    assert not (views.left[:, -4:] == 0).all(axis=-1).any() and not (views.right[:, -4:] == 0).all(axis=-1).any()
    # After masking, both eyes start at the same content: source column 2 (the block, cut off by 2 px in the right
    # eye) is the right eye's first column and the left eye's first unmasked one.
    np.testing.assert_array_equal(views.left[3:9, 4], image[3:9, 2])
    np.testing.assert_array_equal(views.right[3:9, 0], image[3:9, 2])


def test_floating_window_masks_the_right_edge_of_the_right_eye():
    image, depth = edge_scene("right")
    views = StereoRenderer(floating())(image, depth)
    assert views.window == (0.0, 4.0)
    assert is_black(views.right[:, -4:]) and not is_black(views.right[:, -5])
    assert not (views.left[:, -4:] == 0).all(axis=-1).any()
    assert not (views.left[:, :4] == 0).all(axis=-1).any() and not (views.right[:, :4] == 0).all(axis=-1).any()


@pytest.mark.parametrize("scene", ["middle", "behind"])
def test_floating_window_masks_nothing_without_a_violation(scene):
    image, depth = edge_scene("middle")
    settings_ = {}
    if scene == "behind":  # the block at the edge, but behind the screen: the frame edge is in front of it anyway
        image, depth = edge_scene("left")
        settings_ = {"convergence_percentile": 100.0, "max_positive_parallax": 2.0}
    views = StereoRenderer(floating(**settings_))(image, depth)
    plain = StereoRenderer(floating(**settings_, floating_window=False))(image, depth)
    assert views.window == (0.0, 0.0)
    np.testing.assert_array_equal(views.left, plain.left)
    np.testing.assert_array_equal(views.right, plain.right)
    assert np.any(views.disparity)  # there is parallax, just no violation


def test_floating_window_grows_at_once_narrows_smoothly_and_resets_at_a_cut():
    renderer = StereoRenderer(floating(convergence_smoothing=0.5))
    left_image, left_depth = edge_scene("left")
    clear_image, clear_depth = edge_scene("middle")
    assert renderer(clear_image, clear_depth).window == (0.0, 0.0)
    assert renderer(left_image, left_depth).window == (4.0, 0.0)  # at once: a narrower band would show the violation
    assert renderer(clear_image, clear_depth).window == (2.0, 0.0)  # the object left: the band narrows...
    assert renderer(clear_image, clear_depth).window == (1.0, 0.0)  # ...gradually
    assert renderer(clear_image, clear_depth, cut=True).window == (0.0, 0.0)  # a new shot starts without one


def test_window_violations_need_a_pixel_cut_off_by_the_edge():
    disparity = np.zeros((3, 40), np.float32)
    disparity[1, 5] = 4.0  # 5.5 px from the edge with 4 px of disparity: both eyes see it
    assert window_violations(disparity) == (0.0, 0.0)
    disparity[1, 2] = 3.0  # 2.5 px from the edge, moved 3 px: the right eye loses it
    disparity[2, 39] = 0.75  # the last column, moved 0.75 px: its centre leaves the left eye
    assert window_violations(disparity) == (6.0, 1.5)


# ------------------------------------------------------------------------------------------------ stereo metadata


LAYOUT_TAGS = {  # layout: (Matroska stereo_mode name, StereoMode element value, H.264 frame packing or None)
    "half-sbs": ("left_right", 1, "side_by_side"),
    "full-sbs": ("left_right", 1, "side_by_side"),
    "half-tb": ("top_bottom", 3, "top_bottom"),
    "full-tb": ("top_bottom", 3, "top_bottom"),
    "anaglyph": ("anaglyph_cyan_red", 10, None),
}
_AV_STEREO3D_TYPES = {1: "side_by_side", 2: "top_bottom"}  # AVStereo3DType, the first int of the side data


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory):
    return make_clip(tmp_path_factory.mktemp("meta") / "small.mp4", (3,), height=32, width=48)


def frame_packing(path: Path) -> str | None:
    """The stereo3d side data FFmpeg's decoder attaches to the first frame, as a type name (None if absent)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        for data in frame.side_data:
            if data.type.name == "STEREO3D":
                return _AV_STEREO3D_TYPES.get(int.from_bytes(bytes(data)[:4], "little"), "other")
    return None


@pytest.mark.parametrize("layout", list(LAYOUT_TAGS))
def test_mkv_carries_the_stereo_mode_of_its_layout(small_clip, tmp_path, layout):
    name, element, packing = LAYOUT_TAGS[layout]
    out = tmp_path / "out.mkv"
    convert(small_clip.path, out, PipelineConfig().replace({"output.format": layout}),
            estimator=OracleEstimator(small_clip.depths))  # fmt: skip
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.metadata.get("stereo_mode") == name
        # FFmpeg's reader gives back the packed frame's own shape: square pixels, as the source.
        assert stream.sample_aspect_ratio in (None, 1)
    # The StereoMode element itself: ID 0x53B8, a one-byte size (0x81), the value.
    assert bytes([0x53, 0xB8, 0x81, element]) in out.read_bytes()
    # ...and the layout in the H.264 stream as well (FFmpeg has no stereo3d type for a Matroska anaglyph).
    assert frame_packing(out) == packing


@pytest.mark.parametrize(("layout", "tag"), [("half-sbs", None), ("full-tb", None), ("anaglyph", "anaglyph_cyan_red")])
def test_non_square_pixels_keep_their_aspect_in_mkv(tmp_path, layout, tag):
    # FFmpeg would write an SBS/TB tag's view size for square pixels (PyAV cannot give it the stream's aspect), so
    # such outputs go without the tag; the H.264 stream still says how the views are packed.
    source = tmp_path / "anamorphic.mp4"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(16, 11)
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(textured(48, 64, seed=i), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    out = tmp_path / "out.mkv"
    convert(source, out, PipelineConfig().replace({"output.format": layout}),
            estimator=OracleEstimator([np.ones((48, 64), np.float32)] * 2))  # fmt: skip
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.sample_aspect_ratio == Fraction(16, 11)
        assert stream.metadata.get("stereo_mode") == tag
    assert frame_packing(out) == LAYOUT_TAGS[layout][2]


@pytest.mark.parametrize("layout", ["half-sbs", "full-tb", "anaglyph"])
def test_mp4_carries_the_layout_in_the_h264_stream(small_clip, tmp_path, layout):
    out = tmp_path / "out.mp4"
    convert(small_clip.path, out, PipelineConfig().replace({"output.format": layout}),
            estimator=OracleEstimator(small_clip.depths))  # fmt: skip
    assert frame_packing(out) == LAYOUT_TAGS[layout][2]  # anaglyph: H.264 has no frame packing type for it


# ------------------------------------------------------------------------------------------------- output naming


@pytest.mark.parametrize(
    ("source", "layout", "name"),
    [("film.mp4", "half-sbs", "film_hsbs.mp4"), ("a.b.MKV", "full-sbs", "a.b_fsbs.MKV"),
     ("clip.mov", "half-tb", "clip_htb.mov"), ("old.avi", "full-tb", "old_ftb.mkv"),
     ("noext", "anaglyph", "noext_anaglyph.mkv"), ("web.webm", "half-sbs", "web_hsbs.mkv")],
)  # fmt: skip
def test_output_name_follows_input_and_layout(source, layout, name, tmp_path):
    assert output_name(Path("some/dir") / source, layout) == name
    assert check_output_path(tmp_path, Path("some/dir") / source, layout) == tmp_path / name


def test_output_directory_without_a_layout_is_still_refused(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        check_output_path(tmp_path, "in.mp4")


def test_convert_into_a_directory_reports_the_file_it_wrote(small_clip, tmp_path):
    result = convert(small_clip.path, tmp_path, PipelineConfig().replace({"output.format": "half-tb"}),
                     estimator=OracleEstimator(small_clip.depths))  # fmt: skip
    assert result.output == tmp_path / "small_htb.mp4"
    assert [p.name for p in tmp_path.iterdir()] == ["small_htb.mp4"]
    with av.open(str(result.output)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_cli_convert_into_a_directory(small_clip, tiny_model, tmp_path, capsys):
    code = main(["convert", str(small_clip.path), str(tmp_path), "--model", str(tiny_model), "--format", "anaglyph",
                 "--set", "depth.input_size=56"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "small_anaglyph.mp4").is_file()
    assert f"wrote {tmp_path / 'small_anaglyph.mp4'}" in err


def test_both_eyes_on_two_threads_are_the_eyes_rendered_one_after_the_other():
    """A frame big enough has its eyes drawn at once on two threads: each eye is exactly the one drawn alone."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (512, 640, 3), dtype=np.uint8)
    disparity = np.repeat(np.linspace(-6.0, 9.0, 640, dtype=np.float32)[None], 512, axis=0)
    disparity[100:300, 200:400] += 5.5  # an object in front: holes on either side
    assert image.shape[0] * image.shape[1] >= parallax._PARALLEL_EYES_PIXELS
    left, right = render_views(image, disparity)
    assert np.array_equal(left, synthesize_view(image, disparity, +1))
    assert np.array_equal(right, synthesize_view(image, disparity, -1))
    assert not np.array_equal(left, right)


def test_an_error_drawing_the_left_eye_on_its_thread_reaches_the_caller(monkeypatch):
    def broken(image, disparity, direction):
        if direction == +1:
            raise MemoryError("left eye")
        return image.copy()

    monkeypatch.setattr(parallax, "synthesize_view", broken)
    image = np.zeros((512, 640, 3), np.uint8)
    with pytest.raises(MemoryError, match="left eye"):
        render_views(image, np.ones((512, 640), np.float32), synthesize=broken)
