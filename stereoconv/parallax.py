"""Parallax from the viewing setup: normalized depth -> per-eye disparity, convergence over time, floating window.

Conventions. Normalized depth ``z`` is in [0, 1], larger = nearer. Screen parallax ``P = x_right - x_left`` is in %
of the screen width, which the frame spans, so it is also % of the frame width: ``P > 0`` (uncrossed) appears behind
the screen, ``P < 0`` (crossed) in front of it, ``P = 0`` on the screen plane. Per-eye disparity ``d`` is in pixels,
larger = nearer; the eyes are rendered symmetrically about the source,

    left  = dibr.synthesize_view(image, d, +1)    # a pixel moves to x + d
    right = dibr.synthesize_view(image, d, -1)    # a pixel moves to x - d

so ``P_px = -2 d`` and ``d = -P / 100 * W / 2`` for a frame ``W`` pixels wide.

Budget (:class:`ParallaxBudget`), from :class:`~stereoconv.config.StereoConfig`:

    neg = max_negative_parallax                                         largest crossed |P|, % of width
    pos = min(max_positive_parallax, 100 * interocular / screen_width)  largest uncrossed P, % of width

Uncrossed parallax wider than the eyes' separation would make the eyes diverge to fuse the point, which they cannot do
comfortably, hence the cap; it depends on the screen (the same file shown larger has larger parallax in metres).

Mapping, for the convergence depth ``c`` (the ``z`` on the screen plane), linear so that depth proportions are kept
(no kink at the screen plane):

    P(z) = k * (c - z),   k = min(pos / c, neg / (1 - c))     (a term whose denominator is 0 is left out)
    d(z) = k * (z - c) * W / 200   pixels

so the farthest point ``P(0) = k c <= pos`` and the nearest ``P(1) = -k (1 - c) >= -neg``, and one of the two equals
its budget. For ``0 < c < 1`` a zero budget on one side gives ``k = 0``: a flat picture.

Convergence (:class:`ConvergenceTracker`) is chosen per frame and smoothed over the shot; the floating window
(:class:`FloatingWindow`) masks frame edges that cut off points in front of the screen. Both reset at scene cuts, and
by themselves when a frame's map stops resembling the last one (:class:`MapChange`: a cut the detector missed).
:class:`StereoRenderer` is the streaming stage the pipeline uses.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .config import StereoConfig, usable_cores
from .dibr import synthesize_view
from .refine import refine_disparity

if TYPE_CHECKING:
    import torch

Synthesizer = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (image, disparity, direction) -> view
_MAX_SAMPLES = 65536  # percentiles are taken on every n-th row and column, at least this many pixels (up to 4x)
_CHANGE_BLOCKS = 256  # maps are compared as the means of about this many square blocks
# 1 - correlation of consecutive maps above this: another picture. Measured in benchmarks/temporal.py on smoothed
# depth: within shots at most 0.13, across cuts at least 0.59.
_RESTART_DECORRELATION = 0.5
# Frames of at least this many pixels have their two eyes rendered at once, on two threads, by the compiled CPU
# renderer (it releases the GIL); below it a thread costs more than it saves.
_PARALLEL_EYES_PIXELS = 1 << 18


@dataclass(frozen=True)
class ParallaxBudget:
    """The largest parallax allowed on each side of the screen plane, in % of the screen width (both >= 0).

    ``negative``: largest crossed parallax (in front of the screen); ``positive``: largest uncrossed parallax (behind
    it), already capped at the interocular distance. The viewing setup is kept to convert parallax to angles and
    perceived distances; those do not change the mapping.
    """

    negative: float
    positive: float
    screen_width: float  # m
    viewing_distance: float  # m
    interocular: float  # m

    @classmethod
    def from_config(cls, config: StereoConfig) -> ParallaxBudget:
        divergence = 100.0 * config.interocular / config.screen_width
        return cls(
            negative=config.max_negative_parallax,
            positive=min(config.max_positive_parallax, divergence),
            screen_width=config.screen_width,
            viewing_distance=config.viewing_distance,
            interocular=config.interocular,
        )

    def metres(self, parallax: float) -> float:
        """Parallax in % of the screen width as metres on the screen."""
        return parallax / 100.0 * self.screen_width

    def angle(self, parallax: float) -> float:
        """Angular disparity in degrees of a point with this parallax (% of width): the difference between the eyes'
        vergence angle on the screen and on the point, ``2 atan(e / 2V) - 2 atan((e - p) / 2V)`` with ``p`` the
        parallax in metres, ``e`` the interocular distance and ``V`` the viewing distance; positive behind the
        screen. About ``p / V`` radians; comfort guidelines keep it within about 1 degree."""
        e, v = self.interocular, self.viewing_distance
        return math.degrees(2 * math.atan(e / (2 * v)) - 2 * math.atan((e - self.metres(parallax)) / (2 * v)))

    def distance(self, parallax: float) -> float:
        """Perceived distance in metres of a point with this parallax (% of width), by similar triangles:
        ``V * e / (e - p)``; infinite when ``p`` reaches the interocular distance."""
        gap = self.interocular - self.metres(parallax)
        return self.viewing_distance * self.interocular / gap if gap > 0 else math.inf


def parallax_scale(convergence: float, budget: ParallaxBudget) -> float:
    """``k`` in ``P(z) = k * (c - z)``: % of width per unit of normalized depth, the largest that keeps ``P`` within
    the budget for every ``z`` in [0, 1] around ``c = convergence``."""
    if not 0.0 <= convergence <= 1.0:
        raise ValueError(f"convergence must be a normalized depth in [0, 1], got {convergence}")
    limits = []
    if convergence > 0.0:
        limits.append(budget.positive / convergence)
    if convergence < 1.0:
        limits.append(budget.negative / (1.0 - convergence))
    return min(limits)


def depth_to_disparity(
    depth: np.ndarray, convergence: float, budget: ParallaxBudget, width: int | None = None
) -> np.ndarray:
    """Per-eye disparity ``d = k * (z - c) * W / 200`` in pixels (float32 HxW, larger = nearer) for normalized depth
    ``z`` (HxW in [0, 1], larger = nearer) with ``c = convergence`` on the screen plane; ``W`` is the frame width
    (``width``; None: the depth map's own, when it is at the frame's size) and ``k`` is :func:`parallax_scale`. The
    screen parallax is ``-2 d`` pixels of the frame."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    width = depth.shape[1] if width is None else width
    out = np.subtract(depth, np.float32(convergence), dtype=np.float32)
    out *= disparity_scale(convergence, budget, width)
    return out


