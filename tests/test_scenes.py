"""Scene-cut detection: synthetic cuts exactly, flashes and fades ignored, cuts in fast motion found, real clips
against their cut lists."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared_video
from synth import shot_frames, texture

from stereoconv.config import ScenesConfig
from stereoconv.media import decode, probe
from stereoconv.scenes import AdaptiveContentDetector, detect_cuts
from stereoconv.single_pass import detect_scenes


def shots(*lengths: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    for k, n in enumerate(lengths):
        frames += shot_frames(n, h, w, seed=10 + 31 * k)[0]
    return frames


def test_hard_cuts_found_at_the_first_frame_of_each_shot():
    assert detect_cuts(shots(12, 9, 15)) == [12, 21]


def test_every_frame_gets_exactly_one_decision_in_order():
    detector = AdaptiveContentDetector(ScenesConfig(window=3))
    decisions = []
    for pushed, frame in enumerate(shots(10, 10), start=1):
        decisions += detector.push(frame)
        assert len(decisions) == max(0, pushed - detector.lookahead), "decisions must lag by the lookahead only"
    decisions += detector.flush()
    assert [i for i, _ in decisions] == list(range(20))


def test_a_flash_inside_a_shot_is_not_a_cut():
    frames = shots(20)
    frames[9] = np.full_like(frames[9], 255)  # one white frame
    frames[14] = np.clip(frames[14].astype(int) + 120, 0, 255).astype(np.uint8)  # a bright flash
    assert detect_cuts(frames) == []


def test_flashes_of_two_frames_are_not_cuts_at_either_end():
    frames = shots(40)
    frames[10] = frames[11] = np.full_like(frames[10], 255)  # two white frames
    for i in (25, 26):  # two brightened frames
        frames[i] = np.clip(frames[i].astype(int) + 120, 0, 255).astype(np.uint8)
    assert detect_cuts(frames) == []


def test_a_flash_right_after_a_cut_does_not_hide_the_cut():
    frames = shots(12, 20)
    frames[15] = np.full_like(frames[15], 255)
    assert detect_cuts(frames) == [12]


def fade(frames: list[np.ndarray], start: float, stop: float) -> list[np.ndarray]:
    """``frames`` scaled in brightness from ``start`` to ``stop`` (linearly, over the frames)."""
    gains = np.linspace(start, stop, len(frames))
    return [np.clip(f * g, 0, 255).astype(np.uint8) for f, g in zip(frames, gains, strict=True)]


def test_a_fade_through_black_is_not_a_cut():
    a, b = shots(22), shots(1, 22)[1:]
    black = [np.zeros_like(a[0])] * 4
    frames = a[:10] + fade(a[10:22], 0.9, 0.0) + black + fade(b[:12], 0.0, 0.9) + b[12:]
    assert detect_cuts(frames) == []


def panned(n: int, seed: int, step: tuple[int, int] = (8, 2), h: int = 72, w: int = 128) -> list[np.ndarray]:
    """A fast camera pan: ``n`` hxw windows sliding ``step`` (x, y) px a frame over a smooth random picture."""
    big = cv2.GaussianBlur(texture(h + n * step[1], w + n * step[0], seed), (0, 0), 1.5)
    return [big[k * step[1] : k * step[1] + h, k * step[0] : k * step[0] + w] for k in range(n)]


def test_a_fast_pan_is_not_a_cut():
    assert detect_cuts(panned(40, seed=3)) == []


def test_a_cut_between_two_fast_pans_is_found():
    assert detect_cuts(panned(16, seed=1) + panned(16, seed=2, step=(6, 3))) == [16]


def test_cuts_right_after_and_right_before_a_fast_pan_are_found():
    still = shots(14, h=72, w=128)
    assert detect_cuts(panned(16, seed=1) + still + panned(16, seed=2)) == [16, 30]


def test_a_cross_fade_gives_at_most_one_cut():
    a, b = shots(10)[0], shots(1, 10)[-1]
    fade = [((1 - t) * a + t * b).astype(np.uint8) for t in np.linspace(0, 1, 12)]
    frames = [a] * 10 + fade + [b] * 10
    assert len(detect_cuts(frames)) <= 1


def grey_shot(seed: int, n: int, contrast: float, h: int = 72, w: int = 128) -> list[np.ndarray]:
    """A slow pan over smooth grey shapes (mean ~110, luma std ``contrast``) with sensor noise: a street in grey
    daylight. Two seeds are two shots of one palette and one exposure that differ only in their layout."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (h // 8, w // 8)).astype(np.float32)
    lum = cv2.resize(coarse, (w + n, h), interpolation=cv2.INTER_CUBIC)
    lum = 110.0 + contrast * lum / lum.std()
    picture = np.stack([lum * 0.98, lum, lum * 1.03], axis=-1)
    noise = rng.normal(0.0, 1.5, (n, h, w, 1))
    return [np.clip(picture[:, k : k + w] + noise[k] + 0.5, 0, 255).astype(np.uint8) for k in range(n)]


def test_a_cut_between_two_shots_of_one_palette_and_exposure_is_found():
    # Colour alone scores this cut at about 5 (threshold 10): the structure of the picture changes, not its colours.
    assert detect_cuts(grey_shot(1, 20, contrast=12.0) + grey_shot(2, 20, contrast=12.0)) == [20]


def test_a_cut_between_two_low_light_shots_is_found():
    rng = np.random.default_rng(5)
    frames = grey_shot(1, 20, contrast=30.0) + grey_shot(2, 20, contrast=30.0)
    dark = [np.clip(f * 0.2 + rng.normal(0.0, 2.0, f.shape) + 0.5, 0, 255).astype(np.uint8) for f in frames]
    assert detect_cuts(dark) == [20]


def test_a_fade_of_one_shot_is_no_cut_for_the_structure_cue():
    frames = grey_shot(3, 30, contrast=30.0)
    assert detect_cuts(fade(frames[:15], 1.0, 0.1) + fade(frames[15:], 0.1, 1.0)) == []


def test_min_scene_len_drops_cuts_too_close_together():
    frames = shots(10, 3, 10)
    assert detect_cuts(frames, ScenesConfig(min_scene_len=2)) == [10, 13]
    assert detect_cuts(frames, ScenesConfig(min_scene_len=5)) == [10]


def test_disabled_detection_reports_no_cuts():
    assert detect_cuts(shots(5, 5), ScenesConfig(enabled=False)) == []


@pytest.mark.parametrize(
    ("name", "truth"),
    [
        ("goldeneye-vfr-drop3.mp4", [60, 140]),
        ("issue-134-rotate.mp4", [90, 210]),
        # 421 is a real hard cut (a glass, then dice on a board) that the manifest lists as a "weaker change".
        ("issue-195-aspect-ratio.mp4", [70, 170, 301, 421, 484]),
        ("fades.mp4", []),
        ("testvideo.mp4", [30, 180]),
        # A frame counter on three 10-frame blocks of grey, red and green background.
        ("counter.mp4", [10, 20]),
    ],
)
def test_real_clips_match_their_cut_lists(name, truth):
    scenes = detect_scenes(shared_video(name))
    assert len(scenes.cuts) == len(truth), scenes.cuts
    assert all(abs(c - t) <= 1 for c, t in zip(scenes.cuts, truth, strict=True)), scenes.cuts


def test_scenes_command_and_convert_use_one_detector(two_shot_clip):
    frames = [f.rgb for f in decode(probe(two_shot_clip.path))]
    assert detect_scenes(two_shot_clip.path).cuts == detect_cuts(frames) == two_shot_clip.cuts
