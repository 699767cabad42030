"""Depth-image-based rendering: normalized depth -> disparity -> the two eyes' views.

Conventions. Normalized depth ``z`` is in [0, 1], larger = nearer. Disparity is per eye, in pixels, signed, larger =
nearer: ``d = (z - convergence) * parallax_px / 2`` where ``parallax_px`` is the parallax budget between the nearest
and farthest point (``max_parallax`` % of the frame width). The two eyes are rendered symmetrically about the source:

    left  = synthesize_view(image, d, direction=+1)    # pixel moves to x + d
    right = synthesize_view(image, d, direction=-1)    # pixel moves to x - d

so the screen parallax ``x_right - x_left = -2 d``: points nearer than the convergence plane (d > 0) get crossed
(negative) parallax and appear in front of the screen, farther ones appear behind it.

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
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import StereoConfig

# Neighbouring pixels whose disparities differ by at most this (px) belong to one surface: the warp joins them, so a
# stretched or slanted surface leaves no cracks, and the colour of one may be interpolated with the other.
SAME_SURFACE = 1.0
# A disocclusion takes the mean of this many background pixels next to it (fewer where the background surface ends)
_FILL_TAPS = 2
# ...and that fill is then averaged over this many rows of the hole above and below, so it does not streak.
_FILL_ROWS = 3


def depth_to_disparity(depth: np.ndarray, config: StereoConfig) -> np.ndarray:
    """Per-eye disparity in pixels (float32 HxW, larger = nearer) for normalized depth in [0, 1] (larger = nearer).

    Spans ``max_parallax`` % of the frame width between z = 0 and z = 1 (half of it per eye); zero at
    ``z = convergence``.
    """
    width = depth.shape[1]
    half_budget = np.float32(config.max_parallax / 100.0 * width / 2.0)
    return (depth.astype(np.float32, copy=False) - np.float32(config.convergence)) * half_budget


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
        np.clip(column, -1, width, out=column)
        np.maximum.at(zbuffer, (row_start + column).ravel(), value.ravel())

    splat(np.floor(target + np.float32(0.5)).astype(np.int64), np.where(keep, disparity, -np.inf))

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
        splat(column.astype(np.int64), value)
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
    starts = np.flatnonzero(np.diff(cols, prepend=-2) != 1)
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


def synthesize_view(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    """Render a new view: ``out[y, x + direction * disparity[y, x]] = image[y, x]``, larger disparity wins where
    two land on one pixel, holes filled from their background side (see the module docstring for how).

    ``image``: uint8 HxWx3 (or HxW, HxWxC). ``disparity``: float32 HxW, pixels, larger = nearer; sub-pixel values
    are rendered by interpolation. ``direction=-1`` turns a left image into the right-eye view (Middlebury:
    left(x) = right(x - d)). Returns uint8 like ``image``.
    """
    if image.shape[:2] != np.shape(disparity):
        raise ValueError(f"image {image.shape[:2]} and disparity {np.shape(disparity)} sizes differ")
    disparity = np.asarray(disparity, dtype=np.float32)
    warped = warp_disparity(disparity, direction)
    view, filled = sample_view(image, np.where(np.isfinite(disparity), disparity, np.float32(0.0)), warped, direction)
    view = fill_disocclusions(view, warped, filled)
    return np.clip(np.rint(view), 0, 255).astype(image.dtype)


def render_stereo(image: np.ndarray, depth: np.ndarray, config: StereoConfig) -> tuple[np.ndarray, np.ndarray]:
    """Left and right views (new arrays) of ``image`` (uint8 HxWx3) from normalized depth (float32 HxW, [0, 1],
    larger = nearer)."""
    disparity = depth_to_disparity(depth, config)
    if not np.any(disparity):  # flat: both eyes see the source (as new arrays, never the input itself)
        return image.copy(), image.copy()
    return synthesize_view(image, disparity, +1), synthesize_view(image, disparity, -1)
