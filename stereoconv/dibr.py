"""Depth-image-based rendering: normalized depth -> disparity -> the two eyes' views.

Conventions. Normalized depth ``z`` is in [0, 1], larger = nearer. Disparity is per eye, in pixels, signed, larger =
nearer: ``d = (z - convergence) * parallax_px / 2`` where ``parallax_px`` is the parallax budget between the nearest
and farthest point (``max_parallax`` % of the frame width). The two eyes are rendered symmetrically about the source:

    left  = synthesize_view(image, d, direction=+1)    # pixel moves to x + d
    right = synthesize_view(image, d, direction=-1)    # pixel moves to x - d

so the screen parallax ``x_right - x_left = -2 d``: points nearer than the convergence plane (d > 0) get crossed
(negative) parallax and appear in front of the screen, farther ones appear behind it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .config import StereoConfig

# Disparities are compared in 1/256 pixel steps in the z-buffer.
_Z_STEPS_PER_PIXEL = 256


def depth_to_disparity(depth: np.ndarray, config: StereoConfig) -> np.ndarray:
    """Per-eye disparity in pixels (float32 HxW, larger = nearer) for normalized depth in [0, 1] (larger = nearer).

    Spans ``max_parallax`` % of the frame width between z = 0 and z = 1 (half of it per eye); zero at
    ``z = convergence``.
    """
    width = depth.shape[1]
    half_budget = np.float32(config.max_parallax / 100.0 * width / 2.0)
    return (depth.astype(np.float32, copy=False) - np.float32(config.convergence)) * half_budget


def _target_columns(disparity: np.ndarray, direction: int) -> np.ndarray:
    """The column each pixel lands on, ``floor(x + direction * disparity + 0.5)``, as a new float array.

    Halves round up, the same way for every x, so a constant half-pixel disparity shifts every pixel alike (rounding
    half to even would send neighbours to one column and leave a hole beside them). For integer x this equals
    ``x + floor(direction * disparity + 0.5)``, computed in ``disparity``'s own precision.
    """
    target = np.multiply(disparity, direction, dtype=disparity.dtype)
    target += 0.5
    np.floor(target, out=target)
    target += np.arange(disparity.shape[1], dtype=target.dtype)
    return target


def _warp_sources(disparity: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Which source pixel lands on each output pixel.

    ``disparity``: HxW, pixels. Returns ``(source, filled)``: ``source`` is intp HxW, the flat index of the winning
    pixel in the source padded to ``width + 1`` columns (row-major), where the extra column stands for "nothing
    landed here"; ``filled`` is the bool HxW mask of pixels something landed on.
    """
    if disparity.dtype != np.float32:
        disparity = disparity.astype(np.float64)  # the precision the contract is written in
    height, width = disparity.shape
    lowest, highest = (float(disparity.min()), float(disparity.max())) if disparity.size else (0.0, 0.0)
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        # A pixel with a non-finite disparity is dropped (sent off-frame), which keeps inf and NaN out of the
        # arithmetic below; an int64 cast of them used to decide this, differently per platform.
        far = 2.0 * (width + 1)
        disparity = np.nan_to_num(disparity, nan=far, posinf=far, neginf=-far)
        lowest, highest = float(disparity.min()), float(disparity.max())
    # One buffer holds the quantized disparities, then the z-buffer, whose rows have a spare column on either side
    # that takes off-frame targets, so nothing needs compacting.
    stride = width + 2
    buffer = np.empty(height * stride, dtype=disparity.dtype)
    scratch = buffer[: height * width].reshape(height, width)

    target = _target_columns(disparity, direction)
    np.clip(target, -1, width, out=target)
    zindex = target.astype(np.intp)
    zindex += (np.arange(height, dtype=np.intp) * stride + 1)[:, None]

    # Key = (quantized disparity, source column) packed as level << bits | x, so one scatter-max picks the nearest
    # pixel (ties to the larger column) and key & mask gives its column back. bits leaves room for column `width`
    # too: an empty z-buffer entry (-1) masks to >= width. Only pixels that land in the frame compete, and they have
    # |d| < width, so clamping the level beyond that changes no outcome and bounds the key.
    bits = width.bit_length()
    limit = (width + 1) * _Z_STEPS_PER_PIXEL
    level = np.multiply(disparity, _Z_STEPS_PER_PIXEL, out=scratch)  # exact: a power of two
    np.rint(level, out=level)
    low, high = float(np.rint(lowest * _Z_STEPS_PER_PIXEL)), float(np.rint(highest * _Z_STEPS_PER_PIXEL))
    if low < -limit or high > limit:
        np.clip(level, -limit, limit, out=level)
        low, high = max(low, -limit), min(high, limit)
    low, high = int(low), int(high)
    key_dtype = np.dtype(np.int32 if (high - low + 1) << bits <= 2**31 else np.int64)
    # target is spent, and so is buffer once the key is made: reuse their memory for the key and the z-buffer.
    key = target.view(key_dtype) if key_dtype.itemsize == target.itemsize else np.empty(level.shape, key_dtype)
    np.copyto(key, level, casting="unsafe")
    key -= low
    key <<= bits
    key |= np.arange(width, dtype=key_dtype)
    zbuf = buffer.view(key_dtype) if key_dtype.itemsize == buffer.itemsize else np.empty(buffer.size, key_dtype)
    zbuf.fill(-1)
    np.maximum.at(zbuf, zindex.ravel(), key.ravel())
    zbuf = zbuf.reshape(height, stride)[:, 1 : width + 1]

    filled = zbuf >= 0
    source = zindex.reshape(height, width)  # the z-buffer indices are spent: reuse their memory
    np.bitwise_and(zbuf, (1 << bits) - 1, out=source)
    np.minimum(source, width, out=source)
    source += (np.arange(height, dtype=np.intp) * (width + 1))[:, None]
    return source, filled


