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


def forward_warp(image: np.ndarray, disparity: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move each pixel horizontally: ``out[y, x + direction * disparity[y, x]] = image[y, x]`` (rounded to the
    nearest pixel); where several land on one pixel the largest disparity (the nearest) wins.

    ``image``: HxW or HxWxC. ``disparity``: float32 HxW in pixels. Returns ``(warped, warped_disparity, filled)``:
    the warped image (holes zero), the disparity that landed at each pixel (holes -inf), and the bool HxW mask of
    pixels something landed on.
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")
    if image.shape[:2] != disparity.shape:
        raise ValueError(f"image {image.shape[:2]} and disparity {disparity.shape} sizes differ")
    height, width = disparity.shape
    xs = np.arange(width, dtype=np.int64)
    target = np.rint(xs + direction * disparity.astype(np.float64)).astype(np.int64)
    inside = (target >= 0) & (target < width)
    rows = np.broadcast_to(np.arange(height, dtype=np.int64)[:, None], (height, width))

    # One z-buffer pass decides the winner: the key orders by disparity first and, for equal disparity, by source
    # column, and keeps the source column recoverable as key % width.
    level = np.rint(disparity.astype(np.float64) * _Z_STEPS_PER_PIXEL).astype(np.int64)
    level -= level.min() if level.size else 0
    key = level * width + xs
    zbuf = np.full(height * width, -1, dtype=np.int64)
    np.maximum.at(zbuf, (rows * width + target)[inside], key[inside])
    zbuf = zbuf.reshape(height, width)

    filled = zbuf >= 0
    src_x = np.where(filled, zbuf % width, 0)
    warped = image[rows, src_x]
    warped[~filled] = 0
    warped_disparity = np.where(filled, disparity[rows, src_x], -np.inf).astype(np.float32)
    return warped, warped_disparity, filled


def fill_holes(warped: np.ndarray, warped_disparity: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Fill each hole pixel from the nearest filled pixel in its row on the background side.

    Of the nearest filled pixels to the left and to the right, the one with the smaller disparity (the farther) is
    used: disocclusions reveal background, so foreground colour must not be smeared into them. At the frame edge the
    one side there is is used. Returns a new array like ``warped``.
    """
    if filled.all():
        return warped.copy()
    height, width = filled.shape
    xs = np.arange(width)
    left = np.maximum.accumulate(np.where(filled, xs, -1), axis=1)
    right = np.minimum.accumulate(np.where(filled, xs, width)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(height)[:, None]
    d_left = np.where(left >= 0, warped_disparity[rows, np.clip(left, 0, width - 1)], np.inf)
    d_right = np.where(right < width, warped_disparity[rows, np.clip(right, 0, width - 1)], np.inf)
    # A filled pixel is its own nearest on both sides; a row with nothing in it reads zeros from column 0.
    source = np.clip(np.where(d_left <= d_right, left, right), 0, width - 1)
    return warped[rows, source]


def synthesize_view(image: np.ndarray, disparity: np.ndarray, direction: int) -> np.ndarray:
    """Render a new view by forward warping with occlusion order and background-side hole filling.

    ``out[y, x + direction * disparity[y, x]] = image[y, x]``; where two pixels land on one, the larger disparity
    wins; holes are filled from their background side. ``image``: uint8 HxWx3. ``disparity``: float32 HxW, pixels.
    ``direction=-1`` turns a left image into the right-eye view (Middlebury: left(x) = right(x - d)).
    """
    warped, warped_disparity, filled = forward_warp(image, disparity, direction)
    return fill_holes(warped, warped_disparity, filled)


def render_stereo(image: np.ndarray, depth: np.ndarray, config: StereoConfig) -> tuple[np.ndarray, np.ndarray]:
    """Left and right views of ``image`` (uint8 HxWx3) from normalized depth (float32 HxW, [0, 1], larger = nearer)."""
    disparity = depth_to_disparity(depth, config)
    if not np.any(disparity):
        return image, image
    return synthesize_view(image, disparity, +1), synthesize_view(image, disparity, -1)
