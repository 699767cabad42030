"""Depth refinement: the soft depth edges of a low-resolution model turned back into steps that sit on the picture's
edges, before the views are rendered.

A depth network sees the frame at ~518 px on its short side. Brought back to the frame's size, its depth edges are
ramps several pixels wide that sit near, not on, the colour edges, and structures thinner than its grid are faint
bumps. Rendered as they are, a ramp is a rubber sheet: the background next to an object is dragged along with it (a
halo) and the object's own edge pixels are left behind. :func:`refine_disparity` decides, for every pixel on a ramp,
whether it belongs to the near or the far surface, by where it sits on the ramp and by its colour, and gives it that
surface's disparity; genuine slopes (a floor, a wall seen at an angle) and edges that are already steps are left
alone. :func:`refine_disparity_torch` does the same on torch tensors on any device, for a frame or a batch.

``benchmarks/stereo_views.py`` measures it against view synthesis from the unrefined depth and against an iw3-style
edge dilation, on ground truth degraded as a network degrades it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numba
import numpy as np
import torch
import torch.nn.functional as F

# Neighbouring pixels whose disparities differ by at most this (px) belong to one surface: the warp joins them, so a
# stretched or slanted surface leaves no cracks, and the colour of one may be interpolated with the other. A ramp
# whose whole range is within it needs no refinement.
SAME_SURFACE = 1.0
# Where on a ramp the step goes when colour does not tell: 0 at its far (background) end, 1 at its near end. Below
# one half, the foreground keeps its edge pixels, which a network's ramp gives partly to the background.
EDGE_SPLIT = 0.2
# How much colour moves the step: a pixel coloured like the near side counts as this much / 2 further up the ramp, one
# coloured like the far side as much further down (so colour can move the step half the ramp either way).
_COLOUR_WEIGHT = 1.0
# The near and far sides' colours are the mean colour of the ramp's top and bottom fifth within the window; colour is
# used only where both are seen and differ by more than this (Euclidean distance over the channels, 0-255 levels).
_SIDES = (0.2, 0.8)
_COLOUR_APART = 10.0
# Width of the step's own transition, as a share of the ramp: a little anti-aliasing, so that an edge moving by a
# fraction of a pixel from frame to frame moves smoothly instead of jumping a whole pixel.
_EDGE_SOFTNESS = 0.1
# An edge that is already a step is left alone: where the largest jump between neighbours in the window is at least
# the second of these shares of the window's range it is not snapped at all, below the first it is snapped fully. A
# ramp from upsampling rises over several pixels, each a small share of the whole.
_SHARP = (0.4, 0.6)
# Thin structures: a pixel is part of one if its colour differs from the surrounding background's by more than this
# (RMS over the channels, 0-255 levels).
_THIN_COLOUR = 20.0


def refine_radius(scale: float) -> int:
    """The window radius (px) the refinement looks at for depth upsampled by ``scale`` (frame size / depth-map size):
    a ramp from upsampling is about ``scale`` pixels wide on each side of the edge, and a network's edge may sit a
    pixel or two beside the picture's."""
    return math.ceil(max(1.0, scale)) + 2


def _checked_radius(scale: float, split: float, thin: bool, has_image: bool) -> int:
    """:func:`refine_radius` for ``scale``, once the settings both paths take are checked (ValueError if not)."""
    if not 0.0 <= split <= 1.0:
        raise ValueError(f"split must be in [0, 1], got {split}")
    if thin and not has_image:
        raise ValueError("thin-structure restoration needs the image")
    return refine_radius(scale)


def refine_disparity(
    image: np.ndarray | None,
    disparity: np.ndarray,
    *,
    scale: float = 2.0,
    split: float = EDGE_SPLIT,
    thin: bool = False,
) -> np.ndarray:
    """Disparity whose soft depth edges are steps on the picture's edges again, ready for
    :func:`~stereoconv.dibr.synthesize_view`: float32 HxW pixels, larger = nearer, the convention of ``disparity``.

    ``image``: the frame, uint8 HxWx3 (or HxW, HxWxC; uint16 is read as its top 8 bits); None refines by depth alone.
    ``disparity``: float32 HxW, pixels, upsampled by about ``scale`` (frame size / the depth model's output size)
    from what the model delivered. ``split``: where on a ramp the step goes where colour does not tell (0: its far
    end, 1: its near end).

    In a window of radius :func:`refine_radius` (``r``) around each pixel, let ``lo``/``hi`` be the smallest and
    largest disparity. Where ``hi - lo`` exceeds ``SAME_SURFACE`` (1 px: the warp would join the two as one surface)
    the pixel goes to ``lo`` or ``hi``: to ``hi`` if its position on the ramp, ``(d - lo) / (hi - lo)``, plus half
    its colour evidence exceeds ``split``, with a transition of a tenth of the ramp. The colour evidence is +1 for a
    pixel coloured like the near side of the ramp (the mean colour of the window's pixels in the ramp's top fifth),
    -1 for one like the far side (bottom fifth), in between by distance (8-bit colour, Euclidean over the channels);
    0 where either side is missing from the window or the two differ by 10 levels or less. So a network's edge that
    sits a pixel or two beside the colour edge is moved onto it, and where the two sides look alike the depth alone
    decides.

    A window of twice the radius tells a ramp from a slope: across an edge the range stays the same (snapped fully),
    on a slanted surface it doubles (left exactly as it is), in between the two are blended. Depth whose edges are
    already steps (ground truth, a model run at the frame's own size) passes through: a window whose largest jump
    between neighbours is 60 % of its range or more is not snapped. Flat disparity is returned unchanged.

    ``thin``: also bring back structures narrower than the model could see (a pole, a cable, a branch) that are in
    the picture but only faint bumps in the depth: where a bump narrower than the window stands more than 1 px above
    its surroundings, the pixels whose colour differs from the surrounding background by more than 20 levels take the
    bump's whole excess (its sum over the window divided by their count, so the area under the bump is kept), and the
    rest of the bump drops to the background. Needs ``image``.
    """
    return _refine(image, disparity, scale, split, thin, _snap_tiled)


def refine_disparity_reference(
    image: np.ndarray | None,
    disparity: np.ndarray,
    *,
    scale: float = 2.0,
    split: float = EDGE_SPLIT,
    thin: bool = False,
) -> np.ndarray:
    """:func:`refine_disparity` computed the straightforward way, pass after pass over the whole frame (OpenCV's
    window filters, then the per-pixel rule): the result :func:`refine_disparity` must equal bit for bit."""
    return _refine(image, disparity, scale, split, thin, _snap_reference)


