"""Depth-image-based rendering: a new view of an image from its per-pixel disparity.

Conventions. Disparity is in pixels, signed, larger = nearer (how depth becomes disparity within a parallax budget is
:mod:`stereoconv.parallax`). A pixel moves to ``x + direction * d``; the two eyes are rendered symmetrically about
the source,

    left  = synthesize_view(image, d, direction=+1)    # pixel moves to x + d
    right = synthesize_view(image, d, direction=-1)    # pixel moves to x - d

so the screen parallax ``x_right - x_left = -2 d``: points with d > 0 get crossed (negative) parallax and appear in
front of the screen, points with d < 0 behind it.

A view is made in three steps:

1. :func:`warp_disparity` forward-warps the *disparity* to the new view with occlusion order (larger wins). Each
   pair of neighbouring pixels on one surface is splatted as a segment covering every pixel between their new
   positions, with linearly interpolated disparity: sub-pixel exact, no cracks on slanted or stretched surfaces.
2. :func:`sample_view` reads each new pixel's colour back from the source at ``x - direction * disparity`` by linear
   interpolation between the two nearest source pixels, using only those on the same surface as the pixel, so
   foreground colour does not leak into background at depth edges, nor the reverse.
3. :func:`fill_disocclusions` fills what no surface covers from the background side only: the mean of the nearest
   background pixels in the row, smoothed over the rows of the hole, continuing the background instead of smearing
   one pixel (or the foreground) into it.

On the CPU, :func:`synthesize_view` runs the three steps as one compiled pass per row (numba); the three functions
above, composed in :func:`synthesize_view_reference`, state the same rules over whole arrays and are what it is
tested against. :func:`warp_disparity_torch`, :func:`sample_view_torch`, :func:`fill_disocclusions_torch` and
:func:`synthesize_view_torch` do the same on torch tensors on any device, for a frame or a batch of frames. Depth
edges are refined before any of this (:func:`refine_disparity`, from :mod:`stereoconv.refine`).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numba
import numpy as np
import torch

# SAME_SURFACE: neighbours that far apart or less (px) are one surface, here and in the refinement. refine_disparity
# (soft depth edges back to steps, before rendering) is part of this module's API.
from .refine import SAME_SURFACE, reflect_101
from .refine import refine_disparity as refine_disparity
from .refine import refine_disparity_torch as refine_disparity_torch

# A disocclusion takes the mean of this many background pixels next to it (fewer where the background surface ends)
_FILL_TAPS = 2
# ...and that fill is then averaged over this many rows of the hole above and below, so it does not streak.
_FILL_ROWS = 3


def warp_disparity(disparity: np.ndarray, direction: int) -> np.ndarray:
    """The disparity seen from the new view: float32 HxW, ``-inf`` where no surface lands (a disocclusion).

    ``disparity``: float32 HxW in pixels, larger = nearer; a pixel moves to ``x + direction * disparity``. Every
    pixel lands on its rounded new column (halves up, so a constant half-pixel shift moves all pixels alike), and
    every new column strictly between two same-surface neighbours gets their linearly interpolated disparity. Where
    several land on one pixel, the largest disparity (the nearest) wins. Non-finite disparities are dropped.
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")
    disparity = np.asarray(disparity, dtype=np.float32)
    height, width = disparity.shape
    keep = np.isfinite(disparity)
    disparity = np.where(keep, disparity, np.float32(0.0))
    target = np.arange(width, dtype=np.float32) + np.float32(direction) * disparity
    # Each row has a spare column on either side that takes whatever lands off-frame, so nothing needs compacting.
    stride = width + 2
    zbuffer = np.full(height * stride, -np.inf, dtype=np.float32)
    row_start = (np.arange(height, dtype=np.int64) * stride + 1)[:, None]

    def splat(column: np.ndarray, value: np.ndarray) -> None:
        """Max ``value`` into the z-buffer at float ``column`` (a whole number), off-frame ones in the spare columns."""
        index = np.clip(column, -1, width).astype(np.int64)  # clip first: a huge float does not cast to int
        np.maximum.at(zbuffer, (row_start + index).ravel(), value.ravel())

    splat(np.floor(target + np.float32(0.5)), np.where(keep, disparity, -np.inf))

    t0, t1, d0, d1 = target[:, :-1], target[:, 1:], disparity[:, :-1], disparity[:, 1:]
    joined = keep[:, :-1] & keep[:, 1:] & (np.abs(d1 - d0) <= SAME_SURFACE)
    high = np.maximum(t0, t1)
    span = np.where(joined & (t1 != t0), t1 - t0, np.float32(1.0))
    first = np.ceil(np.minimum(t0, t1))
    # Joined neighbours are at most 1 + SAME_SURFACE = 2 px apart after the warp: at most 3 columns between them.
    for step in range(3):
        column = first + np.float32(step)
        covered = joined & (column <= high)
        if not covered.any():
            break
        value = np.where(covered, d0 + (d1 - d0) * ((column - t0) / span), -np.inf).astype(np.float32)
        splat(column, value)
    return zbuffer.reshape(height, stride)[:, 1 : width + 1].copy()


