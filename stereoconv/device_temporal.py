"""Temporal smoothing on a torch device: the depth stays where the model made it.

:class:`DeviceSmoother` is :class:`~stereoconv.temporal.TemporalSmoother` (the same frame-by-frame state: cuts,
missed cuts, flashes) with its numeric steps as torch ops on the depth's device: the normalization, the motion warp of
the previous estimate, the steady-pixel count, the alignment fit, the transition level and the bilateral blend. What
comes to the host per frame is a handful of numbers: the values at a few ranks of a sorted subsample (percentiles and
medians, finished with numpy's own interpolation arithmetic), the steady count, the fit's sums. The optical flow is
the CPU's, at 320 px, computed ahead on other threads (:class:`~stereoconv.temporal.Motion`), overlapped with the
model; its warp and the frame's grey levels on the depth grid go up once per frame.

The result equals the host smoother's within float32 rounding: the same operations in the same order and precision,
OpenCV's bilinear remap to the bit (its fused multiply-adds too, and its replicated border), the fit in float64 (its
sums in another order); what differs is the last bit of an exponential now and then. Tests pin it on CPU tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import TemporalConfig
from .temporal import (
    _ALIGN_MAX_CHANGE,
    _CALM,
    _EPS,
    _RESTART_STEADY,
    _TRANSITION,
    Motion,
    TemporalSmoother,
    _subsample_step,
    percentile_lerp,
    percentile_ranks,
)


def remap_linear(image: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
    """``cv2.remap(image, coordinates, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)`` for a float32 HxW
    ``image`` and HxWx2 float32 ``coordinates`` (x then y) on one device: the four neighbours of each coordinate,
    clamped into the image, interpolated along the row and then down the column as OpenCV 5 does it, each step one
    fused multiply-add (:func:`_fma`)."""
    height, width = image.shape
    x, y = coordinates[..., 0], coordinates[..., 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    left, right = x0.clamp(0, width - 1), (x0 + 1).clamp(0, width - 1)
    top, bottom = y0.clamp(0, height - 1) * width, (y0 + 1).clamp(0, height - 1) * width
    flat = image.reshape(-1)
    upper, lower = flat[top + left], flat[bottom + left]
    upper = _fma(flat[top + right] - upper, fx, upper)
    lower = _fma(flat[bottom + right] - lower, fx, lower)
    return _fma(lower - upper, fy, upper)


def _wide(device: torch.device) -> torch.dtype:
    """float64, where the device has it (not Apple's MPS: float32 there, a few last bits apart from the host)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` of float32 tensors rounded once, as a fused multiply-add: in float64, where the product of two
    float32 values is exact, then rounded to float32."""
    wide = _wide(a.device)
    return torch.addcmul(c.to(wide), a.to(wide), b.to(wide)).float()


def _percentiles(values: torch.Tensor, percents: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(values, percents)`` of the 1-D float32 tensor ``values`` (no NaN): a sort on its device, the
    values at the ranks numpy reads brought to the host, numpy's interpolation there."""
    below, above, gamma = percentile_ranks(values.numel(), percents)
    ranks = torch.as_tensor(np.concatenate((below, above)), device=values.device)
    ranked = torch.sort(values).values[ranks].cpu().numpy()
    return percentile_lerp(ranked[: len(below)], ranked[len(below) :], gamma)


def _median(values: torch.Tensor) -> float:
    """``np.median`` of the 1-D ``values``: the middle value, or the mean of the two (in the values' precision)."""
    count = values.numel()
    ordered = torch.sort(values).values
    if count % 2:
        return float(ordered[count // 2])
    pair = ordered[count // 2 - 1 : count // 2 + 1].cpu().numpy()
    return float((pair[0] + pair[1]) / 2)


def _fit_line(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """:func:`~stereoconv.temporal._fit_line` on 1-D tensors (float64, see :func:`_wide`): least squares, refit once
    without the outliers."""
    a, b = 1.0, 0.0
    for _ in range(2):
        if x.numel() < 16 or float(x.max() - x.min()) < _EPS:
            return 1.0, 0.0
        mx, my = x.mean(), y.mean()
        dx = x - mx
        slope = (dx * (y - my)).sum() / (dx * dx).sum()
        offset = my - slope * mx
        residual = (slope * x + offset - y).abs()
        a, b = float(slope), float(offset)
        keep = residual <= 3.0 * 1.4826 * _median(residual) + _EPS
        x, y = x[keep], y[keep]
    return a, b


class DeviceSmoother(TemporalSmoother):
    """:class:`~stereoconv.temporal.TemporalSmoother` on ``device``: called with ``depth`` a float32 HxW tensor
    (a host array is uploaded), it returns the smoothed depth as a float32 tensor there. ``rgb`` and ``motion`` stay
    host arrays (the flow is computed on the CPU); their grey levels and warp are uploaded once each."""

    def __init__(self, config: TemporalConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._uploads: list[tuple[np.ndarray, torch.Tensor]] = []  # the latest host greys and their device copies
        super().__init__(config)

    def __call__(  # type: ignore[override]
        self,
        depth: torch.Tensor | np.ndarray,
        rgb: np.ndarray | None = None,
        cut: bool = False,
        motion: Motion | None = None,
    ) -> torch.Tensor:
        if isinstance(depth, np.ndarray):
            depth = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
        return super().__call__(depth.to(self.device, torch.float32), rgb, cut, motion)

    def _up(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the device; a grey kept from the last frames is not uploaded again."""
        for host, tensor in self._uploads:
            if host is array:
                return tensor
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)
        self._uploads = [*self._uploads[-3:], (array, tensor)]
        return tensor

    def _normalized(self, depth: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        cfg = self.config
        step = _subsample_step(tuple(depth.shape))
        sample = depth[::step, ::step].reshape(-1)
        if bool(torch.isnan(sample).any()):  # numpy's NaN rules: the whole range is NaN
            lo = hi = float("nan")
        else:
            lo, hi = (float(v) for v in _percentiles(sample, (cfg.low_percentile, cfg.high_percentile)))
        scale = float(np.float32(1.0 / max(hi - lo, _EPS)))
        return ((depth - float(np.float32(lo))) * scale).clamp(0.0, 1.0)

    def _follow(self, current: torch.Tensor, gray: np.ndarray | None) -> torch.Tensor | None:  # type: ignore[override]
        cfg = self.config
        previous, previous_gray = self._prev, self._prev_gray
        assert previous is not None
        colour = gray is not None and previous_gray is not None
        valid = None
        grey = previous_grey = None
        if colour:
            grey, previous_grey = self._up(gray), self._up(previous_gray)
        if self._motion is not None and colour:
            ahead = self._ahead
            if ahead is not None and ahead.warp is not None and ahead.previous is previous_gray and ahead.gray is gray:
                coordinates, mask = ahead.warp  # computed ahead, from the very same two greys
            else:
                coordinates, mask = self._motion(gray, previous_gray)
            coordinates = torch.from_numpy(coordinates).to(self.device, non_blocking=True)
            valid = torch.from_numpy(mask).to(self.device, non_blocking=True) != 0
            previous = remap_linear(previous, coordinates)
            previous_grey = remap_linear(previous_grey, coordinates)

        # Steady: depth and colour (after following the motion) nearly unchanged, the flow consistent.
        steady = (current - previous).abs() < _ALIGN_MAX_CHANGE
        change = None
        if colour:
            change = (grey - previous_grey).abs()
            steady &= change <= float(np.float32(cfg.color_sigma))
            if valid is not None:
                steady &= valid
            if int(steady.sum()) < _RESTART_STEADY * current.numel():
                return None
        step = _subsample_step(tuple(current.shape))
        scale, offset = 1.0, 0.0
        if cfg.alignment > 0.0:
            c, p, keep = current[::step, ::step], previous[::step, ::step], steady[::step, ::step]
            keep = keep & (c > 0.0) & (c < 1.0)  # clipped by the normalization: says nothing about scale
            wide = _wide(self.device)
            a, b = _fit_line(c[keep].to(wide), p[keep].to(wide))
            k = cfg.alignment
            scale, offset = float(np.float32(1.0 + k * (a - 1.0))), float(np.float32(k * b))
        aligned = current * scale + offset
        dd = aligned - previous
        if cfg.strength == 0.0:  # the aligned current alone: no weight anywhere
            return (aligned - 0.0 * dd).clamp(0.0, 1.0)
        strength = cfg.strength
        exponent = dd * dd * float(np.float32(-0.5 / cfg.depth_sigma**2))
        if change is not None:
            level = _median(change[::step, ::step].reshape(-1))
            strength *= 1.0 - float(np.clip((level - _CALM) / (_TRANSITION - _CALM), 0.0, 1.0))
            exponent = exponent - change * change * float(np.float32(0.5 / cfg.color_sigma**2))
        weight = torch.exp(exponent) * float(np.float32(strength))
        if valid is not None:
            weight = torch.where(valid, weight, 0.0)
        # out = w * previous + (1 - w) * current, kept in [0, 1]: the parallax budget is defined on that range
        return (aligned - weight * dd).clamp(0.0, 1.0)
