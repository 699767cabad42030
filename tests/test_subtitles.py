"""Text subtitles burned into both eyes, in front of what they cover (issue 16)."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
from synth import FAR, NEAR, OracleEstimator, shot_frames, write_video

from stereoconv import PipelineConfig, convert
from stereoconv.cli import main
from stereoconv.subtitles import MARGIN, dialogue_text, text_masks

CUE = (0.25, 0.5, "Hello 3D")  # frames 6-11 at 24 fps
FRAMES, HEIGHT, WIDTH = 18, 128, 192
BAND = 0.5 * (FAR + NEAR)  # depth of the bottom band the cue covers: halfway between background and square


@pytest.fixture(scope="module")
def subtitled_clip(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """One shot with an SRT cue; the true depth has a band at mid depth along the bottom, under the cue."""
    frames, depths = shot_frames(FRAMES, HEIGHT, WIDTH, seed=5)
    for depth in depths:
        depth[HEIGHT * 3 // 4 :] = BAND
    path = tmp_path_factory.mktemp("subs") / "subtitled.mkv"
    write_video(path, frames, subtitles=[CUE])
    return path, depths


def packed_frames(clip, tmp_path, name, **settings) -> tuple[list[np.ndarray], list, list[float]]:
    path, depths = clip
    config = PipelineConfig().replace({"output.format": "full-sbs", "stereo.max_negative_parallax": 10.0,
                                       "stereo.refine_edges": False, **settings})  # fmt: skip
    items = []
    convert(path, tmp_path / name, config, estimator=OracleEstimator(depths), on_frame=items.append)
    return [item.packed for item in items], [item.plan for item in items], [item.frame.time for item in items]


def test_cue_is_drawn_into_both_eyes_at_its_computed_parallax_on_its_frames_only(subtitled_clip, tmp_path):
    burned, plans, times = packed_frames(subtitled_clip, tmp_path, "burned.mkv", **{"output.subtitles": "burn"})
    plain, plain_plans, _ = packed_frames(subtitled_clip, tmp_path, "plain.mkv", **{"output.subtitles": "none"})
    shown = [CUE[0] <= t < CUE[1] for t in times]
    assert sum(shown) == 6
    offsets = set()
    for k, (a, b) in enumerate(zip(burned, plain, strict=True)):
        np.testing.assert_array_equal(plans[k].disparity, plain_plans[k].disparity)  # the picture's depth is untouched
        changed = np.any(a != b, axis=2)
        if not shown[k]:
            assert not changed.any(), f"frame {k} at {times[k]:.3f} s is outside the cue but was drawn on"
            continue
        left, right = changed[:, :WIDTH], changed[:, WIDTH:]
        assert left.any() and right.any(), f"frame {k}: the cue is missing from an eye"
        rows_l, cols_l = np.nonzero(left)
        rows_r, cols_r = np.nonzero(right)
        assert (rows_l.min(), rows_l.max()) == (rows_r.min(), rows_r.max())  # same height in both eyes
        assert rows_l.min() >= HEIGHT * 3 // 4  # over the band, near the bottom
        # The text itself is the same in both eyes, shifted: the left eye's to the right (crossed: in front).
        shift = int(cols_l.min() - cols_r.min())
        assert shift == int(cols_l.max() - cols_r.max())
        offsets.add(shift)
        # White glyphs (anti-aliased: an 8 px font barely covers a whole pixel) on a black outline.
        assert a[rows_l, cols_l].max() > 200
        assert a[rows_l, cols_l].min() < 10
    assert len(offsets) == 1, f"the cue's parallax changed while it was shown: {offsets}"
    (shift,) = offsets
    # Expected: just in front of the nearest content under the text (the band) at the cue's first frame, as whole
    # pixels of per-eye disparity, within the crossed budget (10 % of 192 px = 9.6 px per eye).
    first = shown.index(True)
    rows = np.nonzero(np.any(burned[first] != plain[first], axis=2)[:, :WIDTH].any(axis=1))[0]
    nearest = float(plans[first].disparity[rows.min() : rows.max() + 1, WIDTH // 4 : WIDTH * 3 // 4].max())
    assert nearest > 1.0, "the band under the cue should be in front of the screen"
    expected = min(math.floor(10.0 / 100 * WIDTH / 2), math.ceil(nearest + MARGIN / 100 * WIDTH / 2))
    assert shift == 2 * expected


def test_cue_parallax_stays_within_the_crossed_budget(subtitled_clip, tmp_path):
    burned, _, times = packed_frames(subtitled_clip, tmp_path, "b.mkv", **{"output.subtitles": "burn",
                                     "stereo.max_negative_parallax": 1.5})  # fmt: skip
    plain, _, _ = packed_frames(subtitled_clip, tmp_path, "p.mkv", **{"output.subtitles": "none",
                                "stereo.max_negative_parallax": 1.5})  # fmt: skip
    k = next(i for i, t in enumerate(times) if CUE[0] <= t < CUE[1])
    changed = np.any(burned[k] != plain[k], axis=2)
    shift = int(np.nonzero(changed[:, :WIDTH])[1].min() - np.nonzero(changed[:, WIDTH:])[1].min())
    assert shift == 2 * math.floor(1.5 / 100 * WIDTH / 2)  # the band would want more: held at the budget


def test_cli_burns_by_default_for_sbs_and_keeps_soft_subtitles_on_request(subtitled_clip, tiny_model, tmp_path, capsys):
    path, _ = subtitled_clip
    tiny = ["--model", str(tiny_model), "--set", "depth.input_size=56", "--end", "0.6"]
    assert main(["convert", str(path), str(tmp_path / "burn.mkv"), *tiny]) == 0
    assert "subtitles burned into both eyes" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "keep.mkv"), "--subtitles", "keep", "-q", *tiny]) == 0
    with av.open(str(tmp_path / "burn.mkv")) as burned, av.open(str(tmp_path / "keep.mkv")) as kept:
        assert len(burned.streams.subtitles) == 0
        assert len(kept.streams.subtitles) == 1


def test_ass_override_tags_and_line_breaks():
    assert dialogue_text(r"{\an8}{\i1}Hello{\i0}\Nworld\hagain") == "Hello\nworld again"


def test_several_lines_are_drawn_centred_and_fit_the_frame():
    one, _ = text_masks("Hello", 16, 400)
    fill, outline = text_masks("Hello\na much longer second line", 16, 400)
    assert fill.shape == outline.shape and fill.shape[0] > 1.8 * one.shape[0]  # two lines
    narrow, _ = text_masks("Hello\na much longer second line", 16, 150)
    assert narrow.shape[1] <= 150 + 2 < fill.shape[1]  # shrunk to fit
    assert outline.sum() > fill.sum() > 0
