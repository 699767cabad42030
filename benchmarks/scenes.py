#!/usr/bin/env python
"""How well does stereoconv find scene cuts, next to PySceneDetect's ContentDetector and AdaptiveDetector?

Three detectors, each at its default settings, run on the same frames:

1. ``stereoconv``: ``stereoconv.scenes.detect_cuts`` with the settings ``stereoconv scenes`` and ``convert`` use
   (``load_config(--preset).scenes``; the default is the film preset), i.e. the detector ``make_detector`` builds.
2. ``content``: ``scenedetect.ContentDetector()`` (threshold 27, min_scene_len 15, flash filter MERGE).
3. ``adaptive``: ``scenedetect.AdaptiveDetector()`` (adaptive_threshold 3, window_width 2, min_content_val 15,
   min_scene_len 15).

PySceneDetect's detectors are driven frame by frame the way its ``SceneManager`` drives them by default: BGR frames,
auto-downscaled to ``compute_downscale_factor(width)`` (at least 256 px wide) with linear interpolation, then
``post_process`` at the end. stereoconv gets the same frames as RGB and downscales them itself (to 96 px wide).

Inputs (every video is decoded once with ``stereoconv.media.decode`` - upright, as the pipeline sees it - and kept in
memory downscaled to ``--width`` px wide):

- **clips**: the six videos in ``../shared/data/videos/pyscenedetect`` with their cut lists (``CLIPS`` below: the
  manifest's, with issue-195's cut at 421 counted as the real hard cut it is, and counter.mp4's two background-colour
  changes at 10 and 20), and their gradual transitions (fades, one dissolve), measured from the frames' brightness.
- **reels** built from those frames, all 320x180 (each source frame scaled to cover and centre-cropped): hard cuts
  between shots of different clips (and between shots of one clip); cross-fades (linear blends of both shots, both
  still moving) and fades through black; flashes (1-2 white frames, or the shot brightened by +120) inside still and
  moving shots; and fast camera motion, simulated with a 320x180 window over a larger frame (still photos at 800 px
  wide, and moving footage): pans sliding it 20-32 px per frame, a shaky hand-held camera (a random jump of up to
  24x14 px every frame) and zooms of 4% per frame, with hard cuts between two moving shots, right after motion and
  right before it. Cuts inside or next to motion are tagged ``motion`` and counted separately.
- **generated reels** ``gen-00`` .. ``gen-11`` (:class:`Generator`, one seed each), built from the shots of every
  real clip (``SHOTS``: the clips' frames between their known cuts and clear of their fades), each joining about ten
  shots with cuts of every kind, tagged by kind: ``same`` (another shot of the same clip: one palette and exposure),
  ``closeup`` (the same moment reframed 1.5-2.2x closer, or back out), ``other`` (another clip), ``motion`` (into and
  out of a fast pan), ``dark`` (into, between and out of low-light shots: gain 0.12-0.3 and sensor noise); with
  flashes 2-4 frames after a cut and 3-5 before the next, a fade through black and a cross-fade in each.

The clips and the four hand-made reels were seen while the detector was built. The generated reels are split once,
before any tuning, by a seeded draw (``HELD_OUT``): five are the **held-out** part, never looked at while tuning, the
other seven the **tune** part. Each part is reported on its own.

Scoring per source and detector: a detection within 1 frame of a true cut is a true positive (each cut matched at
most once; unmatched cuts are misses). Of the other detections, one within 1 frame of a flash's frames is a false
positive (``flash FP``); within 1 frame of a gradual transition (cross-fade or fade through black), the first one is
ignored - neither right nor wrong - and each further one is a false positive (``fade FP``); any other is a false
positive. Precision, recall and F1 per source, per part (clips, reels, tune, held-out) and overall, micro-averaged
over all cuts; and per kind of cut, the cuts found.
A source with no true cuts and no counted detections has no precision, recall or F1 of its own (``-``).

Targets checked at the end, for stereoconv: on the held-out part F1 >= 0.98 and >= the better PySceneDetect
detector's there; overall F1 >= the better PySceneDetect detector's; no flash FP and no fade FP; every motion cut
found.

With ``--restarts``, also where stereoconv's temporal smoother and convergence tracker start a shot by themselves
when no cut is given (:func:`restart_check`): at the true cuts, at flashes and fades, and elsewhere (unwanted), per
part, with a stand-in depth that follows the picture (no model).

Results go to stdout as a table and to ``--json`` (default benchmarks/results/scenes.json, git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by file path (tests do): _common sits next to it
    sys.path.append(str(Path(__file__).resolve().parent))

import cv2
import numpy as np
from _common import SHARED_DATA, add_json_option, failer, machine_facts, source_line, source_state, table, write_json

import stereoconv.scenes
from stereoconv.config import ScenesConfig, load_config
from stereoconv.errors import StereoconvError
from stereoconv.media import decode, probe
from stereoconv.scenes import detect_cuts

DEFAULT_DATA = SHARED_DATA / "videos" / "pyscenedetect"

TOLERANCE = 1  # frames: a detection this close to a true cut, flash or gradual transition belongs to it
TARGET_F1 = 0.98  # on the held-out part
REEL_SIZE = (320, 180)  # width, height of every reel frame
PAN_WIDTH = 800  # still photos and footage a pan window slides over are kept this wide
REEL_FPS = 25.0

Detector = Callable[[list[np.ndarray], float], list[int]]


@dataclass(frozen=True)
class Clip:
    """A real video: its true cuts and its gradual transitions (first and last frame, inclusive)."""

    name: str
    cuts: tuple[int, ...]
    gradual: tuple[tuple[int, int], ...] = ()


# Gradual transitions measured from mean brightness (see the README): testvideo fades in at 211-240 and 394-423, out
# at 331-360 and 664-693, and dissolves from one photo to the next at 529-558; fades.mp4 is nothing but fades: in
# from black (0-41), out and back in through black at 84 (42-125) and at 167 (126-208), out to black (209-249).
CLIPS = (
    Clip("testvideo.mp4", (30, 180), ((211, 240), (331, 360), (394, 423), (529, 558), (664, 693))),
    Clip("goldeneye-vfr-drop3.mp4", (60, 140)),
    Clip("issue-134-rotate.mp4", (90, 210)),
    # 421 is a real hard cut (a glass, then dice on a board); the manifest calls it a weaker change.
    Clip("issue-195-aspect-ratio.mp4", (70, 170, 301, 421, 484)),
    Clip("fades.mp4", (), ((0, 41), (42, 125), (126, 208), (209, 249))),
    # Three 10-frame blocks on grey, red and green backgrounds (frame #11 and #21 in its 1-based counter).
    Clip("counter.mp4", (10, 20)),
)

# Frames kept PAN_WIDTH wide as well, for the pans: (clip, first, last) inclusive.
PAN_SOURCES = (
    ("testvideo.mp4", 100, 100),  # a leaf on a rock (still photo)
    ("testvideo.mp4", 300, 300),  # a deer
    ("testvideo.mp4", 450, 450),  # autumn leaves and a rock
    ("testvideo.mp4", 600, 600),  # a tyre tread
    ("goldeneye-vfr-drop3.mp4", 70, 100),  # moving footage
    ("issue-195-aspect-ratio.mp4", 180, 210),
)


@dataclass
class Source:
    """Frames with their truth: cuts (frame, kind), gradual transitions and flashes (first, last frame)."""

    name: str
    group: str
    frames: list[np.ndarray]
    fps: float
    cuts: list[tuple[int, str]] = field(default_factory=list)
    gradual: list[tuple[int, int]] = field(default_factory=list)
    flashes: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Decoded:
    """One clip, decoded once: every frame ``--width`` wide, plus the pan sources PAN_WIDTH wide."""

    frames: list[np.ndarray]
    fps: float
    large: dict[int, np.ndarray]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare stereoconv's scene-cut detector with PySceneDetect's ContentDetector and "
        "AdaptiveDetector (default settings) on real clips with known cuts and on reels built from them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the pyscenedetect clips")
    parser.add_argument("--width", type=int, default=320, help="decoded frames are downscaled to this width [px]")
    parser.add_argument("--preset", default=None, help="stereoconv preset the settings come from (default: film)")
    parser.add_argument(
        "--restarts",
        action="store_true",
        help="also count where the temporal smoother and the convergence tracker restart by themselves (no cuts "
        "given) on every source, with a stand-in depth that follows the picture (slow: about 10 ms a frame)",
    )
    add_json_option(parser, "scenes")
    args = parser.parse_args(argv)
    if args.width < REEL_SIZE[0]:
        parser.error(f"--width must be at least {REEL_SIZE[0]} (the reels' width)")
    return args


fail = failer("scenes")


# -------------------------------------------------------------------------------------------------------- data


def resize_to_width(rgb: np.ndarray, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def decode_clips(data: Path, width: int) -> dict[str, Decoded]:
    """Every clip in CLIPS, decoded once."""
    out: dict[str, Decoded] = {}
    for clip in CLIPS:
        path = data / clip.name
        if not path.is_file():
            fail(f"missing clip {path}")
        wanted = {i for name, first, last in PAN_SOURCES if name == clip.name for i in range(first, last + 1)}
        try:
            info = probe(path)
            frames, large = [], {}
            for frame in decode(info):
                frames.append(resize_to_width(frame.rgb, width))
                if frame.index in wanted:
                    large[frame.index] = resize_to_width(frame.rgb, PAN_WIDTH)
        except StereoconvError as exc:
            fail(str(exc))
        out[clip.name] = Decoded(frames, info.fps or REEL_FPS, large)
    return out


def clip_sources(clips: dict[str, Decoded]) -> list[Source]:
    return [
        Source(
            clip.name,
            "clips",
            clips[clip.name].frames,
            clips[clip.name].fps,
            cuts=[(c, "hard") for c in clip.cuts],
            gradual=list(clip.gradual),
        )
        for clip in CLIPS
    ]


# ------------------------------------------------------------------------------------------------------- reels


def cover(rgb: np.ndarray, size: tuple[int, int] = REEL_SIZE) -> np.ndarray:
    """``rgb`` scaled to cover ``size`` (width, height) and centre-cropped to it."""
    width, height = size
    h, w = rgb.shape[:2]
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    scaled = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y : y + height, x : x + width])


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """``(1 - t) a + t b``, rounded, uint8."""
    return np.clip(np.rint((1.0 - t) * a.astype(np.float32) + t * b.astype(np.float32)), 0, 255).astype(np.uint8)


def pan(images: Sequence[np.ndarray], start: tuple[int, int], step: tuple[int, int], n: int) -> list[np.ndarray]:
    """``n`` REEL_SIZE windows, the k-th cut from ``images[k % len]`` at ``start + k * step`` (x, y pixels).

    A still photo (one image) gives a pure camera pan; footage gives a pan over a moving scene.
    """
    width, height = REEL_SIZE
    out = []
    for k in range(n):
        image = images[k % len(images)]
        x, y = start[0] + k * step[0], start[1] + k * step[1]
        if not (0 <= x <= image.shape[1] - width and 0 <= y <= image.shape[0] - height):
            raise ValueError(f"pan window {k} at ({x}, {y}) leaves the {image.shape[1]}x{image.shape[0]} image")
        out.append(np.ascontiguousarray(image[y : y + height, x : x + width]))
    return out


def shake(images: Sequence[np.ndarray], amplitude: tuple[int, int], n: int, seed: int) -> list[np.ndarray]:
    """``n`` REEL_SIZE windows around the centre of ``images[k % len]``, each moved by a random offset of up to
    ``amplitude`` (x, y pixels) independently of the last: a shaky hand-held camera."""
    rng = np.random.default_rng(seed)
    width, height = REEL_SIZE
    out = []
    for k in range(n):
        image = images[k % len(images)]
        x = (image.shape[1] - width) // 2 + int(rng.integers(-amplitude[0], amplitude[0] + 1))
        y = (image.shape[0] - height) // 2 + int(rng.integers(-amplitude[1], amplitude[1] + 1))
        out.append(pan([image], (x, y), (0, 0), 1)[0])
    return out


def zoom(image: np.ndarray, start_width: float, factor: float, n: int) -> list[np.ndarray]:
    """``n`` centred windows of ``image``, ``start_width`` px wide and each ``factor`` times narrower than the last
    (>1 zooms in, <1 out), scaled to REEL_SIZE."""
    width, height = REEL_SIZE
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    out = []
    for k in range(n):
        w = start_width / factor**k
        h = w * height / width
        if w > image.shape[1] or h > image.shape[0]:
            raise ValueError(f"zoom window {k} ({w:.0f} px wide) does not fit the {image.shape[1]} px image")
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        crop = image[y0 : y0 + round(h), x0 : x0 + round(w)]
        out.append(cv2.resize(crop, REEL_SIZE, interpolation=cv2.INTER_AREA if w > width else cv2.INTER_LINEAR))
    return out


class Reel:
    """Builds a Source: shots appended with hard cuts, gradual transitions, flashes; records the truth as it goes."""

    def __init__(self, name: str, clips: dict[str, Decoded]) -> None:
        self.source = Source(name, "reels", [], REEL_FPS)
        self.clips = clips

    def seg(self, clip: str, start: int, stop: int) -> list[np.ndarray]:
        """Frames ``start`` to ``stop - 1`` of ``clip``, each covering REEL_SIZE."""
        frames = self.clips[clip].frames
        if not 0 <= start < stop <= len(frames):
            raise ValueError(f"{clip} has {len(frames)} frames, not {start}-{stop - 1}")
        return [cover(f) for f in frames[start:stop]]

    def large(self, clip: str, start: int, stop: int) -> list[np.ndarray]:
        """Frames ``start`` to ``stop - 1`` of ``clip`` at PAN_WIDTH (they must be in PAN_SOURCES)."""
        return [self.clips[clip].large[i] for i in range(start, stop)]

    @property
    def end(self) -> int:
        return len(self.source.frames)

    def shot(self, frames: Sequence[np.ndarray], kind: str = "hard") -> Reel:
        """Append a shot; unless it is the first, its first frame is a cut of ``kind``."""
        if self.source.frames:
            self.source.cuts.append((self.end, kind))
        self.source.frames.extend(frames)
        return self

    def more(self, frames: Sequence[np.ndarray]) -> Reel:
        """Append frames to the current shot (no cut)."""
        self.source.frames.extend(frames)
        return self

    def cross_fade(self, outgoing: Sequence[np.ndarray], incoming: Sequence[np.ndarray]) -> Reel:
        """Linear dissolve, both shots moving on: frame k is ``outgoing[k]`` blended into ``incoming[k]``."""
        n = len(outgoing)
        if len(incoming) != n:
            raise ValueError("a cross-fade needs as many outgoing as incoming frames")
        start = self.end
        self.source.frames.extend(
            blend(a, b, (k + 1) / (n + 1)) for k, (a, b) in enumerate(zip(outgoing, incoming, strict=True))
        )
        self.source.gradual.append((start, self.end - 1))
        return self

    def through_black(self, outgoing: Sequence[np.ndarray], hold: int, incoming: Sequence[np.ndarray]) -> Reel:
        """Fade ``outgoing`` to black, ``hold`` black frames, fade ``incoming`` in: one gradual transition."""
        start = self.end
        black = np.zeros_like(outgoing[0])
        n, m = len(outgoing), len(incoming)
        self.source.frames.extend(blend(a, black, (k + 1) / (n + 1)) for k, a in enumerate(outgoing))
        self.source.frames.extend(black.copy() for _ in range(hold))
        self.source.frames.extend(blend(black, b, (k + 1) / (m + 1)) for k, b in enumerate(incoming))
        self.source.gradual.append((start, self.end - 1))
        return self

    def flash(self, at: int, frames: Sequence[str]) -> Reel:
        """Turn ``len(frames)`` frames from reel frame ``at`` on into a flash: ``"white"``, ``"bright"`` (+120), or
        ``"half"`` (halfway to white, a flash dying out)."""
        for k, kind in enumerate(frames):
            frame = self.source.frames[at + k]
            if kind == "white":
                self.source.frames[at + k] = np.full_like(frame, 255)
            elif kind == "bright":
                self.source.frames[at + k] = np.clip(frame.astype(np.int16) + 120, 0, 255).astype(np.uint8)
            elif kind == "half":
                self.source.frames[at + k] = blend(frame, np.full_like(frame, 255), 0.5)
            else:
                raise ValueError(f"unknown flash kind {kind!r}")
        self.source.flashes.append((at, at + len(frames) - 1))
        return self


TV, GE, R134, R195 = "testvideo.mp4", "goldeneye-vfr-drop3.mp4", "issue-134-rotate.mp4", "issue-195-aspect-ratio.mp4"


def build_reels(clips: dict[str, Decoded]) -> list[Source]:
    """The four reels; every shot is at least 15 frames (PySceneDetect's default min_scene_len)."""
    hard = Reel("reel-hard-cuts", clips)
    hard.shot(hard.seg(GE, 10, 40)).shot(hard.seg(R195, 180, 215)).shot(hard.seg(R134, 100, 130))
    hard.shot(hard.seg(R195, 310, 340))  # the same clip as two shots ago, another shot of it
    hard.shot(hard.seg(TV, 250, 280)).shot(hard.seg(GE, 70, 100)).shot(hard.seg(R195, 430, 460))
    hard.shot(hard.seg(R134, 215, 240)).shot(hard.seg(R195, 490, 520)).shot(hard.seg(R195, 440, 470))
    hard.shot(hard.seg(GE, 142, 160)).shot(hard.seg(TV, 40, 60))

    gradual = Reel("reel-gradual", clips)
    gradual.shot(gradual.seg(R195, 500, 540))
    gradual.cross_fade(gradual.seg(R195, 540, 556), gradual.seg(GE, 84, 100)).more(gradual.seg(GE, 100, 125))
    gradual.shot(gradual.seg(R134, 100, 130))
    gradual.through_black(gradual.seg(R134, 130, 142), 6, gradual.seg(TV, 250, 262)).more(gradual.seg(TV, 262, 290))
    gradual.shot(gradual.seg(R195, 180, 210))
    gradual.cross_fade(gradual.seg(R195, 210, 230), gradual.seg(R195, 320, 340)).more(gradual.seg(R195, 340, 365))
    gradual.shot(gradual.seg(GE, 10, 35))
    gradual.through_black(gradual.seg(GE, 35, 45), 0, gradual.seg(GE, 45, 55)).more(gradual.seg(GE, 55, 59))
    gradual.shot(gradual.seg(R134, 150, 180))
    gradual.cross_fade(gradual.seg(R134, 180, 192), gradual.seg(TV, 40, 52)).more(gradual.seg(TV, 52, 75))

    flashes = Reel("reel-flashes", clips)
    flashes.shot(flashes.seg(GE, 70, 130)).flash(20, ["white"]).flash(40, ["white", "white"])
    at = flashes.end
    flashes.shot(flashes.seg(R195, 180, 240)).flash(at + 15, ["bright"]).flash(at + 35, ["bright", "bright"])
    at = flashes.end
    flashes.shot(flashes.seg(TV, 40, 90)).flash(at + 25, ["white"])
    at = flashes.end
    flashes.shot(flashes.seg(R134, 100, 160)).flash(at + 20, ["white", "half"]).flash(at + 42, ["bright"])
    at = flashes.end
    flashes.shot(flashes.seg(R195, 320, 360)).flash(at + 18, ["white", "white"])

    # Fast camera motion: pans sliding 20-32 px per frame (a whole frame width in 10-16 frames), shakes, zooms.
    motion = Reel("reel-fast-motion", clips)
    leaf, deer = motion.large(TV, 100, 101), motion.large(TV, 300, 301)
    leaves, tyre = motion.large(TV, 450, 451), motion.large(TV, 600, 601)
    ge, r195 = motion.large(GE, 70, 101), motion.large(R195, 180, 211)
    portrait = [clips[R134].frames[i][:, : REEL_SIZE[0]] for i in range(100, 130)]  # upright, 320 px wide
    motion.shot(pan(leaf, (0, 100), (32, 0), 15))
    motion.shot(pan(tyre, (470, 40), (-30, 8), 16), "motion")  # cut between two pans
    motion.shot(motion.seg(R195, 320, 350), "motion")  # cut right after a pan
    motion.shot(pan(ge, (0, 80), (30, 0), 16), "motion")  # cut right before a pan over moving footage
    motion.shot(pan(portrait, (0, 0), (0, 30), 19), "motion")  # from a horizontal to a vertical pan
    motion.shot(pan(deer, (0, 0), (24, 12), 20), "motion")
    motion.shot(pan(r195, (0, 20), (24, 20), 20), "motion")
    motion.shot(pan(leaves, (460, 270), (-20, -10), 24), "motion")
    motion.shot(motion.seg(GE, 142, 160), "motion")  # right after a pan
    motion.shot(shake(deer, (24, 14), 20, seed=1), "motion")  # right before a shaky hand-held shot
    motion.shot(shake(ge, (24, 14), 20, seed=2), "motion")  # between two shaky shots
    motion.shot(zoom(tyre[0], 760, 1.04, 20), "motion")  # from shaking to a fast zoom in (4% a frame)
    motion.shot(zoom(leaf[0], 340, 1 / 1.04, 20), "motion")  # from zooming in to zooming out
    motion.shot(motion.seg(R195, 440, 460), "motion")  # right after a zoom
    return [hard.source, gradual.source, flashes.source, motion.source]


# ---------------------------------------------------------------------------------------------- generated reels

# The shots of the real clips, (clip, first, last) inclusive: between their cuts and clear of their fades. testvideo's
# four are still photos, each also kept PAN_WIDTH wide (PAN_SOURCES) for sharp close-ups and pans.
SHOTS = (
    (TV, 30, 179), (TV, 241, 330), (TV, 424, 528), (TV, 559, 663),
    (GE, 0, 59), (GE, 60, 139), (GE, 140, 159),
    (R134, 0, 89), (R134, 90, 209), (R134, 210, 239),
    (R195, 0, 69), (R195, 70, 169), (R195, 170, 300), (R195, 301, 420), (R195, 421, 483), (R195, 484, 627),
)  # fmt: skip
STILL_FRAME = {(TV, 30, 179): 100, (TV, 241, 330): 300, (TV, 424, 528): 450, (TV, 559, 663): 600}
GENERATED = 12  # reels gen-00 .. gen-11, reel k built from seed 1300 + k
# Fixed before any tuning: sorted(np.random.default_rng(13).choice(12, 5, replace=False)). These reels are kept out
# of tuning and reported as their own part.
HELD_OUT = (0, 7, 8, 9, 10)
# What each generated reel is made of, shuffled per reel: the event decides how the next shot is joined on.
EVENTS = ("same", "same", "closeup", "other", "other", "pan", "dark", "flash", "fade", "dissolve")


class Generator:
    """Builds one generated reel from the shots of the real clips; every cut's kind is recorded as it is made:

    - ``same``: another shot of the same clip (one palette and exposure: shot/reverse-shot, another angle);
    - ``closeup``: the same moment reframed, a crop 1.5-2.2x closer (or back out to the wide shot);
    - ``other``: a shot of another clip;
    - ``motion``: into a fast pan (16-28 px a frame over a still or over footage), and out of it;
    - ``dark``: into and between low-light shots (gain 0.12-0.3, sensor noise of 2 levels), then back to light.

    Flashes (1-2 frames) sit 2-4 frames after a cut and 3-5 frames before the next; fades through black and
    cross-fades join some shots instead of a cut.
    """

    def __init__(self, index: int, clips: dict[str, Decoded]) -> None:
        self.rng = np.random.default_rng(1300 + index)
        part = "held-out" if index in HELD_OUT else "tune"
        self.reel = Reel(f"gen-{index:02d}", clips)
        self.reel.source.group = part
        self.clips = clips
        self.current = SHOTS[int(self.rng.integers(4, len(SHOTS)))]  # start on footage
        self.gain = 1.0  # < 1: low light
        self.zoomed = False
        self.window: tuple[float, int, int, int, int] | None = None  # the last crop: zoom, x, y, dx, dy
        self.cursor: dict[tuple[str, int, int], int] = {}

    def length(self) -> int:
        return int(self.rng.integers(16, 36))

    def frames(self, shot: tuple[str, int, int], n: int, zoom: float = 1.0, keep: bool = False) -> list[np.ndarray]:
        """``n`` frames of ``shot`` (fewer if it is shorter), continuing where it was last left, framed at ``zoom``
        (``keep``: in the last crop's window, the shot going on)."""
        clip, first, last = shot
        n = min(n, last - first + 1)
        start = self.cursor.get(shot, first + int(self.rng.integers(0, last - first + 2 - n)))
        if keep:  # the shot goes on: never jump back in time (that would be a cut); fewer frames if it ends
            n = min(n, last + 1 - start)
            if n <= 0:
                return []
        elif start + n > last + 1:
            start = first
        self.cursor[shot] = start + n
        if zoom > 1.0 and shot in STILL_FRAME:  # a sharp close-up of the photo, drifting slowly
            image = self.clips[clip].large[STILL_FRAME[shot]]
            return self.crop([image] * n, zoom, drift=True, keep=keep)
        out = self.reel.seg(clip, start, start + n)
        return self.crop(out, zoom, keep=keep) if zoom > 1.0 else out

    def crop(
        self, images: Sequence[np.ndarray], zoom: float, drift: bool = False, keep: bool = False
    ) -> list[np.ndarray]:
        """Each image (covered to the reel's aspect) cropped ``zoom`` times closer at one random centre, scaled to
        REEL_SIZE; with ``drift`` the window moves 0-1 px a frame; ``keep``: the last crop's window goes on."""
        width, height = REEL_SIZE
        h, w = images[0].shape[:2]
        if keep and self.window is not None:
            zoom, x, y, dx, dy = self.window
            cw, ch = min(w, round(w / zoom)), min(h, round(w / zoom * height / width))
        else:
            cw, ch = min(w, round(w / zoom)), min(h, round(w / zoom * height / width))
            x, y = int(self.rng.integers(0, w - cw + 1)), int(self.rng.integers(0, h - ch + 1))
            dx, dy = (int(self.rng.integers(-1, 2)), int(self.rng.integers(-1, 2))) if drift else (0, 0)
        self.window = (zoom, x + len(images) * dx, y + len(images) * dy, dx, dy)
        out = []
        for k, image in enumerate(images):
            xk = min(max(0, x + k * dx), w - cw)
            yk = min(max(0, y + k * dy), h - ch)
            crop = image[yk : yk + ch, xk : xk + cw]
            out.append(cv2.resize(crop, REEL_SIZE, interpolation=cv2.INTER_AREA if cw > width else cv2.INTER_LINEAR))
        return out

    def light(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if self.gain >= 1.0:
            return frames
        noise = self.rng.normal(0.0, 2.0, (len(frames), *frames[0].shape))
        return [np.clip(f * self.gain + n + 0.5, 0, 255).astype(np.uint8) for f, n in zip(frames, noise, strict=True)]

    def other_shot(self, same_clip: bool) -> tuple[str, int, int]:
        choices = [s for s in SHOTS if s != self.current and (s[0] == self.current[0]) == same_clip]
        return choices[int(self.rng.integers(0, len(choices)))]

    def cut_to(self, shot: tuple[str, int, int], kind: str, zoom: float = 1.0) -> int:
        """Append ``shot`` after a hard cut of ``kind``; returns the cut's frame."""
        at = self.reel.end
        self.reel.shot(self.light(self.frames(shot, self.length(), zoom)), kind)
        self.current, self.zoomed = shot, zoom > 1.0
        return at

    def flash_frames(self) -> list[str]:
        kinds = [["white"], ["bright"], ["white", "half"], ["white", "white"], ["bright", "bright"]]
        return kinds[int(self.rng.integers(0, len(kinds)))]

    def build(self) -> Source:
        reel = self.reel
        reel.shot(self.frames(self.current, self.length()))
        events = list(EVENTS)
        self.rng.shuffle(events)
        motion_next = False
        for event in events:
            kind = "motion" if motion_next else None
            motion_next = False
            if event == "same":
                self.cut_to(self.other_shot(same_clip=True), kind or "same")
            elif event == "closeup":
                zoom = 1.0 if self.zoomed else float(self.rng.uniform(1.5, 2.2))
                self.cut_to(self.current, kind or "closeup", zoom)
            elif event == "other":
                self.cut_to(self.other_shot(same_clip=False), kind or "other")
            elif event == "pan":
                self.pan()
                motion_next = True
            elif event == "dark":
                self.gain = float(self.rng.uniform(0.12, 0.3))
                self.cut_to(self.other_shot(same_clip=bool(self.rng.integers(0, 2))), kind or "dark")
                self.cut_to(self.other_shot(same_clip=bool(self.rng.integers(0, 2))), "dark")
                self.gain = 1.0
                self.cut_to(self.other_shot(same_clip=False), "dark")  # back to light
            elif event == "flash":
                at = self.cut_to(self.other_shot(same_clip=bool(self.rng.integers(0, 2))), kind or "other")
                reel.flash(at + int(self.rng.integers(2, 5)), self.flash_frames())
                pattern = self.flash_frames()
                reel.flash(reel.end - int(self.rng.integers(3, 6)) - len(pattern) + 1, pattern)
            elif event in ("fade", "dissolve"):
                if kind:  # not out of a pan: the pan is another picture than its shot's frames
                    self.cut_to(self.other_shot(same_clip=False), kind)
                nxt = self.other_shot(same_clip=bool(self.rng.integers(0, 2)))
                n = int(self.rng.integers(8, 17))
                outgoing = self.frames(self.current, n, self.window[0] if self.zoomed and self.window else 1.0, True)
                outgoing += [reel.source.frames[-1]] * (n - len(outgoing))  # the shot ended: a freeze frame
                incoming = self.frames(nxt, n)
                n = len(incoming)
                outgoing = outgoing[:n]
                if event == "fade":
                    reel.through_black(outgoing, int(self.rng.integers(0, 7)), incoming)
                else:
                    reel.cross_fade(outgoing, incoming)
                self.current, self.zoomed = nxt, False
                reel.more(self.frames(nxt, self.length(), keep=True))
        if motion_next:  # the reel ended on a pan: one more shot, its cut out of the pan
            self.cut_to(self.other_shot(same_clip=False), "motion")
        return reel.source

    def pan(self) -> None:
        """A hard cut into a fast pan over a still photo or over moving footage (PAN_SOURCES)."""
        width, height = REEL_SIZE
        sources = [(TV, 100, 100), (TV, 300, 300), (TV, 450, 450), (TV, 600, 600), (GE, 70, 100), (R195, 180, 210)]
        clip, first, last = sources[int(self.rng.integers(0, len(sources)))]
        images = self.reel.large(clip, first, last + 1)
        h, w = images[0].shape[:2]
        n = int(self.rng.integers(15, 21))
        speed = float(self.rng.uniform(16, 28))
        angle = float(self.rng.uniform(-0.6, 0.6)) + (np.pi if self.rng.integers(0, 2) else 0.0)
        step = (round(speed * np.cos(angle)), round(speed * np.sin(angle) * 0.5))
        n = min(n, (w - width) // max(1, abs(step[0])) + 1)
        if step[1]:
            n = min(n, (h - height) // abs(step[1]) + 1)
        start = (0 if step[0] >= 0 else w - width, (h - height) // 2 - (step[1] * (n - 1)) // 2)
        self.reel.shot(pan(images, start, step, n), "motion")
        self.current = next(s for s in SHOTS if s[0] == clip and s[1] <= first and last <= s[2])
        self.zoomed = False


def generated_reels(clips: dict[str, Decoded]) -> list[Source]:
    """GENERATED reels, each from its own seed; those in HELD_OUT form the held-out part, the others the tune part."""
    return [Generator(k, clips).build() for k in range(GENERATED)]


# --------------------------------------------------------------------------------------------------- detectors


def stereoconv_detector(config: ScenesConfig) -> Detector:
    def run(frames: list[np.ndarray], fps: float) -> list[int]:
        return detect_cuts(frames, config)

    return run


def pyscenedetect_detector(factory: Callable[[], Any]) -> Detector:
    """A PySceneDetect detector driven as its SceneManager drives it with default settings."""
    from scenedetect import FrameTimecode
    from scenedetect.scene_manager import compute_downscale_factor

    def run(frames: list[np.ndarray], fps: float) -> list[int]:
        detector = factory()
        height, width = frames[0].shape[:2]
        factor = compute_downscale_factor(width)
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        cuts = []
        for index, rgb in enumerate(frames):
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR) if factor > 1 else rgb
            cuts += detector.process_frame(FrameTimecode(index, fps), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        cuts += detector.post_process(FrameTimecode(len(frames), fps))
        return sorted({cut.frame_num for cut in cuts})

    return run


def make_detectors(config: ScenesConfig) -> dict[str, Detector]:
    try:
        from scenedetect import AdaptiveDetector, ContentDetector
    except ImportError:
        fail("PySceneDetect is not installed: pip install -e '.[bench]'")
    return {
        "stereoconv": stereoconv_detector(config),
        "content": pyscenedetect_detector(ContentDetector),
        "adaptive": pyscenedetect_detector(AdaptiveDetector),
    }


OURS = "stereoconv"
# clips and reels were seen while the detector was built; tune was tuned on; held-out was not looked at while tuning.
GROUPS = ("clips", "reels", "tune", "held-out", "overall")
BASELINES = ("content", "adaptive")


# ----------------------------------------------------------------------------------------------------- scoring


def near(frame: int, span: tuple[int, int]) -> bool:
    return span[0] - TOLERANCE <= frame <= span[1] + TOLERANCE


def score(detections: Sequence[int], source: Source) -> dict[str, Any]:
    """Counts for one source; see the module docstring for the rules."""
    unmatched = sorted(detections)
    found: dict[int, int] = {}  # true cut -> the detection matched to it
    for cut, _ in source.cuts:
        candidates = [d for d in unmatched if abs(d - cut) <= TOLERANCE]
        if candidates:
            best = min(candidates, key=lambda d: abs(d - cut))
            found[cut] = best
            unmatched.remove(best)
    flash_fp = fade_fp = ignored = 0
    false: list[int] = []
    used: set[int] = set()  # gradual transitions that already had their one ignored detection
    for d in unmatched:
        spans = [i for i, span in enumerate(source.gradual) if near(d, span)]
        if any(near(d, span) for span in source.flashes):
            flash_fp += 1
        elif spans and spans[0] not in used:
            used.add(spans[0])
            ignored += 1
            continue
        elif spans:
            fade_fp += 1
        false.append(d)
    motion = [cut for cut, kind in source.cuts if kind == "motion"]
    return {
        "cuts": len(source.cuts),
        "detections": len(detections),
        "tp": len(found),
        "fp": len(false),
        "fn": len(source.cuts) - len(found),
        "flash_fp": flash_fp,
        "fade_fp": fade_fp,
        "ignored": ignored,
        "motion_cuts": len(motion),
        "motion_found": sum(cut in found for cut in motion),
        "missed": [cut for cut, _ in source.cuts if cut not in found],
        "false": false,
        "kinds": {
            kind: [sum(k == kind for _, k in source.cuts), sum(k == kind and c in found for c, k in source.cuts)]
            for kind in sorted({k for _, k in source.cuts})
        },
    }


COUNTS = ("cuts", "detections", "tp", "fp", "fn", "flash_fp", "fade_fp", "ignored", "motion_cuts", "motion_found")


def rates(counts: dict[str, Any]) -> dict[str, float | None]:
    """Precision, recall, F1; None where undefined (no detections counted, no cuts)."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1}


def total(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    counts = {key: sum(row[key] for row in rows) for key in COUNTS}
    kinds: dict[str, list[int]] = {}
    for row in rows:
        for kind, (cuts, found) in row["kinds"].items():
            kinds[kind] = [kinds.get(kind, [0, 0])[0] + cuts, kinds.get(kind, [0, 0])[1] + found]
    return {**counts, **rates(counts), "kinds": kinds}


# ------------------------------------------------------------------------------------------------------ measure


def measure(args: argparse.Namespace) -> dict[str, Any]:
    try:
        config = load_config(args.preset).scenes
    except StereoconvError as exc:
        fail(str(exc))
    detectors = make_detectors(config)
    import scenedetect  # make_detectors has checked that it is installed

    started = time.perf_counter()
    clips = decode_clips(args.data, args.width)
    decode_seconds = time.perf_counter() - started
    sources = clip_sources(clips) + build_reels(clips) + generated_reels(clips)
    results: dict[str, Any] = {}
    seconds = dict.fromkeys(detectors, 0.0)
    for source in sources:
        entry: dict[str, Any] = {
            "group": source.group,
            "frames": len(source.frames),
            "size": [source.frames[0].shape[1], source.frames[0].shape[0]],
            "cuts": [cut for cut, _ in source.cuts],
            "motion_cuts": [cut for cut, kind in source.cuts if kind == "motion"],
            "gradual": source.gradual,
            "flashes": source.flashes,
            "detectors": {},
        }
        for name, detector in detectors.items():
            t0 = time.perf_counter()
            detections = detector(source.frames, source.fps)
            seconds[name] += time.perf_counter() - t0
            counts = score(detections, source)
            entry["detectors"][name] = {"found": detections, **counts, **rates(counts)}
        results[source.name] = entry
    frames = sum(len(s.frames) for s in sources)
    summary: dict[str, Any] = {}
    for group in GROUPS:
        chosen = [e for e in results.values() if group == "overall" or e["group"] == group]
        summary[group] = {name: total([e["detectors"][name] for e in chosen]) for name in detectors}
    return {
        "machine": machine_facts(scenedetect=scenedetect.__version__),
        "stereoconv": source_state(Path(stereoconv.scenes.__file__)),
        "settings": {
            "stereoconv": {"preset": args.preset or "film", **dataclasses.asdict(config)},
            "content": "ContentDetector() defaults",
            "adaptive": "AdaptiveDetector() defaults",
            "width": args.width,
            "tolerance_frames": TOLERANCE,
        },
        "data": str(args.data),
        "frames": frames,
        "decode_seconds": decode_seconds,
        "ms_per_frame": {name: 1000 * s / frames for name, s in seconds.items()},
        "sources": results,
        "summary": summary,
        "target": target_check(summary),
        "restarts": restart_check(sources) if args.restarts else None,
    }


def restart_check(sources: Sequence[Source]) -> dict[str, dict[str, int]]:
    """Per part: where ``TemporalSmoother`` and ``StereoRenderer``'s convergence tracker start a shot by themselves
    when no cut is given, on every frame of every source, with a stand-in depth (no model): the luma blurred over 4 %
    of the width, plus 1, which follows the picture as a network's depth does. Counted at true cuts (within one
    frame after), at flashes and gradual transitions (within two frames), and elsewhere (inside a shot: unwanted)."""
    from stereoconv.parallax import StereoRenderer
    from stereoconv.temporal import TemporalSmoother

    out: dict[str, dict[str, int]] = {}
    for source in sources:
        cuts = {c + k for c, _ in source.cuts for k in (0, 1)}
        events = {i for a, b in source.flashes + source.gradual for i in range(a - 2, b + 3)}
        part = out.setdefault(source.group, {"cuts": 0, "frames": 0})
        part["cuts"] += len(source.cuts)
        part["frames"] += len(source.frames)
        smoother, renderer = TemporalSmoother(), StereoRenderer()
        for i, rgb in enumerate(source.frames):
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
            depth = cv2.GaussianBlur(gray, (0, 0), 0.04 * rgb.shape[1]) + 1.0
            renderer.plan(smoother(depth, rgb))
            where = "at_cuts" if i in cuts else "at_flashes_fades" if i in events else "elsewhere"
            for name, restarted in (("smoother", smoother.restarted), ("convergence", renderer.convergence.restarted)):
                key = f"{name}_{where}"
                part[key] = part.get(key, 0) + int(restarted)
    return out


def restarts_table(restarts: dict[str, dict[str, int]]) -> str:
    rows = [["part", "frames", "cuts", "stage", "restarts at cuts", "at flashes, fades", "elsewhere"]]
    for part, counts in restarts.items():
        for name in ("smoother", "convergence"):
            found = [str(counts.get(f"{name}_{w}", 0)) for w in ("at_cuts", "at_flashes_fades", "elsewhere")]
            rows.append([part, str(counts["frames"]), str(counts["cuts"]), name, *found])
    return table(rows, [False, True, True, False, True, True, True])


def target_check(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """stereoconv on the held-out part: F1 >= TARGET_F1 and >= the better baseline's there; overall: F1 >= the
    better baseline's, no flash FP, no fade FP, every motion cut found."""
    held, overall = summary["held-out"], summary["overall"]
    ours = overall[OURS]
    best = max(BASELINES, key=lambda name: held[name]["f1"] or 0.0)
    best_overall = max(BASELINES, key=lambda name: overall[name]["f1"] or 0.0)
    checks = {
        "held_out_f1_at_least_target": (held[OURS]["f1"] or 0.0) >= TARGET_F1,
        "held_out_f1_at_least_best_baseline": (held[OURS]["f1"] or 0.0) >= (held[best]["f1"] or 0.0),
        "overall_f1_at_least_best_baseline": (ours["f1"] or 0.0) >= (overall[best_overall]["f1"] or 0.0),
        "no_flash_fp": ours["flash_fp"] == 0,
        "no_fade_fp": ours["fade_fp"] == 0,
        "all_motion_cuts_found": ours["motion_found"] == ours["motion_cuts"],
    }
    return {
        "held_out_f1": held[OURS]["f1"],
        "best_baseline": best,
        "best_baseline_f1": held[best]["f1"],
        "ours_f1": ours["f1"],
        "best_baseline_overall": best_overall,
        "best_baseline_overall_f1": overall[best_overall]["f1"],
        "required_f1": TARGET_F1,
        "checks": checks,
        "met": all(checks.values()),
    }


# ------------------------------------------------------------------------------------------------------ report


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def result_row(source: str, name: str, r: dict[str, Any]) -> list[str]:
    return [
        source,
        name,
        str(r["cuts"]),
        str(r["detections"]),
        str(r["tp"]),
        str(r["fp"]),
        str(r["fn"]),
        fmt(r["precision"]),
        fmt(r["recall"]),
        fmt(r["f1"]),
        str(r["flash_fp"]),
        str(r["fade_fp"]),
        str(r["ignored"]),
        f"{r['motion_found']}/{r['motion_cuts']}" if r["motion_cuts"] else "-",
    ]


def results_table(report: dict[str, Any]) -> str:
    header = ["source", "detector", "cuts", "found", "TP", "FP", "FN", "precision", "recall", "F1"]
    rows = [[*header, "flash FP", "fade FP", "ignored", "motion"]]
    for source, entry in report["sources"].items():
        rows += [result_row(source, name, r) for name, r in entry["detectors"].items()]
    for group, totals in report["summary"].items():
        rows += [result_row(f"[{group}]", name, r) for name, r in totals.items()]
    return table(rows, [False, False, *[True] * 12])


def kinds_table(report: dict[str, Any]) -> str:
    """Cuts found / cuts, per kind of cut, part and detector."""
    kinds = sorted({k for totals in report["summary"].values() for r in totals.values() for k in r["kinds"]})
    rows = [["part", "detector", *kinds]]
    for group, totals in report["summary"].items():
        for name, r in totals.items():
            rows.append([f"[{group}]", name, *(f"{r['kinds'][k][1]}/{r['kinds'][k][0]}" if k in r["kinds"] else "-"
                                              for k in kinds)])  # fmt: skip
    return "cuts found per kind of cut:\n" + table(rows, [False, False, *[True] * len(kinds)])


def print_report(report: dict[str, Any]) -> None:
    print("machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()))
    print(source_line(report["stereoconv"]))
    settings = report["settings"]
    print(
        "settings: stereoconv "
        + ", ".join(f"{k} {v}" for k, v in settings["stereoconv"].items())
        + f"; PySceneDetect {settings['content']}, {settings['adaptive']}; frames {settings['width']} px wide"
    )
    print(
        f"{report['frames']} frames decoded in {report['decode_seconds']:.1f} s; detector time per frame: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in report["ms_per_frame"].items())
    )
    print()
    print(results_table(report))
    print()
    for source, entry in report["sources"].items():
        wrong = {name: (r["missed"], r["false"]) for name, r in entry["detectors"].items() if r["missed"] or r["false"]}
        for name, (missed, false) in wrong.items():
            print(f"{source} {name}: missed {missed or '-'}, false {false or '-'}")
    target = report["target"]
    checks = target["checks"]
    ours = report["summary"]["overall"][OURS]
    print()
    print()
    print(kinds_table(report))
    print()
    if report["restarts"] is not None:
        print("self-restarts, no cuts given (stand-in depth: blurred luma):")
        print(restarts_table(report["restarts"]))
        print()
    print(
        ("target met" if target["met"] else "target NOT met")
        + f": stereoconv held-out F1 {fmt(target['held_out_f1'])} (need >= {target['required_f1']:.2f} and >= best "
        + f"baseline {target['best_baseline']} {fmt(target['best_baseline_f1'])}), overall F1 "
        + f"{fmt(target['ours_f1'])} (best baseline {target['best_baseline_overall']} "
        + f"{fmt(target['best_baseline_overall_f1'])}), flash FP {ours['flash_fp']}, fade FP {ours['fade_fp']}, "
        + f"motion cuts found {ours['motion_found']}/{ours['motion_cuts']}"
        + ("" if target["met"] else "; failing: " + ", ".join(k for k, ok in checks.items() if not ok))
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        fail(f"clip folder not found: {args.data} (pass --data DIR)")
    report = measure(args)
    print_report(report)
    write_json(args.json, report)
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