def disparity_scale(convergence: float, budget: ParallaxBudget, width: int) -> np.float32:
    """The float32 factor of :func:`depth_to_disparity`: pixels of per-eye disparity per unit of ``z - c`` for a
    frame ``width`` pixels wide, ``k * W / 200``."""
    return np.float32(parallax_scale(convergence, budget) * width / 200.0)


# ------------------------------------------------------------------------------------------------------ convergence


class MapChange:
    """Notices a new picture in a stream of maps (normalized depth or disparity, HxW), as at a cut the detector
    missed. Called with each map (``change(values)``), it returns

    - ``"new"`` when ``values`` correlates too little with the previous map (``1 - correlation > 0.5``, on the means
      of about 256 square blocks, at the best of the shifts of up to one block, so that a fast pan does not count)
      while the two maps before that did correlate: most of the layout changed at once, after a stream that was one
      picture going on;
    - ``"back"`` when, within two frames after a ``"new"``, the map from before it comes back: that was a blip (a
      flash), and what was running before it should go on;
    - ``"same"`` otherwise.

    Correlation ignores scale and offset, so a convergence or budget change within a shot does not count; a flat map
    (no spread) never does, and neither does a stream that never held still (each map unlike the last).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None
        self._coherent = False  # the last two maps correlated
        self._before: np.ndarray | None = None  # the map before the last "new", kept for two frames
        self._age = 0

    @staticmethod
    def _differs(a: np.ndarray, b: np.ndarray) -> bool:
        """True if block grids ``a`` and ``b`` (2D) correlate too little at every shift of up to one block (a fast
        pan or shake moves the picture that far in a frame); a flat grid never differs."""
        if a.shape != b.shape:
            return False
        rows, cols = a.shape
        shifts = (-1, 0, 1) if rows >= 4 and cols >= 4 else (0,)
        best = -1.0
        for dy in shifts:
            for dx in shifts:
                x = a[max(0, dy) : rows + min(0, dy), max(0, dx) : cols + min(0, dx)].ravel()
                y = b[max(0, -dy) : rows + min(0, -dy), max(0, -dx) : cols + min(0, -dx)].ravel()
                x, y = x - x.mean(), y - y.mean()
                norm = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
                if norm <= 1e-12:
                    return False
                best = max(best, float(np.dot(x, y)) / norm)
        return 1.0 - best > _RESTART_DECORRELATION

    def __call__(self, values: np.ndarray) -> str:
        return self.decide(block_means(values))

    def decide(self, sample: np.ndarray) -> str:
        """The call on the map's :func:`block_means` (``sample``, float64, as a map on any device brings them to
        the host): the state machine itself."""
        previous, self._previous = self._previous, sample
        if self._before is not None:
            self._age += 1
            if self._age > 2:
                self._before = None
        if previous is None or not self._differs(sample, previous):
            self._coherent = previous is not None and previous.shape == sample.shape
            return "same"
        coherent, self._coherent = self._coherent, False
        if self._before is not None and not self._differs(sample, self._before):
            self._before = None
            self._coherent = True
            return "back"
        if coherent:
            self._before, self._age = previous, 0
            return "new"
        return "same"


def block_grid(height: int, width: int) -> tuple[int, int, int]:
    """How :class:`MapChange` divides a ``height`` x ``width`` map: ``(side, rows, cols)``, ``rows`` x ``cols``
    square blocks of ``side`` pixels (about 256 of them) from the top left corner; the remainder is left out."""
    side = max(1, int(np.sqrt(height * width / _CHANGE_BLOCKS)))
    return side, height // side, width // side


def block_means(values: np.ndarray) -> np.ndarray:
    """The means (float64, rows x cols) of the :func:`block_grid` blocks of a map (HxW)."""
    side, rows, cols = block_grid(*values.shape)
    blocks = values[: rows * side, : cols * side].reshape(rows, side, cols, side)
    return blocks.mean(axis=(1, 3), dtype=np.float64)


def _sample(depth: np.ndarray) -> np.ndarray:
    """An even subsample of 65536 to 262144 pixels, all of a smaller map (a strided view; slicing only, so that a
    torch tensor gets the same pixels)."""
    step = max(1, int(np.sqrt(depth.shape[0] * depth.shape[1] / _MAX_SAMPLES)))
    return depth[::step, ::step]


def convergence_sample(depth: np.ndarray, mode: str) -> np.ndarray:
    """The pixels :func:`convergence_depth` ranks for ``mode`` (a view of ``depth``: numpy or torch alike): an even
    subsample of the frame (``"percentile"``) or of its central region (``"subject"``)."""
    if depth.ndim != 2 or not depth.shape[0] * depth.shape[1]:
        raise ValueError(f"depth must be a non-empty HxW map, got shape {tuple(depth.shape)}")
    if mode == "percentile":
        return _sample(depth)
    if mode == "subject":
        height, width = depth.shape
        return _sample(depth[height // 4 : height - height // 4, width // 4 : width - width // 4])
    raise ValueError(f"unknown convergence mode {mode!r}: choose one of percentile, subject")


def convergence_depth(depth: np.ndarray, mode: str = "percentile", percentile: float = 60.0) -> float:
    """The normalized depth one frame would put on the screen plane, before smoothing over time.

    ``depth``: normalized depth, HxW in [0, 1], larger = nearer. ``mode``:

    - ``"percentile"``: the ``percentile`` (%) of the frame's depth, so that share of the pixels lies behind the
      screen and the rest in front;
    - ``"subject"``: the median depth of the central region, the middle half of the rows and of the columns (a
      quarter of the frame), where the subject of a shot usually is. The median ignores a minority of other pixels
      there, so the subject lands on the screen plane when it fills most of that region.
    """
    sample = convergence_sample(depth, mode)
    if mode == "percentile":
        return float(np.percentile(sample, percentile))
    return float(np.median(sample))


class ConvergenceTracker:
    """Streaming convergence: :func:`convergence_depth` per frame, smoothed over the shot, reset at cuts.

    Call once per frame in decode order: ``tracker(depth, cut)`` with normalized depth (float32 HxW in [0, 1], larger =
    nearer) and ``cut`` True on the first frame of a shot. Returns the convergence depth ``c``:
    ``c = s * c_previous + (1 - s) * convergence_depth(depth)`` with ``s = convergence_smoothing``; the first frame of
    a shot (and of a new frame size) uses its own value, so nothing before a cut affects what follows it. A frame
    whose depth no longer resembles the last one (:class:`MapChange`) starts a shot too (``restarted`` is then True),
    so a cut the detector missed does not drag the old shot's convergence into the new one; if the picture from
    before comes back within two frames (a flash), the value from before goes on.
    """

    def __init__(self, config: StereoConfig | None = None) -> None:
        self.config = config or StereoConfig()
        self._change = MapChange()
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next frame starts a shot."""
        self._value: float | None = None
        self._saved: float | None = None  # the value before the last restart, in case that was a blip
        self._shape: tuple[int, ...] | None = None
        self._change.reset()
        self.restarted = False

    def measure(self, depth: np.ndarray) -> tuple[np.ndarray, float]:
        """What the state machine reads of a frame: its :func:`block_means` (for :class:`MapChange`) and its
        :func:`convergence_depth`. The plan on a torch device measures there (``device_plan``)."""
        cfg = self.config
        return block_means(depth), convergence_depth(depth, cfg.convergence, cfg.convergence_percentile)

    def __call__(self, depth: np.ndarray, cut: bool = False) -> float:
        cfg = self.config
        shape = tuple(depth.shape)
        if cut or self._shape != shape:
            self.reset()
        blocks, value = self.measure(depth)
        change = self._change.decide(blocks)
        self.restarted = change == "new"
        if change == "new":
            self._saved, self._value = self._value, None
        elif change == "back":  # the frames since the restart were a blip: the shot before it goes on
            self._value = self._saved
        if self._value is not None:
            value = cfg.convergence_smoothing * self._value + (1.0 - cfg.convergence_smoothing) * value
        self._value, self._shape = value, shape
        return value


