"""Per-shot report: known disparity in, exact parallax percentiles, flicker, window violations and holes out."""

from __future__ import annotations

import base64
import importlib.util
import json
import re

import numpy as np
import pytest
from synth import OracleEstimator, make_clip, shot_frames

from stereoconv import PipelineConfig, UsageError, convert
from stereoconv.config import StereoConfig
from stereoconv.dibr import warp_disparity
from stereoconv.media import DecodeLosses, probe
from stereoconv.parallax import ParallaxBudget, StereoRenderer
from stereoconv.report import ShotReport, check_report_path, hole_fractions
from stereoconv.temporal import TemporalSmoother

H, W = 96, 160
FPS = 24.0


def flat_frame(value: int = 128) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def disparity(background: float, near: float | None = None, *, x0: int = 40, width: int = 80) -> np.ndarray:
    """Per-eye disparity (px): ``background`` everywhere and ``near`` on rows 24-71 of columns ``x0..x0+width-1``
    (a quarter of the frame with the defaults)."""
    d = np.full((H, W), background, np.float32)
    if near is not None:
        d[24:72, x0 : x0 + width] = near
    return d


def test_constant_disparity_gives_exact_percentiles():
    report = ShotReport(W, H, FPS)
    for i in range(5):
        report.add(i, i / FPS, False, flat_frame(), disparity(-2.5), holes=(0.0, 0.0))
    (shot,) = report.shots
    # d = -2.5 px per eye: parallax +5 px (behind the screen) = 5 / 160 = 3.125 % of width, at every percentile.
    assert shot.parallax_px == {"min": 5.0, "p1": 5.0, "p5": 5.0, "p50": 5.0, "p95": 5.0, "p99": 5.0, "max": 5.0}
    assert shot.parallax_pct == {key: 3.125 for key in shot.parallax_px}


def test_two_depths_give_exact_percentiles_across_a_bounded_sample():
    report = ShotReport(W, H, FPS)
    # 40 frames of 15360 pixels: far more values than the reservoir keeps, so the sample is a real subsample.
    for i in range(40):
        report.add(i, i / FPS, False, flat_frame(), disparity(-1.0, 4.0), holes=(0.0, 0.0))
    shot = report.shots[0]
    # A quarter of the pixels is near (d = 4: parallax -8 px, in front), the rest far (d = -1: +2 px).
    assert shot.parallax_px == {"min": -8.0, "p1": -8.0, "p5": -8.0, "p50": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0}
    assert shot.parallax_pct["p1"] == -5.0 and shot.parallax_pct["p99"] == 1.25
    series = report.series()
    assert series["p1_pct"].tolist() == [-5.0] * 40 and series["p99_pct"].tolist() == [1.25] * 40


