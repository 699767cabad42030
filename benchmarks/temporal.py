#!/usr/bin/env python
"""Does stereoconv's temporal smoothing remove flicker without lag, ghosting or bleed across cuts?

Synthetic video with ground-truth depth, run through a simulated monocular depth estimator, then normalized and
smoothed by three methods; each method's output is scored against the truth.

The video (:func:`make_sequence`, seeded): three shots of ``--frames`` frames each (default 40-60, drawn per shot) at
``--width`` x ``--height`` (default 192x128), in a seed-dependent order, joined by hard cuts:

1. ``static``: a fixed camera; a slanted background plane (inverse depth 0.08 at the top row to 0.20 at the bottom),
   a static box at 0.30 and a disc at 0.60 (diameter 30% of the height) that enters from one side and crosses the
   frame at 2.5-4 px/frame, bobbing slightly;
2. ``pan``: the camera translates sideways; a far wall (0.05), four boxes at 0.15-0.25 and three near posts or discs
   at 0.40-0.60; every layer moves across the frame at ``k * inverse depth`` px/frame (k = 6-9, so the near layer
   moves 2.4-5.4 px/frame and the wall 0.3-0.45): parallax; objects enter and leave the frame;
3. ``zoom``: the camera dollies slowly towards a wall (0.08) with three boxes (0.14-0.22) and a disc (0.35) on it;
   a layer at inverse depth ``q`` scales by ``1 / (1 - v q t)`` about the frame centre and its inverse depth grows by
   the same factor (the disc grows 25-40% over the shot, the wall 5-7%).

Depth is relative inverse depth (1/Z, larger = nearer), the convention of the whole project; the truth is exact per
pixel (layers are planes, composited far to near with hard edges). Every layer carries its own smooth random texture
(three octaves of cubic-upsampled noise, luminance std about 28 levels) on a base colour of its own: the background is
a muted colour and the objects' hues lie at least 60 degrees of hue away from it, so the colour-change term of the
filter sees real edges. Camera noise (Gaussian, std 1.5 levels) is added to the RGB frames.

The simulated estimator (:func:`simulate_estimates`) behaves like a monocular network run frame by frame, in network
units (``R`` is the truth's 2-98 percentile range over the shot, ``A`` a random network scale of 5-20 per ``R``)::

    estimate_t = a_t * truth_t + b_t + E_t(x, y) + noise_t(x, y)

- ``a_t = A * exp(u_t)`` and ``b_t = B + A R w_t``: ``u`` and ``w`` are AR(1) processes (memory 0.9, innovations 3%
  per frame, so the scale and offset jitter by about 3% a frame and wander by about 7%): the global flicker of
  relative depth. A new shot starts a new scale and offset.
- ``E_t``: a smooth low-frequency error field, four 2D sinusoids (0.5-2 cycles per frame width, random directions),
  total std 5% of ``A R``, whose phases drift by up to 0.05 rad/frame and whose amplitudes wander slowly (AR(1),
  memory 0.98): a network's shape errors, which change slowly as the view changes.
- ``noise_t``: i.i.d. Gaussian per pixel and frame, std 2% of ``A R``.

All magnitudes are in :class:`EstimatorNoise` (``--noise key=value`` changes one). It also has one term beyond that
formula, off by default: ``object_step`` gives every layer its own offset, an AR(1) process (memory
``object_memory``, 0.5) in fractions of ``A R``, as when a network places each object a little differently every
frame; unlike ``a_t`` and ``b_t`` it moves the frame's percentiles relative to the rest of the map.

Per-frame normalization between percentiles is exactly invariant to ``a_t`` and ``b_t`` (a positive affine map moves
the percentiles with the data): what survives it is the range following the frame's content (a near object entering
or leaving rescales the whole map), the error field and the noise (and the object offsets, if on). A method that holds
the raw range steady over time, as ema-minmax does, removes that pumping but passes the raw scale and offset drift
straight through.

Methods, all on the same estimates, given the true cuts:

1. ``unsmoothed``: each frame on its own, ``normalize(d, *depth_percentiles(d, 2, 98))`` from stereoconv.temporal:
   what the pipeline does per frame without temporal state (fixed percentiles, so the baseline does not move when
   stereoconv's settings are tuned with ``--set``);
2. ``ema-minmax``: iw3's video normalization (nagadomi/nunif, ``iw3/depth_scaler.py`` ``EMAMinMaxScaler``, enabled by
   ``--ema-normalize``, reset at each ``--scene-detect`` boundary by ``BaseDepthModel.minmax_normalize``), mirrored:
   each frame's raw min and max; for the frame ``i`` the min (max) over the window of frames ``i .. i+B-1`` of the
   shot (its ``MinMaxBuffer``, a look-ahead of ``B - 1`` frames); an exponential moving average of those,
   ``m = decay * m + (1 - decay) * window_min``, started at the first window; ``(d - m_min) / (m_max - m_min)``
   clamped to [0, 1]; at the end of a shot the frames still queued are normalized with the last average (its
   ``flush``), or, in a shot shorter than ``B``, with the min and max over the whole shot. Defaults are iw3's CLI
   defaults ``--ema-decay 0.75`` and ``--ema-buffer 30``; ``--ema-buffer 1`` is its older plain EMA;
3. ``stereoconv``: ``stereoconv.temporal.smooth_sequence(estimates, frames, cuts, **settings)``, with the defaults of
   :class:`stereoconv.config.TemporalConfig` unless ``--set key=value`` overrides some.

Scores (:func:`score`), per shot, after ONE least-squares fit ``s = alpha * output + beta`` of the method's output to
the truth over all pixels of all frames of that shot (the scale and offset relative depth cannot know; a per-frame fit
would hide the very flicker measured here), in the truth's units (inverse depth, 1/Z), then averaged over shots:

- ``flicker``: mean ``|(s_t - s_{t-1}) - (truth_t - truth_{t-1})|`` over the pixels whose true depth did not change
  between ``t - 1`` and ``t`` (both in the shot): ``|truth_t - truth_{t-1}|`` at most 2% of the shot's truth range.
  Where the truth is exactly static this is ``|s_t - s_{t-1}|``; the tolerance and the subtracted true change only
  matter in the zoom, where every depth grows slowly (the disc by at most 1% of the range a frame) and a method that
  froze it would otherwise score as flicker-free;
- ``global`` (no target; a diagnostic): the mean over frame pairs of ``|median|`` of the same difference over those
  pixels, i.e. the part of the flicker that moves the whole frame at once (normalization pumping, scale drift);
- ``error``: mean ``|s_t - truth_t|`` over all pixels and frames;
- ``moving``: the same error over the pixels whose true depth changed since the previous frame (more than the
  tolerance): where an object moved in or out, so lag and ghost trails show here;
- ``post_cut``: the error over the first three frames of each shot except the first: bleed of the previous shot.

**Missed cuts** (:func:`bleed`): ``stereoconv`` is run a second time with cut detection off (no cuts given), as when
the detector misses every cut, and its convergence and floating window planned by ``StereoRenderer`` (default
stereo settings, floating window on) in both runs. Reported per seed: the ``post_cut`` depth error of each run, the
convergence error over the first 12 frames after each cut (the run's convergence, mapped to truth units by the run's
per-shot fit, against the 60th percentile of the true inverse depth), the mean difference of the window bands from
the run with detection on, and how often the smoother started a shot by itself (at the cuts, and elsewhere).

Targets, for ``stereoconv`` against ``unsmoothed`` in the same run, on every seed: flicker <= 0.4x, error <= 1.0x,
moving <= 1.1x, post_cut <= 1.1x; and with detection off against on: post-cut depth and convergence error <= 1.5x.
The script prints a table per seed (method x metric, and the other methods' ratios to unsmoothed), a per-kind table
averaged over the seeds, the missed-cut table, and the worst ratio over the seeds per target with PASS or FAIL; the
same numbers, with the commit and hashes of stereoconv's temporal.py and config.py, go to ``--json`` (default
benchmarks/results/temporal.json, git-ignored).

To tune, import it: ``video = make_sequence(seed)``, ``outputs = run_methods(video)["stereoconv"]`` (or your own
list of normalized maps), ``score(outputs, video)``.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import itertools
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by file path (tests do): _common sits next to it
    sys.path.append(str(Path(__file__).resolve().parent))

import cv2
import numpy as np
from _common import add_json_option, failer, machine_facts, source_line, source_state, table, write_json

import stereoconv.config
import stereoconv.temporal
from stereoconv.config import StereoConfig, TemporalConfig
from stereoconv.errors import ConfigError
from stereoconv.parallax import StereoRenderer
from stereoconv.temporal import TemporalSmoother, depth_percentiles, normalize, smooth_sequence

SHOT_KINDS = ("static", "pan", "zoom")
METHODS = ("unsmoothed", "ema-minmax", "stereoconv")
BASELINE = "unsmoothed"
OURS = "stereoconv"
METRICS = ("flicker", "global", "error", "moving", "post_cut")
TARGETS = {"flicker": 0.4, "error": 1.0, "moving": 1.1, "post_cut": 1.1}  # largest allowed ratio to unsmoothed

UNSMOOTHED_PERCENTILES = (2.0, 98.0)
IW3_EMA_DECAY = 0.75  # iw3 --ema-decay default
IW3_EMA_BUFFER = 30  # iw3 --ema-buffer default
CHANGE_TOLERANCE = 0.02  # a pixel's true depth "changed" if it moved by more than this fraction of the shot's range
POST_CUT_FRAMES = 3
EDGE_BAND_PX = 4  # the band around depth edges where the disparity's flicker is measured, px each side
EDGE_BAND_BUDGET = {"max_negative_parallax": 5.0, "max_positive_parallax": 5.0, "screen_width": 0.5}
BLEED_FRAMES = 12  # convergence and window bleed are measured over this many frames after each cut (0.5 s)
BLEED_TARGET = 1.5  # largest allowed ratio of post-cut error, detection off / detection on
RGB_NOISE = 1.5  # camera noise std, 0-255 levels


@dataclass(frozen=True)
class EstimatorNoise:
    """Magnitudes of the simulated estimator's errors; fractions are of ``A R`` (see the module docstring)."""

    drift_memory: float = 0.9  # AR(1) coefficient of the log scale and of the offset
    scale_step: float = 0.03  # innovation std of the log scale per frame
    offset_step: float = 0.03  # innovation std of the offset per frame, fraction of A R
    field_std: float = 0.05  # std of the low-frequency error field, fraction of A R
    field_components: int = 4  # sinusoids in the field
    field_cycles: tuple[float, float] = (0.5, 2.0)  # spatial frequency range, cycles per frame width
    field_phase_speed: float = 0.05  # largest phase drift, rad/frame
    field_memory: float = 0.98  # AR(1) coefficient of each component's relative amplitude
    field_amplitude_step: float = 0.02  # innovation std of each component's relative amplitude per frame
    pixel_noise: float = 0.02  # i.i.d. per-pixel noise std, fraction of A R
    object_memory: float = 0.5  # AR(1) coefficient of each layer's own offset
    object_step: float = 0.0  # innovation std of each layer's own offset per frame, fraction of A R
    resolution: int = 1  # the network sees the frame this many times coarser: soft, upsampled edges (1: sharp)


