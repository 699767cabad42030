"""Depth normalization and cut-aware temporal smoothing.

Depth maps here are relative inverse depth, float32 HxW, **larger = nearer**; normalized depth lies in [0, 1]
(0 = farthest, 1 = nearest).

A monocular network's depth of the same wall comes out a little nearer or farther every frame: the whole map drifts in
scale and offset, and each pixel jitters. Per frame:

1. **Normalize** robustly between two percentiles (outliers do not set the range). The first frame of a shot is
   exactly this.
2. **Align** that frame's scale and offset to the running estimate: a least-squares fit (outliers rejected) on the
   pixels whose colour and depth barely changed, pulled back towards the frame's own normalization by
   ``1 - alignment`` every frame, so the estimate cannot drift away over a long shot.
3. Optionally **follow motion**: the previous estimate is warped along the optical flow (OpenCV DIS, computed at a
   reduced size) to the current frame, and pixels that fail a forward-backward consistency check (occlusions) are
   not blended.
4. **Blend** with a per-pixel bilateral temporal weight: the previous estimate's weight falls with the depth difference
   and with the pixel's colour change, so static surfaces stop shimmering while moving objects and real depth changes
   come through; it also falls through gradual transitions (fades, cross-fades), detected from the median colour
   change of the frame, so the old shot's depth is not dragged into the new one.

At a scene cut every state resets. A cut the detector missed resets it too: when almost no pixel is steady (its
colour, after following the motion, and its depth both nearly unchanged; fewer than 20 %, where one shot going on
keeps well over half), the frame is a new picture and starts a shot of its own, so the old shot's scale and depth do
not bleed into the new one; if the picture from before comes back within two frames (a flash), the shot goes on from
the state before it. :class:`TemporalSmoother` is the streaming stage the pipeline uses; :func:`smooth_sequence`
runs the same class over a whole sequence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numba
import numpy as np

from .config import TemporalConfig

_EPS = 1e-6
# Statistics (percentiles, the alignment fit, the transition level) use every n-th row and column, n the largest
# that leaves at least this many pixels (up to four times as many; all of a smaller map).
_MAX_SAMPLES = 65536
# Median per-pixel change of grey level (0-255) between frames: at or below _CALM the frame is one shot going on
# (only moving objects change, so the median pixel does not), at or above _TRANSITION every pixel is changing, as in
# a fade or a cross-fade, and the previous estimate gets no weight. Linear in between.
_CALM, _TRANSITION = 1.5, 4.0
# The alignment fit uses only pixels whose normalized depth moved less than this: after per-frame normalization real
# drift is small, and a larger change is a moving object or an occlusion, which must not set the frame's scale.
_ALIGN_MAX_CHANGE = 0.25
# Fewer steady pixels than this share (colour within color_sigma after motion compensation, depth within
# _ALIGN_MAX_CHANGE, flow consistent): the frame is another picture, a cut the detector missed, and starts a shot.
# Measured on the videos of benchmarks/temporal.py, no cuts given: at cuts at most 4 %, within shots at least 92 %.
_RESTART_STEADY = 0.2
_FLOW_WIDTH = 320  # optical flow is computed at this width (or the frame's, if smaller)
_FLOW_CONSISTENCY = 1.0  # px at flow scale: forward and backward flow must cancel within this, else occlusion


def _subsample_step(shape: tuple[int, ...]) -> int:
    return max(1, int(np.sqrt(shape[0] * shape[1] / _MAX_SAMPLES)))


def _subsample(array: np.ndarray) -> np.ndarray:
    step = _subsample_step(array.shape)
    return array[::step, ::step]


def depth_percentiles(depth: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles (in %) of a depth map, from an even subsample of 65536 to 262144 pixels
    (all of a smaller map)."""
    lo, hi = _percentiles(_subsample(depth).flatten(), (low, high))
    return float(lo), float(hi)


# Order statistics by radix selection: the floats' bits made into integer keys that sort as the floats do, then the
# key at each rank found 16 bits at a time (count each digit among the keys sharing the digits found so far). Two or
# four passes over the values whatever their ties: numpy's introselect (np.partition, np.percentile, np.median) slows
# down several times on the ties these samples are full of (flat depth, unchanged grey levels). The values are the
# same numbers.
_DIGIT = 16  # key bits resolved per pass


