"""Stereo layouts: side-by-side, top-bottom (half or full resolution) and red-cyan anaglyph.

Half layouts squeeze each eye to half the width (SBS) or height (TB) so the packed frame keeps the source size, the
usual broadcast/3D-TV convention. Every packed frame has even width and height (yuv420p needs it): an odd source side
is resized by one pixel.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numba
import numpy as np

Layout = Literal["half-sbs", "full-sbs", "half-tb", "full-tb", "anaglyph"]

# Dubois least-squares red-cyan matrices, applied to linear RGB.
DUBOIS_LEFT = np.array([[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]], np.float32)
DUBOIS_RIGHT = np.array([[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]], np.float32)


def _srgb_to_linear_lut() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


TO_LINEAR = _srgb_to_linear_lut()


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.rint(srgb * 255.0).astype(np.uint8)


def _even(n: int) -> int:
    return n + (n % 2)


def eye_size(width: int, height: int, layout: Layout) -> tuple[int, int]:
    """(width, height) each eye is scaled to inside the packed frame."""
    w, h = _even(width), _even(height)
    return {
        "half-sbs": (w // 2, h),
        "full-sbs": (width, h),
        "half-tb": (w, h // 2),
        "full-tb": (w, height),
        "anaglyph": (w, h),
    }[layout]


def packed_size(width: int, height: int, layout: Layout) -> tuple[int, int]:
    """(width, height) of the packed frame for a source of ``width`` x ``height``; always even."""
    ew, eh = eye_size(width, height, layout)
    if layout.endswith("sbs"):
        return 2 * ew, eh
    if layout.endswith("tb"):
        return ew, 2 * eh
    return ew, eh


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrink = size[0] <= image.shape[1] and size[1] <= image.shape[0]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@numba.njit(cache=True, nogil=True)
def _halve_into(out: np.ndarray, pairs: np.ndarray) -> None:
    """``out[i, j, k]`` = the mean of ``pairs[i, j, 0, k]`` and ``pairs[i, j, 1, k]``, rounded half to even (what
    cv2.resize(INTER_AREA) gives for an exact halving): one pass, no temporaries."""
    rows, count, length = out.shape
    for i in range(rows):
        for j in range(count):
            if length == 3:  # a pixel's three channels (side by side): a loop of known length, unrolled
                for k in range(3):
                    total = np.int32(pairs[i, j, 0, k]) + np.int32(pairs[i, j, 1, k])
                    out[i, j, k] = (total + ((total >> 1) & 1)) >> 1
                continue
            for k in range(length):
                total = np.int32(pairs[i, j, 0, k]) + np.int32(pairs[i, j, 1, k])
                out[i, j, k] = (total + ((total >> 1) & 1)) >> 1


def _pack_halves(left: np.ndarray, right: np.ndarray, size: tuple[int, int], sbs: bool) -> np.ndarray | None:
    """A half layout of views exactly twice the eye ``size`` across the halved side, squeezed straight into the packed
    frame; None for any other views (resized by OpenCV instead)."""
    width, height = size
    if left.ndim != 3 or left.shape[:2] != ((height, 2 * width) if sbs else (2 * height, width)):
        return None
    channels = left.shape[2]
    out = np.empty((height, 2 * width, channels) if sbs else (2 * height, width, channels), left.dtype)
    for i, view in enumerate((left, right)):
        view = np.ascontiguousarray(view)
        if sbs:  # the pairs are neighbours in a row
            _halve_into(out[:, i * width : (i + 1) * width], view.reshape(height, width, 2, channels))
        else:  # neighbouring rows
            half = out[i * height : (i + 1) * height].reshape(height, 1, width * channels)
            _halve_into(half, view.reshape(height, 1, 2, width * channels))
    return out


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph (Dubois) of two uint8 HxWx3 RGB views."""
    lin = TO_LINEAR[left] @ DUBOIS_LEFT.T + TO_LINEAR[right] @ DUBOIS_RIGHT.T
    return _linear_to_srgb(lin)


def pack(left: np.ndarray, right: np.ndarray, layout: Layout, frame: tuple[int, int] | None = None) -> np.ndarray:
    """Pack two uint8 HxWx3 views into one frame of :func:`packed_size` for a source of ``frame`` = (width, height)
    (None: the views' own size; views rendered at the packed eye size are then packed as they are)."""
    if left.shape != right.shape:
        raise ValueError(f"left {left.shape} and right {right.shape} views differ in shape")
    width, height = frame if frame is not None else (left.shape[1], left.shape[0])
    size = eye_size(width, height, layout)
    if layout in ("half-sbs", "half-tb"):
        packed = _pack_halves(left, right, size, layout == "half-sbs")
        if packed is not None:
            return packed
    left, right = _fit(left, size), _fit(right, size)
    if layout.endswith("sbs"):
        return np.hstack((left, right))
    if layout.endswith("tb"):
        return np.vstack((left, right))
    if layout == "anaglyph":
        return anaglyph(left, right)
    raise ValueError(f"unknown layout {layout!r}: choose one of half-sbs, full-sbs, half-tb, full-tb, anaglyph")