@dataclass(frozen=True)
class Shot:
    """Frames ``start`` to ``stop - 1`` of a video show one shot of the given kind."""

    kind: str
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass
class SyntheticVideo:
    """A generated sequence: frames, the truth, the simulated estimates, and where the shots are."""

    seed: int
    frames: list[np.ndarray]  # uint8 HxWx3 RGB
    truth: list[np.ndarray]  # float32 HxW relative inverse depth (1/Z), larger = nearer
    estimates: list[np.ndarray]  # float32 HxW simulated network output, network units, larger = nearer
    labels: list[np.ndarray]  # uint8 HxW: which layer of its shot each pixel shows (0: the background)
    shots: list[Shot]

    @property
    def cuts(self) -> list[int]:
        """The first frame of every shot but the first."""
        return [shot.start for shot in self.shots[1:]]


@dataclass(frozen=True)
class Layer:
    """A textured plane. ``placements[t] = (scale, x0, y0)``: texture pixel ``(x, y)`` lands on ``(x0 + scale * x,
    y0 + scale * y)`` in frame ``t``. Its inverse depth at texture row ``y`` is ``scale * (inverse_depth + slope *
    (y - centre row))``."""

    texture: np.ndarray  # uint8 hxwx3
    inverse_depth: float
    placements: np.ndarray  # float64 (frames, 3)
    slope: float = 0.0  # inverse depth per texture row (a slanted plane)
    disc: bool = False  # the ellipse inscribed in the texture instead of the whole rectangle
    background: bool = False  # covers the whole frame (the texture repeats mirrored beyond its edges)


# ------------------------------------------------------------------------------------------------------- scenes