def _ranked(values: np.ndarray, ranks: list[int]) -> dict[int, Any]:
    """The values of rank ``ranks`` (0 = smallest) in the finite 1-D float32 or float64 ``values``."""
    wanted = np.array(sorted(set(ranks)), np.int64)
    unsigned = np.uint32 if values.dtype == np.float32 else np.uint64
    width = 8 * values.dtype.itemsize
    found = _radix_select(_order_keys(np.ascontiguousarray(values).view(unsigned), width), wanted, width)
    top = np.uint64(1) << np.uint64(width - 1)
    bits = np.where(found & top, found & ~top, ~found).astype(unsigned)  # the keys' bits back (see _order_keys)
    return dict(zip(wanted.tolist(), bits.view(values.dtype), strict=True))


@numba.njit(cache=True, nogil=True)
def _order_keys(bits: np.ndarray, width: int) -> np.ndarray:
    """uint64 keys that sort as the finite floats whose IEEE ``bits`` (uint32 or uint64: ``width``) they are made
    of: a negative's bits inverted, a positive's with the sign bit set."""
    top = np.uint64(1) << np.uint64(width - 1)
    mask = ~np.uint64(0) >> np.uint64(64 - width)
    keys = np.empty(bits.size, np.uint64)
    for i in range(bits.size):
        b = np.uint64(bits[i])
        keys[i] = (~b & mask) if b & top else (b | top)
    return keys


@numba.njit(cache=True, nogil=True)
def _radix_select(keys: np.ndarray, ranks: np.ndarray, width: int) -> np.ndarray:
    """The keys of rank ``ranks`` (0 = smallest) among ``keys`` (``width`` bits used): for each, from the top, the
    _DIGIT-bit digit its rank falls in among the keys that share the digits found so far."""
    out = np.empty(ranks.size, np.uint64)
    digits = np.uint64((1 << _DIGIT) - 1)
    first = np.zeros(1 << _DIGIT, np.int64)  # the top digit's counts: every rank starts from them
    for k in keys:
        first[(k >> np.uint64(width - _DIGIT)) & digits] += 1
    for r in range(ranks.size):
        rank, candidates, counts, shift, prefix = ranks[r], keys, first, width - _DIGIT, np.uint64(0)
        while True:
            digit = 0
            while counts[digit] <= rank:
                rank -= counts[digit]
                digit += 1
            prefix |= np.uint64(digit) << np.uint64(shift)
            if shift == 0:
                break
            kept = np.empty(counts[digit], np.uint64)  # the keys with this digit, and the counts of their next one
            counts = np.zeros(1 << _DIGIT, np.int64)
            n = 0
            for k in candidates:
                if (k >> np.uint64(shift)) & digits == digit:
                    kept[n] = k
                    n += 1
                    counts[(k >> np.uint64(shift - _DIGIT)) & digits] += 1
            candidates, shift = kept, shift - _DIGIT
        out[r] = prefix
    return out


def _median(values: np.ndarray) -> Any:
    """``np.median`` of the finite 1-D float ``values``: the middle value, or the mean of the two."""
    middle = values.size // 2
    if values.size % 2:
        return _ranked(values, [middle])[middle]
    ranked = _ranked(values, [middle - 1, middle])
    return (ranked[middle - 1] + ranked[middle]) / 2


