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

import cv2
import numpy as np

from .config import ScenesConfig

Decision = tuple[int, bool]  # (frame index, is the first frame of a new shot)


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
    """Cuts where the (brightness-weighted) HSV content change between consecutive frames is large in absolute
    terms *and* large against the changes of the neighbouring frames (``window`` on each side), so motion, which
    changes every frame a lot, does not trigger it.

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
        # HSV, newest last: the frame being decided, ``window`` after it and ``window + 1`` before (flash check)
        self._small: deque[np.ndarray] = deque(maxlen=2 * self.config.window + 2)
        self._scores: deque[float] = deque(maxlen=2 * self.config.window + 1)
        self._pushed = 0
        self._decided = 0
        self._last_cut = 0
        self._hann: np.ndarray | None = None  # phase-correlation window, made for the first frame's size

    def _downscale(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        width = min(self._width, w)
        height = max(1, round(h * width / w))
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)

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

    def _change(self, a: np.ndarray, b: np.ndarray) -> float:
        """Content change from HSV picture ``a`` to ``b`` (both hxwx3 float32), 0-255, motion-compensated.

        The plain difference, or twice the difference over the overlap after shifting ``b`` back by the global
        translation phase correlation finds (at most a third of the frame), if that is lower. In a pan the aligned
        difference is a small fraction of the plain one; between two unrelated pictures the best shift still
        removes some difference by chance (up to a third in dark footage), which the factor 2 leaves to the cut.
        """
        plain = self._difference(a, b)
        h, w = a.shape[:2]
        if h < 8 or w < 8:  # too few pixels to estimate motion from
            return plain
        if self._hann is None or self._hann.shape != (h, w):
            self._hann = cv2.createHanningWindow((w, h), cv2.CV_32F)
        (sx, sy), _ = cv2.phaseCorrelate(a[..., 2], b[..., 2], self._hann)
        if not (math.isfinite(sx) and math.isfinite(sy)):
            return plain
        dx, dy = round(sx), round(sy)  # b(x, y) ~ a(x - dx, y - dy)
        if (dx == 0 and dy == 0) or 3 * abs(dx) > w or 3 * abs(dy) > h:
            return plain  # no motion, or more than a plausible shift between consecutive frames (e.g. a black frame)
        a_part = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        b_part = b[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
        return min(plain, 2.0 * self._difference(a_part, b_part))

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
        return any(self._change(a, b) < 0.5 * score for a in before for b in after)


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