def smooth_texture(rng: np.random.Generator, height: int, width: int, colour: Sequence[float]) -> np.ndarray:
    """Random smooth texture on a base ``colour`` (RGB 0-255): uint8 ``height`` x ``width`` x 3.

    Three octaves (cells of 24, 8 and 3 px, weights 1, 0.5, 0.25) of cubic-upsampled Gaussian noise; mostly luminance
    (std 28 levels) with a little chroma (std 8 levels per channel).
    """
    field = np.zeros((height, width, 4), dtype=np.float32)
    for cell, weight in ((24, 1.0), (8, 0.5), (3, 0.25)):
        coarse = rng.standard_normal((height // cell + 3, width // cell + 3, 4)).astype(np.float32)
        up = cv2.resize(coarse, (coarse.shape[1] * cell, coarse.shape[0] * cell), interpolation=cv2.INTER_CUBIC)
        field += weight * up[cell : cell + height, cell : cell + width]
    field /= field.reshape(-1, 4).std(axis=0) + 1e-6
    rgb = np.asarray(colour, dtype=np.float32) + 28.0 * field[..., :1] + 8.0 * field[..., 1:]
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def palette(rng: np.random.Generator, objects: int) -> list[tuple[float, float, float]]:
    """A muted background colour, then ``objects`` saturated colours at least 60 degrees of hue away from it."""
    hue = rng.uniform()
    colours = [tuple(255 * c for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.25, 0.4), rng.uniform(0.45, 0.6)))]
    offsets = (1 / 6 + (4 / 6) * (np.arange(objects) + rng.uniform(0.2, 0.8, objects)) / objects)[
        rng.permutation(objects)
    ]
    for offset in offsets:
        rgb = colorsys.hsv_to_rgb((hue + offset) % 1.0, rng.uniform(0.55, 0.8), rng.uniform(0.65, 0.85))
        colours.append(tuple(255 * c for c in rgb))
    return colours  # type: ignore[return-value]


def fixed(n: int, scale: float, x0: float, y0: float) -> np.ndarray:
    return np.tile([scale, x0, y0], (n, 1)).astype(np.float64)


def static_shot(rng: np.random.Generator, n: int, height: int, width: int) -> list[Layer]:
    """Fixed camera: slanted background, a static box, a near disc crossing the frame."""
    colours = palette(rng, 2)
    background = Layer(
        smooth_texture(rng, height, width, colours[0]),
        inverse_depth=0.14,
        slope=0.12 / (height - 1),
        placements=fixed(n, 1.0, 0.0, 0.0),
        background=True,
    )
    box_h, box_w = int(rng.uniform(0.3, 0.45) * height), int(rng.uniform(0.15, 0.25) * width)
    box = Layer(
        smooth_texture(rng, box_h, box_w, colours[1]),
        inverse_depth=0.30,
        placements=fixed(n, 1.0, rng.uniform(0.1, 0.9) * (width - box_w), rng.uniform(0.05, 0.3) * height),
    )
    side = int(0.3 * height)
    speed = rng.uniform(2.5, 4.0) * rng.choice((-1.0, 1.0))
    t = np.arange(n)
    x = (-0.5 * side if speed > 0 else width - 0.5 * side) + speed * t
    y = rng.uniform(0.35, 0.55) * height + 4.0 * np.sin(2 * np.pi * t / 25 + rng.uniform(0, 2 * np.pi))
    disc = Layer(
        smooth_texture(rng, side, side, colours[2]),
        inverse_depth=0.60,
        placements=np.stack([np.ones(n), x, y], axis=1),
        disc=True,
    )
    return [background, box, disc]


def pan_shot(rng: np.random.Generator, n: int, height: int, width: int) -> list[Layer]:
    """Sideways camera move: a far wall, four boxes, three near posts or discs; each moves at ``k * inverse depth``."""
    colours = palette(rng, 7)
    k = rng.uniform(6.0, 9.0) * rng.choice((-1.0, 1.0))  # px/frame per unit of inverse depth

    def placements(inverse_depth: float, x0: float, y0: float) -> np.ndarray:
        t = np.arange(n)
        return np.stack([np.ones(n), x0 - k * inverse_depth * t, np.full(n, y0)], axis=1)

    def strip(inverse_depth: float) -> tuple[float, float]:
        """Where objects at this depth must start (frame-0 x range) to be seen during the shot."""
        travel = abs(k) * inverse_depth * n
        return (0.0, width + travel) if k > 0 else (-travel, float(width))

    wall = Layer(
        smooth_texture(rng, height, width + int(abs(k) * 0.05 * n) + 8, colours[0]),
        inverse_depth=0.05,
        placements=placements(0.05, 0.0 if k > 0 else -(abs(k) * 0.05 * n + 8), 0.0),
        background=True,
    )
    layers = [wall]
    for i, (low, high, count) in enumerate(((0.15, 0.25, 4), (0.40, 0.60, 3))):
        for j in range(count):
            inverse_depth = rng.uniform(low, high)
            start, stop = strip(inverse_depth)
            near = i == 1
            w = int(rng.uniform(0.10, 0.15) * width) if near else int(rng.uniform(0.12, 0.25) * width)
            h = int(rng.uniform(0.6, 1.0) * height) if near else int(rng.uniform(0.3, 0.7) * height)
            is_disc = near and rng.uniform() < 0.4
            if is_disc:
                h = w = int(rng.uniform(0.25, 0.35) * height)
            x0 = start + (stop - start) * (j + rng.uniform(0.1, 0.7)) / count - w / 2
            y0 = rng.uniform(0.0, 1.0) * (height - h)
            colour = colours[1 + (j if not near else 4 + j)]
            layers.append(
                Layer(
                    smooth_texture(rng, h, w, colour),
                    inverse_depth=inverse_depth,
                    placements=placements(inverse_depth, x0, y0),
                    disc=is_disc,
                )
            )
    return layers


def zoom_shot(rng: np.random.Generator, n: int, height: int, width: int) -> list[Layer]:
    """Slow dolly towards a wall with three boxes and a disc; each layer scales by ``1 / (1 - v q t)``."""
    colours = palette(rng, 4)
    near = 0.35
    growth = rng.uniform(1.25, 1.4)  # of the disc over the shot
    v = (1 - 1 / growth) / (near * (n - 1))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    t = np.arange(n)

    def placements(inverse_depth: float, x0: float, y0: float) -> np.ndarray:
        scale = 1.0 / (1.0 - v * inverse_depth * t)
        return np.stack([scale, cx + scale * (x0 - cx), cy + scale * (y0 - cy)], axis=1)

    layers = [
        Layer(
            smooth_texture(rng, height, width, colours[0]),
            inverse_depth=0.08,
            placements=placements(0.08, 0.0, 0.0),
            background=True,
        )
    ]
    for j in range(3):
        inverse_depth = rng.uniform(0.14, 0.22)
        w, h = int(rng.uniform(0.12, 0.22) * width), int(rng.uniform(0.25, 0.5) * height)
        x0 = (j + rng.uniform(0.1, 0.6)) / 3 * width - w / 2
        y0 = rng.uniform(0.05, 0.95) * (height - h)
        layers.append(
            Layer(smooth_texture(rng, h, w, colours[1 + j]), inverse_depth, placements(inverse_depth, x0, y0))
        )
    side = int(0.28 * height)
    x0, y0 = cx + rng.uniform(-0.2, 0.2) * width - side / 2, cy + rng.uniform(-0.15, 0.15) * height - side / 2
    layers.append(Layer(smooth_texture(rng, side, side, colours[4]), near, placements(near, x0, y0), disc=True))
    return layers