def _percentiles(values: np.ndarray, percents: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(values, percents)`` (its default linear method, float64) of the 1-D float ``values``; the same
    arithmetic, step by step, on the ranks it reads."""
    if np.isnan(values).any():  # numpy's NaN rules
        return np.percentile(values, percents)
    below, above, gamma = percentile_ranks(values.size, percents)
    ranked = _ranked(values, [*below, *above])
    return percentile_lerp(np.array([ranked[i] for i in below], values.dtype),
                           np.array([ranked[i] for i in above], values.dtype), gamma)  # fmt: skip


def percentile_ranks(count: int, percents: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ranks (0 = smallest) ``np.percentile``'s linear method reads for each of ``percents`` among ``count``
    values, the one below and the one above, and the weight ``gamma`` of the one above: what
    :func:`percentile_lerp` makes the percentiles of, wherever the ranked values come from (a torch sort too)."""
    virtual = (count - 1) * np.true_divide(percents, 100)
    below = np.floor(virtual)
    below[virtual >= count - 1] = -1  # the largest value (numpy indexes it from the end)
    below[virtual < 0] = 0
    above = below + 1
    above[below == -1] = -1
    gamma = virtual - below
    return below.astype(np.intp) % count, above.astype(np.intp) % count, gamma


def percentile_lerp(lower: np.ndarray, upper: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's ``_lerp`` of the values ranked as :func:`percentile_ranks` says: from the nearer end, float64."""
    diff = upper - lower
    out = np.add(lower, diff * gamma)
    np.subtract(upper, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe", dtype=out.dtype)
    return out


def normalize(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map depth linearly so ``lo`` -> 0 and ``hi`` -> 1, clipped to [0, 1]; float32 HxW."""
    scale = 1.0 / max(hi - lo, _EPS)
    values = np.ascontiguousarray(depth, dtype=np.float32)
    return _normalize_pass(values.reshape(-1), np.float32(lo), np.float32(scale)).reshape(values.shape)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _normalize_pass(values: np.ndarray, lo: np.float32, scale: np.float32) -> np.ndarray:
    """``clip((values - lo) * scale, 0, 1)`` in one pass, float32 (NaN stays NaN, as with np.clip)."""
    out = np.empty_like(values)
    zero, one = np.float32(0.0), np.float32(1.0)
    for i in range(values.size):
        value = (values[i] - lo) * scale
        out[i] = zero if value < zero else (one if value > one else value)
    return out


def _gray(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The grey levels of ``rgb`` on the depth map's grid (``shape``; area-averaged when the depth is coarser)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if gray.shape != shape:
        gray = cv2.resize(gray, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32)


def fit_scale_offset(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """``(a, b)`` minimizing ``|a * source + b - target|^2`` over ``mask`` (all pixels if None), refit once without the
    pixels whose residual exceeds 3 robust standard deviations (moving objects, occlusions). ``(1, 0)`` when there
    are too few pixels or no spread to fit."""
    x, y = _subsample(source), _subsample(target)
    if mask is not None:
        keep = _subsample(mask)
        x, y = x[keep], y[keep]
    return _fit_line(x.ravel().astype(np.float64), y.ravel().astype(np.float64))


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """:func:`fit_scale_offset` on the samples themselves: float64 1-D ``x`` and ``y``, in the subsample's order."""
    a, b = 1.0, 0.0
    for _ in range(2):
        if x.size < 16 or np.ptp(x) < _EPS:
            return 1.0, 0.0
        # Ordinary least squares in closed form (what np.polyfit(x, y, 1) solves, without its SVD).
        a, b, residual = _least_squares(x, y)
        x, y = _within(x, y, residual, 3.0 * 1.4826 * _median(residual) + _EPS)
    return float(a), float(b)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """``(a, b, |a x + b - y|)`` of the least-squares line through float64 ``x``, ``y``: ``dx = x - mean(x)``,
    ``a = sum(dx * (y - mean(y))) / sum(dx * dx)``, in float64 running sums (not np.dot: BLAS's threads spin
    against the pipeline's own, and its sums differ from these in the last bits only)."""
    count = x.size
    sum_x = sum_y = 0.0
    for i in range(count):
        sum_x += x[i]
        sum_y += y[i]
    mx, my = sum_x / count, sum_y / count
    cross = square = 0.0
    for i in range(count):
        dx = x[i] - mx
        cross += dx * (y[i] - my)
        square += dx * dx
    a = cross / square
    b = my - a * mx
    residual = np.empty(count)
    for i in range(count):
        residual[i] = abs(a * x[i] + b - y[i])
    return a, b, residual


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _within(x: np.ndarray, y: np.ndarray, residual: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """The samples whose ``residual`` is at most ``limit``, in their order."""
    keep_x, keep_y = np.empty_like(x), np.empty_like(y)
    n = 0
    for i in range(x.size):
        if residual[i] <= limit:
            keep_x[n] = x[i]
            keep_y[n] = y[i]
            n += 1
    return keep_x[:n], keep_y[:n]


def transition_level(gray: np.ndarray, previous_gray: np.ndarray) -> float:
    """How much of a gradual transition (fade, cross-fade) this frame is in, 0-1, from the median per-pixel grey
    change (0-255) since the previous frame: 0 at or below 1.5 levels, 1 at or above 4, linear in between."""
    return _transition(np.abs(_subsample(gray) - _subsample(previous_gray)).ravel())


def _transition(changes: np.ndarray) -> float:
    """:func:`transition_level` from the subsample's absolute grey changes (float32 1-D)."""
    change = float(_median(changes))
    return float(np.clip((change - _CALM) / (_TRANSITION - _CALM), 0.0, 1.0))


# The per-pixel work of a frame runs as compiled passes (numba, cached on disk after the first run; they release the
# GIL) instead of a dozen full-size numpy temporaries. No fastmath and float32 constants throughout: every operation
# is the numpy version's, in the same order and precision, so the results are the same bits. The exponential stays
# numpy's own (its SIMD float32 exp rounds differently from the C library's, which numba calls).
_NO_GREY = np.zeros((0, 0), np.float32)
_NO_MASK = np.zeros((0, 0), np.uint8)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _consistent(backward: np.ndarray, returned: np.ndarray, back: np.ndarray, limit: np.float32) -> np.ndarray:
    """uint8 HxW: 1 where going back along ``backward`` (to ``back``, inside the frame) and forth along the forward
    flow found there (``returned``) comes back within ``limit`` px."""
    height, width = backward.shape[:2]
    right, bottom, zero = np.float32(width - 1), np.float32(height - 1), np.float32(0.0)
    valid = np.empty((height, width), np.uint8)
    for y in range(height):
        for x in range(width):
            mismatch = np.hypot(backward[y, x, 0] + returned[y, x, 0], backward[y, x, 1] + returned[y, x, 1])
            bx, by = back[y, x, 0], back[y, x, 1]
            valid[y, x] = mismatch <= limit and zero <= bx <= right and zero <= by <= bottom
    return valid


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _steady_pass(
    current: np.ndarray,
    previous: np.ndarray,
    gray: np.ndarray,
    previous_gray: np.ndarray,
    valid: np.ndarray,
    color_sigma: np.float32,
    step: int,
    fit: bool,
    changes: bool,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The number of steady pixels: depth within _ALIGN_MAX_CHANGE; with ``gray`` (empty: none) also the colour
    within ``color_sigma``, and with ``valid`` (empty: none) the flow consistent. On the subsample grid (every
    ``step``-th row and column), row by row: the fit's samples (``fit``: current and previous where steady and
    strictly inside (0, 1), float64) and the absolute grey changes (``changes``, float32)."""
    height, width = current.shape
    colour, checked = gray.size > 0, valid.size > 0
    limit, zero, one = np.float32(_ALIGN_MAX_CHANGE), np.float32(0.0), np.float32(1.0)
    count = 0
    for y in range(height):
        if not colour:
            for x in range(width):
                count += abs(current[y, x] - previous[y, x]) < limit
        elif not checked:
            for x in range(width):
                count += (abs(current[y, x] - previous[y, x]) < limit) & (
                    abs(gray[y, x] - previous_gray[y, x]) <= color_sigma
                )
        else:
            for x in range(width):
                count += (
                    (abs(current[y, x] - previous[y, x]) < limit)
                    & (abs(gray[y, x] - previous_gray[y, x]) <= color_sigma)
                    & (valid[y, x] != 0)
                )
    samples = ((height + step - 1) // step) * ((width + step - 1) // step)
    xs = np.empty(samples if fit else 0, np.float64)
    ys = np.empty(samples if fit else 0, np.float64)
    grey = np.empty(samples if changes and colour else 0, np.float32)
    n = m = 0
    for y in range(0, height, step):
        for x in range(0, width, step):
            c, p = current[y, x], previous[y, x]
            steady = abs(c - p) < limit
            if colour:
                change = abs(gray[y, x] - previous_gray[y, x])
                steady = steady and change <= color_sigma and (not checked or valid[y, x] != 0)
                if changes:
                    grey[m] = change
                    m += 1
            if fit and steady and zero < c < one:
                xs[n] = c
                ys[n] = p
                n += 1
    return count, xs[:n], ys[:n], grey


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _exponent_pass(
    current: np.ndarray,
    previous: np.ndarray,
    gray: np.ndarray,
    previous_gray: np.ndarray,
    scale: np.float32,
    offset: np.float32,
    depth_coef: np.float32,
    colour_coef: np.float32,
    out: np.ndarray,
) -> np.ndarray:
    """The bilateral weight's exponent: ``dd^2 * depth_coef - colour_change^2 * colour_coef`` (no colour term
    without ``gray``), ``dd`` the aligned current (``current * scale + offset``) minus ``previous``."""
    height, width = current.shape
    colour = gray.size > 0
    for y in range(height):
        for x in range(width):
            dd = (current[y, x] * scale + offset) - previous[y, x]
            exponent = dd * dd * depth_coef
            if colour:
                change = abs(gray[y, x] - previous_gray[y, x])
                exponent = exponent - change * change * colour_coef
            out[y, x] = exponent
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _blend_pass(
    current: np.ndarray,
    previous: np.ndarray,
    weight: np.ndarray,
    valid: np.ndarray,
    scale: np.float32,
    offset: np.float32,
    strength: np.float32,
    out: np.ndarray,
) -> np.ndarray:
    """``w * previous + (1 - w) * current`` as ``current - w * dd``, clipped to [0, 1]: ``current`` aligned
    (``current * scale + offset``), ``w = weight * strength``, 0 where ``valid`` (empty: everywhere valid) is 0."""
    height, width = current.shape
    checked = valid.size > 0
    zero, one = np.float32(0.0), np.float32(1.0)
    for y in range(height):
        for x in range(width):
            c = current[y, x] * scale + offset
            dd = c - previous[y, x]
            w = weight[y, x] * strength
            if checked and valid[y, x] == 0:
                w = zero
            value = c - w * dd
            out[y, x] = zero if value < zero else (one if value > one else value)
    return out


def _optical_flow() -> cv2.DISOpticalFlow:
    """The optical flow both directions are measured with."""
    # MEDIUM, not ULTRAFAST: the coarser flows misalign the previous estimate enough to cost more flicker than they
    # save (measured in benchmarks/temporal.py); at 320 px wide each of the two flows takes about 6 ms per frame on
    # a 2-core CPU, most of the smoother's cost. Without its variational refinement MEDIUM takes half of that, for
    # 2 % more flicker on the benchmark; FAST and ULTRAFAST cost 15 % and 22 % more flicker.
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


class _MotionWarp:
    """Warps the previous frame's maps to the current frame along DIS optical flow, with an occlusion mask."""

    def __init__(self) -> None:
        self._dis = _optical_flow()
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # the last frame's grey and its flow-size version
        self._grids: dict[tuple[int, ...], np.ndarray] = {}

    def _grid(self, shape: tuple[int, ...]) -> np.ndarray:
        """Every pixel's own coordinates (HxWx2 float32, x then y), made once per size."""
        grid = self._grids.get(shape)
        if grid is None:
            if len(self._grids) > 4:  # sizes change only between inputs
                self._grids.clear()
            grid = np.empty(shape, np.float32)
            grid[..., 0] = np.arange(shape[1], dtype=np.float32)
            grid[..., 1] = np.arange(shape[0], dtype=np.float32)[:, None]
            self._grids[shape] = grid
        return grid

    def __call__(self, gray: np.ndarray, previous_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(coordinates, valid)`` such that ``cv2.remap(previous, coordinates, None)`` lines the previous frame up
        with the current one (HxWx2 float32, x then y); ``valid`` (uint8 HxW) is 0 where the flow fails the
        forward-backward check (occlusions)."""
        height, width = gray.shape
        scale = min(1.0, _FLOW_WIDTH / width)
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        current = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.uint8)
        if self._last is not None and self._last[0] is previous_gray and self._last[1].shape == current.shape:
            previous = self._last[1]  # the frame before was this call's current one: already at the flow's size
        else:
            previous = cv2.resize(previous_gray, size, interpolation=cv2.INTER_AREA).astype(np.uint8)
        self._last = gray, current
        backward = self._dis.calc(current, previous, None)  # current(x) ~ previous(x + backward(x))
        forward = self._dis.calc(previous, current, None)
        back = backward + self._grid(backward.shape)
        # Going back and then forth must return to the start, else the pixel was hidden in the previous frame.
        returned = cv2.remap(forward, back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        valid_small = _consistent(backward, returned, back, np.float32(_FLOW_CONSISTENCY))
        coordinates = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR)
        np.divide(coordinates, np.float32(scale), out=coordinates)
        coordinates += self._grid(coordinates.shape)
        valid = cv2.resize(valid_small, (width, height), interpolation=cv2.INTER_NEAREST)
        return coordinates, valid


_WARPS = threading.local()  # each thread's own optical flow (an OpenCV DIS object is not to be shared)


def frame_gray(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The grey levels of ``rgb`` on a depth grid of ``shape`` (float32): what the smoother compares frames by."""
    return _gray(rgb, shape)


def motion_between(gray: np.ndarray, previous_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The warp lining ``previous_gray`` up with ``gray`` and its occlusion mask, as the smoother computes it, on this
    thread's own optical flow: ``(coordinates, valid)`` for ``cv2.remap``."""
    warp = getattr(_WARPS, "warp", None)
    if warp is None:
        warp = _WARPS.warp = _MotionWarp()
    return warp(gray, previous_gray)


@dataclass(frozen=True)
class Motion:
    """What the smoother takes from a frame and the one before it, which needs no state and so can be computed ahead,
    on other threads: the frame's grey levels on the depth grid (:func:`frame_gray`), and the warp from the previous
    frame's grey (``previous``: that very array, as the smoother got it with the previous frame) to this one
    (:func:`motion_between`; None where not computed, e.g. at a cut)."""

    gray: np.ndarray
    previous: np.ndarray | None = None
    warp: tuple[np.ndarray, np.ndarray] | None = None


class TemporalSmoother:
    """Streaming depth normalization + alignment + bilateral temporal filter, reset at cuts.

    Call once per frame in decode order: ``smoother(depth, rgb, cut)`` with ``depth`` float32 HxW relative inverse
    depth (larger = nearer), ``rgb`` the uint8 frame (or None: no colour term, no alignment mask, no motion),
    ``cut`` True on the first frame of a shot. Returns normalized depth in [0, 1], float32 HxW, larger = nearer.
    ``motion``: the frame's :class:`Motion`, computed ahead (the pipeline does, on other threads): its grey and warp
    are used instead of computed here, with the same result. Everything runs on the depth's grid, which may be
    coarser than the frame (the pipeline's working resolution, about the model's own): the frame's grey levels are
    area-averaged to it.

    After each call, ``restarted`` is True when the frame started a shot without ``cut``: it disagreed with the
    running estimate almost everywhere (a missed cut; with ``rgb`` only), so nothing before it was used.
    """

    def __init__(self, config: TemporalConfig | None = None) -> None:
        self.config = config or TemporalConfig()
        self._motion = _MotionWarp() if self.config.motion_compensation else None
        self._ahead: Motion | None = None  # the current frame's, while it is smoothed
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next frame starts a shot."""
        self._prev: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None
        self._saved: tuple[np.ndarray, np.ndarray | None] | None = None  # the state before a restart, for a flash
        self._saved_age = 0
        self.restarted = False

    def __call__(
        self, depth: np.ndarray, rgb: np.ndarray | None = None, cut: bool = False, motion: Motion | None = None
    ) -> np.ndarray:
        if depth.ndim != 2:
            raise ValueError(f"depth must be HxW, got shape {depth.shape}")
        if rgb is not None:
            (rows, cols), (height, width) = depth.shape, rgb.shape[:2]
            if rows > height or cols > width or abs(height * cols / width - rows) > 1 + height / width:
                raise ValueError(f"frame {rgb.shape[:2]} and depth {depth.shape} sizes differ: the depth may be "
                                 "coarser than the frame, with its aspect")  # fmt: skip
        if cut or (self._prev is not None and self._prev.shape != depth.shape):
            self.reset()
        self.restarted = False
        current = self._normalized(depth)
        if motion is not None and rgb is not None and motion.gray.shape != depth.shape:
            raise ValueError(f"motion's grey {motion.gray.shape} and depth {depth.shape} sizes differ")
        self._ahead = motion
        gray = (motion.gray if motion is not None else _gray(rgb, tuple(depth.shape))) if rgb is not None else None
        out = None
        if self._saved is not None:  # within two frames of a restart: has the picture from before it come back?
            self._saved_age += 1
            latest = self._prev, self._prev_gray
            self._prev, self._prev_gray = self._saved
            out = self._follow(current, gray)
            if out is None:
                self._prev, self._prev_gray = latest
                if self._saved_age >= 2:
                    self._saved = None
            else:  # it has: the restart was a flash, and the shot goes on from before it
                self._saved = None
        if out is None:
            out = current if self._prev is None else self._follow(current, gray)
        if out is None:  # another picture: a new shot, whatever the cut detector said
            # Keep the state from before the first of the frames that restarted: a flash may last two of them.
            saved = (self._saved, self._saved_age) if self._saved is not None else ((self._prev, self._prev_gray), 0)
            self.reset()
            self._saved, self._saved_age = saved
            self.restarted = True
            out = current
        self._prev, self._prev_gray = out, gray
        return out

    def _normalized(self, depth: np.ndarray) -> np.ndarray:
        """Step 1: ``depth`` normalized between its percentiles."""
        cfg = self.config
        return normalize(depth, *depth_percentiles(depth, cfg.low_percentile, cfg.high_percentile))

    def _follow(self, current: np.ndarray, gray: np.ndarray | None) -> np.ndarray | None:
        """Align ``current`` to the previous estimate and blend the two (steps 2-4 of the module docstring); None
        when too few pixels are steady for the frame to be the same shot going on."""
        cfg = self.config
        previous, previous_gray = self._prev, self._prev_gray
        assert previous is not None
        valid = _NO_MASK
        if self._motion is not None and gray is not None and previous_gray is not None:
            ahead = self._ahead
            if ahead is not None and ahead.warp is not None and ahead.previous is previous_gray and ahead.gray is gray:
                coordinates, valid = ahead.warp  # computed ahead, from the very same two greys
            else:
                coordinates, valid = self._motion(gray, previous_gray)
            previous = cv2.remap(previous, coordinates, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            previous_gray = cv2.remap(previous_gray, coordinates, None, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        colour = gray is not None and previous_gray is not None
        if not colour:
            gray = previous_gray = _NO_GREY
        assert gray is not None and previous_gray is not None

        # Steady: depth and colour (after following the motion) nearly unchanged, the flow consistent.
        count, xs, ys, changes = _steady_pass(
            current, previous, gray, previous_gray, valid, np.float32(cfg.color_sigma),
            _subsample_step(current.shape), cfg.alignment > 0.0, cfg.strength != 0.0,
        )  # fmt: skip
        if colour and count < _RESTART_STEADY * current.size:
            return None
        scale, offset = np.float32(1.0), np.float32(0.0)
        if cfg.alignment > 0.0:
            # Pixels clipped by the normalization (outside its percentiles) say nothing about scale: left out.
            a, b = _fit_line(xs, ys)
            # Only part of the way: what is left pulls the estimate back to the frame's own normalization.
            k = cfg.alignment
            scale, offset = np.float32(1.0 + k * (a - 1.0)), np.float32(k * b)
        out = np.empty_like(current)
        if cfg.strength == 0.0:  # the aligned current alone: no weight anywhere
            out.fill(0.0)
            return _blend_pass(current, previous, out, _NO_MASK, scale, offset, np.float32(0.0), out)

        strength = cfg.strength
        if colour:
            strength *= 1.0 - _transition(changes)  # motion-compensated when that is on
        weight = _exponent_pass(
            current, previous, gray, previous_gray, scale, offset,
            np.float32(-0.5 / cfg.depth_sigma**2), np.float32(0.5 / cfg.color_sigma**2), out,
        )  # fmt: skip
        np.exp(weight, out=weight)
        # out = w * previous + (1 - w) * current, kept in [0, 1]: the parallax budget is defined on that range
        return _blend_pass(current, previous, weight, valid, scale, offset, np.float32(strength), out)


def smooth_sequence(
    depths: Sequence[np.ndarray],
    frames: Sequence[np.ndarray] | None = None,
    cuts: Iterable[int] = (),
    **settings: Any,
) -> list[np.ndarray]:
    """Normalize and temporally smooth a whole sequence, exactly as the pipeline does.

    ``depths``: float32 HxW relative inverse depth maps (larger = nearer), in decode order. ``frames``: optional uint8
    HxWx3 RGB frames, one per depth, for the colour term. ``cuts``: indices of the first frame of each new shot.
    ``settings``: :class:`~stereoconv.config.TemporalConfig` fields (e.g. ``strength=0.8``). Returns normalized depth
    maps in [0, 1], float32 HxW, larger = nearer.
    """
    if frames is not None and len(frames) != len(depths):
        raise ValueError(f"{len(frames)} frames for {len(depths)} depth maps")
    smoother = TemporalSmoother(TemporalConfig.from_dict(settings))
    cut_set = set(cuts)
    return [
        smoother(depth, frames[i] if frames is not None else None, cut=i in cut_set) for i, depth in enumerate(depths)
    ]
