"""Scene-cut detection on downscaled frames, streaming, with a few frames of lookahead.

A cut index is the 0-based decode-order index of the first frame of a new shot. Every temporal state in the
pipeline resets at a cut.

Detectors follow one small contract (:class:`CutDetector`): ``push`` each frame in decode order and get back the
decisions that became final, ``flush`` at the end for the rest. Each frame gets exactly one decision, in order.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from .config import ScenesConfig

Decision = tuple[int, bool]  # (frame index, is the first frame of a new shot)

# The structure term of the change score: the blockwise decorrelation of the two luma thumbnails
# (block_decorrelation) times this, in the 0-255 units of the HSV term. Unrelated pictures correlate about 0 (term
# about STRUCTURE_WEIGHT), two frames of one shot about 1 (term about 0), whatever their palette and exposure.
STRUCTURE_WEIGHT = 40.0
# A thumbnail's luma std (0-255) below the first value has too little structure to compare (black, or nearly black
# frames in a fade, where correlation is only noise): the term counts from 0 there to fully at the second value.
STRUCTURE_CONTRAST = (3.0, 6.0)
# A picture that comes back after a candidate cut (a flash) changed less than this from the one before it.
FLASH_SIMILAR = 25.0


@dataclass(frozen=True)
class Thumbnail:
    """A downscaled frame as the detector compares it: ``hsv`` float32 hxwx3 (OpenCV's full-range HSV, 0-255),
    ``luma`` float32, half that size (0-255: each pixel the mean of 2x2, which calms sensor noise and compression
    blocks) and ``contrast``, the std of ``luma``."""

    hsv: np.ndarray
    luma: np.ndarray
    contrast: float


def block_decorrelation(a: np.ndarray, b: np.ndarray, grid: tuple[int, int] = (4, 3), flat: float = 2.0) -> float:
    """Median over a ``grid`` (columns, rows) of blocks of ``1 - correlation`` between two same-size float32 luma
    images, 0-2: about 1 where most of the picture changed (a cut), about 0 where most of it is the same picture,
    whatever moves in a few blocks. Blocks flat (std below ``flat``) in either image are left out; 0 when fewer than
    a third of the blocks are left."""
    h, w = a.shape
    if h < 2 * grid[1] or w < 2 * grid[0]:
        return 1.0 - correlation(a, b)

    # Per-block means of a, b, a^2, b^2 (one 4-channel pass) and ab: area interpolation averages each block.
    moments = cv2.resize(np.dstack((a, b, a * a, b * b)), grid, interpolation=cv2.INTER_AREA)
    mean_a, mean_b = moments[..., 0], moments[..., 1]
    var_a = moments[..., 2] - mean_a * mean_a
    var_b = moments[..., 3] - mean_b * mean_b
    cov = cv2.resize(a * b, grid, interpolation=cv2.INTER_AREA) - mean_a * mean_b
    keep = (var_a > flat * flat) & (var_b > flat * flat)
    count = int(keep.sum())
    if 3 * count < grid[0] * grid[1]:
        return 0.0
    values = np.sort(1.0 - cov[keep] / np.sqrt(var_a[keep] * var_b[keep]))
    return float(values[(count - 1) // 2] + values[count // 2]) / 2.0


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two same-size float32 images, -1 to 1; 1 (alike) where either is flat."""
    a = a - np.float32(a.mean())
    b = b - np.float32(b.mean())
    norm = math.sqrt(float(np.dot(a.ravel(), a.ravel())) * float(np.dot(b.ravel(), b.ravel())))
    return float(np.dot(a.ravel(), b.ravel())) / norm if norm > 1e-6 else 1.0


class CutDetector(ABC):
    """Streaming scene-cut detector: frames in, one (index, is_cut) decision per frame out, in order."""

    #: frames a decision may lag behind the newest pushed frame
    lookahead: int = 0

    @abstractmethod
    def push(self, rgb: np.ndarray) -> list[Decision]:
        """Feed the next frame (uint8 HxWx3 RGB); return the decisions that are now final."""

    @abstractmethod
    def flush(self) -> list[Decision]:
        """No more frames: return every remaining decision."""


class NoCuts(CutDetector):
    """Scene detection off: the whole input is one shot."""

    def __init__(self) -> None:
        self._next = 0

    def push(self, rgb: np.ndarray) -> list[Decision]:
        self._next += 1
        return [(self._next - 1, False)]

    def flush(self) -> list[Decision]:
        return []


class AdaptiveContentDetector(CutDetector):
    """Cuts where the change between consecutive frames is large in absolute terms *and* large against the changes
    of the neighbouring frames (``window`` on each side), so motion, which changes every frame a lot, does not
    trigger it.

    The change adds two cues (see :meth:`_change`): colour, the brightness-weighted HSV difference, and structure,
    how little the two pictures' luma layouts correlate. Structure finds the cuts colour sees least: between two
    shots of one palette and exposure (shot/reverse-shot, a wide then a close-up) and in low light, where every
    colour difference is small; correlation ignores gain and offset, so it stays quiet through fades.

    The change is motion-compensated: consecutive frames are also compared after shifting one by their global
    translation (phase correlation), so a fast camera pan scores low and a cut inside or next to it stands out.

    A short flash is not a cut: when the picture from before a candidate (up to ``window + 1`` frames back) comes
    back at or within ``window`` frames after it, the candidate is dropped. That covers flashes of up to ``window``
    frames, at both their first frame and the first frame after them.
    """

    def __init__(self, config: ScenesConfig | None = None, *, width: int = 96) -> None:
        self.config = config or ScenesConfig()
        self.lookahead = self.config.window
        self._width = width
        # Thumbnails, newest last: the frame being decided, ``window`` after it and ``window + 1`` before (flash check)
        self._small: deque[Thumbnail] = deque(maxlen=2 * self.config.window + 2)
        self._scores: deque[float] = deque(maxlen=2 * self.config.window + 1)
        self._pushed = 0
        self._decided = 0
        self._last_cut = 0
        self._hann: np.ndarray | None = None  # phase-correlation window, made for the first frame's size

    def _downscale(self, rgb: np.ndarray) -> Thumbnail:
        h, w = rgb.shape[:2]
        width = min(self._width, w)
        height = max(1, round(h * width / w))
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        # Half the thumbnail's size: averaging 2x2 pixels calms sensor noise and compression blocks.
        luma = cv2.resize(gray, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
        luma = luma.astype(np.float32)
        return Thumbnail(hsv, luma, float(cv2.meanStdDev(luma)[1][0, 0]))

    @staticmethod
    def _difference(a: np.ndarray, b: np.ndarray) -> float:
        """Mean absolute HSV difference of two same-size HSV float32 images, 0-255; hue is circular.

        Hue and saturation count in proportion to the pixel's brightness: in near-black pixels they are noise, and
        unweighted they make the first frame of a fade-in from black look like a cut.
        """
        diff = np.abs(a - b)
        hue = np.minimum(diff[..., 0], 256.0 - diff[..., 0])
        weight = np.minimum(a[..., 2], b[..., 2]) * (1.0 / 255.0)
        return float(((hue + diff[..., 1]) * weight + diff[..., 2]).mean() / 3.0)

    def _change(self, a: Thumbnail, b: Thumbnail) -> float:
        """Content change from thumbnail ``a`` to ``b``, in the 0-255 units of the HSV difference, motion-compensated:
        ``colour + STRUCTURE_WEIGHT * contrast * structure``.

        ``colour``: the plain HSV difference, or twice the difference over the overlap after shifting ``b`` back by
        the global translation phase correlation finds (at most a third of the frame), if that is lower. In a pan
        the aligned difference is a small fraction of the plain one; between two unrelated pictures the best shift
        still removes some difference by chance (up to a third in dark footage), which the factor 2 leaves to the
        cut. ``structure``: :func:`block_decorrelation` of the luma thumbnails, plain or over that overlap, the
        lower (0-2; about 1 across a cut, whatever the palette; the median over blocks, so an object moving in a
        few of them does not count). ``contrast``: 0-1, how much structure the flatter picture has
        (:data:`STRUCTURE_CONTRAST`).
        """
        colour = self._difference(a.hsv, b.hsv)
        structure = block_decorrelation(a.luma, b.luma)
        low, high = STRUCTURE_CONTRAST
        contrast = min(1.0, max(0.0, (min(a.contrast, b.contrast) - low) / (high - low)))
        h, w = a.hsv.shape[:2]
        shift = self._shift(a, b) if h >= 8 and w >= 8 else None  # too few pixels to estimate motion from
        if shift is not None:
            dx, dy = shift  # b(x, y) ~ a(x - dx, y - dy)
            ys_a, xs_a = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
            ys_b, xs_b = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
            colour = min(colour, 2.0 * self._difference(a.hsv[ys_a, xs_a], b.hsv[ys_b, xs_b]))
            dx, dy = round(dx / 2), round(dy / 2)  # the luma thumbnail is half the size
            h, w = a.luma.shape
            ys_a, xs_a = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
            ys_b, xs_b = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
            structure = min(structure, block_decorrelation(a.luma[ys_a, xs_a], b.luma[ys_b, xs_b]))
        return colour + STRUCTURE_WEIGHT * contrast * structure

    def _shift(self, a: Thumbnail, b: Thumbnail) -> tuple[int, int] | None:
        """The global translation ``(dx, dy)`` in thumbnail pixels from ``a`` to ``b`` (phase correlation on the
        value channel); None when there is none, or more than a plausible shift between consecutive frames (more
        than a third of the frame, e.g. to a black frame)."""
        h, w = a.hsv.shape[:2]
        if self._hann is None or self._hann.shape != (h, w):
            self._hann = cv2.createHanningWindow((w, h), cv2.CV_32F)
        (sx, sy), _ = cv2.phaseCorrelate(a.hsv[..., 2], b.hsv[..., 2], self._hann)
        if not (math.isfinite(sx) and math.isfinite(sy)):
            return None
        dx, dy = round(sx), round(sy)
        if (dx == 0 and dy == 0) or 3 * abs(dx) > w or 3 * abs(dy) > h:
            return None
        return dx, dy

    def push(self, rgb: np.ndarray) -> list[Decision]:
        small = self._downscale(rgb)
        score = self._change(self._small[-1], small) if self._small else 0.0
        self._small.append(small)
        self._scores.append(score)
        self._pushed += 1
        if self._pushed - self._decided > self.lookahead:
            return [self._decide()]
        return []

    def flush(self) -> list[Decision]:
        out = []
        while self._decided < self._pushed:
            out.append(self._decide())
        return out

    def _decide(self) -> Decision:
        """Decide frame ``self._decided``, whose score sits ``newest - index`` places from the end of the deques."""
        index = self._decided
        self._decided += 1
        if index == 0:
            return index, False
        cfg = self.config
        back = self._pushed - 1 - index  # how far this frame is from the newest
        scores = list(self._scores)
        pos = len(scores) - 1 - back
        score = scores[pos]
        neighbours = scores[max(0, pos - cfg.window) : pos] + scores[pos + 1 : pos + 1 + cfg.window]
        if not neighbours:
            neighbours = [0.0]
        is_cut = (
            score >= cfg.threshold
            and score >= cfg.adaptive_ratio * (float(np.mean(neighbours)) + 1.0)
            and index - self._last_cut >= cfg.min_scene_len
            and not self._is_flash(back, score)
        )
        if is_cut:
            self._last_cut = index
        return index, is_cut

    def _is_flash(self, back: int, score: float) -> bool:
        """True if a picture from before the candidate reappears at or after it: a flash or a blip.

        ``before`` reaches ``window + 1`` frames back and ``after`` starts at the candidate itself, so a flash of up
        to ``window`` frames is recognised at its first frame (the picture before it is back after it) and at the
        first frame after it (that frame is the picture from before the flash).
        """
        frames = list(self._small)
        cur = len(frames) - 1 - back
        window = self.config.window
        before = frames[max(0, cur - window - 1) : cur]
        after = frames[cur : cur + 1 + window]
        # Half the candidate's change, and never more than a change within one shot: a white flash frame is as far
        # from every picture, so half a large score would let it pass for the picture before.
        similar = min(0.5 * score, FLASH_SIMILAR)
        return any(self._change(a, b) < similar for a in before for b in after)


DETECTORS: dict[str, type[CutDetector]] = {"adaptive-content": AdaptiveContentDetector}


def make_detector(config: ScenesConfig) -> CutDetector:
    """The detector the pipeline and ``stereoconv scenes`` both use."""
    return AdaptiveContentDetector(config) if config.enabled else NoCuts()


def detect_cuts(frames: Iterable[np.ndarray], config: ScenesConfig | None = None) -> list[int]:
    """Cut indices (first frame of each new shot, 0-based) of a sequence of uint8 HxWx3 RGB frames."""
    detector = make_detector(config or ScenesConfig())
    decisions: list[Decision] = []
    for rgb in frames:
        decisions += detector.push(rgb)
    decisions += detector.flush()
    return [index for index, is_cut in decisions if is_cut]