SHOT_BUILDERS = {"static": static_shot, "pan": pan_shot, "zoom": zoom_shot}


def render(layers: Sequence[Layer], t: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``t`` of a shot: uint8 HxWx3 RGB, float32 HxW true inverse depth and uint8 HxW index of the layer each
    pixel shows; layers composited far to near."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    depth = np.zeros((height, width), dtype=np.float32)
    labels = np.zeros((height, width), dtype=np.uint8)
    for index in sorted(range(len(layers)), key=lambda i: layers[i].inverse_depth):
        layer = layers[index]
        scale, x0, y0 = layer.placements[t]
        tx = ((xs - x0) / scale).astype(np.float32)
        ty = ((ys - y0) / scale).astype(np.float32)
        th, tw = layer.texture.shape[:2]
        if layer.background:
            mask = np.ones((height, width), dtype=bool)
        elif layer.disc:
            mask = ((tx - (tw - 1) / 2) / (tw / 2)) ** 2 + ((ty - (th - 1) / 2) / (th / 2)) ** 2 <= 1.0
        else:
            mask = (tx >= -0.5) & (tx < tw - 0.5) & (ty >= -0.5) & (ty < th - 0.5)
        if not mask.any():
            continue
        sampled = cv2.remap(layer.texture, tx, ty, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        rgb[mask] = sampled[mask]
        depth[mask] = (scale * (layer.inverse_depth + layer.slope * (ty - (th - 1) / 2)))[mask]
        labels[mask] = index
    return rgb, depth, labels


# ---------------------------------------------------------------------------------------------------- estimator


def ar1(rng: np.random.Generator, n: int, memory: float, step: float) -> np.ndarray:
    """A stationary AR(1) series of length ``n``: ``x_t = memory * x_{t-1} + step * N(0, 1)``."""
    x = np.empty(n)
    x[0] = rng.standard_normal() * step / math.sqrt(1 - memory**2)
    for i in range(1, n):
        x[i] = memory * x[i - 1] + step * rng.standard_normal()
    return x


def error_field(rng: np.random.Generator, n: int, height: int, width: int, noise: EstimatorNoise) -> np.ndarray:
    """The low-frequency error field of one shot: float32 (n, H, W), unit-free, std about ``noise.field_std``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    k = noise.field_components
    amplitude = noise.field_std * math.sqrt(2.0 / k)
    out = np.zeros((n, height, width), dtype=np.float32)
    for _ in range(k):
        angle = rng.uniform(0, 2 * np.pi)
        cycles = rng.uniform(*noise.field_cycles)
        kx, ky = 2 * np.pi * cycles * math.cos(angle) / width, 2 * np.pi * cycles * math.sin(angle) / width
        base = kx * xs + ky * ys
        phase = rng.uniform(0, 2 * np.pi) + rng.uniform(-1, 1) * noise.field_phase_speed * np.arange(n)
        relative = 1.0 + ar1(rng, n, noise.field_memory, noise.field_amplitude_step)
        for t in range(n):
            out[t] += (amplitude * relative[t] * np.sin(base + phase[t])).astype(np.float32)
    return out


def simulate_estimates(
    truth: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    shots: Sequence[Shot],
    rng: np.random.Generator,
    noise: EstimatorNoise,
) -> list[np.ndarray]:
    """Per-frame network output for every frame: ``a_t * truth + b_t + E_t + O_t + noise`` (float32 HxW, network
    units); ``O_t`` is each layer's own offset (``labels`` says which layer a pixel shows), zero unless
    ``noise.object_step`` is set."""
    estimates: list[np.ndarray] = []
    height, width = truth[0].shape
    for shot in shots:
        frames = truth[shot.start : shot.stop]
        low, high = np.percentile(np.stack(frames), (2, 98))
        unit = rng.uniform(5.0, 20.0)  # A R: the network's output range for this shot's truth range
        scale = unit / max(high - low, 1e-6)
        a = scale * np.exp(ar1(rng, shot.length, noise.drift_memory, noise.scale_step))
        b = rng.uniform(-0.5, 0.5) * unit + unit * ar1(rng, shot.length, noise.drift_memory, noise.offset_step)
        field = error_field(rng, shot.length, height, width, noise)
        layers = int(max(label.max() for label in labels[shot.start : shot.stop])) + 1
        offsets = np.stack([ar1(rng, shot.length, noise.object_memory, noise.object_step) for _ in range(layers)], 1)
        for i, depth in enumerate(frames):
            pixel = rng.standard_normal((height, width)).astype(np.float32) * np.float32(noise.pixel_noise)
            own = offsets[i].astype(np.float32)[labels[shot.start + i]]
            estimate = np.float32(a[i]) * depth + np.float32(b[i]) + np.float32(unit) * (field[i] + own + pixel)
            if noise.resolution > 1:  # as a network at 1/resolution of the frame, upsampled: edges become ramps
                small = (max(1, width // noise.resolution), max(1, height // noise.resolution))
                estimate = cv2.resize(cv2.resize(estimate, small, interpolation=cv2.INTER_AREA), (width, height),
                                      interpolation=cv2.INTER_CUBIC)  # fmt: skip
            estimates.append(estimate)
    return estimates


def make_sequence(
    seed: int,
    *,
    width: int = 192,
    height: int = 128,
    frames: tuple[int, int] = (40, 60),
    noise: EstimatorNoise | None = None,
) -> SyntheticVideo:
    """Three shots (static, pan, zoom in a seed-dependent order), ``frames[0]``..``frames[1]`` frames each.

    The scenes, the camera noise and the estimator draw from separate streams of ``seed``, so changing ``noise``
    leaves the scenes as they are.
    """
    scene_seq, camera_seq, estimator_seq = np.random.SeedSequence(seed).spawn(3)
    scene_rng, camera_rng = np.random.default_rng(scene_seq), np.random.default_rng(camera_seq)
    order = [SHOT_KINDS[i] for i in scene_rng.permutation(len(SHOT_KINDS))]
    rgb_frames: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    shots: list[Shot] = []
    for kind in order:
        n = int(scene_rng.integers(frames[0], frames[1] + 1))
        layers = SHOT_BUILDERS[kind](scene_rng, n, height, width)
        shots.append(Shot(kind, len(truth), len(truth) + n))
        for t in range(n):
            rgb, depth, label = render(layers, t, height, width)
            noisy = rgb + camera_rng.normal(0.0, RGB_NOISE, rgb.shape)
            rgb_frames.append(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
            truth.append(depth)
            labels.append(label)
    estimator_rng = np.random.default_rng(estimator_seq)
    estimates = simulate_estimates(truth, labels, shots, estimator_rng, noise or EstimatorNoise())
    return SyntheticVideo(seed, rgb_frames, truth, estimates, labels, shots)


# ------------------------------------------------------------------------------------------------------ methods


def shot_ranges(n: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, stop)`` of every shot of an ``n``-frame sequence with the given cuts."""
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < n), n]
    return list(itertools.pairwise(bounds))


