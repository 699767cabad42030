"""The temporal smoother as plain numpy: stereoconv.temporal before its per-pixel work became compiled passes.

Readable, and the reference the fast path is tested against (tests/test_temporal.py): the same steps in the same
order and the same optical flow, one numpy expression each, with numpy's own percentiles, medians and np.dot. The
tuning constants and the frame-by-frame state (cuts, restarts, flashes) are the module's, so the two cannot drift
apart when one is retuned; only the numeric steps are this module's own.
"""

from __future__ import annotations

import cv2
import numpy as np

from stereoconv.config import TemporalConfig
from stereoconv.temporal import (
    _ALIGN_MAX_CHANGE,
    _CALM,
    _EPS,
    _FLOW_CONSISTENCY,
    _FLOW_WIDTH,
    _RESTART_STEADY,
    _TRANSITION,
    TemporalSmoother,
    _optical_flow,
    _subsample,
)


def depth_percentiles(depth: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles (in %) of a depth map, on the module's even subsample."""
    lo, hi = np.percentile(_subsample(depth), (low, high))
    return float(lo), float(hi)


def normalize(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map depth linearly so ``lo`` -> 0 and ``hi`` -> 1, clipped to [0, 1]; float32 HxW."""
    scale = 1.0 / max(hi - lo, _EPS)
    out = (depth.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(scale)
    return np.clip(out, 0.0, 1.0, out=out)


def fit_scale_offset(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """``(a, b)`` minimizing ``|a * source + b - target|^2`` over ``mask`` (all pixels if None), refit once without the
    pixels whose residual exceeds 3 robust standard deviations (moving objects, occlusions). ``(1, 0)`` when there
    are too few pixels or no spread to fit."""
    x, y = _subsample(source), _subsample(target)
    if mask is not None:
        keep = _subsample(mask)
        x, y = x[keep], y[keep]
    x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    a, b = 1.0, 0.0
    for _ in range(2):
        if x.size < 16 or np.ptp(x) < _EPS:
            return 1.0, 0.0
        # Ordinary least squares in closed form (what np.polyfit(x, y, 1) solves, without its SVD).
        mx, my = x.mean(), y.mean()
        dx = x - mx
        a = float(np.dot(dx, y - my) / np.dot(dx, dx))
        b = float(my - a * mx)
        residual = np.abs(a * x + b - y)
        inliers = residual <= 3.0 * 1.4826 * np.median(residual) + _EPS
        x, y = x[inliers], y[inliers]
    return float(a), float(b)


def transition_level(gray: np.ndarray, previous_gray: np.ndarray) -> float:
    """How much of a gradual transition (fade, cross-fade) this frame is in, 0-1, from the median per-pixel grey
    change (0-255) since the previous frame: 0 at or below 1.5 levels, 1 at or above 4, linear in between."""
    change = float(np.median(np.abs(_subsample(gray) - _subsample(previous_gray))))
    return float(np.clip((change - _CALM) / (_TRANSITION - _CALM), 0.0, 1.0))


class _MotionWarp:
    """Warps the previous frame's maps to the current frame along DIS optical flow, with an occlusion mask."""

    def __init__(self) -> None:
        self._dis = _optical_flow()
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # the last frame's grey and its flow-size version

    def __call__(self, gray: np.ndarray, previous_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(map_x, map_y, valid)`` such that ``cv2.remap(previous, map_x, map_y)`` lines the previous frame up
        with the current one; ``valid`` is False where the flow fails the forward-backward check (occlusions)."""
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
        grid_x, grid_y = np.meshgrid(np.arange(size[0], dtype=np.float32), np.arange(size[1], dtype=np.float32))
        back_x, back_y = grid_x + backward[..., 0], grid_y + backward[..., 1]
        # Going back and then forth must return to the start, else the pixel was hidden in the previous frame.
        returned = cv2.remap(forward, back_x, back_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = np.hypot(*(backward + returned).transpose(2, 0, 1))
        inside = (back_x >= 0) & (back_x <= size[0] - 1) & (back_y >= 0) & (back_y <= size[1] - 1)
        valid_small = ((mismatch <= _FLOW_CONSISTENCY) & inside).astype(np.uint8)
        full = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) / np.float32(scale)
        map_x = np.arange(width, dtype=np.float32) + full[..., 0]
        map_y = np.arange(height, dtype=np.float32)[:, None] + full[..., 1]
        valid = cv2.resize(valid_small, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
        return map_x, map_y, valid


class ReferenceSmoother(TemporalSmoother):
    """:class:`stereoconv.temporal.TemporalSmoother` with every numeric step in numpy: its frame-by-frame state (cuts,
    restarts, flashes) and its grey levels (OpenCV's, never compiled) are the smoother's own; normalization, the
    optical flow and the blend are this module's."""

    def __init__(self, config: TemporalConfig | None = None) -> None:
        super().__init__(config)
        self._motion = _MotionWarp() if self.config.motion_compensation else None

    def _normalized(self, depth: np.ndarray) -> np.ndarray:
        cfg = self.config
        return normalize(depth, *depth_percentiles(depth, cfg.low_percentile, cfg.high_percentile))

    def _follow(self, current: np.ndarray, gray: np.ndarray | None) -> np.ndarray | None:
        """Align ``current`` to the previous estimate and blend the two (steps 2-4 of the module docstring); None
        when too few pixels are steady for the frame to be the same shot going on."""
        cfg = self.config
        previous, previous_gray = self._prev, self._prev_gray
        assert previous is not None
        valid = None
        if self._motion is not None and gray is not None and previous_gray is not None:
            map_x, map_y, valid = self._motion(gray, previous_gray)
            previous = cv2.remap(previous, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            previous_gray = cv2.remap(previous_gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        colour_change = np.abs(gray - previous_gray) if gray is not None and previous_gray is not None else None

        steady = np.abs(current - previous) < _ALIGN_MAX_CHANGE
        if colour_change is not None:
            steady &= colour_change <= cfg.color_sigma
            if valid is not None:
                steady &= valid
            if np.count_nonzero(steady) < _RESTART_STEADY * steady.size:
                return None
        if cfg.alignment > 0.0:
            # Pixels clipped by the normalization (outside its percentiles) say nothing about scale: left out.
            steady &= (current > 0.0) & (current < 1.0)
            a, b = fit_scale_offset(current, previous, steady)
            # Only part of the way: what is left pulls the estimate back to the frame's own normalization.
            k = cfg.alignment
            current = current * np.float32(1.0 + k * (a - 1.0)) + np.float32(k * b)
        if cfg.strength == 0.0:
            return np.clip(current, 0.0, 1.0, out=current)

        dd = current - previous
        exponent = dd * dd * np.float32(-0.5 / cfg.depth_sigma**2)
        strength = cfg.strength
        if colour_change is not None:
            exponent -= colour_change * colour_change * np.float32(0.5 / cfg.color_sigma**2)
            strength *= 1.0 - transition_level(gray, previous_gray)  # motion-compensated when that is on
        weight = np.exp(exponent, out=exponent)
        weight *= np.float32(strength)
        if valid is not None:
            weight[~valid] = 0.0
        # out = w * previous + (1 - w) * current, kept in [0, 1]: the parallax budget is defined on that range
        out = current - weight * dd
        return np.clip(out, 0.0, 1.0, out=out)