def test_flicker_is_zero_for_a_static_scene_and_measures_jitter_on_unchanged_pixels():
    static = ShotReport(W, H, FPS)
    for i in range(4):
        static.add(i, i / FPS, False, flat_frame(), disparity(-1.0, 3.0), holes=(0.0, 0.0))
    assert static.shots[0].flicker_px == 0.0

    jitter = ShotReport(W, H, FPS)
    for i in range(6):
        rgb = flat_frame()
        # The left half changes colour every frame and its disparity jumps: a moving object, not flicker.
        rgb[:, : W // 2] = 40 * (i % 2)
        d = disparity(-1.0 + 0.25 * (i % 2))  # the right half, unchanged in colour, jitters by 0.25 px per eye
        d[:, : W // 2] = 10.0 * (i % 3)
        jitter.add(i, i / FPS, False, rgb, d, holes=(0.0, 0.0))
    shot = jitter.shots[0]
    assert shot.flicker_px == pytest.approx(0.5)  # parallax changes by 2 * 0.25 px every frame
    assert shot.flicker_pct == pytest.approx(0.5 / W * 100)
    flicker = jitter.series()["flicker_px"]
    assert np.isnan(flicker[0]) and flicker[1:] == pytest.approx(0.5)


def test_slight_colour_noise_still_counts_as_unchanged():
    report = ShotReport(W, H, FPS)
    for i in range(3):
        report.add(i, i / FPS, False, flat_frame(128 + 3 * i), disparity(0.25 * i), holes=(0.0, 0.0))
    assert report.shots[0].flicker_px == pytest.approx(0.5)  # grey change 3 <= 4: still counted


def test_window_violations_counted_when_a_near_object_touches_an_edge():
    report = ShotReport(W, H, FPS)
    for i in range(5):
        touching = i < 3
        # d = 3 px in front of the screen, at the left edge (x0 = 0) or well inside the frame (x0 = 40)
        d = disparity(-1.0, 3.0, x0=0 if touching else 40)
        report.add(i, i / FPS, False, flat_frame(), d, window=(6.0, 0.0) if touching else (0.0, 0.0),
                   holes=(0.0, 0.0))  # fmt: skip
    shot = report.shots[0]
    assert shot.window_violation_frames == 3
    assert shot.window_violation_max_px == 6.0  # crossed parallax 2 * 3 px
    assert shot.floating_window_frames == 3
    assert report.series()["window_violation_px"].tolist() == [6.0, 6.0, 6.0, 0.0, 0.0]


def test_hole_area_is_the_mean_share_per_eye():
    report = ShotReport(W, H, FPS)
    report.add(0, 0.0, False, flat_frame(), disparity(0.0), holes=(0.1, 0.2))
    report.add(1, 1 / FPS, False, flat_frame(), disparity(0.0), holes=(0.3, 0.0))
    assert report.shots[0].holes_pct == pytest.approx((20.0, 10.0))


def test_hole_area_measured_from_the_warp_when_not_given():
    d = disparity(-1.0, 4.0)
    exact = [float(np.isneginf(warp_disparity(d, direction)).mean()) for direction in (+1, -1)]
    assert exact[0] > 0 and exact[1] > 0
    assert hole_fractions(d) == pytest.approx(exact)  # 96 rows: every row is measured
    report = ShotReport(W, H, FPS)
    report.add(0, 0.0, False, flat_frame(), d)
    assert report.shots[0].holes_pct == pytest.approx([100 * e for e in exact])
    # On a tall frame only every few rows are warped; holes span many rows, so the share is the same.
    tall = np.repeat(d, 8, axis=0)
    assert hole_fractions(tall) == pytest.approx(exact, abs=1e-3)


def test_shots_split_at_cuts_with_frame_ranges_and_times():
    report = ShotReport(W, H, FPS)
    cuts = {3, 7}
    for i in range(10):
        report.add(i, 10.0 + i / FPS, i in cuts, flat_frame(), disparity(-1.0 if i < 7 else 1.0), holes=(0.0, 0.0))
    shots = report.shots
    assert [(s.first_frame, s.last_frame, s.frames) for s in shots] == [(0, 2, 3), (3, 6, 4), (7, 9, 3)]
    assert [s.start for s in shots] == pytest.approx([10.0, 10.0 + 3 / FPS, 10.0 + 7 / FPS])
    assert [s.end for s in shots] == pytest.approx([10.0 + 3 / FPS, 10.0 + 7 / FPS, 10.0 + 10 / FPS])
    assert [s.parallax_px["p50"] for s in shots] == [2.0, 2.0, -2.0]
    assert shots[0].flicker_px == 0.0  # no pair of frames across a cut is compared
    overall = report.overall
    assert overall is not None and overall.frames == 10 and overall.first_frame == 0 and overall.last_frame == 9


def test_json_has_every_field(tmp_path):
    budget = ParallaxBudget.from_config(StereoConfig())
    report = ShotReport(W, H, FPS, budget=budget, source="clip.mp4")
    for i in range(4):
        report.add(i, i / FPS, i == 2, flat_frame(), disparity(-1.0, 3.0), holes=(0.01, 0.02))
    path = report.to_json(tmp_path / "report.json")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    data = json.loads(path.read_text())
    assert data["stereoconv_report"] == 1
    assert (data["width"], data["height"], data["fps"], data["frames"], data["source"]) == (W, H, FPS, 4, "clip.mp4")
    assert data["budget"]["negative"] == 1.0 and data["budget"]["positive"] == 1.5
    assert len(data["shots"]) == 2
    shot = data["shots"][1]
    assert set(shot) == {
        "index", "first_frame", "last_frame", "frames", "start", "end", "parallax_px", "parallax_pct", "flicker_px",
        "flicker_pct", "window_violation_frames", "window_violation_max_px", "floating_window_frames", "holes_pct",
    }  # fmt: skip
    assert set(shot["parallax_pct"]) == {"min", "p1", "p5", "p50", "p95", "p99", "max"}
    assert shot["holes_pct"] == pytest.approx({"left": 1.0, "right": 2.0})
    assert data["overall"]["frames"] == 4
    per_frame = data["per_frame"]
    assert all(len(column) == 4 for column in per_frame.values())
    assert per_frame["flicker_px"][0] is None and per_frame["flicker_px"][2] is None  # first frames of shots
    assert per_frame["index"] == [0, 1, 2, 3]


def test_html_embeds_the_plot_and_a_row_per_shot(tmp_path):
    pytest.importorskip("matplotlib")
    report = ShotReport(W, H, FPS, budget=ParallaxBudget.from_config(StereoConfig()), source="a <b> & $c$.mp4")
    for i in range(6):
        report.add(i, i / FPS, i == 3, flat_frame(), disparity(-1.0, 3.0, x0=0), holes=(0.0, 0.0))
    path = report.write(tmp_path / "report.html")
    page = path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert "a &lt;b&gt; &amp; $c$.mp4" in page
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png.startswith(b"\x89PNG")
    assert page.count("<tr><td>") == 2


def test_html_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    report = ShotReport(W, H, FPS)
    report.add(0, 0.0, False, flat_frame(), disparity(0.0), holes=(0.0, 0.0))
    with pytest.raises(UsageError, match=re.escape("pip install 'stereoconv[report]'")):
        report.to_html(tmp_path / "report.html")
    with pytest.raises(UsageError, match="matplotlib"):
        check_report_path(tmp_path / "report.html")
    assert check_report_path(tmp_path / "report.json") == tmp_path / "report.json"
    assert list(tmp_path.iterdir()) == []


def test_report_paths_are_checked_before_any_work(tmp_path):
    with pytest.raises(UsageError, match=r"\.json or \.html"):
        check_report_path(tmp_path / "report.txt")
    with pytest.raises(UsageError, match="does not exist"):
        check_report_path(tmp_path / "missing" / "report.json")
    with pytest.raises(ValueError, match="must be"):
        ShotReport(W, H, FPS).add(0, 0.0, False, flat_frame(), np.zeros((H, W + 1), np.float32))


def test_fed_from_the_stereo_stage_on_a_clip_of_known_depth():
    # The pipeline's own temporal and stereo stages on true depth: the far background normalizes to 0, the near
    # square (21x21 px, 7 % of the pixels) to 1; convergence at the 60th percentile puts the background on the
    # screen, and the square gets the whole crossed budget, 6.25 % of 96 px = 6 px, d = 3 px per eye. Without
    # smoothing every frame is exactly that.
    cfg = PipelineConfig().replace({"temporal.strength": 0.0, "temporal.alignment": 0.0,
                                    "stereo.max_negative_parallax": 6.25})  # fmt: skip
    frames_a, depths_a = shot_frames(6, 64, 96, seed=3)
    frames_b, depths_b = shot_frames(5, 64, 96, seed=9)
    smoother, renderer = TemporalSmoother(cfg.temporal), StereoRenderer(cfg.stereo)
    report = ShotReport(96, 64, FPS, budget=renderer.budget)
    for i, (rgb, depth) in enumerate(zip(frames_a + frames_b, depths_a + depths_b, strict=True)):
        cut = i == 6
        views = renderer(rgb, smoother(depth, rgb, cut=cut), cut=cut)
        report.add(i, i / FPS, cut, rgb, views.disparity, window=views.window)
    shots = report.shots
    assert [(s.first_frame, s.last_frame) for s in shots] == [(0, 5), (6, 10)]
    for shot in shots:
        assert shot.parallax_px == {"min": -6.0, "p1": -6.0, "p5": -6.0, "p50": 0.0, "p95": 0.0, "p99": 0.0,
                                    "max": 0.0}  # fmt: skip
        assert shot.parallax_pct["p1"] == -6.25
        assert shot.window_violation_frames == 0
        # Each eye uncovers 3 px beside the square on each of its 21 rows (the other side is covered by it).
        assert shot.holes_pct == pytest.approx((100 * 63 / (64 * 96),) * 2)


def test_convert_feeds_the_report_frame_by_frame(two_shot_clip, tmp_path):
    cfg = PipelineConfig().replace({"temporal.strength": 0.0, "temporal.alignment": 0.0,
                                    "stereo.max_negative_parallax": 6.25})  # fmt: skip
    report = ShotReport.for_video(probe(two_shot_clip.path), cfg)
    convert(two_shot_clip.path, tmp_path / "out.mp4", cfg, estimator=OracleEstimator(two_shot_clip.depths),
            on_frame=report.add_frame)  # fmt: skip
    assert [(s.first_frame, s.last_frame) for s in report.shots] == [(0, 11), (12, 21)]
    assert [s.start for s in report.shots] == pytest.approx([0.0, 12 / FPS])
    for shot in report.shots:
        assert shot.parallax_pct["p1"] == -6.25 and shot.parallax_pct["p50"] == 0.0
        assert shot.holes_pct == pytest.approx((100 * 63 / (64 * 96),) * 2)
    data = json.loads(report.to_json(tmp_path / "report.json").read_text())
    assert data["source"] == "two_shots.mp4" and data["frames"] == 22


# ------------------------------------------------------------------------------------ what happened to the source


def small_report() -> ShotReport:
    report = ShotReport(W, H, FPS, source="clip.mp4")
    for i in range(4):
        report.add(i, i / FPS, i == 2, flat_frame(), disparity(-1.0, 3.0), holes=(0.0, 0.0))
    return report


def test_losses_and_notes_go_into_the_json_and_a_short_html_section(tmp_path):
    losses = DecodeLosses()
    losses.add(1.25, 1.5, 6)
    losses.add(3.0, 3.125, 3)
    losses.packets_failed, losses.frames_damaged = 7, 2
    notes = ["audio stream 1 (dts, eng) re-encoded to AAC: mp4 cannot hold dts", "subtitle stream 2 <ass> dropped"]
    report = small_report()
    data = json.loads(report.write(tmp_path / "report.json", losses=losses, notes=notes).read_text())
    assert data["losses"] == {"frames_lost": 9, "ranges": [[1.25, 1.5], [3.0, 3.125]], "counts": [6, 3],
                              "packets_failed": 7, "frames_damaged": 2}  # fmt: skip
    assert data["notes"] == notes
    assert DecodeLosses.from_dict(data["losses"]) == losses  # read back, it is the same DecodeLosses

    # Nothing tracked: null and an empty list; a clean decode: an object of zeros.
    plain = json.loads(small_report().to_json(tmp_path / "plain.json").read_text())
    assert plain["losses"] is None and plain["notes"] == []
    clean = json.loads(small_report().write(tmp_path / "clean.json", losses=DecodeLosses()).read_text())
    assert clean["losses"] == {"frames_lost": 0, "ranges": [], "counts": [], "packets_failed": 0, "frames_damaged": 0}

    pytest.importorskip("matplotlib")
    page = report.write(tmp_path / "report.html").read_text()  # the losses and notes recorded by the write above
    section = re.search(r"<h2 id=source>Source</h2>\n<ul class=source>(.*?)</ul>", page)
    assert section is not None
    items = re.findall(r"<li>(.*?)</li>", section.group(1))
    assert items == [
        "lost about 6 frames between 1.250 s and 1.500 s", "lost about 3 frames between 3.000 s and 3.125 s",
        "2 frames were decoded with errors (kept, possibly with artefacts)",
        "in all: about 9 frames lost in 2 ranges, 2 damaged frames kept; 7 packets could not be decoded",
        notes[0], "subtitle stream 2 &lt;ass&gt; dropped",
    ]  # fmt: skip
    for nothing in (None, DecodeLosses()):  # not tracked, or a clean decode: no section
        assert "Source</h2>" not in small_report().write(tmp_path / "quiet.html", losses=nothing).read_text()


def test_damaged_losses_round_trip_and_bad_data_is_refused():
    with pytest.raises(ValueError, match="ranges"):
        DecodeLosses.from_dict({"frames_lost": 1, "ranges": [[0.0, 1.0]], "counts": []})
    with pytest.raises(ValueError, match="sum"):
        DecodeLosses.from_dict({"frames_lost": 4, "ranges": [[0.0, 1.0]], "counts": [3]})
    with pytest.raises(TypeError):
        DecodeLosses.from_dict([1, 2])  # type: ignore[arg-type]
    assert DecodeLosses.from_dict(None) == DecodeLosses()


def test_report_of_a_damaged_single_pass_input_records_its_losses(tmp_path):
    from test_damaged import PixelDepth, garble_packets

    clip = make_clip(tmp_path / "in.mp4", (12, 18))
    garble_packets(clip.path, 20, 3)  # frames 20-22, in the second shot
    cfg = PipelineConfig().replace({"media.decode_threads": 1})
    report = ShotReport.for_video(probe(clip.path), cfg)
    result = convert(clip.path, tmp_path / "out.mkv", cfg, estimator=PixelDepth(), on_frame=report.add_frame)
    assert result.losses and result.frames == 27
    data = json.loads(report.write(tmp_path / "report.json", losses=result.losses, notes=result.notes).read_text())
    assert data["frames"] == 27 and data["per_frame"]["index"] == list(range(27))
    # The frames after the gap keep their source times: the report's series jumps over the 3 frames lost.
    assert data["per_frame"]["time"][19:21] == pytest.approx([19 / FPS, 23 / FPS])
    assert data["losses"] == {"frames_lost": 3, "ranges": [[pytest.approx(20 / FPS), pytest.approx(23 / FPS)]],
                              "counts": [3], "packets_failed": 3, "frames_damaged": 0}  # fmt: skip
    assert data["notes"] == result.notes