# -------------------------------------------------------------------------------------------------- floating window


def window_violations(disparity: np.ndarray, column: float = 1.0) -> tuple[float, float]:
    """How far crossed parallax reaches into each frame edge: ``(left, right)`` in pixels, 0 where it does not.

    ``disparity``: per-eye disparity, float32 HxW in pixels of the frame, larger = nearer, on a grid whose columns
    are ``column`` frame pixels wide (1: the frame's own; the plan's working grid is coarser). A pixel at column
    ``x`` with ``d > 0`` (in front of the screen) is drawn at ``x - d`` in the right eye and ``x + d`` in the left
    one. Near the left edge (``x - d < -0.5``: its centre leaves the frame) the right eye loses it while the left eye
    still shows it, up to ``2 d`` pixels in from the edge; the brain reads the edge as in front of the point and the
    point as cut off by something behind it, a window violation. ``left`` is the largest crossed parallax ``2 d``
    among such pixels at the left edge, ``right`` likewise at the right edge (``x + d > W - 0.5``, lost by the left
    eye).
    """
    width = disparity.shape[1]
    reach = float(disparity.max()) if disparity.size else 0.0
    if not reach > 0.5:
        return 0.0, 0.0
    strip = min(width, math.ceil(reach / column))  # only pixels closer to an edge than their own disparity can leave
    # The distance from each column's centre to the edge, in frame pixels.
    inset = (np.arange(strip, dtype=np.float32) + np.float32(0.5)) * np.float32(column)
    left, right = disparity[:, :strip], disparity[:, width - strip :][:, ::-1]
    bands = []
    for edge in (left, right):
        cut_off = edge > inset
        bands.append(2.0 * float(edge[cut_off].max()) if cut_off.any() else 0.0)
    return bands[0], bands[1]