def _refine(
    image: np.ndarray | None,
    disparity: np.ndarray,
    scale: float,
    split: float,
    thin: bool,
    snap: Callable[[np.ndarray, np.ndarray | None, int, float], np.ndarray],
) -> np.ndarray:
    """:func:`refine_disparity` with the edges refined by ``snap`` (float32 disparity, 8-bit colour HxWxC or None,
    radius, split)."""
    disparity = np.asarray(disparity, dtype=np.float32)
    if disparity.ndim != 2:
        raise ValueError(f"disparity must be HxW, got shape {disparity.shape}")
    if image is not None and image.shape[:2] != disparity.shape:
        raise ValueError(f"image {image.shape[:2]} and disparity {disparity.shape} sizes differ")
    radius = _checked_radius(scale, split, thin, image is not None)
    if thin:
        disparity = _restore_thin(_colour(np.asarray(image), disparity.shape), disparity, radius)
    colour = None if image is None else _eight_bit(np.asarray(image)).reshape(*disparity.shape, -1)
    return snap(disparity, colour, radius, split)


def _padded(disparity: np.ndarray, colour: np.ndarray | None, pad: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``disparity`` and ``colour`` padded by ``pad``. Disparity is continued past the frame's border as a point
    reflection (a slope goes on as the same slope), so the windows see whole slopes there too; colour is mirrored."""
    padded = np.pad(disparity, pad, mode="reflect", reflect_type="odd")
    if colour is not None:
        colour = cv2.copyMakeBorder(colour, pad, pad, pad, pad, cv2.BORDER_REFLECT_101).reshape(
            padded.shape[0], padded.shape[1], -1)  # fmt: skip
    return padded, colour


def _eight_bit(image: np.ndarray) -> np.ndarray:
    """The picture at 8 bits (uint16: its top 8), as colour is compared."""
    return (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8, copy=False)


def _colour(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    colour = image.astype(np.float32).reshape(*shape, -1)
    return colour / np.float32(257.0) if image.dtype == np.uint16 else colour


# The CPU path's reference: window minima, maxima and sums by OpenCV (separable, vectorized), the per-pixel logic in
# two compiled passes (numba, cached on disk after the first run) instead of a score of full-frame numpy temporaries.
# Colour is compared at 8 bits, so its window sums are exact integers on every path.


def _box_sum(values: np.ndarray, radius: int) -> np.ndarray:
    """Integer sums of uint8 ``values`` over the (2r+1)^2 window (16-bit where they fit), the border reflected."""
    depth = cv2.CV_16U if (2 * radius + 1) ** 2 * 255 < 65536 else cv2.CV_32S
    size = (2 * radius + 1, 2 * radius + 1)
    return cv2.boxFilter(values, depth, size, normalize=False, borderType=cv2.BORDER_REFLECT_101)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _largest_jump(disparity: np.ndarray) -> np.ndarray:
    """Per pixel, the largest absolute difference to a neighbour across or down (float32 HxW)."""
    height, width = disparity.shape
    jump = np.zeros_like(disparity)
    for y in range(height):
        for x in range(width - 1):
            step = abs(disparity[y, x + 1] - disparity[y, x])
            jump[y, x] = step if step > jump[y, x] else jump[y, x]
            jump[y, x + 1] = step
        if y > 0:
            for x in range(width):
                step = abs(disparity[y, x] - disparity[y - 1, x])
                jump[y - 1, x] = step if step > jump[y - 1, x] else jump[y - 1, x]
                jump[y, x] = step if step > jump[y, x] else jump[y, x]
    return jump


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sides(
    disparity: np.ndarray, low: np.ndarray, high: np.ndarray, colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The near and far side of every ramp pixel: (uint8 HxWx(1+C)) mask and colour where the pixel lies in the
    ramp's top (near) or bottom (far) fifth, zero elsewhere."""
    height, width, channels = colour.shape
    near = np.zeros((height, width, channels + 1), np.uint8)
    far = np.zeros((height, width, channels + 1), np.uint8)
    for y in range(height):
        for x in range(width):
            span = high[y, x] - low[y, x]
            if span <= SAME_SURFACE:
                continue
            offset = disparity[y, x] - low[y, x]
            if offset > _SIDES[1] * span:
                near[y, x, 0] = 1
                near[y, x, 1:] = colour[y, x]
            elif offset < _SIDES[0] * span:
                far[y, x, 0] = 1
                far[y, x, 1:] = colour[y, x]
    return near, far


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _snap_pixels(
    disparity: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    wide_low: np.ndarray,
    wide_high: np.ndarray,
    jumps: np.ndarray,
    colour: np.ndarray,
    near: np.ndarray,
    far: np.ndarray,
    area: int,
    split: float,
    colour_weight: float,
    pad: int,
) -> np.ndarray:
    """The refined inner part (``pad`` px in from every side) of padded maps; ``near``/``far``: window sums of
    :func:`_sides` (empty: depth alone)."""
    height, width = disparity.shape
    channels = near.shape[2] - 1
    out = np.empty((height - 2 * pad, width - 2 * pad), np.float32)
    for y in range(pad, height - pad):
        for x in range(pad, width - pad):
            value = disparity[y, x]
            span = high[y, x] - low[y, x]
            if span <= SAME_SURFACE:
                out[y - pad, x - pad] = value
                continue
            weight = min(1.0, max(0.0, 2.0 - (wide_high[y, x] - wide_low[y, x]) / span))
            sharp = jumps[y, x] / span
            weight *= min(1.0, max(0.0, (_SHARP[1] - sharp) / (_SHARP[1] - _SHARP[0])))
            score = (value - low[y, x]) / span - split
            near_n, far_n = np.float32(near[y, x, 0]), np.float32(far[y, x, 0])
            if channels > 0 and near_n > 0.02 * area and far_n > 0.02 * area:
                apart = to_far = to_near = 0.0
                for c in range(channels):
                    near_c, far_c = near[y, x, 1 + c] / near_n, far[y, x, 1 + c] / far_n
                    apart += (near_c - far_c) ** 2
                    to_far += (colour[y, x, c] - far_c) ** 2
                    to_near += (colour[y, x, c] - near_c) ** 2
                apart = np.sqrt(apart)
                if apart > _COLOUR_APART:
                    evidence = (np.sqrt(to_far) - np.sqrt(to_near)) / apart
                    score += colour_weight / 2 * min(1.0, max(-1.0, evidence))
            snapped = low[y, x] + span * min(1.0, max(0.0, score / _EDGE_SOFTNESS + 0.5))
            out[y - pad, x - pad] = value + weight * (snapped - value)
    return out


def _snap_reference(disparity: np.ndarray, colour: np.ndarray | None, radius: int, split: float) -> np.ndarray:
    """The refinement of ``disparity`` (and 8-bit ``colour``), computed over the whole frame padded by ``2 * radius``,
    pass after pass. :func:`_snap_tiled` computes the same, bit for bit, faster."""
    disparity, colour = _padded(disparity, colour, 2 * radius)
    near_window = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    low, high = cv2.erode(disparity, near_window), cv2.dilate(disparity, near_window)
    # A (4r+1)^2 window is the (2r+1)^2 one applied twice.
    wide_low, wide_high = cv2.erode(low, near_window), cv2.dilate(high, near_window)
    jumps = cv2.dilate(_largest_jump(disparity), near_window)
    if colour is None:
        colour = np.zeros((1, 1, 0), np.uint8)
        near = far = np.zeros((1, 1, 1), np.uint16)
    else:
        near, far = (_box_sum(side, radius).reshape(side.shape) for side in _sides(disparity, low, high, colour))
    return _snap_pixels(disparity, low, high, wide_low, wide_high, jumps, colour, near, far, (2 * radius + 1) ** 2,
                        split, _COLOUR_WEIGHT, 2 * radius)  # fmt: skip


# The tiled CPU path. Every quantity above is a function of the padded disparity (and colour) within 2 r of a pixel,
# so the frame is refined a tile at a time from a region 2 r wider on every side, in small buffers that stay in the
# cache, each pass a loop along contiguous rows that the compiler vectorizes. Most of a real frame is smooth: a pass
# over the frame finds the range of every block of 2 r + 1 pixels square with its neighbours, which holds the windows
# that start in it, and only the pixels whose windows may span more than SAME_SURFACE are worked on; the rest is the
# input as it is. The per-pixel arithmetic is _snap_pixels', operation for operation and type for type, so the result
# is the same to the bit for finite disparity (window extremes and integer sums are exact in any order);
# tests/test_refine.py holds the two paths to that. Loops index with unsigned integers: a signed index that may be
# negative costs a wraparound check, which keeps the compiler from vectorizing.

# Output pixels per tile (rows, columns): large enough that the margins (2 r each side) cost little, small enough
# that a tile's ramps fill much of it.
_TILE = (32, 64)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pair_extremes(lows, highs, low, high, rows, cols, ahead, shift, both):
    """For ``i, j`` in ``range(*rows)`` x ``range(*cols)``: ``low[(i, j) + shift]`` the smaller of ``lows[i, j]`` and
    ``lows[(i, j) + ahead]``, ``high`` the larger of ``highs`` likewise (``both`` False: only ``high``). Written to
    another map than it reads: in place, the compiler turns "keep the smaller" into masked stores, slow on some
    processors."""
    u = np.uint64
    ahead_i, ahead_j, shift_i, shift_j = u(ahead[0]), u(ahead[1]), u(shift[0]), u(shift[1])
    for i in range(u(rows[0]), u(rows[1])):
        for j in range(u(cols[0]), u(cols[1])):
            a, b = highs[i, j], highs[i + ahead_i, j + ahead_j]
            high[i + shift_i, j + shift_j] = a if a > b else b
        if both:
            for j in range(u(cols[0]), u(cols[1])):
                a, b = lows[i, j], lows[i + ahead_i, j + ahead_j]
                low[i + shift_i, j + shift_j] = a if a < b else b


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _extremes(lows, highs, low, high, scratch, rows, cols, reach, across, both):
    """``low[i, j]``/``high[i, j]`` for ``i, j`` in ``range(*rows)`` x ``range(*cols)``: the smallest of ``lows`` and
    the largest of ``highs`` within ``reach`` of ``(i, j)`` along a row (``across``) or a column (``both`` False: only
    ``high``). The maps share one frame of coordinates; ``scratch``: four more, overwritten. The windows of 2, 4, 8...
    values are each made from two of the level before, the window of ``2 * reach + 1`` from two that overlap."""
    size = 2 * reach + 1
    along = cols if across else rows
    source_low, source_high = lows, highs
    zero = reach - reach  # computed: a literal 0 or 1 would have the callee compiled for it
    step, buffer = zero + 1, zero
    while 2 * step <= size:
        # Windows of 2 step values by where they start, as far as the last level's windows reach.
        starts = along[0] - reach, along[1] - reach + size - 2 * step
        target_low, target_high = scratch[buffer], scratch[buffer + 1]
        if across:
            _pair_extremes(source_low, source_high, target_low, target_high, rows, starts, (zero, step), (zero, zero),
                           both)  # fmt: skip
        else:
            _pair_extremes(source_low, source_high, target_low, target_high, starts, cols, (step, zero), (zero, zero),
                           both)  # fmt: skip
        source_low, source_high = target_low, target_high
        step, buffer = 2 * step, 2 - buffer
    starts = along[0] - reach, along[1] - reach
    if across:
        _pair_extremes(source_low, source_high, low, high, rows, starts, (zero, size - step), (zero, reach), both)
    else:
        _pair_extremes(source_low, source_high, low, high, starts, cols, (size - step, zero), (reach, zero), both)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _row_reflection(source, y, x):
    """``source[y, x]``, ``y`` continued past the first and last rows as :func:`_padded` continues them (at most the
    height - 1 beyond)."""
    height = source.shape[0]
    if y < 0:
        return np.float32(2.0) * source[0, x] - source[-y, x]
    if y >= height:
        return np.float32(2.0) * source[height - 1, x] - source[2 * (height - 1) - y, x]
    return source[y, x]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _reflection(source, y, x):
    """``source[y, x]`` as :func:`_padded` pads it (np.pad's odd reflection: the rows first, then the columns of the
    padded rows), ``y`` and ``x`` at most the height and width - 1 outside."""
    width = source.shape[1]
    if x < 0:
        return np.float32(2.0) * _row_reflection(source, y, x - x) - _row_reflection(source, y, -x)
    if x >= width:
        edge, mirrored = _row_reflection(source, y, width - 1), _row_reflection(source, y, 2 * (width - 1) - x)
        return np.float32(2.0) * edge - mirrored
    return _row_reflection(source, y, x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _mirrored(index, size):
    """``index`` continued past 0 and ``size - 1`` as OpenCV's BORDER_REFLECT_101 does (at most ``size - 1`` out)."""
    return -index if index < 0 else (2 * (size - 1) - index if index >= size else index)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gather(source, offset, start, target, at, shape):
    """``target[at + (i, j)]`` for ``i, j`` in ``range(shape[0])`` x ``range(shape[1])``: the padded frame at
    ``start + (i, j)``, where ``source`` is that frame less ``offset`` on every side (continued past its border by
    :func:`_reflection`)."""
    u = np.uint64
    height, width = source.shape
    left = start[1] - offset
    # Columns [0, first) lie left of the source, [last, shape[1]) right of it.
    first = min(shape[1], max(0, -left))
    last = max(first, min(shape[1], width - left))
    for i in range(shape[0]):
        y = start[0] + i - offset
        row = target[at[0] + i]
        if 0 <= y < height:
            for j in range(u(first), u(last)):
                row[u(at[1]) + j] = source[u(y), u(left) + j]
            for j in range(first):
                row[at[1] + j] = _reflection(source, y, left + j)
            for j in range(last, shape[1]):
                row[at[1] + j] = _reflection(source, y, left + j)
        else:
            for j in range(shape[1]):
                row[at[1] + j] = _reflection(source, y, left + j)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ramp_box(low, high, box, flags):
    """The smallest box (row and column ranges) within ``box`` that holds every pixel where ``high - low`` exceeds
    SAME_SURFACE (empty ranges if there is none); ``flags``: 2 x width, overwritten."""
    u = np.uint64
    (i0, i1), (j0, j1) = box
    first, width = u(j0), u(j1 - j0)
    seen, row = flags[0], flags[1]
    for j in range(width):
        seen[j] = 0
    top, bottom = i1, i0
    for i in range(i0, i1):
        count = 0
        for j in range(width):
            row[j] = high[u(i), first + j] - low[u(i), first + j] > SAME_SURFACE
            count += row[j]
        if count:
            top, bottom = min(top, i), i + 1
            for j in range(width):
                seen[j] += row[j]
    left, right = j1, j0
    for j in range(j1 - j0):
        if seen[j]:
            left, right = min(left, j0 + j), j0 + j + 1
    return (top, bottom), (left, right)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fold_row(values, start, low, high, next_low, next_high, cols, first):
    """``next_low``/``next_high`` over ``range(*cols)``: the smaller/larger of ``low``/``high`` and ``values`` (column
    ``j`` at ``values[j - start]``), or ``values`` alone for the ``first`` row."""
    u = np.uint64
    shift = u(start)
    if first:
        for j in range(u(cols[0]), u(cols[1])):
            next_low[j] = next_high[j] = values[j - shift]
        return
    for j in range(u(cols[0]), u(cols[1])):
        v, a, c = values[j - shift], low[j], high[j]
        next_low[j] = v if v < a else a
        next_high[j] = v if v > c else c


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _block_ranges(source, offset, size, out, inset):
    """For the blocks of ``size`` x ``size`` pixels that tile the padded frame (the last ones cut short; ``source``:
    that frame less ``offset`` on every side, see :func:`_gather`): the range (largest - smallest value) over each and
    its neighbours right, below and below right, which hold any window of ``size`` values that starts in it (float32,
    blocks down x across). On the way, ``out`` is filled with the frame's own pixels, ``inset`` into ``source``."""
    u = np.uint64
    height, width = source.shape[0] + 2 * offset, source.shape[1] + 2 * offset
    rows, cols = (height + size - 1) // size, (width + size - 1) // size
    low, high = np.empty((rows + 1, cols + 1), np.float32), np.empty((rows + 1, cols + 1), np.float32)
    column = np.empty((4, width), np.float32)
    line = np.empty((1, width), np.float32)
    inside = (offset, offset + source.shape[1])
    zero = size - size  # a computed 0: a literal one would have the callees compiled for it
    for b in range(rows):
        first, last = b * size, min(height, (b + 1) * size)
        for i in range(first, last):
            # Into the other pair of rows: kept in place, the compiler would make masked stores of it.
            odd = 2 * ((i - first) % 2)
            column_low, column_high = column[2 - odd], column[3 - odd]
            next_low, next_high = column[odd], column[odd + 1]
            y = i - offset
            if 0 <= y < source.shape[0]:
                row = source[y]
                _fold_row(row, offset, column_low, column_high, next_low, next_high, inside, i == first)
                for x in range(offset):
                    line[0, x] = _reflection(source, y, x - offset)
                for x in range(inside[1], width):
                    line[0, x] = _reflection(source, y, x - offset)
                _fold_row(line[0], zero, column_low, column_high, next_low, next_high, (zero, offset), i == first)
                _fold_row(line[0], zero, column_low, column_high, next_low, next_high, (inside[1], width), i == first)
                if 0 <= y - inset < out.shape[0]:
                    target = out[y - inset]
                    for j in range(u(out.shape[1])):
                        target[j] = row[u(inset) + j]
            else:
                _gather(source, offset, (i, zero), line, (zero, zero), (zero + 1, width))
                _fold_row(line[0], zero, column_low, column_high, next_low, next_high, (zero, width), i == first)
        column_low, column_high = column[2 * ((last - 1 - first) % 2)], column[2 * ((last - 1 - first) % 2) + 1]
        for c in range(cols):
            least, most = column_low[c * size], column_high[c * size]
            for j in range(c * size + 1, min(width, (c + 1) * size)):
                least, most = min(least, column_low[j]), max(most, column_high[j])
            low[b, c], high[b, c] = least, most
    # A block beyond the last row or column adds nothing. (Loops here and below: slice assignment is slow to compile.)
    for c in range(cols):
        low[rows, c], high[rows, c] = low[rows - 1, c], high[rows - 1, c]
    for b in range(rows + 1):
        low[b, cols], high[b, cols] = low[b, cols - 1], high[b, cols - 1]
    ranges = np.empty((rows, cols), np.float32)
    for b in range(rows):
        for c in range(cols):
            least = min(min(low[b, c], low[b, c + 1]), min(low[b + 1, c], low[b + 1, c + 1]))
            most = max(max(high[b, c], high[b, c + 1]), max(high[b + 1, c], high[b + 1, c + 1]))
            ranges[b, c] = most - least
    return ranges


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _packed_sides(region, low, high, colour, origin, rows, cols, bits, packed, words):
    """The near and far sides of :func:`_sides`, each pixel's count (1) and channels packed into ``bits``-bit lanes of
    ``words`` uint64 (``packed[:words]`` near, ``packed[words:]`` far), for ``i, j`` in ``range(*rows)`` x
    ``range(*cols)``; ``colour`` of local ``(i, j)`` is at ``origin + (i, j)``, mirrored past its border as
    :func:`_padded` mirrors it. Window sums of the words are the lanes' sums, exact while each fits its lane."""
    u = np.uint64
    channels = u(colour.shape[2])
    per_word, lane_bits, many = u(64 // bits), u(bits), u(words)
    near, far = np.empty(cols[1] - cols[0], np.uint64), np.empty(cols[1] - cols[0], np.uint64)
    word = np.empty((words, cols[1] - cols[0]), np.uint64)
    columns = np.empty(cols[1] - cols[0], np.int64)
    for i in range(u(rows[0]), u(rows[1])):
        lows, highs = low[i], high[i]
        for w in range(u(2) * many):
            for j in range(u(cols[0]), u(cols[1])):
                packed[w, i, j] = 0
        # Only the part of the row from its first pixel on a ramp to its last has a side.
        start, stop = cols
        while start < stop and highs[start] - lows[start] <= SAME_SURFACE:
            start += 1
        while stop > start and highs[stop - 1] - lows[stop - 1] <= SAME_SURFACE:
            stop -= 1
        first, width = u(start), u(stop - start)
        for j in range(width):
            span = highs[first + j] - lows[first + j]
            offset = region[i, first + j] - lows[first + j]
            edge = span > SAME_SURFACE
            near[j] = u(0) - u(edge & (offset > _SIDES[1] * span))
            far[j] = u(0) - u(edge & (offset < _SIDES[0] * span))
        y, left = _mirrored(origin[0] + np.int64(i), colour.shape[0]), origin[1] + start
        inside = left >= 0 and left + stop - start <= colour.shape[1]
        if inside and channels == u(3) and per_word == u(4):  # RGB in 16-bit lanes: the channels read together
            for j in range(width):
                x = u(left) + j
                red, green, blue = u(colour[y, x, 0]), u(colour[y, x, 1]), u(colour[y, x, 2])
                packing = u(1) | red << u(16) | green << u(32) | blue << u(48)
                packed[0, i, first + j] = packing & near[j]
                packed[1, i, first + j] = packing & far[j]
            continue
        for w in range(many):
            for j in range(width):
                word[w, j] = u(1) if w == u(0) else u(0)
        if not inside:
            for j in range(width):
                columns[j] = _mirrored(left + np.int64(j), colour.shape[1])
        for c in range(channels):
            lane = c + u(1)
            w, shift = lane // per_word, lane_bits * (lane % per_word)
            if inside:
                for j in range(width):
                    word[w, j] |= u(colour[y, u(left) + j, c]) << shift
            else:
                for j in range(width):
                    word[w, j] |= u(colour[y, columns[j], c]) << shift
        for w in range(many):
            for j in range(width):
                packed[w, i, first + j] = word[w, j] & near[j]
                packed[many + w, i, first + j] = word[w, j] & far[j]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _packed_sums(packed, column_sums, sums, rows, cols, reach):
    """``sums[w, i, j]`` for ``i, j`` in ``range(*rows)`` x ``range(*cols)``: the sum of ``packed[w]`` over the window
    of radius ``reach`` around ``(i, j)``: down the columns first (running, into ``column_sums``), then along the
    rows."""
    u = np.uint64
    r = u(reach)
    first, width = u(cols[0]) - r, u(cols[1] - cols[0]) + u(2) * r
    total, prefix = np.empty(width, np.uint64), np.empty(width + u(1), np.uint64)
    for w in range(packed.shape[0]):
        for j in range(width):
            total[j] = 0
        for i in range(u(rows[0]) - r, u(rows[0]) + r):
            for j in range(width):
                total[j] += packed[w, i, first + j]
        for i in range(u(rows[0]), u(rows[1])):
            for j in range(width):
                total[j] += packed[w, i + r, first + j]
                column_sums[w, i, first + j] = total[j]
                total[j] -= packed[w, i - r, first + j]
        # Along the rows: differences of running totals. Their lanes overflow into each other, but the difference of
        # two is, modulo 2^64, the window's sum, whose lanes fit.
        for i in range(u(rows[0]), u(rows[1])):
            prefix[0] = 0
            for j in range(width):
                prefix[j + u(1)] = prefix[j] + column_sums[w, i, first + j]
            for j in range(u(cols[1] - cols[0])):
                sums[w, i, u(cols[0]) + j] = prefix[j + u(2) * r + u(1)] - prefix[j]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _snap_box(region, low, high, wide_low, wide_high, jumps, colour, sums, bits, origin, offset, box, radius,
              split, colour_weight, out, rows):  # fmt: skip
    """:func:`_snap_pixels` for local ``(i, j)`` in ``box`` (row and column ranges), from the window sums packed as
    :func:`_packed_sides` packs them. Local ``(i, j)`` is ``origin + (i, j)`` in the frame padded by ``2 * radius``,
    ``colour`` is that frame less ``offset`` on every side, ``out`` the frame unpadded; ``rows``: 10 float64 rows of
    scratch. A row at a time, every step for every pixel and the result chosen, without branches, in
    short loops over few arrays, so that the compiler vectorizes them: each pixel's arithmetic is _snap_pixels',
    operation for operation and in its types (its window sums are integers, divided as float64 as here)."""
    u = np.uint64
    channels = colour.shape[2]
    pad, area = u(2 * radius), (2 * radius + 1) ** 2
    per_word, words = 64 // bits, sums.shape[0] // 2
    mask = u((1 << bits) - 1)
    # Indexed one by one: unpacked, the rows would be typed as of any layout, which keeps loops from vectorizing.
    weights, scores, near_count, far_count, near_mean = rows[0], rows[1], rows[2], rows[3], rows[4]
    far_mean, apart, to_far, to_near, spans = rows[5], rows[6], rows[7], rows[8], rows[9]
    for i in range(u(box[0][0]), u(box[0][1])):
        values, lows, highs = region[i], low[i], high[i]
        # Only the part of the row from its first pixel on a ramp to its last: out holds the rest already.
        first, last = box[1]
        while first < last and highs[first] - lows[first] <= SAME_SURFACE:
            first += 1
        while last > first and highs[last - 1] - lows[last - 1] <= SAME_SURFACE:
            last -= 1
        if first == last:
            continue
        first, width = u(first), u(last - first)
        y, x = u(origin[0]) + i - pad, u(origin[1]) + first - pad
        colour_y, colour_x = u(origin[0] - offset) + i, u(origin[1] - offset) + first
        for j in range(width):
            spans[j] = highs[first + j] - lows[first + j]
        wide_lows, wide_highs = wide_low[i], wide_high[i]
        for j in range(width):
            weights[j] = min(1.0, max(0.0, 2.0 - (wide_highs[first + j] - wide_lows[first + j]) / np.float32(spans[j])))
        steps = jumps[i]
        for j in range(width):
            sharp = steps[first + j] / np.float32(spans[j])
            weights[j] *= min(1.0, max(0.0, (_SHARP[1] - sharp) / (_SHARP[1] - _SHARP[0])))
        for j in range(width):
            scores[j] = (values[first + j] - lows[first + j]) / np.float32(spans[j]) - split
        if channels > 0:
            near_sums, far_sums = sums[0, i], sums[words, i]
            for j in range(width):
                near_count[j] = np.float32(np.int32(near_sums[first + j] & mask))
            for j in range(width):
                far_count[j] = np.float32(np.int32(far_sums[first + j] & mask))
            for j in range(width):
                apart[j] = to_far[j] = to_near[j] = 0.0
            for c in range(channels):
                lane = c + 1
                near_sums, far_sums = sums[lane // per_word, i], sums[words + lane // per_word, i]
                shift = u(bits * (lane % per_word))
                # Through int32: no vector instruction converts 64-bit integers here.
                for j in range(width):
                    total = np.int32((near_sums[first + j] >> shift) & mask)
                    near_mean[j] = np.float64(total) / np.float32(near_count[j])
                for j in range(width):
                    total = np.int32((far_sums[first + j] >> shift) & mask)
                    far_mean[j] = np.float64(total) / np.float32(far_count[j])
                for j in range(width):
                    apart[j] += (near_mean[j] - far_mean[j]) ** 2
                levels = colour[colour_y, colour_x:, c]
                for j in range(width):
                    to_far[j] += (levels[j] - far_mean[j]) ** 2
                for j in range(width):
                    to_near[j] += (levels[j] - near_mean[j]) ** 2
            least = 0.02 * area
            for j in range(width):
                distance = np.sqrt(apart[j])
                evidence = (np.sqrt(to_far[j]) - np.sqrt(to_near[j])) / distance
                seen = (np.float32(near_count[j]) > least) & (np.float32(far_count[j]) > least)
                moved = scores[j] + colour_weight / 2 * min(1.0, max(-1.0, evidence))
                scores[j] = moved if seen & (distance > _COLOUR_APART) else scores[j]
        for j in range(width):
            value, span = values[first + j], np.float32(spans[j])
            snapped = lows[first + j] + span * min(1.0, max(0.0, scores[j] / _EDGE_SOFTNESS + 0.5))
            scores[j] = value + weights[j] * (snapped - value)
        refined = out[y]
        for j in range(width):
            value, result = values[first + j], np.float32(scores[j])
            refined[x + j] = value if np.float32(spans[j]) <= SAME_SURFACE else result


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _snap_tiles(disparity, colour, offset, radius, split, colour_weight, tile):
    """:func:`_snap_reference`'s result, a ``tile`` (rows, columns) at a time: ``disparity`` and 8-bit ``colour``
    (HxWx0 for none) are the frame padded by ``2 * radius``, less ``offset`` on every side: 0, or ``2 * radius``
    (the frame itself, continued past its border here as :func:`_padded` continues it, which this can where the
    padding is less than the frame's size)."""
    r, pad = radius, 2 * radius
    height, width = disparity.shape[0] + 2 * (offset - pad), disparity.shape[1] + 2 * (offset - pad)
    channels = colour.shape[2]
    area = (2 * r + 1) ** 2
    bits = 16 if area * 255 < 65536 else 32
    words = (channels + 1 + 64 // bits - 1) // (64 // bits) if channels > 0 else 0
    rows, cols = tile[0] + 2 * pad, tile[1] + 2 * pad
    out = np.empty((height, width), np.float32)
    region = np.empty((rows, cols), np.float32)
    scratch = np.empty((4, rows, cols), np.float32)
    row_low, row_high = np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32)
    low, high = np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32)
    wide_low, wide_high = np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32)
    steps, jumps = np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32)
    packed = np.zeros((2 * words, rows, cols), np.uint64)
    column_sums = np.zeros((2 * words, rows, cols), np.uint64)
    packed_sums = np.zeros((2 * words, rows, cols), np.uint64)
    snap_rows = np.zeros((10, cols), np.float64)
    flags = np.empty((2, cols), np.int32)
    # Computed flags: literal ones would have a version of _extremes compiled for each.
    yes = r > 0
    no = not yes
    # No pixel of a tile whose windows' blocks span at most SAME_SURFACE is on a ramp.
    block = 2 * r + 1
    ranges = _block_ranges(disparity, offset, block, out, pad - offset)
    for ty in range(0, height, tile[0]):
        th = min(tile[0], height - ty)
        for tx in range(0, width, tile[1]):
            tw = min(tile[1], width - tx)
            # Local (i, j) is padded (ty + i, tx + j): the tile is [pad, pad + th) x [pad, pad + tw). A pixel's window
            # starts (top left) r before it; where it starts in a block whose range is within SAME_SURFACE, the pixel
            # is on no ramp. The pixels that may be: the box ``inner``.
            top, bottom, left, right = height, -1, width, -1
            for b in range((ty + r) // block, (ty + th - 1 + r) // block + 1):
                for c in range((tx + r) // block, (tx + tw - 1 + r) // block + 1):
                    if ranges[b, c] > SAME_SURFACE:
                        top, bottom, left, right = min(top, b), max(bottom, b), min(left, c), max(right, c)
            if bottom < 0:
                continue
            inner = ((max(pad, top * block - ty + r), min(pad + th, (bottom + 1) * block - ty + r)),
                     (max(pad, left * block - tx + r), min(pad + tw, (right + 1) * block - tx + r)))  # fmt: skip
            (i0, i1), (j0, j1) = inner
            _gather(disparity, offset, (ty + i0 - pad, tx + j0 - pad), region, (i0 - pad, j0 - pad),
                    (i1 - i0 + 2 * pad, j1 - j0 + 2 * pad))  # fmt: skip
            reached = (i0 - r, i1 + r), (j0 - r, j1 + r)
            _extremes(region, region, row_low, row_high, scratch, (i0 - pad, i1 + pad), reached[1], r, yes, yes)
            _extremes(row_low, row_high, low, high, scratch, reached[0], reached[1], r, no, yes)
            # The pixels that are: the box that is left.
            inner = _ramp_box(low, high, inner, flags)
            (i0, i1), (j0, j1) = inner
            if i0 >= i1:
                continue
            reached = (i0 - r, i1 + r), (j0 - r, j1 + r)
            _extremes(low, high, row_low, row_high, scratch, reached[0], inner[1], r, yes, yes)
            _extremes(row_low, row_high, wide_low, wide_high, scratch, inner[0], inner[1], r, no, yes)
            # The largest step to a neighbour, then the largest in the window.
            u = np.uint64
            for i in range(u(reached[0][0]), u(reached[0][1])):
                for j in range(u(reached[1][0]), u(reached[1][1])):
                    v = region[i, j]
                    a, b = abs(region[i, j + u(1)] - v), abs(v - region[i, j - u(1)])
                    c, d = abs(region[i + u(1), j] - v), abs(v - region[i - u(1), j])
                    a = a if a > b else b
                    c = c if c > d else d
                    steps[i, j] = a if a > c else c
            _extremes(steps, steps, row_low, row_high, scratch, reached[0], inner[1], r, yes, no)
            _extremes(row_high, row_high, jumps, jumps, scratch, inner[0], inner[1], r, no, no)
            if channels > 0:
                origin = ty - offset, tx - offset
                _packed_sides(region, low, high, colour, origin, reached[0], reached[1], bits, packed, words)
                _packed_sums(packed, column_sums, packed_sums, inner[0], inner[1], r)
            _snap_box(region, low, high, wide_low, wide_high, jumps, colour, packed_sums, bits, (ty, tx), offset, inner,
                      r, split, colour_weight, out, snap_rows)  # fmt: skip
    return out


def _snap_tiled(disparity: np.ndarray, colour: np.ndarray | None, radius: int, split: float) -> np.ndarray:
    """:func:`_snap_reference`, a tile at a time, skipping the tiles without a ramp."""
    pad = offset = 2 * radius
    if pad >= min(disparity.shape):  # np.pad and OpenCV reflect again where the padding exceeds the frame: they pad
        disparity, colour = _padded(disparity, colour, pad)
        offset = 0
    disparity = np.ascontiguousarray(disparity)
    colour = np.zeros((*disparity.shape, 0), np.uint8) if colour is None else np.ascontiguousarray(colour)
    return _snap_tiles(disparity, colour, offset, radius, split, _COLOUR_WEIGHT, _TILE)


def _restore_thin(colour: np.ndarray, disparity: np.ndarray, radius: int) -> np.ndarray:
    """Thin structures back at their own disparity (see :func:`refine_disparity`); computed on the frame reflected by
    ``2 * radius`` at its border, so windows near it see a continuation of the picture."""
    pad = 2 * radius
    disparity = cv2.copyMakeBorder(disparity, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    colour = cv2.copyMakeBorder(colour, pad, pad, pad, pad, cv2.BORDER_REFLECT_101).reshape(*disparity.shape, -1)
    window = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    size = (2 * radius + 1, 2 * radius + 1)
    base = cv2.dilate(cv2.erode(disparity, window), window)  # the depth without bumps narrower than the window
    excess = np.maximum(disparity - base, 0.0)
    peak = cv2.dilate(excess, window)
    ridge = peak > SAME_SURFACE
    if not ridge.any():
        return disparity[pad:-pad, pad:-pad]
    background = (excess < 0.1 * peak).astype(np.float32)
    count = cv2.blur(background, size)
    around = cv2.blur(colour * background[..., None], size).reshape(colour.shape)
    around /= np.maximum(count, 1e-6)[..., None]
    apart = np.sqrt(np.mean((colour - around) ** 2, axis=-1)) > _THIN_COLOUR
    member = ridge & apart & (excess > 0.1 * peak)
    share = cv2.blur(excess, size) / np.maximum(cv2.blur(member.astype(np.float32), size), 1e-6)
    share = np.minimum(share, (2 * radius + 1) * peak)
    restored = base + np.where(member, share, 0.0)
    out = np.where(ridge & (count > 0), restored, disparity).astype(np.float32)
    return out[pad:-pad, pad:-pad]


# ------------------------------------------------------------------------------------------------------- torch


def reflect_101(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of ``range(-pad, size + pad)`` reflected into ``range(size)`` without repeating the edge (OpenCV's
    BORDER_REFLECT_101, the border cv2.blur uses), however many times the pad exceeds the size."""
    position = torch.arange(-pad, size + pad, device=device)
    if size <= 1:
        return torch.zeros_like(position)
    period = 2 * (size - 1)
    position = position.remainder(period)
    return torch.where(position < size, position, period - position)


def _odd_reflect(values: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """``values`` padded by ``pad`` along ``dim`` with a point reflection about each border value
    (``2 * d[border] - d[mirrored]``, numpy's ``pad(mode="reflect", reflect_type="odd")`` for a pad below the size)."""
    size = values.shape[dim]
    position = torch.arange(-pad, size + pad, device=values.device)
    border = position.clamp(0, size - 1)
    mirrored = (2 * border - position).clamp(0, size - 1)
    return 2 * values.index_select(dim, border) - values.index_select(dim, mirrored)


def _pool_max(values: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over a (2r+1)^2 window of [N, H, W] maps, the border padded with -inf (as cv2.dilate treats it)."""
    return F.max_pool2d(values[:, None], 2 * radius + 1, stride=1, padding=radius)[:, 0]


def _pool_min(values: torch.Tensor, radius: int) -> torch.Tensor:
    return -_pool_max(-values, radius)


def _box_torch(values: torch.Tensor, radius: int) -> torch.Tensor:
    """:func:`_box` of [N, H, W, C] maps."""
    height, width = values.shape[1:3]
    rows, cols = reflect_101(height, radius, values.device), reflect_101(width, radius, values.device)
    padded = values.index_select(1, rows).index_select(2, cols).permute(0, 3, 1, 2)
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1).permute(0, 2, 3, 1)


def refine_disparity_torch(
    image: torch.Tensor | None,
    disparity: torch.Tensor,
    *,
    scale: float = 2.0,
    split: float = EDGE_SPLIT,
    thin: bool = False,
) -> torch.Tensor:
    """:func:`refine_disparity` in torch, for a frame or a batch: ``image`` [H, W, C] or [B, H, W, C] (uint8, or
    uint16 read as its top 8 bits; None: by depth alone), ``disparity`` [H, W] or [B, H, W] in pixels. Returns
    float32 disparity shaped like ``disparity`` on its device: the same rule as the numpy version, equal to it within
    float32 rounding (1e-4 px) for frames larger than the window (4 ``r`` + 1 px)."""
    if disparity.ndim not in (2, 3):
        raise ValueError(f"disparity must be [H, W] or [B, H, W], got {tuple(disparity.shape)}")
    if image is not None and (image.ndim != disparity.ndim + 1 or image.shape[:-1] != disparity.shape):
        raise ValueError(f"image {tuple(image.shape)} must be disparity's shape {tuple(disparity.shape)} plus channels")
    radius = _checked_radius(scale, split, thin, image is not None)
    shape = disparity.shape
    height, width = shape[-2:]
    values = disparity.to(torch.float32).reshape(-1, height, width)
    pad = 2 * radius
    colour = None
    if image is not None:
        pixels = image.reshape(-1, height, width, image.shape[-1])
        rows, cols = reflect_101(height, pad, image.device), reflect_101(width, pad, image.device)
        if thin:
            deep = pixels.to(torch.float32) / (257.0 if image.dtype == torch.uint16 else 1.0)
            reflected = _restore_thin_torch(deep.index_select(1, rows).index_select(2, cols),
                                            values.index_select(1, rows).index_select(2, cols), radius)  # fmt: skip
            values = reflected[:, pad:-pad, pad:-pad]
        eight = pixels.to(torch.int32) >> 8 if image.dtype == torch.uint16 else pixels
        colour = eight.to(torch.float32).index_select(1, rows).index_select(2, cols)
    padded = _odd_reflect(_odd_reflect(values, pad, 1), pad, 2)
    return _snap_torch(padded, colour, radius, split)[:, pad:-pad, pad:-pad].reshape(shape)


def _largest_jump_torch(disparity: torch.Tensor) -> torch.Tensor:
    jump = torch.zeros_like(disparity)
    across = (disparity[..., 1:] - disparity[..., :-1]).abs()
    down = (disparity[..., 1:, :] - disparity[..., :-1, :]).abs()
    jump[..., 1:] = across
    jump[..., :-1] = torch.maximum(jump[..., :-1], across)
    jump[..., 1:, :] = torch.maximum(jump[..., 1:, :], down)
    jump[..., :-1, :] = torch.maximum(jump[..., :-1, :], down)
    return jump


def _snap_torch(disparity: torch.Tensor, colour: torch.Tensor | None, radius: int, split: float) -> torch.Tensor:
    low, high = _pool_min(disparity, radius), _pool_max(disparity, radius)
    span = high - low
    edge = span > SAME_SURFACE
    safe = span.clamp_min(1e-6)
    wide_span = _pool_max(disparity, 2 * radius) - _pool_min(disparity, 2 * radius)
    weight = (2.0 - wide_span / safe).clamp(0.0, 1.0)
    sharp = _pool_max(_largest_jump_torch(disparity), radius) / safe
    weight = weight * ((_SHARP[1] - sharp) / (_SHARP[1] - _SHARP[0])).clamp(0.0, 1.0)
    position = (disparity - low) / safe
    score = position - split
    if colour is not None:
        score = score + _COLOUR_WEIGHT / 2 * _colour_evidence_torch(colour, edge, position, radius)
    snapped = low + span * (score / _EDGE_SOFTNESS + 0.5).clamp(0.0, 1.0)
    return torch.where(edge, disparity + weight * (snapped - disparity), disparity)


def _colour_evidence_torch(
    colour: torch.Tensor, edge: torch.Tensor, position: torch.Tensor, radius: int
) -> torch.Tensor:
    """``colour``: 8-bit values as float32 [N, H, W, C]; the CPU path's integer arithmetic, in float32 (exact)."""
    sides = []
    for mask in (edge & (position > _SIDES[1]), edge & (position < _SIDES[0])):
        mask = mask.to(torch.float32)[..., None]
        area = (2 * radius + 1) ** 2
        count = torch.round(_box_torch(mask, radius) * area)  # window sums, exact integers
        sides.append((count[..., 0], torch.round(_box_torch(colour * mask, radius) * area) / count.clamp_min(1.0)))
    (near_count, near), (far_count, far) = sides
    apart = ((near - far) ** 2).sum(-1).sqrt()
    evidence = ((colour - far) ** 2).sum(-1).sqrt() - ((colour - near) ** 2).sum(-1).sqrt()
    evidence = (evidence / apart.clamp_min(1e-3)).clamp(-1.0, 1.0)
    least = 0.02 * (2 * radius + 1) ** 2
    seen = (near_count > least) & (far_count > least) & (apart > _COLOUR_APART)
    return torch.where(seen, evidence, 0.0)


def _restore_thin_torch(colour: torch.Tensor, disparity: torch.Tensor, radius: int) -> torch.Tensor:
    base = _pool_max(_pool_min(disparity, radius), radius)
    excess = (disparity - base).clamp_min(0.0)
    peak = _pool_max(excess, radius)
    ridge = peak > SAME_SURFACE
    background = (excess < 0.1 * peak).to(torch.float32)[..., None]
    count = _box_torch(background, radius)
    around = _box_torch(colour * background, radius) / count.clamp_min(1e-6)
    apart = ((colour - around) ** 2).mean(dim=-1).sqrt() > _THIN_COLOUR
    member = ridge & apart & (excess > 0.1 * peak)
    share = _box_torch(excess[..., None], radius)[..., 0]
    share = share / _box_torch(member.to(torch.float32)[..., None], radius)[..., 0].clamp_min(1e-6)
    share = torch.minimum(share, (2 * radius + 1) * peak)
    restored = base + torch.where(member, share, 0.0)
    return torch.where(ridge & (count[..., 0] > 0), restored, disparity)
