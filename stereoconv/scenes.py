"""Scene-cut detection on downscaled frames, streaming, with a few frames of lookahead.

A cut index is the 0-based decode-order index of the first frame of a new shot. Every temporal state in the
pipeline resets at a cut.

Detectors follow one small contract (:class:`CutDetector`): ``push`` each frame in decode order and get back the
decisions that became final, ``flush`` at the end for the rest. Each frame gets exactly one decision, in order.
"""

from __future__ import annotations

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
    terms *and* large against the changes of the neighbouring frames (``window`` on each side), so camera motion,
    which changes every frame a lot, does not trigger it.

    A short flash is not a cut: when the picture on one side of a candidate comes back within ``window`` frames on
    the other side, the candidate is dropped.
    """

    def __init__(self, config: ScenesConfig | None = None, *, width: int = 96) -> None:
        self.config = config or ScenesConfig()
        self.lookahead = self.config.window
        self._width = width
        self._small: deque[np.ndarray] = deque(maxlen=2 * self.config.window + 2)  # HSV, newest last
        self._scores: deque[float] = deque(maxlen=2 * self.config.window + 1)
        self._pushed = 0
        self._decided = 0
        self._last_cut = 0

    def _downscale(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        width = min(self._width, w)
        height = max(1, round(h * width / w))
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)

    @staticmethod
    def _change(a: np.ndarray, b: np.ndarray) -> float:
        """Mean absolute HSV difference, 0-255; hue is circular.

        Hue and saturation count in proportion to the pixel's brightness: in near-black pixels they are noise, and
        unweighted they make the first frame of a fade-in from black look like a cut.
        """
        diff = np.abs(a - b)
        hue = np.minimum(diff[..., 0], 256.0 - diff[..., 0])
        weight = np.minimum(a[..., 2], b[..., 2]) * (1.0 / 255.0)
        return float(((hue + diff[..., 1]) * weight + diff[..., 2]).mean() / 3.0)

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
        """True if a picture before the candidate reappears after it (within the window): a flash or a blip."""
        frames = list(self._small)
        cur = len(frames) - 1 - back
        before = frames[max(0, cur - self.config.window) : cur]
        after = frames[cur + 1 : cur + 1 + self.config.window]
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
