"""The plan on a torch device: the stereo stage's in-order part (:meth:`~stereoconv.parallax.StereoRenderer.plan`)
where the depth already is, so that the disparity goes on to the render stage (:mod:`~stereoconv.device_render`)
without a round trip through the host.

:class:`DeviceStereoRenderer` is :class:`~stereoconv.parallax.StereoRenderer` with its numeric steps on tensors; the
state machines (convergence smoothed over the shot, the floating window, :class:`~stereoconv.parallax.MapChange`
noticing missed cuts and flashes) are the numpy classes' own, fed with what the device measures. Every per-pixel step
stays on the device; what comes to the host is small, once per tracker and frame:

- the convergence: the block means of the depth (about 256 float64 values, for ``MapChange``) and the few values of
  the subsample at the ranks its percentile or median reads (from a sort of the same subsample), interpolated on the
  host with numpy's own arithmetic: the same number as :func:`~stereoconv.parallax.convergence_depth`;
- the floating window: the block means of the disparity, its maximum and the largest disparity cut off at each edge.

The disparity is the numpy path's float32 arithmetic, op for op, so a plan agrees with the numpy plan of the same
depth bit for bit (up to the order in which the block means are summed, which no decision is near enough to feel).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .parallax import (
    ConvergenceTracker,
    FloatingWindow,
    ParallaxBudget,
    StereoPlan,
    StereoRenderer,
    block_grid,
    convergence_sample,
    disparity_scale,
)
from .temporal import percentile_ranks


def _wide(device: torch.device) -> torch.dtype:
    """The dtype block means are summed in: float64, as on the host, where the device has it (not on MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _block_means(values: torch.Tensor) -> torch.Tensor:
    """:func:`~stereoconv.parallax.block_means` on the device (rows x cols, :func:`_wide`)."""
    side, rows, cols = block_grid(*values.shape)
    blocks = values[: rows * side, : cols * side].reshape(rows, side, cols, side)
    return blocks.mean(dim=(1, 3), dtype=_wide(values.device))


# ---------------------------------------------------------------------------------- order statistics, numpy's way


def _linear(count: int, percentile: float) -> tuple[int, int, float]:
    """Where ``np.percentile`` (its default linear method) reads ``count`` sorted values for one ``percentile``: the
    ranks below and above (0 = smallest) and the weight ``gamma`` of the one above
    (:func:`~stereoconv.temporal.percentile_ranks`)."""
    if not 0 <= np.true_divide(percentile, 100) <= 1:
        raise ValueError("Percentiles must be in the range [0, 100]")
    below, above, gamma = percentile_ranks(count, (percentile,))
    return int(below[0]), int(above[0]), float(gamma[0])


@functools.cache
def _percentile_dtype(kind: type) -> np.dtype:
    """The dtype of ``np.percentile`` of float32 values for a percentile of type ``kind``: float32 where numpy
    promotes a Python number weakly (numpy 2), float64 where the weight is a float64 array."""
    return np.percentile(np.zeros(2, np.float32), kind(50)).dtype


def _ranks(count: int, mode: str, percentile: float) -> tuple[int, int]:
    """The first and the last of the adjacent ranks (0 = smallest) that :func:`_order_statistic` reads among
    ``count`` values."""
    if mode == "percentile":
        below, above, _ = _linear(count, percentile)
        return below, above
    middle = count // 2
    return (middle, middle) if count % 2 else (middle - 1, middle)


def _order_statistic(ranked: np.ndarray, count: int, mode: str, percentile: float) -> float:
    """:func:`~stereoconv.parallax.convergence_depth`'s value from the float32 values at :func:`_ranks` of the
    ``count`` sampled pixels: numpy's arithmetic on them, step by step (``np.percentile``'s ``_lerp``, from the
    nearer end; ``np.median``'s mean of the middle one or two)."""
    if mode != "percentile":
        return float(np.mean(ranked))
    _, _, gamma = _linear(count, percentile)
    dtype = _percentile_dtype(type(percentile))
    lower, upper = ranked[0], ranked[-1]
    diff = upper - lower  # float32, as numpy subtracts the two values
    if gamma >= 0.5:
        return float(np.subtract(upper, diff * dtype.type(1 - gamma), dtype=dtype))
    return float(np.add(lower, diff * dtype.type(gamma), dtype=dtype))


# ------------------------------------------------------------------------------------------------------ the stages


class DeviceConvergenceTracker(ConvergenceTracker):
    """:class:`~stereoconv.parallax.ConvergenceTracker` for depth on a torch device (float32 HxW tensor): the
    block means and the ranked values come to the host together, in one transfer."""

    def measure(self, depth: torch.Tensor) -> tuple[np.ndarray, float]:
        cfg = self.config
        mode, percentile = cfg.convergence, cfg.convergence_percentile
        sample = convergence_sample(depth, mode).reshape(-1)
        count = sample.numel()
        first, last = _ranks(count, mode, percentile)
        ordered = torch.sort(sample).values  # NaN sorts last, as numpy's partition puts it
        blocks = _block_means(depth)
        wide = blocks.dtype
        host = torch.cat((blocks.reshape(-1), ordered[first : last + 1].to(wide), ordered[-1:].to(wide)))
        host = host.cpu().numpy().astype(np.float64)
        size = blocks.numel()
        if np.isnan(host[-1]):  # numpy's percentile and median are NaN then
            value = math.nan
        else:
            value = _order_statistic(host[size:-1].astype(np.float32), count, mode, percentile)
        return host[:size].reshape(tuple(blocks.shape)), value


class DeviceFloatingWindow(FloatingWindow):
    """:class:`~stereoconv.parallax.FloatingWindow` for disparity on a torch device (float32 HxW tensor): the block
    means, the disparity's maximum and the largest disparity cut off at each edge come to the host together.

    :func:`~stereoconv.parallax.window_violations` looks only at the strips of columns that the largest disparity
    can leave; here every column is compared with its distance to the edge, which needs no sync to size the strips
    and finds the same pixels (a column further in than the largest disparity is never cut off)."""

    def measure(self, disparity: torch.Tensor, column: float) -> tuple[np.ndarray, tuple[float, float]]:
        blocks = _block_means(disparity)
        wide = blocks.dtype
        if not disparity.numel():
            return blocks.cpu().numpy().astype(np.float64), (0.0, 0.0)
        width = disparity.shape[1]
        # The distance from each column's centre to the left edge, in frame pixels, float32 as on the host.
        inset = torch.arange(width, dtype=torch.float32, device=disparity.device)
        inset = (inset + 0.5) * float(np.float32(column))
        extremes = [disparity.max()]
        for distance in (inset, inset.flip(0)):
            extremes.append(torch.where(disparity > distance, disparity, -math.inf).max())
        host = torch.cat((blocks.reshape(-1), torch.stack(extremes).to(wide))).cpu().numpy().astype(np.float64)
        reach, *edges = (float(x) for x in host[-3:])
        if not reach > 0.5:
            return host[:-3].reshape(tuple(blocks.shape)), (0.0, 0.0)
        left, right = (2.0 * edge if edge > -math.inf else 0.0 for edge in edges)
        return host[:-3].reshape(tuple(blocks.shape)), (left, right)


def disparity_torch(
    depth: torch.Tensor, convergence: float, budget: ParallaxBudget, width: int | None = None
) -> torch.Tensor:
    """:func:`~stereoconv.parallax.depth_to_disparity` on ``depth``'s device: float32 HxW, the same float32
    operations (subtract the convergence, multiply by :func:`~stereoconv.parallax.disparity_scale`)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {tuple(depth.shape)}")
    width = depth.shape[1] if width is None else width
    scale = disparity_scale(convergence, budget, width)
    out = torch.sub(depth.to(torch.float32), float(np.float32(convergence)))
    return out.mul_(float(scale))


class DeviceStereoRenderer(StereoRenderer):
    """:class:`~stereoconv.parallax.StereoRenderer` whose :meth:`plan` takes the normalized depth as a float32 HxW
    torch tensor on any device and plans there: the plan's ``disparity`` is a float32 tensor on that device (for
    :func:`~stereoconv.device_render.render_packed`), its ``convergence``, ``window``, ``frame`` and ``edges`` are
    the numpy plan's. The constructor is the base class's."""

    _tracker = DeviceConvergenceTracker
    _window = DeviceFloatingWindow
    _disparity = staticmethod(disparity_torch)

    def plan(self, depth: torch.Tensor, cut: bool = False, frame: tuple[int, int] | None = None) -> StereoPlan:
        """:meth:`StereoRenderer.plan <stereoconv.parallax.StereoRenderer.plan>` of ``depth`` (a float32 HxW
        tensor; another floating dtype is converted first), on its device."""
        if not isinstance(depth, torch.Tensor):
            raise TypeError(f"DeviceStereoRenderer plans torch tensors, got {type(depth).__name__}")
        return super().plan(depth.to(torch.float32), cut, frame)
