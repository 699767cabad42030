"""Per-shot settings (--shots): they change exactly their shots' frames, in convert, preview and the farm (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from synth import make_clip

import stereoconv.farm as farm
from stereoconv import ConfigError, PipelineConfig, convert
from stereoconv.cli import main
from stereoconv.config import load_shots, parse_shots
from stereoconv.preview import preview_frame

SHOTS = (8, 8, 8)  # cuts at 8 and 16, 24 fps
CLOSE_UP = """
[[shots]]
index = 1
stereo.max_negative_parallax = 0.3
stereo.convergence = "subject"
temporal.strength = 0.2
"""


class ContentDepth:
    """Depth from each frame's own pixels (its grey level): the same map for a frame whatever order frames come in,
    so a farm's chunks and a single pass see the same depth."""

    batch_size = 4

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0 + 0.1 for f in frames]


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("shots") / "three.mp4", SHOTS)


def run(clip, tmp_path: Path, shots=None, report=None) -> list:
    items: list = []
    config = PipelineConfig().replace({"output.format": "full-sbs"})
    convert(clip.path, tmp_path / f"out{len(list(tmp_path.iterdir()))}.mkv", config, estimator=ContentDepth(),
            on_frame=items.append, shots=shots, report=report)  # fmt: skip
    return items


def shot_of(index: int) -> int:
    return sum(1 for cut in (8, 16) if index >= cut)


def assert_changes_exactly(plain: list, tuned: list, changed_shots: set[int]) -> None:
    assert len(plain) == len(tuned) == sum(SHOTS)
    for a, b in zip(plain, tuned, strict=True):
        if shot_of(a.frame.index) in changed_shots:
            assert not np.array_equal(a.plan.disparity, b.plan.disparity), f"frame {a.frame.index} unchanged"
            assert not np.array_equal(a.packed, b.packed)
        else:
            np.testing.assert_array_equal(a.packed, b.packed, err_msg=f"frame {a.frame.index} changed")
            np.testing.assert_array_equal(a.depth, b.depth)


def test_index_entry_changes_exactly_its_shot(three_shots, tmp_path):
    path = tmp_path / "shots.toml"
    path.write_text(CLOSE_UP)
    plain = run(three_shots, tmp_path)
    tuned = run(three_shots, tmp_path, load_shots(path), report=tmp_path / "report.json")
    assert_changes_exactly(plain, tuned, {1})
    recorded = json.loads((tmp_path / "report.json").read_text())["shot_settings"]
    assert recorded == {"1": {"stereo.max_negative_parallax": 0.3, "stereo.convergence": "subject",
                              "temporal.strength": 0.2}}  # fmt: skip
    # The close-up has less depth: its largest crossed parallax is within the shot's own budget of 0.3 % of width.
    widest = max(float(item.plan.disparity.max()) for item in tuned if shot_of(item.frame.index) == 1)
    assert widest <= 0.3 / 100 * 96 / 2 + 1e-6


def test_time_range_entry_selects_the_shots_it_overlaps(three_shots, tmp_path):
    # 0.70 s to 0.72 s: inside the third shot (frames 16-23 are 0.667-0.958 s), touching no other.
    shots = parse_shots({"shots": [{"start": 0.70, "end": 0.72, "stereo": {"max_positive_parallax": 0.2}}]})
    plain = run(three_shots, tmp_path)
    tuned = run(three_shots, tmp_path, shots)
    assert_changes_exactly(plain, tuned, {2})


def test_farm_plan_records_the_shots_and_chunks_render_them_as_the_single_pass(three_shots, tmp_path, monkeypatch):
    path = tmp_path / "shots.toml"
    path.write_text(CLOSE_UP)
    single = run(three_shots, tmp_path, load_shots(path))
    config = PipelineConfig().replace({"output.format": "full-sbs"})
    # 5-frame chunks: some start mid-shot (in shot 1 too), with a pre-roll from the shot's start.
    job = farm.plan(three_shots.path, tmp_path / "job.json", config, chunk_seconds=5 / 24, shots=load_shots(path))
    assert job.shot_settings == {1: {"stereo.max_negative_parallax": 0.3, "stereo.convergence": "subject",
                                     "temporal.strength": 0.2}}  # fmt: skip
    assert any(not c.starts_at_cut and c.first_frame in range(9, 16) for c in job.chunks)
    reloaded = farm.load_job(tmp_path / "job.json")
    assert reloaded.shot_settings == job.shot_settings
    written: list[np.ndarray] = []

    class Capture(farm.VideoWriter):
        def write(self, rgb: np.ndarray, pts: int) -> None:
            written.append(rgb.copy())
            super().write(rgb, pts)

    monkeypatch.setattr(farm, "VideoWriter", Capture)
    farm.render(reloaded, reloaded.chunks, tmp_path / "chunks", estimator=ContentDepth())
    assert len(written) == len(single)
    for k, (rendered, item) in enumerate(zip(written, single, strict=True)):
        np.testing.assert_array_equal(rendered, item.packed, err_msg=f"frame {k}")


def test_preview_applies_the_settings_of_its_frames_shot(three_shots, tmp_path):
    path = tmp_path / "shots.toml"
    path.write_text(CLOSE_UP)
    single = run(three_shots, tmp_path, load_shots(path))
    for index in (5, 12):  # outside and inside the tuned shot
        at = index / 24
        frame = preview_frame(three_shots.path, at, estimator=ContentDepth(), shots=load_shots(path))
        np.testing.assert_array_equal(frame.item.packed, single[index].packed)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[shots]]\nindex = 1\nstereo.max_negative_parallax = 50\n", "entry 1: stereo.max_negative_parallax = 50"),
        ("[[shots]]\nindex = 0\nstereo.wobble = 1\n", "unknown setting stereo.wobble"),
        ("[[shots]]\nindex = 0\n[shots.output]\ncrf = 3\n", "[output] cannot change per shot"),
        ("[[shots]]\nstereo.convergence = 'subject'\n", "say which shots"),
        ("[[shots]]\nindex = 0\nspeed = 2\n", "unknown key 'speed'"),
    ],
)
def test_bad_shots_file_is_one_line_exit_2_naming_it(text, fragment, three_shots, tmp_path, capsys):
    path = tmp_path / "shots.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"shots file .*shots entry 1"):
        load_shots(path)
    code = main(["preview", str(three_shots.path), "--at", "0.1", "--out", str(tmp_path / "p.png"),
                 "--shots", str(path)])  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert len(err) == 1 and err[0].startswith("stereoconv: error: ") and fragment in err[0], err
    assert not (tmp_path / "p.png").exists()


def test_scenes_json_is_a_shots_file_to_start_from(three_shots, tmp_path, capsys):
    assert main(["scenes", str(three_shots.path), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(s["index"], s["first_frame"], s["frames"]) for s in listing["shots"]] == [(0, 0, 8), (1, 8, 8), (2, 16, 8)]
    path = tmp_path / "shots.json"
    path.write_text(json.dumps(listing))
    assert load_shots(path).resolve() == {}  # as written it changes nothing
    listing["shots"][2]["stereo"] = {"max_negative_parallax": 0.4}
    path.write_text(json.dumps(listing))
    assert load_shots(path).resolve() == {2: {"stereo.max_negative_parallax": 0.4}}