def _take_pixels(array: np.ndarray, source: np.ndarray, hole: float) -> np.ndarray:
    """``array`` (HxW...) at the ``source`` indices of :func:`_warp_sources` (HxW), with ``hole`` where none landed."""
    height, width = source.shape
    padded = np.empty((height, width + 1, *array.shape[2:]), dtype=array.dtype)
    padded[:, :width] = array
    padded[:, width] = hole
    padded = padded.reshape(height * (width + 1), *array.shape[2:])
    return np.take(padded, source.ravel(), axis=0).reshape(height, width, *array.shape[2:])


def _check(image: np.ndarray, disparity: np.ndarray, direction: int) -> None:
    """Refuse (ValueError) a direction other than -1 or +1, or an image and a disparity map of different sizes."""
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")
    if image.shape[:2] != disparity.shape:
        raise ValueError(f"image {image.shape[:2]} and disparity {disparity.shape} sizes differ")


def forward_warp(image: np.ndarray, disparity: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move each pixel horizontally: ``out[y, x + direction * disparity[y, x]] = image[y, x]`` (rounded to the
    nearest pixel, halves up); where several land on one pixel the largest disparity (the nearest) wins.

    ``image``: HxW or HxWxC. ``disparity``: float32 HxW in pixels. Returns ``(warped, warped_disparity, filled)``:
    the warped image (holes zero), the disparity that landed at each pixel (holes -inf), and the bool HxW mask of
    pixels something landed on.
    """
    _check(image, disparity, direction)
    source, filled = _warp_sources(disparity, direction)
    warped = _take_pixels(image, source, 0)
    warped_disparity = _take_pixels(disparity.astype(np.float32, copy=False), source, -np.inf)
    return warped, warped_disparity, filled


def _hole_donors(
    filled: np.ndarray, disparity_at: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Where fill_holes copies from: ``(holes, donors)``, intp flat (row-major HxW) positions of every hole pixel and
    of the pixel each one takes its colour from.

    ``filled``: HxW mask of non-holes. ``disparity_at(rows, cols)``: the warped disparity at those pixels; it may be
    asked about holes too, and what it says there is not used.
    """
    height, width = filled.shape
    # Holes come in runs, and every pixel of a run has the same two nearest filled neighbours, so the choice is made
    # once per run. Each row gets a trailing non-hole column so that no run crosses a row end.
    stride = width + 1
    runs = np.zeros(height * stride + 1, dtype=np.int8)
    np.logical_not(filled, out=runs[1:].reshape(height, stride)[:, :width], casting="unsafe")
    edges = np.flatnonzero(runs[1:] != runs[:-1])
    starts, stops = edges[0::2], edges[1::2]
    rows = starts // stride
    first = starts - rows * stride
    lengths = stops - starts
    left = first - 1
    right = first + lengths
    d_left = np.where(left >= 0, disparity_at(rows, np.clip(left, 0, width - 1)), np.inf)
    d_right = np.where(right < width, disparity_at(rows, np.clip(right, 0, width - 1)), np.inf)
    # A row with nothing in it reads column 0, which is a hole itself (zero in a forward_warp result).
    chosen = np.clip(np.where(d_left <= d_right, left, right), 0, width - 1)

    row_start = rows * width
    offsets = np.repeat(row_start + first - (np.cumsum(lengths) - lengths), lengths)
    holes = offsets + np.arange(offsets.size)
    return holes, np.repeat(row_start + chosen, lengths)


def fill_holes(warped: np.ndarray, warped_disparity: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Fill each hole pixel from the nearest filled pixel in its row on the background side.

    Of the nearest filled pixels to the left and to the right, the one with the smaller disparity (the farther) is
    used: disocclusions reveal background, so foreground colour must not be smeared into them. At the frame edge the
    one side there is is used. Returns a new array like ``warped``.
    """
    out = warped.copy()
    if not filled.all():
        height, width = filled.shape
        flat_disparity = warped_disparity.reshape(height * width)
        holes, donors = _hole_donors(filled, lambda rows, cols: flat_disparity[rows * width + cols])
        pixels = out.reshape(height * width, *out.shape[2:])
        pixels[holes] = pixels[donors]  # the donors are read before any hole is written
    return out


def synthesize_view(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    """Render a new view by forward warping with occlusion order and background-side hole filling.

    ``out[y, x + direction * disparity[y, x]] = image[y, x]``; where two pixels land on one, the larger disparity
    wins; holes are filled from their background side. ``image``: uint8 HxWx3. ``disparity``: float32 HxW, pixels.
    ``direction=-1`` turns a left image into the right-eye view (Middlebury: left(x) = right(x - d)).
    """
    # forward_warp then fill_holes, with the filling done on source indices so that the image is gathered once and
    # the warped disparity is only looked up next to holes.
    _check(image, disparity, direction)
    source, filled = _warp_sources(disparity, direction)
    if not filled.all():
        width = disparity.shape[1]
        flat_source = source.reshape(-1)
        values = disparity.astype(np.float32, copy=False).reshape(-1)  # what forward_warp's warped_disparity holds

        def disparity_at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            # Pixels move within their row; _warp_sources indexes rows padded by one column, the hole column.
            source_cols = flat_source[rows * width + cols] - rows * (width + 1)
            return values[rows * width + np.minimum(source_cols, width - 1)]  # a hole's value is not used

        holes, donors = _hole_donors(filled, disparity_at)
        flat_source[holes] = flat_source[donors]
    return _take_pixels(image, source, 0)


def render_stereo(image: np.ndarray, depth: np.ndarray, config: StereoConfig) -> tuple[np.ndarray, np.ndarray]:
    """Left and right views (new arrays) of ``image`` (uint8 HxWx3) from normalized depth (float32 HxW, [0, 1],
    larger = nearer)."""
    disparity = depth_to_disparity(depth, config)
    if not np.any(disparity):  # flat: both eyes see the source (as new arrays, never the input itself)
        return image.copy(), image.copy()
    return synthesize_view(image, disparity, +1), synthesize_view(image, disparity, -1)
