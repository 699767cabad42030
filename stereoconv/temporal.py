"""Depth normalization and cut-aware temporal smoothing.

Depth maps here are relative inverse depth, float32 HxW, **larger = nearer**; normalized depth lies in [0, 1]
(0 = farthest, 1 = nearest).

Per frame: the raw depth is normalized robustly between two percentiles (outliers do not set the range), with the
range itself smoothed over the shot; then a per-pixel bilateral temporal filter blends in the previous estimate with a
weight that falls with the depth difference and with the pixel's colour change, so static surfaces stop shimmering
while moving objects and real depth changes come through. At a scene cut every state resets: the first frame of a shot
is exactly its own normalized depth.

:class:`TemporalSmoother` is the streaming stage the pipeline uses; :func:`smooth_sequence` runs the same class over
a whole sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from .config import TemporalConfig

_EPS = 1e-6


def depth_percentiles(depth: np.ndarray, low: float, high: float, *, max_samples: int = 65536) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles (in %) of a depth map, from an even subsample of at most ``max_samples``."""
    step = max(1, int(np.sqrt(depth.size / max_samples)))
    sample = depth[::step, ::step]
    lo, hi = np.percentile(sample, (low, high))
    return float(lo), float(hi)


def normalize(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map depth linearly so ``lo`` -> 0 and ``hi`` -> 1, clipped to [0, 1]; float32 HxW."""
    scale = 1.0 / max(hi - lo, _EPS)
    out = (depth.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(scale)
    return np.clip(out, 0.0, 1.0, out=out)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


class TemporalSmoother:
    """Streaming depth normalization + bilateral temporal filter, reset at cuts.

    Call once per frame in decode order: ``smoother(depth, rgb, cut)`` with ``depth`` float32 HxW relative inverse
    depth (larger = nearer), ``rgb`` the uint8 HxWx3 frame (or None: no colour term), ``cut`` True on the first frame
    of a shot. Returns normalized depth in [0, 1], float32 HxW, larger = nearer.
    """

    def __init__(self, config: TemporalConfig | None = None) -> None:
        self.config = config or TemporalConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next frame starts a shot."""
        self._range: tuple[float, float] | None = None
        self._prev: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None

    def __call__(self, depth: np.ndarray, rgb: np.ndarray | None = None, cut: bool = False) -> np.ndarray:
        if depth.ndim != 2:
            raise ValueError(f"depth must be HxW, got shape {depth.shape}")
        if rgb is not None and rgb.shape[:2] != depth.shape:
            raise ValueError(f"frame {rgb.shape[:2]} and depth {depth.shape} sizes differ")
        cfg = self.config
        if cut or (self._prev is not None and self._prev.shape != depth.shape):
            self.reset()
        lo, hi = depth_percentiles(depth, cfg.low_percentile, cfg.high_percentile)
        if self._range is not None:
            k = cfg.range_smoothing
            lo, hi = k * self._range[0] + (1 - k) * lo, k * self._range[1] + (1 - k) * hi
        self._range = (lo, hi)
        current = normalize(depth, lo, hi)
        gray = _gray(rgb) if rgb is not None else None

        out = current if self._prev is None or cfg.strength == 0.0 else self._blend(current, gray)
        self._prev, self._prev_gray = out, gray
        return out

    def _blend(self, current: np.ndarray, gray: np.ndarray | None) -> np.ndarray:
        """Per-pixel weight of the previous estimate: strength * g(depth change) * g(colour change), g Gaussian."""
        cfg = self.config
        prev = self._prev
        assert prev is not None
        dd = current - prev
        exponent = dd * dd * np.float32(-0.5 / cfg.depth_sigma**2)
        if gray is not None and self._prev_gray is not None:
            dc = gray - self._prev_gray
            exponent -= dc * dc * np.float32(0.5 / cfg.color_sigma**2)
        weight = np.exp(exponent, out=exponent)
        weight *= np.float32(cfg.strength)
        # out = w * prev + (1 - w) * current = current - w * (current - prev)
        return current - weight * dd


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