def sample_view(
    image: np.ndarray, disparity: np.ndarray, warped: np.ndarray, direction: int
) -> tuple[np.ndarray, np.ndarray]:
    """Colour of each pixel of the new view, read from ``image`` at ``x - direction * warped[y, x]``.

    Linear interpolation between the two source pixels around that position, each used only if its own disparity is
    within ``SAME_SURFACE`` of ``warped`` (it shows the same surface); with neither, the nearest source pixel.
    ``image``: uint8 HxW or HxWxC; ``disparity``: the source's, float32 HxW; ``warped``: from
    :func:`warp_disparity`. Returns ``(view, filled)``: the view like ``image`` (holes 0) and the bool HxW mask of
    pixels a surface covers.
    """
    height, width = warped.shape
    filled = np.isfinite(warped)
    wanted = np.where(filled, warped, np.float32(0.0))
    position = np.arange(width, dtype=np.float32) - np.float32(direction) * wanted
    # Where both neighbours show the surface, this is plain linear interpolation: let OpenCV do the bulk of it.
    rows = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], warped.shape)
    view = cv2.remap(image, position, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    view = view.reshape(image.shape)

    left = np.floor(position).astype(np.int64)
    row_start = (np.arange(height, dtype=np.int64) * width)[:, None]
    flat_disparity = disparity.reshape(-1)
    same = []
    for column in (left, left + 1):
        clipped = np.clip(column, 0, width - 1)
        on_surface = np.abs(flat_disparity[row_start + clipped] - wanted) <= SAME_SURFACE
        same.append(on_surface & (column == clipped))
    # The rest (a depth edge or the frame edge between the two): the neighbour on the surface, else the nearest.
    fix = filled & ~(same[0] & same[1]) & (position != left)
    if fix.any():
        ys, xs = np.nonzero(fix)
        at = left[ys, xs]
        pick = np.where(same[0][ys, xs], at, np.where(same[1][ys, xs], at + 1, np.floor(position[ys, xs] + 0.5)))
        view[ys, xs] = image[ys, np.clip(pick.astype(np.int64), 0, width - 1)]
    view[~filled] = 0
    return view, filled


def fill_disocclusions(view: np.ndarray, warped: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Fill the pixels no surface covers from their background side; returns a new float32 array like ``view``.

    Each run of hole pixels in a row looks at the covered pixels just left and right of it and takes the side with
    the smaller disparity (the farther: a disocclusion reveals background). Its value is the mean of up to
    ``_FILL_TAPS`` pixels of that background surface going away from the hole, then averaged with the hole pixels
    ``_FILL_ROWS`` rows above and below, so the fill follows the background instead of streaking one pixel.
    """
    out = np.array(view, dtype=np.float32)
    if filled.all():
        return out
    height, width = filled.shape
    pixels = out.reshape(height, width, -1)
    rows, cols = np.nonzero(~filled)  # row-major: the pixels of a run are consecutive
    # A run ends where the next hole is not the next column of the same row.
    starts = np.flatnonzero((np.diff(cols, prepend=-2) != 1) | (np.diff(rows, prepend=-1) != 0))
    ends = np.append(starts[1:], cols.size) - 1
    run_rows, before, after = rows[starts], cols[starts] - 1, cols[ends] + 1
    d_before = np.where(before >= 0, warped[run_rows, np.clip(before, 0, width - 1)], np.inf)
    d_after = np.where(after < width, warped[run_rows, np.clip(after, 0, width - 1)], np.inf)
    from_before = d_before <= d_after
    edge = np.where(from_before, before, after)
    away = np.where(from_before, -1, 1)
    edge_disparity = np.minimum(d_before, d_after)
    total = np.zeros((starts.size, 1), np.float32)
    run_fill = np.zeros((starts.size, pixels.shape[2]), np.float32)
    for step in range(_FILL_TAPS):
        column = edge + away * step
        clipped = np.clip(column, 0, width - 1)
        # Only that background surface itself: a thin strip of it must not pull in what lies beyond.
        same = (column == clipped) & filled[run_rows, clipped]
        same &= np.abs(warped[run_rows, clipped] - edge_disparity) <= SAME_SURFACE
        run_fill += pixels[run_rows, clipped] * same[:, None]
        total += same[:, None]
    run_fill /= np.maximum(total, 1.0)  # a row with nothing covered stays 0

    fill = np.zeros_like(pixels)
    fill[rows, cols] = np.repeat(run_fill, np.diff(np.append(starts, cols.size)), axis=0)
    hole = (~filled).astype(np.float32)
    kernel = (1, 2 * _FILL_ROWS + 1)
    smoothed = cv2.blur(fill, kernel).reshape(pixels.shape) / np.maximum(cv2.blur(hole, kernel), 1e-6)[..., None]
    pixels[rows, cols] = smoothed[rows, cols]
    return out


def synthesize_view_reference(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    """:func:`synthesize_view` as whole-array numpy and OpenCV steps (:func:`warp_disparity`, :func:`sample_view`,
    :func:`fill_disocclusions`): the readable statement of the rules, which the compiled kernel is tested against."""
    if image.shape[:2] != np.shape(disparity):
        raise ValueError(f"image {image.shape[:2]} and disparity {np.shape(disparity)} sizes differ")
    disparity = np.asarray(disparity, dtype=np.float32)
    warped = warp_disparity(disparity, direction)
    view, filled = sample_view(image, np.where(np.isfinite(disparity), disparity, np.float32(0.0)), warped, direction)
    view = fill_disocclusions(view, warped, filled)
    return np.clip(np.rint(view), 0, np.iinfo(image.dtype).max).astype(image.dtype)


def synthesize_view(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    """Render a new view: ``out[y, x + direction * disparity[y, x]] = image[y, x]``, larger disparity wins where
    two land on one pixel, holes filled from their background side (see the module docstring for how).

    ``image``: uint8 HxWx3 (or HxW, HxWxC; uint16 for deep sources). ``disparity``: float32 HxW, pixels, larger =
    nearer; sub-pixel values are rendered by interpolation. ``direction=-1`` turns a left image into the right-eye view
    (Middlebury: left(x) = right(x - d)). Returns the dtype of ``image``.

    Runs as one compiled pass per row (numba; it releases the GIL, so the pipeline's render threads use every core):
    the same rules and float32 arithmetic as :func:`synthesize_view_reference`, so the warp is identical and pixels
    differ by at most 1 level (OpenCV's remap rounds its interpolation its own way; the fill then averages the same
    neighbours).
    """
    if image.shape[:2] != np.shape(disparity):
        raise ValueError(f"image {image.shape[:2]} and disparity {np.shape(disparity)} sizes differ")
    _check_direction(direction)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16, got {image.dtype}")
    pixels = np.ascontiguousarray(image).reshape(image.shape[0], image.shape[1], -1)
    disparity = np.ascontiguousarray(disparity, dtype=np.float32)
    top = float(np.iinfo(image.dtype).max)
    return _synthesize_kernel(pixels, disparity, direction, top).reshape(image.shape)


# error_model="numpy": no Python zero-division checks on every float division (they cost a third of the time). No
# fastmath: the float32 arithmetic must stay exactly the reference's and the torch path's.
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _synthesize_kernel(image: np.ndarray, disparity: np.ndarray, direction: int, top: float) -> np.ndarray:
    """:func:`synthesize_view` on an HxWxC image: per row the warp (z-buffer with same-surface segments), the
    same-surface sampling and the background-side run fill; then the fill is averaged over ``_FILL_ROWS`` rows."""
    height, width, channels = image.shape
    step = np.float32(direction)
    half, one = np.float32(0.5), np.float32(1.0)
    out = np.empty((height, width, channels), image.dtype)
    filled = np.zeros((height, width), np.bool_)
    fill = np.empty((height, width, channels), np.float32)  # read only where a hole was written
    zbuffer = np.empty(width + 2, np.float32)
    values = np.empty(width, np.float32)
    run = np.zeros(channels, np.float32)
    lowest, highest = np.float32(-1.0), np.float32(width)
    holes = 0
    for y in range(height):
        # 1. The warp: each pixel on its rounded new column, each same-surface pair (this pixel and the one before
        # it) as a segment; nearer wins, so the order of the splats does not matter.
        zbuffer[:] = -np.inf
        d0 = t0 = np.float32(0.0)
        joinable = False  # the pixel before is finite
        for x in range(width):
            d1 = disparity[y, x]
            finite = np.isfinite(d1)
            if not finite:
                d1 = np.float32(0.0)
            values[x] = d1
            t1 = np.float32(x) + step * d1
            if finite:
                index = np.int64(min(max(np.floor(t1 + half), lowest), highest)) + 1
                if d1 > zbuffer[index]:
                    zbuffer[index] = d1
                if joinable and abs(d1 - d0) <= SAME_SURFACE:
                    high = max(t0, t1)
                    span = t1 - t0 if t1 != t0 else one
                    column = np.ceil(min(t0, t1))
                    for _ in range(3):
                        if column > high:
                            break
                        value = d0 + (d1 - d0) * ((column - t0) / span)
                        index = np.int64(min(max(column, lowest), highest)) + 1
                        if value > zbuffer[index]:
                            zbuffer[index] = value
                        column += one
            d0, t0, joinable = d1, t1, finite
        # 2. Colour read back at x - direction * warped, between source pixels of the same surface only.
        row_holes = 0
        for x in range(width):
            d = zbuffer[x + 1]
            if d == -np.inf:
                row_holes += 1
                continue
            filled[y, x] = True
            position = np.float32(x) - step * d
            left = np.floor(position)
            fraction = position - left
            column = np.int64(left)
            a = min(max(column, 0), width - 1)
            b = min(max(column + 1, 0), width - 1)
            same_a = column == a and abs(values[a] - d) <= SAME_SURFACE
            same_b = column + 1 == b and abs(values[b] - d) <= SAME_SURFACE
            if fraction != 0 and same_a and same_b:
                if channels == 3:  # the usual case, unrolled
                    low0 = np.float32(image[y, a, 0])
                    low1 = np.float32(image[y, a, 1])
                    low2 = np.float32(image[y, a, 2])
                    out[y, x, 0] = np.rint(low0 + (np.float32(image[y, b, 0]) - low0) * fraction)
                    out[y, x, 1] = np.rint(low1 + (np.float32(image[y, b, 1]) - low1) * fraction)
                    out[y, x, 2] = np.rint(low2 + (np.float32(image[y, b, 2]) - low2) * fraction)
                else:
                    for c in range(channels):
                        low = np.float32(image[y, a, c])
                        out[y, x, c] = np.rint(low + (np.float32(image[y, b, c]) - low) * fraction)
            else:
                pick = a
                if fraction != 0 and not same_a:
                    pick = b if same_b else min(max(np.int64(np.floor(position + half)), 0), width - 1)
                for c in range(channels):
                    out[y, x, c] = image[y, pick, c]
        holes += row_holes
        if row_holes == 0:
            continue
        # 3. Each run of holes: the mean of up to _FILL_TAPS pixels of the farther neighbouring surface.
        x = 0
        while x < width:
            if filled[y, x]:
                x += 1
                continue
            start = x
            while x < width and not filled[y, x]:
                x += 1
            d_before = zbuffer[start] if start > 0 else np.float32(np.inf)  # zbuffer[i + 1] is column i
            d_after = zbuffer[x + 1] if x < width else np.float32(np.inf)
            edge, away = (start - 1, -1) if d_before <= d_after else (x, 1)
            edge_disparity = min(d_before, d_after)
            total = 0
            run[:] = 0
            for k in range(_FILL_TAPS):
                column = edge + away * k
                if not (0 <= column < width and filled[y, column]):
                    continue
                if abs(zbuffer[column + 1] - edge_disparity) <= SAME_SURFACE:
                    for c in range(channels):
                        run[c] += out[y, column, c]
                    total += 1
            for column in range(start, x):
                for c in range(channels):
                    fill[y, column, c] = run[c] / max(total, 1)
    if holes == 0:
        return out
    # The fills averaged down each column over the hole pixels within _FILL_ROWS rows (the border reflected), as
    # cv2.blur of both over the window and their ratio: (sum / n) / (count / n) in float32, exact for fills on whole
    # or half levels, so ties round as on the other paths.
    window = np.float32(2 * _FILL_ROWS + 1)
    sums = np.zeros(channels, np.float32)
    rows = np.empty(2 * _FILL_ROWS + 1, np.int64)
    for y in range(height):
        for k in range(2 * _FILL_ROWS + 1):
            rows[k] = _reflect_101_index(y + k - _FILL_ROWS, height)
        for x in range(width):
            if filled[y, x]:
                continue
            count = 0
            sums[:] = 0
            for row in rows:
                if not filled[row, x]:
                    count += 1
                    for c in range(channels):
                        sums[c] += fill[row, x, c]
            share = np.float32(count) / window
            for c in range(channels):
                out[y, x, c] = min(max(np.rint((sums[c] / window) / share), 0), top)
    return out


@numba.njit(inline="always")
def _reflect_101_index(index: int, size: int) -> int:
    if size <= 1:
        return 0
    period = 2 * (size - 1)
    index %= period
    return index if index < size else period - index


# ------------------------------------------------------------------------------------------ torch (GPU path)
# The same three steps as torch ops, for frames that already live on the GPU (or any torch device): the same rules,
# the same float32 arithmetic where it matters, a leading batch dimension, no Python loop over pixels or rows and no
# host synchronization. Rows are independent in the warp, the sampling and the row fill, so a batch is handled as one
# tall stack of rows; only the vertical smoothing of the fill needs the frames apart, and it never crosses from one
# frame into the next.


def _check_direction(direction: int) -> None:
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")


def _check_layout(pixels: torch.Tensor, maps: dict[str, torch.Tensor], what: str) -> None:
    """Refuse maps that are not all [H, W] or all [B, H, W] of one size, or ``pixels`` that is not the same with a
    trailing channel dimension."""
    shapes = {name: tuple(value.shape) for name, value in maps.items()}
    first = next(iter(shapes.values()))
    if len(first) not in (2, 3) or len(set(shapes.values())) != 1:
        raise ValueError(f"{', '.join(shapes)} must be [H, W] or [B, H, W] of one size, got {shapes}")
    if tuple(pixels.shape[:-1]) != first or pixels.ndim != len(first) + 1:
        raise ValueError(
            f"{what} {tuple(pixels.shape)} must be [H, W, C] or [B, H, W, C] with sizes like the disparity {first}: "
            "sizes differ"
        )


def warp_disparity_torch(disparity: torch.Tensor, direction: int) -> torch.Tensor:
    """:func:`warp_disparity` in torch: the disparity seen from the new view, float32 shaped like ``disparity``
    ([H, W] or [B, H, W]) on its device, ``-inf`` where no surface lands (a disocclusion).

    ``disparity``: pixels, larger = nearer, any real dtype (taken as float32, as the numpy version does); a pixel
    moves to ``x + direction * disparity``. Same rule and same float32 arithmetic as :func:`warp_disparity`, so the
    two agree bit for bit: each pixel lands on its rounded new column (halves up), every new column strictly between
    two same-surface neighbours gets their linearly interpolated disparity, the largest disparity wins, non-finite
    disparities are dropped.
    """
    _check_direction(direction)
    if disparity.ndim not in (2, 3):
        raise ValueError(f"disparity must be [H, W] or [B, H, W], got {tuple(disparity.shape)}")
    shape, width = disparity.shape, disparity.shape[-1]
    disparity = disparity.to(torch.float32).reshape(-1, width)
    rows, device = disparity.shape[0], disparity.device
    keep = torch.isfinite(disparity)
    disparity = torch.where(keep, disparity, 0.0)
    target = torch.arange(width, dtype=torch.float32, device=device) + float(direction) * disparity
    # Each row has a spare column on either side that takes whatever lands off-frame, so nothing needs compacting.
    # Columns are clamped as floats before the cast: a huge disparity must not wrap around in int64.
    stride = width + 2
    zbuffer = torch.full((rows * stride,), -torch.inf, dtype=torch.float32, device=device)
    row_start = (torch.arange(rows, device=device) * stride + 1)[:, None]

    def splat(column: torch.Tensor, value: torch.Tensor) -> None:
        index = (row_start + column.clamp(-1, width).long()).reshape(-1)
        zbuffer.scatter_reduce_(0, index, value.reshape(-1), reduce="amax", include_self=True)

    splat(torch.floor(target + 0.5), torch.where(keep, disparity, -torch.inf))

    t0, t1, d0, d1 = target[:, :-1], target[:, 1:], disparity[:, :-1], disparity[:, 1:]
    joined = keep[:, :-1] & keep[:, 1:] & ((d1 - d0).abs() <= SAME_SURFACE)
    high = torch.maximum(t0, t1)
    span = torch.where(joined & (t1 != t0), t1 - t0, 1.0)
    first = torch.ceil(torch.minimum(t0, t1))
    # At most 3 columns per segment (see warp_disparity); all three are splatted, an empty one as -inf, rather than
    # asking the device whether any is left.
    for step in range(3):
        column = first + float(step)
        covered = joined & (column <= high)
        splat(column, torch.where(covered, d0 + (d1 - d0) * ((column - t0) / span), -torch.inf))
    return zbuffer.view(rows, stride)[:, 1 : width + 1].reshape(shape).contiguous()


def sample_view_torch(
    image: torch.Tensor, disparity: torch.Tensor, warped: torch.Tensor, direction: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_view` in torch: colour of each pixel of the new view, read from ``image`` at
    ``x - direction * warped[y, x]``.

    Linear interpolation between the two source pixels around that position, each used only if it is inside the
    frame and its own disparity is within ``SAME_SURFACE`` of ``warped`` (it shows the same surface), the weights
    renormalized over the usable ones; with neither, the nearest source pixel. ``image``: [H, W, C] or [B, H, W, C],
    uint8 (any real dtype is read as float32); ``disparity``: the source's, pixels, [H, W] or [B, H, W], finite;
    ``warped``: from :func:`warp_disparity_torch`. Returns ``(view, filled)``: the float32 view laid out like
    ``image`` (holes 0, values not rounded) and the bool [(B,) H, W] mask of pixels a surface covers.

    Unlike :func:`sample_view` (cv2.remap: the result rounded to uint8, and before OpenCV 5 positions moved to steps
    of 1/32 px) the interpolation is exact in float32 and not rounded: within 0.5 of it with OpenCV 5, within a few
    levels with OpenCV 4 where neighbours differ a lot.
    """
    _check_direction(direction)
    _check_layout(image, {"disparity": disparity, "warped": warped}, "image")
    width, channels = warped.shape[-1], image.shape[-1]
    pixels = image.reshape(-1, width, channels)
    source = disparity.to(torch.float32).reshape(-1, width)
    filled = torch.isfinite(warped.reshape(-1, width))
    wanted = torch.where(filled, warped.to(torch.float32).reshape(-1, width), 0.0)
    position = torch.arange(width, dtype=torch.float32, device=wanted.device) - float(direction) * wanted
    left = torch.floor(position)
    fraction = (position - left)[..., None]
    # Clamped only so the cast cannot overflow: anything beyond -2 or width is off-frame on both sides alike.
    left = left.clamp(-2, width).long()
    ends, usable = [], []
    for column in (left, left + 1):
        clipped = column.clamp(0, width - 1)
        on_surface = (torch.gather(source, 1, clipped) - wanted).abs() <= SAME_SURFACE
        ends.append(clipped)
        usable.append(on_surface & (column == clipped))

    def take(column: torch.Tensor) -> torch.Tensor:
        return torch.gather(pixels, 1, column[..., None].expand(-1, -1, channels)).to(torch.float32)

    # One usable pixel has all the (renormalized) weight, unless its weight is 0: at a whole-pixel position the
    # right one's, where the nearest pixel is the left one, as in sample_view.
    nearest = torch.floor(position + 0.5).clamp(0, width - 1).long()
    only_right = usable[1] & (fraction[..., 0] > 0)
    single = torch.where(usable[0], ends[0], torch.where(only_right, ends[1], nearest))
    low, high = take(ends[0]), take(ends[1])
    both = (usable[0] & usable[1])[..., None]
    view = torch.where(both, low + fraction * (high - low), take(single))
    view = torch.where(filled[..., None], view, 0.0)
    return view.reshape(image.shape), filled.reshape(warped.shape)


def fill_disocclusions_torch(view: torch.Tensor, warped: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """:func:`fill_disocclusions` in torch: fill the pixels no surface covers from their background side; returns a
    new float32 tensor laid out like ``view`` ([H, W, C] or [B, H, W, C]).

    ``warped``: from :func:`warp_disparity_torch` and ``filled``: the bool mask from :func:`sample_view_torch`, both
    [H, W] or [B, H, W]. Each run of hole pixels in a row takes the side (nearest covered pixel left or right of it)
    with the smaller disparity, and the mean of up to ``_FILL_TAPS`` pixels of that background surface going away
    from the hole; a row with nothing covered stays 0. Then every hole pixel becomes the mean of the row fills of the
    hole pixels within ``_FILL_ROWS`` rows of it in its column (the frame's border reflected as cv2.blur does), as
    in :func:`fill_disocclusions`. Batched frames are smoothed each on its own.
    """
    _check_layout(view, {"warped": warped, "filled": filled}, "view")
    height, width, channels = *warped.shape[-2:], view.shape[-1]
    pixels = view.to(torch.float32).reshape(-1, width, channels)
    disparity = warped.to(torch.float32).reshape(-1, width)
    covered = filled.to(torch.bool).reshape(-1, width)
    hole = ~covered

    # Per pixel rather than per run: every pixel of a run has the same nearest covered pixels left and right of it,
    # so it makes the same choice the run would.
    columns = torch.arange(width, device=covered.device)
    before = torch.where(covered, columns, -1).cummax(dim=1).values
    after = torch.where(covered, columns, width).flip(1).cummin(dim=1).values.flip(1)

    def at(values: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
        return torch.gather(values, 1, column.clamp(0, width - 1))

    d_before = torch.where(before >= 0, at(disparity, before), torch.inf)
    d_after = torch.where(after < width, at(disparity, after), torch.inf)
    from_before = d_before <= d_after
    edge = torch.where(from_before, before, after)
    away = torch.where(from_before, -1, 1)
    edge_disparity = torch.minimum(d_before, d_after)
    fill = torch.zeros_like(pixels)
    total = torch.zeros_like(pixels[..., :1])
    for step in range(_FILL_TAPS):
        column = edge + away * step
        clipped = column.clamp(0, width - 1)
        # Only that background surface itself: a thin strip of it must not pull in what lies beyond.
        same = (column == clipped) & at(covered, column)
        same &= (at(disparity, column) - edge_disparity).abs() <= SAME_SURFACE
        same = same[..., None].to(torch.float32)
        fill = fill + torch.gather(pixels, 1, clipped[..., None].expand(-1, -1, channels)) * same
        total = total + same
    fill = torch.where(hole[..., None], fill / total.clamp_min(1.0), 0.0)

    # Box sums down each column of the frame, scaled as cv2.blur scales them (the window's mean fill over its mean
    # hole count): on whole levels, which is what the numpy path fills from, the float32 sums are exact and the two
    # paths agree bit for bit; other values differ from cv2's float64 sums in the last bits only.
    window = 2 * _FILL_ROWS + 1
    rows = reflect_101(height, _FILL_ROWS, covered.device)
    fill = fill.reshape(-1, height, width, channels).index_select(1, rows)
    count = hole.to(torch.float32).reshape(-1, height, width, 1).index_select(1, rows)
    fill_sum, count_sum = fill[:, :height].clone(), count[:, :height].clone()
    for offset in range(1, window):
        fill_sum += fill[:, offset : offset + height]
        count_sum += count[:, offset : offset + height]
    smoothed = (fill_sum / window) / (count_sum / window).clamp_min(1e-6)
    out = torch.where(hole.reshape(count_sum.shape), smoothed, pixels.reshape(smoothed.shape))
    return out.reshape(view.shape)


PIXEL_TOP = {torch.uint8: 255, torch.uint16: 65535}  # image dtypes rendered, and their largest value


def synthesize_view_torch(image: torch.Tensor, disparity: torch.Tensor, direction: int) -> torch.Tensor:
    """:func:`synthesize_view` in torch: render a new view, ``out[y, x + direction * disparity[y, x]] = image[y, x]``,
    larger disparity wins where two land on one pixel, holes filled from their background side.

    ``image``: uint8 (or uint16) [H, W, C] or a batch [B, H, W, C] of frames of one size, on any device.
    ``disparity``: [H, W] or [B, H, W], pixels, larger = nearer, any real dtype (taken as float32; moved to the
    image's device); sub-pixel values are rendered by exact linear interpolation. ``direction=-1`` turns a left image
    into the right-eye view.
    Returns the dtype of ``image`` (rounded half to even, as np.rint does). Agrees with :func:`synthesize_view` exactly
    where disparities are whole pixels and surfaces meet with jumps over ``SAME_SURFACE``; elsewhere to within 1
    level with OpenCV 5 (the numpy path rounds interpolated pixels before filling from them) and a few with OpenCV 4
    (which also interpolates in 1/32 px steps). Fills differ more where :func:`fill_disocclusions` joins a row's hole
    run to the next row's (see :func:`fill_disocclusions_torch`).
    """
    _check_direction(direction)
    if image.dtype not in PIXEL_TOP:
        raise ValueError(f"image must be uint8 or uint16, got {image.dtype}")
    _check_layout(image, {"disparity": disparity}, "image")
    disparity = disparity.to(device=image.device, dtype=torch.float32)
    warped = warp_disparity_torch(disparity, direction)
    pixels = image if image.dtype == torch.uint8 else image.to(torch.int32)  # torch gathers no uint16
    view, filled = sample_view_torch(pixels, torch.where(torch.isfinite(disparity), disparity, 0.0), warped, direction)
    view = fill_disocclusions_torch(view, warped, filled)
    return view.round().clamp(0, PIXEL_TOP[image.dtype]).to(image.dtype)


def torch_synthesizer(device: torch.device | str) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """:func:`synthesize_view`'s signature (numpy in, numpy out) rendered by :func:`synthesize_view_torch` on
    ``device``: the GPU path of the pipeline, where the upload of the frame and its disparity costs far less than
    rendering on the CPU."""
    device = torch.device(device)

    def synthesize(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
        pinned = device.type == "cuda"
        frame = torch.from_numpy(np.ascontiguousarray(image))
        shift = torch.from_numpy(np.ascontiguousarray(disparity, dtype=np.float32))
        if pinned:
            frame, shift = frame.pin_memory(), shift.pin_memory()
        view = synthesize_view_torch(frame.to(device, non_blocking=pinned), shift.to(device, non_blocking=pinned),
                                     direction)  # fmt: skip
        return view.cpu().numpy()

    return synthesize