class FloatingWindow:
    """Streaming floating window: black band widths (px) for each frame edge, smoothed over the shot, reset at cuts.

    ``window(disparity, cut)`` returns ``(left, right)``: the band on the LEFT edge of the LEFT eye and on the RIGHT
    edge of the RIGHT eye (see :func:`render_views`). A band widens at once to the frame's
    :func:`window_violations` (a band narrower than the violation would show it) and narrows smoothly,
    ``band = max(now, s * band_previous + (1 - s) * now)``, so a window does not jump away when an object leaves the
    edge. The first frame of a shot uses its own widths, and so does a frame whose disparity no longer resembles the
    last one (:class:`MapChange`, a cut the detector missed; ``restarted`` is then True), unless the picture from
    before comes back within two frames.
    """

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self._change = MapChange()
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next frame starts a shot."""
        self._bands: tuple[float, float] | None = None
        self._saved: tuple[float, float] | None = None  # the bands before the last restart, in case that was a blip
        self._shape: tuple[int, ...] | None = None
        self._change.reset()
        self.restarted = False

    def measure(self, disparity: np.ndarray, column: float) -> tuple[np.ndarray, tuple[float, float]]:
        """What the state machine reads of a frame: its :func:`block_means` (for :class:`MapChange`) and its
        :func:`window_violations`. The plan on a torch device measures there (``device_plan``)."""
        return block_means(disparity), window_violations(disparity, column)

    def __call__(self, disparity: np.ndarray, cut: bool = False, column: float = 1.0) -> tuple[float, float]:
        """``disparity`` and ``column`` as for :func:`window_violations`."""
        shape = tuple(disparity.shape)
        if cut or self._shape != shape:
            self.reset()
        blocks, now = self.measure(disparity, column)
        change = self._change.decide(blocks)
        self.restarted = change == "new"
        if change == "new":
            self._saved, self._bands = self._bands, None
        elif change == "back":
            self._bands = self._saved
        if self._bands is not None:
            s = self.smoothing
            now = (max(now[0], s * self._bands[0] + (1 - s) * now[0]),
                   max(now[1], s * self._bands[1] + (1 - s) * now[1]))  # fmt: skip
        self._bands, self._shape = now, shape
        return now


# ------------------------------------------------------------------------------------------------------- rendering


def render_views(
    image: np.ndarray,
    disparity: np.ndarray,
    window: tuple[float, float] = (0.0, 0.0),
    synthesize: Synthesizer = synthesize_view,
) -> tuple[np.ndarray, np.ndarray]:
    """Left and right views (new uint8 HxWx3 arrays) of ``image`` (uint8 HxWx3) for per-eye ``disparity`` (float32
    HxW, pixels, larger = nearer), with optional floating-window bands ``window = (left, right)`` in pixels.
    ``synthesize`` renders one eye (:func:`~stereoconv.dibr.synthesize_view`, or the torch path through
    :func:`~stereoconv.dibr.torch_synthesizer`).

    Why those edges: a point in front of the screen at the left frame edge is shifted right in the left eye and left
    in the right eye, so the right eye loses it off the edge while the left eye shows a strip of it (and, beside it,
    the hole filled at the edge) that the right eye has no counterpart for. Blacking out that strip in the LEFT eye
    leaves both eyes showing the same content, and the band's inner edge, seen by the left eye only ``2 d`` pixels
    further right than the frame edge is seen by the right eye, has crossed parallax itself: the window edge floats
    in front of the screen with the point. At the right edge it is the mirror image: the RIGHT eye is masked.

        left frame edge, point P with d = 2 (P at x = 0..3 in the source)
        source:  |PPPP....      left eye: |xxPPPP..   (x: filled hole, P moved right)   mask: |####PP..
                                right eye:|PP......   (P moved left, half of it lost)         |PP......
    """
    if not np.any(disparity):  # flat: both eyes see the source (as new arrays, never the input itself)
        left, right = image.copy(), image.copy()
    else:
        left, right = _both_eyes(image, disparity, synthesize)
    width = image.shape[1]
    # Halves round up, as the warp rounds its targets.
    band_left, band_right = (min(width, math.floor(b + 0.5)) for b in window)
    if band_left > 0:
        left[:, :band_left] = 0
    if band_right > 0:
        right[:, width - band_right :] = 0
    return left, right


def _both_eyes(image: np.ndarray, disparity: np.ndarray, synthesize: Synthesizer) -> tuple[np.ndarray, np.ndarray]:
    """``synthesize`` for direction +1 and -1. The compiled CPU renderer draws the left eye on a thread of its own
    while this one draws the right, on a machine with a core to spare and a frame worth it: a frame's latency halves
    (what preview and a single render worker see). A thread per call rather than a pool: nothing is left behind that
    a forked process would inherit without its thread."""
    if (
        synthesize is not synthesize_view
        or image.shape[0] * image.shape[1] < _PARALLEL_EYES_PIXELS
        or usable_cores() < 2
    ):
        return synthesize(image, disparity, +1), synthesize(image, disparity, -1)
    views: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def left_eye() -> None:
        try:
            views[+1] = synthesize(image, disparity, +1)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=left_eye, name="stereoconv-left-eye", daemon=True)
    thread.start()
    try:
        views[-1] = synthesize(image, disparity, -1)
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return views[+1], views[-1]


@dataclass(frozen=True)
class EdgeRefinement:
    """How a plan's disparity gets its depth edges back where the eyes are rendered
    (:func:`~stereoconv.refine.refine_disparity`): ``split`` and ``thin`` as there, ``source`` the (height, width)
    of the depth map as its model delivered it (its own grid: how far the upsampling blurred)."""

    split: float
    thin: bool
    source: tuple[int, int]

    def scale(self, height: int, width: int) -> float:
        """How much the depth is magnified at ``height`` x ``width``: the refinement's ``scale``."""
        return max(height / self.source[0], width / self.source[1])