def unsmoothed(depths: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every frame normalized on its own between its 2nd and 98th percentiles (stereoconv.temporal's functions)."""
    return [normalize(d, *depth_percentiles(d, *UNSMOOTHED_PERCENTILES)) for d in depths]


def ema_minmax(
    depths: Sequence[np.ndarray], cuts: Sequence[int], *, decay: float = IW3_EMA_DECAY, buffer: int = IW3_EMA_BUFFER
) -> list[np.ndarray]:
    """iw3's ``EMAMinMaxScaler`` (see the module docstring), reset at every cut; float32 HxW in [0, 1]."""
    out: list[np.ndarray] = []
    for start, stop in shot_ranges(len(depths), cuts):
        shot = depths[start:stop]
        lows = np.array([float(d.min()) for d in shot])
        highs = np.array([float(d.max()) for d in shot])
        n = len(shot)
        ranges: list[tuple[float, float]] = []
        if n < buffer:  # never filled: everything is flushed with the min and max of the whole shot
            ranges = [(lows.min(), highs.max())] * n
        else:
            low = high = math.nan
            for i in range(n - buffer + 1):
                window_low, window_high = lows[i : i + buffer].min(), highs[i : i + buffer].max()
                if i == 0:
                    low, high = window_low, window_high
                else:
                    low = decay * low + (1 - decay) * window_low
                    high = decay * high + (1 - decay) * window_high
                ranges.append((low, high))
            ranges += [ranges[-1]] * (buffer - 1)  # flushed with the last average
        for depth, (low, high) in zip(shot, ranges, strict=True):
            span = high - low
            scaled = (depth - np.float32(low)) / np.float32(span) if span > 0 else depth
            out.append(np.clip(scaled, 0.0, 1.0).astype(np.float32))
    return out


def run_methods(
    video: SyntheticVideo,
    settings: dict[str, Any] | None = None,
    *,
    ema_decay: float = IW3_EMA_DECAY,
    ema_buffer: int = IW3_EMA_BUFFER,
    timings: dict[str, float] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Every method's normalized output for ``video``; ``timings``, if given, receives each method's seconds."""
    runs = {
        "unsmoothed": lambda: unsmoothed(video.estimates),
        "ema-minmax": lambda: ema_minmax(video.estimates, video.cuts, decay=ema_decay, buffer=ema_buffer),
        "stereoconv": lambda: smooth_sequence(video.estimates, video.frames, video.cuts, **(settings or {})),
    }
    outputs: dict[str, list[np.ndarray]] = {}
    for name in METHODS:
        started = time.perf_counter()
        outputs[name] = runs[name]()
        if timings is not None:
            timings[name] = time.perf_counter() - started
    return outputs


# ------------------------------------------------------------------------------------------------------ metrics


def fit_to_truth(outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray]) -> tuple[float, float]:
    """Least-squares ``(alpha, beta)`` of ``truth ~ alpha * output + beta`` over all pixels of all the frames."""
    o = np.stack(outputs).astype(np.float64).ravel()
    g = np.stack(truth).astype(np.float64).ravel()
    o_mean, g_mean = o.mean(), g.mean()
    variance = float(np.mean((o - o_mean) ** 2))
    if variance == 0.0:
        return 0.0, float(g_mean)
    alpha = float(np.mean((o - o_mean) * (g - g_mean))) / variance
    return alpha, float(g_mean - alpha * o_mean)


def score_shot(outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray], *, first: bool) -> dict[str, Any]:
    """One shot's metrics (see the module docstring) for its frames' outputs and truths, in truth units."""
    alpha, beta = fit_to_truth(outputs, truth)
    fitted = [alpha * o.astype(np.float64) + beta for o in outputs]
    gt = [g.astype(np.float64) for g in truth]
    tolerance = CHANGE_TOLERANCE * float(np.ptp(np.stack(truth)))
    flicker_sum = moving_sum = 0.0
    flicker_count = moving_count = 0
    global_steps = []
    for t in range(1, len(gt)):
        true_change = gt[t] - gt[t - 1]
        unchanged = np.abs(true_change) <= tolerance
        excess = (fitted[t] - fitted[t - 1] - true_change)[unchanged]
        flicker_sum += float(np.abs(excess).sum())
        flicker_count += excess.size
        if excess.size:
            global_steps.append(abs(float(np.median(excess))))
        moved = np.abs(fitted[t] - gt[t])[~unchanged]
        moving_sum += float(moved.sum())
        moving_count += moved.size
    errors = [float(np.abs(s - g).mean()) for s, g in zip(fitted, gt, strict=True)]
    return {
        "fit": [alpha, beta],
        "flicker": flicker_sum / flicker_count if flicker_count else math.nan,
        "global": float(np.mean(global_steps)) if global_steps else math.nan,
        "error": float(np.mean(errors)),
        "moving": moving_sum / moving_count if moving_count else math.nan,
        "post_cut": math.nan if first else float(np.mean(errors[:POST_CUT_FRAMES])),
        "unchanged_fraction": flicker_count / max(1, (len(gt) - 1) * gt[0].size),
        "moving_fraction": moving_count / max(1, (len(gt) - 1) * gt[0].size),
    }


def mean_over(rows: Sequence[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over the rows that have a finite value (NaN if none does)."""
    values = [row[key] for row in rows if math.isfinite(row[key])]
    return float(np.mean(values)) if values else math.nan


def score(outputs: Sequence[np.ndarray], video: SyntheticVideo) -> dict[str, Any]:
    """A method's scores on ``video``: per shot, the mean over shots, and the mean per shot kind.

    ``outputs``: one float HxW map per frame of ``video`` (larger = nearer, any affine scale).
    """
    if len(outputs) != len(video.truth):
        raise ValueError(f"{len(outputs)} outputs for {len(video.truth)} frames")
    shots = []
    for i, shot in enumerate(video.shots):
        row = score_shot(outputs[shot.start : shot.stop], video.truth[shot.start : shot.stop], first=i == 0)
        shots.append({"kind": shot.kind, "start": shot.start, "frames": shot.length, **row})
    by_kind = {
        kind: {m: mean_over([s for s in shots if s["kind"] == kind], m) for m in METRICS}
        for kind in SHOT_KINDS
        if any(s["kind"] == kind for s in shots)
    }
    return {"mean": {m: mean_over(shots, m) for m in METRICS}, "by_kind": by_kind, "shots": shots}


def ratios(scores: dict[str, dict[str, Any]], part: str = "mean") -> dict[str, dict[str, float]]:
    """Each non-baseline method's metric divided by the baseline's (NaN where either is missing or zero)."""
    base = scores[BASELINE][part]
    out: dict[str, dict[str, float]] = {}
    for name in METHODS:
        if name == BASELINE:
            continue
        mine = scores[name][part]
        out[name] = {
            m: mine[m] / base[m] if math.isfinite(mine[m]) and math.isfinite(base[m]) and base[m] > 0 else math.nan
            for m in METRICS
        }
    return out


def edge_band_flicker(depths: Sequence[np.ndarray], video: SyntheticVideo, *, refine: bool, resolution: int) -> float:
    """Flicker of the stereo plan's per-eye disparity at depth edges, px per frame: the mean ``|d_t - d_{t-1}|`` over
    the pixels within ``EDGE_BAND_PX`` of a true depth edge (neighbours more than ``CHANGE_TOLERANCE`` of the shot's
    range apart) whose true depth did not change, for ``depths`` (a method's normalized maps) planned by
    :class:`~stereoconv.parallax.StereoRenderer` as the pipeline plans them, with the edge refinement on or off.

    The budget is ``EDGE_BAND_BUDGET`` (% of the width each side), so that depth edges span several pixels at this
    small frame width, as they do at 1080p with the default budget; the refinement's window follows ``resolution``."""
    config = StereoConfig(**EDGE_BAND_BUDGET, refine_edges=refine)
    square = np.ones((2 * EDGE_BAND_PX + 1,) * 2, np.uint8)
    total, count = 0.0, 0
    for shot in video.shots:
        truth = np.stack(video.truth[shot.start : shot.stop])
        tolerance = CHANGE_TOLERANCE * float(np.ptp(truth))
        renderer = StereoRenderer(config, lambda height, width: (height // resolution, width // resolution))
        previous = None
        for i, t in enumerate(range(shot.start, shot.stop)):
            frame = video.frames[t]
            plan = renderer.plan(depths[t], cut=i == 0, frame=frame.shape[:2])
            disparity = plan.eye_disparity(frame, *frame.shape[:2])  # what the eyes are rendered from
            if previous is not None:
                edges = np.zeros(truth[i].shape, np.uint8)
                edges[:, 1:] |= np.abs(np.diff(truth[i], axis=1)) > tolerance
                edges[1:] |= np.abs(np.diff(truth[i], axis=0)) > tolerance
                band = (cv2.dilate(edges, square) > 0) & (np.abs(truth[i] - truth[i - 1]) <= tolerance)
                total += float(np.abs(disparity - previous)[band].sum())
                count += int(band.sum())
            previous = disparity
    return total / count if count else math.nan


# ------------------------------------------------------------------------------------------------------ measure


def plan_run(outputs: Sequence[np.ndarray], cuts: Sequence[int]) -> tuple[list[float], list[tuple[float, float]]]:
    """Convergence and floating-window bands per frame of ``outputs`` (normalized depth) from
    :class:`stereoconv.parallax.StereoRenderer` (default stereo settings, floating window on), told of ``cuts``."""
    renderer = StereoRenderer(StereoConfig(floating_window=True))
    cut_set = set(cuts)
    plans = [renderer.plan(depth, cut=i in cut_set) for i, depth in enumerate(outputs)]
    return [plan.convergence for plan in plans], [plan.window for plan in plans]


def bleed(video: SyntheticVideo, settings: dict[str, Any], on: list[np.ndarray], on_score: dict[str, Any]) -> dict:
    """What a missed cut costs: stereoconv run with cut detection on (the true cuts) and off (no cuts at all).

    ``depth``: the ``post_cut`` error (first POST_CUT_FRAMES frames of each shot but the first) of each run.
    ``convergence``: over the first BLEED_FRAMES frames of each shot but the first, the mean ``|alpha c_t + beta -
    P(truth_t)|`` in truth units: ``c_t`` the run's convergence (StereoRenderer, default settings: the 60th
    percentile of normalized depth, smoothed over the shot), mapped by the run's own per-shot fit of depth to the
    truth, against the 60th percentile of the true inverse depth. ``window_px``: the mean ``|band_off - band_on|``
    of the floating-window bands (both edges) over those frames, pixels. ``restarts``: frames the smoother (detection
    off) started a shot by itself, at true cuts and elsewhere; ``false_restarts_on``: the same with detection on, at
    frames that are no cut (a restart inside a shot).
    """
    smoother = TemporalSmoother(TemporalConfig.from_dict(settings))
    off, restarted = [], []
    for depth, rgb in zip(video.estimates, video.frames, strict=True):
        off.append(smoother(depth, rgb))
        restarted.append(smoother.restarted)
    smoother = TemporalSmoother(TemporalConfig.from_dict(settings))
    cut_set = set(video.cuts)
    false_on = 0
    for i, (depth, rgb) in enumerate(zip(video.estimates, video.frames, strict=True)):
        smoother(depth, rgb, cut=i in cut_set)
        false_on += smoother.restarted and i not in cut_set
    off_score = score(off, video)
    runs = {"on": (on, on_score, video.cuts), "off": (off, off_score, [])}
    result: dict[str, Any] = {}
    bands: dict[str, list[tuple[float, float]]] = {}
    for name, (outputs, scored, cuts) in runs.items():
        convergence, bands[name] = plan_run(outputs, cuts)
        errors = []
        for shot, row in zip(video.shots[1:], scored["shots"][1:], strict=True):
            alpha, beta = row["fit"]
            for t in range(shot.start, min(shot.stop, shot.start + BLEED_FRAMES)):
                truth = float(np.percentile(video.truth[t], 60.0))
                errors.append(abs(alpha * convergence[t] + beta - truth))
        result[name] = {"depth": scored["mean"]["post_cut"], "convergence": float(np.mean(errors))}
    window = [
        abs(bands["off"][t][e] - bands["on"][t][e])
        for shot in video.shots[1:]
        for t in range(shot.start, min(shot.stop, shot.start + BLEED_FRAMES))
        for e in (0, 1)
    ]
    result["ratio"] = {m: result["off"][m] / result["on"][m] if result["on"][m] > 0 else math.nan for m in ("depth",
                       "convergence")}  # fmt: skip
    result["window_px"] = float(np.mean(window))
    result["restarts"] = {
        "at_cuts": sum(restarted[c] for c in video.cuts),
        "cuts": len(video.cuts),
        "elsewhere": sum(r for i, r in enumerate(restarted) if i not in cut_set),
    }
    result["false_restarts_on"] = int(false_on)
    return result


def measure_seed(args: argparse.Namespace, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    video = make_sequence(seed, width=args.width, height=args.height, frames=tuple(args.frames), noise=args.noise)
    generated = time.perf_counter() - started
    timings: dict[str, float] = {}
    outputs = run_methods(video, settings, ema_decay=args.ema_decay, ema_buffer=args.ema_buffer, timings=timings)
    scores = {name: score(outputs[name], video) for name in METHODS}
    frames = len(video.truth)
    for name in METHODS:
        scores[name]["ms_per_frame"] = 1000 * timings[name] / frames
    band = {f"refine_{'on' if on else 'off'}": edge_band_flicker(outputs[OURS], video, refine=on,
                                                               resolution=args.noise.resolution)
            for on in (False, True)}  # fmt: skip
    missed = bleed(video, settings, outputs[OURS], scores[OURS])
    return {
        "bleed": missed,
        "seed": seed,
        "edge_band_flicker_px": band,
        "frames": frames,
        "shots": [dataclasses.asdict(s) for s in video.shots],
        "generate_seconds": generated,
        "methods": scores,
        "ratios": ratios(scores),
        "ratios_by_kind": {
            kind: ratios({n: {"mean": scores[n]["by_kind"][kind]} for n in METHODS})
            for kind in scores[BASELINE]["by_kind"]
        },
    }


def kind_means(seeds: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per shot kind and method, each metric averaged over the seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind in SHOT_KINDS:
        out[kind] = {}
        for name in METHODS:
            rows = [s["methods"][name]["by_kind"][kind] for s in seeds if kind in s["methods"][name]["by_kind"]]
            out[kind][name] = {m: mean_over(rows, m) for m in METRICS}
    return out


def target_check(seeds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per target, stereoconv's ratio on every seed, the worst, and whether every seed is within the limit."""
    checks: dict[str, Any] = {}
    for metric, limit in TARGETS.items():
        per_seed = {str(s["seed"]): s["ratios"][OURS][metric] for s in seeds}
        values = list(per_seed.values())
        worst_seed = max(per_seed, key=lambda k: per_seed[k] if math.isfinite(per_seed[k]) else math.inf)
        baseline_worst = max((s["ratios"]["ema-minmax"][metric] for s in seeds), default=math.nan)
        checks[metric] = {
            "limit": limit,
            "per_seed": per_seed,
            "worst": per_seed[worst_seed],
            "worst_seed": int(worst_seed),
            "ema_minmax_worst": baseline_worst,
            "met": all(math.isfinite(v) and v <= limit for v in values),
        }
    for metric in ("depth", "convergence"):
        per_seed = {str(s["seed"]): s["bleed"]["ratio"][metric] for s in seeds}
        worst_seed = max(per_seed, key=lambda k: per_seed[k] if math.isfinite(per_seed[k]) else math.inf)
        checks[f"bleed_{metric}"] = {
            "limit": BLEED_TARGET,
            "per_seed": per_seed,
            "worst": per_seed[worst_seed],
            "worst_seed": int(worst_seed),
            "ema_minmax_worst": math.nan,
            "met": all(math.isfinite(v) and v <= BLEED_TARGET for v in per_seed.values()),
        }
    return {"targets": checks, "met": all(c["met"] for c in checks.values())}


def measure(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    seeds = [measure_seed(args, seed, settings) for seed in args.seeds]
    return {
        "machine": machine_facts(opencv_threads=cv2.getNumThreads()),
        "stereoconv": source_state(Path(stereoconv.temporal.__file__), Path(stereoconv.config.__file__)),
        "settings": settings,
        "temporal_config": dataclasses.asdict(TemporalConfig.from_dict(settings)),
        "ema_minmax": {"decay": args.ema_decay, "buffer": args.ema_buffer},
        "size": [args.width, args.height],
        "frames_per_shot": list(args.frames),
        "estimator_noise": dataclasses.asdict(args.noise),
        "change_tolerance": CHANGE_TOLERANCE,
        "units": "inverse depth (1/Z) of the ground truth, after one scale+offset fit per shot",
        "seeds": seeds,
        "by_kind": kind_means(seeds),
        "target": target_check(seeds),
        "seconds": time.perf_counter() - started,
    }


# ------------------------------------------------------------------------------------------------------- report


def cell(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else "-"


HEADER = ["flicker", "global", "error", "moving", "post-cut"]


def metric_cells(values: dict[str, float], fmt: str = ".5f") -> list[str]:
    return [cell(values[m], fmt) for m in METRICS]


def seed_table(seed: dict[str, Any]) -> str:
    rows = [["method", *HEADER, "ms/frame"]]
    for name in METHODS:
        scores = seed["methods"][name]
        rows.append([name, *metric_cells(scores["mean"]), f"{scores['ms_per_frame']:.2f}"])
    for name, values in seed["ratios"].items():
        rows.append([f"{name} / {BASELINE}", *metric_cells(values, ".3f"), ""])
    return table(rows, [False] + [True] * (len(HEADER) + 1))


def kind_table(report: dict[str, Any]) -> str:
    rows = [["kind", "method", *HEADER]]
    for kind, methods in report["by_kind"].items():
        for name in METHODS:
            rows.append([kind, name, *metric_cells(methods[name])])
        base = methods[BASELINE]
        for name in METHODS:
            if name != BASELINE:
                mine = methods[name]
                ratio = {m: mine[m] / base[m] if base[m] > 0 else math.nan for m in METRICS}
                rows.append([kind, f"{name} / {BASELINE}", *metric_cells(ratio, ".3f")])
    return table(rows, [False, False] + [True] * len(HEADER))


def summary_table(target: dict[str, Any]) -> str:
    rows = [["target", "limit", "stereoconv worst", "seed", "ema-minmax worst", "result"]]
    for metric, check in target["targets"].items():
        name = f"{metric.replace('_', '-')} ratio"
        if metric.startswith("bleed_"):
            name = f"{metric[6:]} post-cut, detection off / on"
        rows.append(
            [
                name,
                f"<= {check['limit']:.2f}",
                cell(check["worst"], ".3f"),
                str(check["worst_seed"]),
                cell(check["ema_minmax_worst"], ".3f"),
                "PASS" if check["met"] else "FAIL",
            ]
        )
    return table(rows, [False, True, True, True, True, False])


def bleed_table(report: dict[str, Any]) -> str:
    rows = [["seed", "depth on", "depth off", "ratio", "convergence on", "convergence off", "ratio", "window px",
             "restarts off (at cuts / elsewhere)", "restarts on, not at cuts"]]  # fmt: skip
    for seed in report["seeds"]:
        b = seed["bleed"]
        rows.append(
            [
                str(seed["seed"]),
                cell(b["on"]["depth"], ".5f"),
                cell(b["off"]["depth"], ".5f"),
                cell(b["ratio"]["depth"], ".3f"),
                cell(b["on"]["convergence"], ".5f"),
                cell(b["off"]["convergence"], ".5f"),
                cell(b["ratio"]["convergence"], ".3f"),
                f"{b['window_px']:.2f}",
                f"{b['restarts']['at_cuts']}/{b['restarts']['cuts']} / {b['restarts']['elsewhere']}",
                str(b["false_restarts_on"]),
            ]
        )
    return table(rows, [False] + [True] * 9)


def print_report(report: dict[str, Any]) -> None:
    print("machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()))
    print(source_line(report["stereoconv"]))
    overrides = ", ".join(f"{k}={v!r}" for k, v in report["settings"].items()) or "none (defaults)"
    print(
        f"stereoconv settings: {overrides}; in effect: "
        + ", ".join(f"{k}={v}" for k, v in report["temporal_config"].items())
    )
    ema = report["ema_minmax"]
    print(f"ema-minmax: decay {ema['decay']}, buffer {ema['buffer']} frames (iw3 defaults 0.75, 30)")
    print(
        f"video: {report['size'][0]}x{report['size'][1]}, {report['frames_per_shot'][0]}-{report['frames_per_shot'][1]}"
        f" frames per shot; scores in {report['units']}; lower is better"
    )
    for seed in report["seeds"]:
        shots = ", ".join(f"{s['kind']} {s['stop'] - s['start']}" for s in seed["shots"])
        print(f"\nseed {seed['seed']}: {seed['frames']} frames ({shots})")
        print(seed_table(seed))
    print(f"\nper shot kind, mean over seeds {', '.join(str(s['seed']) for s in report['seeds'])}:")
    print(kind_table(report))
    print(f"\nflicker of stereoconv's disparity at depth edges (px/frame, within {EDGE_BAND_PX} px of a true edge, "
          f"budget {EDGE_BAND_BUDGET['max_negative_parallax']:g}% + {EDGE_BAND_BUDGET['max_positive_parallax']:g}%; "
          f"estimates at 1/{report['estimator_noise']['resolution']} of the frame):")  # fmt: skip
    rows = [["seed", "refinement off", "refinement on", "on / off"]]
    for seed in report["seeds"]:
        off, on = seed["edge_band_flicker_px"]["refine_off"], seed["edge_band_flicker_px"]["refine_on"]
        rows.append([str(seed["seed"]), cell(off, ".4f"), cell(on, ".4f"), cell(on / off, ".3f")])
    off = float(np.mean([s["edge_band_flicker_px"]["refine_off"] for s in report["seeds"]]))
    on = float(np.mean([s["edge_band_flicker_px"]["refine_on"] for s in report["seeds"]]))
    rows.append(["mean", cell(off, ".4f"), cell(on, ".4f"), cell(on / off, ".3f")])
    print(table(rows, [False, True, True, True]))
    print(f"\nmissed cuts: stereoconv with cut detection on (the true cuts) and off (none); depth: post-cut error "
          f"({POST_CUT_FRAMES} frames), convergence: error over {BLEED_FRAMES} frames after each cut, truth units; "
          "window: |off - on| band width, px; restarts: the smoother starting a shot by itself")  # fmt: skip
    print(bleed_table(report))
    print("\ntargets (stereoconv / unsmoothed, worst over the seeds; bleed: detection off / on):")
    print(summary_table(report["target"]))
    print(("all targets met" if report["target"]["met"] else "targets NOT met") + f" ({report['seconds']:.1f} s)")


# ---------------------------------------------------------------------------------------------------------- CLI


def parse_value(text: str) -> Any:
    """``true``/``false``, an int, a float, or else the string itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--set wants key=value, got {pair!r}")
        settings[key.strip()] = parse_value(value.strip())
    try:
        TemporalConfig.from_dict(settings)
    except ConfigError as exc:
        fail(str(exc))
    return settings


def parse_noise(pairs: Sequence[str]) -> EstimatorNoise:
    """:class:`EstimatorNoise` with the ``key=value`` overrides (floats, or ints for ``field_components``)."""
    fields = {f.name: f for f in dataclasses.fields(EstimatorNoise)}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or key not in fields or key == "field_cycles":
            allowed = ", ".join(name for name in fields if name != "field_cycles")
            fail(f"--noise wants key=value with key one of {allowed}; got {pair!r}")
        try:
            values[key] = int(value) if key in ("field_components", "resolution") else float(value)
        except ValueError:
            fail(f"--noise {key}: {value!r} is not a number")
    noise = dataclasses.replace(EstimatorNoise(), **values)
    if noise.field_components < 1 or not (0 <= noise.drift_memory < 1 and 0 <= noise.object_memory < 1):
        fail("--noise: field_components must be at least 1 and the memories lie in [0, 1)")
    if not 0 <= noise.field_memory < 1:
        fail("--noise: field_memory must lie in [0, 1)")
    if noise.resolution < 1:
        fail("--noise: resolution must be at least 1")
    return noise


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Temporal consistency of depth normalization + smoothing on synthetic video with ground-truth "
        "depth and a simulated per-frame estimator: stereoconv against per-frame normalization and iw3's EMA.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="one synthetic video per seed")
    parser.add_argument("--width", type=int, default=192, help="frame width [px]")
    parser.add_argument("--height", type=int, default=128, help="frame height [px]")
    parser.add_argument("--frames", type=int, nargs=2, default=[40, 60], metavar=("MIN", "MAX"), help="frames per shot")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stereoconv temporal setting (TemporalConfig field) for the stereoconv method; repeatable",
    )
    parser.add_argument(
        "--noise",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one magnitude of the simulated estimator (an EstimatorNoise field); repeatable",
    )
    parser.add_argument("--ema-decay", type=float, default=IW3_EMA_DECAY, help="ema-minmax decay (iw3 --ema-decay)")
    parser.add_argument("--ema-buffer", type=int, default=IW3_EMA_BUFFER, help="ema-minmax window (iw3 --ema-buffer)")
    add_json_option(parser, "temporal")
    args = parser.parse_args(argv)
    if args.width < 32 or args.height < 32:
        parser.error("--width and --height must be at least 32")
    if not 2 <= args.frames[0] <= args.frames[1]:
        parser.error("--frames wants 2 <= MIN <= MAX")
    if not 0.0 <= args.ema_decay < 1.0 or args.ema_buffer < 1:
        parser.error("--ema-decay must lie in [0, 1) and --ema-buffer be at least 1")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct")
    return args


fail = failer("temporal")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.noise = parse_noise(args.noise)
    settings = parse_settings(args.settings)
    report = measure(args, settings)
    print_report(report)
    write_json(args.json, report)
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