@dataclass(frozen=True)
class StereoPlan:
    """What one frame's two views are rendered from.

    ``disparity``: the per-eye disparity, float32, larger = nearer, in pixels of the frame, on the grid of the depth
    it came from (the working resolution: about the model's own, never finer than the frame); :meth:`at` brings it to
    any size. A numpy array, or a torch tensor on the device it was planned on
    (:class:`~stereoconv.device_plan.DeviceStereoRenderer`). ``frame``: the frame's (height, width).
    ``convergence``: the normalized depth on the screen plane. ``window``: the floating-window band widths in frame
    pixels (left edge of the left eye, right edge of the right eye). ``edges``: how depth edges are refined where the
    eyes are rendered (None: not refined).
    """

    disparity: np.ndarray | torch.Tensor
    convergence: float
    window: tuple[float, float]
    frame: tuple[int, int] | None = None
    edges: EdgeRefinement | None = None

    def at(self, height: int, width: int) -> np.ndarray:
        """The disparity at ``height`` x ``width`` in that size's pixels (bilinear, values scaled with the width;
        not refined): float32 HxW, a new array on the host (a plan's disparity on a torch device is brought here)."""
        disparity = self.disparity
        if not isinstance(disparity, np.ndarray):  # a torch tensor
            disparity = disparity.detach().cpu().numpy()
        frame_width = self.frame[1] if self.frame is not None else disparity.shape[1]
        if disparity.shape != (height, width):
            disparity = cv2.resize(disparity, (width, height), interpolation=cv2.INTER_LINEAR)
        else:
            disparity = disparity.copy()
        if width != frame_width:
            disparity *= np.float32(width / frame_width)
        return disparity

    def eye_disparity(self, guide: np.ndarray | None, height: int, width: int) -> np.ndarray:
        """The disparity the eyes are rendered from at ``height`` x ``width``: :meth:`at`, then the edges refined
        against ``guide`` (the frame at that size, uint8 HxWx3; needed when ``edges`` is set)."""
        disparity = self.at(height, width)
        if self.edges is None:
            return disparity
        if guide is None or guide.shape[:2] != (height, width):
            raise ValueError(f"refining edges at {height}x{width} needs the frame at that size as its guide")
        edges = self.edges
        return refine_disparity(guide, disparity, scale=edges.scale(height, width), split=edges.split,
                                thin=edges.thin)  # fmt: skip


def render_plan(
    image: np.ndarray,
    plan: StereoPlan,
    size: tuple[int, int] | None = None,
    guide: np.ndarray | None = None,
    synthesize: Synthesizer = synthesize_view,
) -> tuple[np.ndarray, np.ndarray]:
    """Left and right views of ``image`` (uint8 HxWx3, or uint16 from a deep source) as ``plan`` says, each rendered
    at ``size`` = (height, width) (None: the frame's): a half layout's eyes are rendered at the size they are packed
    at, not rendered full and then squeezed. The frame (and ``guide``, the uint8 frame the edges are refined against;
    None: ``image`` itself) are area-resampled to that size, the plan's disparity brought to it (:meth:`StereoPlan.
    eye_disparity`), and the window bands scaled with the width."""
    height, width = image.shape[:2]
    eye_height, eye_width = size if size is not None else (height, width)
    guide = image if guide is None else guide
    if (eye_height, eye_width) != (height, width):
        shrink = eye_height <= height and eye_width <= width
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        resized = cv2.resize(image, (eye_width, eye_height), interpolation=interpolation)
        guide = resized if guide is image else cv2.resize(guide, (eye_width, eye_height), interpolation=interpolation)
        image = resized
    disparity = plan.eye_disparity(guide if plan.edges is not None else None, eye_height, eye_width)
    frame_width = plan.frame[1] if plan.frame is not None else width
    window = plan.window
    if eye_width != frame_width:
        window = (window[0] * eye_width / frame_width, window[1] * eye_width / frame_width)
    return render_views(image, disparity, window, synthesize)


@dataclass(frozen=True)
class StereoViews:
    """One frame's stereo rendering.

    ``left``/``right``: uint8 HxWx3 views. ``disparity``: the per-eye disparity used (float32 HxW, pixels, larger =
    nearer). ``convergence``: the normalized depth on the screen plane. ``window``: floating-window band widths in
    pixels on the left edge of the left eye and the right edge of the right eye (0 when off or not needed).
    """

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    convergence: float
    window: tuple[float, float]


class StereoRenderer:
    """The stereo stage: normalized depth -> convergence -> disparity within the budget -> refined edges -> both eyes
    (+ window).

    Call once per frame in decode order: ``renderer(image, depth, cut)`` with ``image`` uint8 HxWx3, ``depth``
    normalized depth (float32 HxW in [0, 1], larger = nearer) and ``cut`` True on the first frame of a shot, which
    resets the convergence and floating-window state. Returns :class:`StereoViews`.

    ``depth_shape``: the (height, width) of the depth map the model delivers for a frame of a given (height, width),
    before it is brought to the frame's size (e.g. :meth:`Preprocessing.input_shape
    <stereoconv.models.Preprocessing.input_shape>`); the edge refinement (:func:`~stereoconv.refine.refine_disparity`,
    ``refine_edges``) looks as far as that upsampling blurred. None: depth at the frame's own size.
    """

    # What plans on another kind of array (``device_plan``) replaces: the state machines' measuring and the
    # disparity's arithmetic.
    _tracker: type[ConvergenceTracker] = ConvergenceTracker
    _window: type[FloatingWindow] = FloatingWindow
    _disparity = staticmethod(depth_to_disparity)

    def __init__(
        self, config: StereoConfig | None = None, depth_shape: Callable[[int, int], tuple[int, int]] | None = None
    ) -> None:
        self.config = config or StereoConfig()
        self.depth_shape = depth_shape
        self.budget = ParallaxBudget.from_config(self.config)
        self.convergence = self._tracker(self.config)
        self.window = self._window(self.config.convergence_smoothing) if self.config.floating_window else None

    def reset(self) -> None:
        """Forget everything: the next frame starts a shot."""
        self.convergence.reset()
        if self.window is not None:
            self.window.reset()

    def plan(self, depth: np.ndarray, cut: bool = False, frame: tuple[int, int] | None = None) -> StereoPlan:
        """The stateful, in-order part of the stage for one frame: convergence, disparity and floating window, on the
        grid of ``depth`` (normalized, float32 HxW in [0, 1], larger = nearer), for a frame of ``frame`` = (height,
        width) pixels (None: the depth's own size). The depth edges are refined later, where the eyes are rendered
        (:func:`render_plan`), which needs no state: frames can be rendered in parallel once planned in order."""
        if depth.ndim != 2:
            raise ValueError(f"depth must be HxW, got shape {depth.shape}")
        frame = tuple(depth.shape) if frame is None else (int(frame[0]), int(frame[1]))
        convergence = self.convergence(depth, cut)
        disparity = self._disparity(depth, convergence, self.budget, width=frame[1])
        cfg = self.config
        column = frame[1] / depth.shape[1]
        window = self.window(disparity, cut, column) if self.window is not None else (0.0, 0.0)
        edges = None
        if cfg.refine_edges:
            source = tuple(depth.shape) if self.depth_shape is None else self.depth_shape(*frame)
            edges = EdgeRefinement(cfg.edge_split, cfg.thin_structures, source)
        return StereoPlan(disparity, convergence, window, frame, edges)

    def __call__(self, image: np.ndarray, depth: np.ndarray, cut: bool = False) -> StereoViews:
        if image.shape[:2] != depth.shape:
            raise ValueError(f"image {image.shape} and depth {depth.shape} must be HxWx3 and HxW of one size")
        plan = self.plan(depth, cut, image.shape[:2])
        disparity = plan.eye_disparity(image, *image.shape[:2])
        left, right = render_views(image, disparity, plan.window)
        return StereoViews(left, right, disparity, plan.convergence, plan.window)
