"""Subtitles in 3D: the cues of a text subtitle stream drawn into both eyes, in front of what they cover.

A soft subtitle in a side-by-side or top-bottom file is drawn once by the player over the whole packed frame, so a 3D
TV splits every line in two halves, one per eye. Burned in, each eye gets the whole line, shifted like a point of
the picture: by ``+d`` pixels in the left eye and ``-d`` in the right (the convention of
:mod:`stereoconv.parallax`: per-eye disparity ``d``, larger = nearer, screen parallax ``-2 d``), so it floats in
front of the screen with crossed parallax.

Where in depth: at the first frame of a cue, just in front of the nearest content under the text box (the largest
disparity there, plus :data:`MARGIN` % of the width of parallax), never behind the screen plane and never beyond the
crossed-parallax budget (``stereo.max_negative_parallax``). Rounded to whole pixels and held for the whole cue: text
that moved in depth while being read would be tiring. Cues come from the stream through PyAV (SRT, ASS/SSA, WebVTT,
mov_text; ASS override tags such as ``{\\i1}`` are dropped, ``\\N`` breaks the line) and are drawn with Pillow's
bundled font: white with a black outline, centred near the bottom of the frame.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import av
import av.error
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .config import PipelineConfig
from .errors import MediaError, UsageError
from .media import VideoInfo, ffmpeg_reason, open_input, subtitle_mode

MARGIN = 0.2  # % of the width: how much nearer than what it covers a cue is placed (crossed parallax)
_TEXT_HEIGHT = 0.055  # font size as a share of the frame height
_BOTTOM = 0.06  # gap below the text box, as a share of the frame height
_ASS_TAG = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` (lines separated by ``\\n``) shown from ``start`` to ``end`` seconds (input time,
    ``end`` exclusive)."""

    start: float
    end: float
    text: str


def dialogue_text(raw: str) -> str:
    """The text of an ASS dialogue field (what FFmpeg's text decoders give for every text format): override tags
    dropped, ``\\N``/``\\n`` as line breaks, ``\\h`` as a space, blank lines removed."""
    text = _ASS_TAG.sub("", raw).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def choose_stream(info: VideoInfo, which: int | None) -> int:
    """The container index of the text subtitle stream to burn: the ``which``-th text stream (from 0), or the first
    marked default, else the first. UsageError if there is none."""
    streams = info.text_subtitles
    if not streams:
        raise UsageError(f"{info.path} has no text subtitle stream to burn (bitmap subtitles cannot be placed in 3D)")
    if which is not None:
        if which >= len(streams):
            raise UsageError(f"output.subtitle_stream = {which}: {info.path} has {len(streams)} text subtitle "
                             f"stream{'s' if len(streams) != 1 else ''} (0-{len(streams) - 1})")  # fmt: skip
        return streams[which][0]
    return next((index for index, _, default in streams if default), streams[0][0])


def read_cues(info: VideoInfo, stream_index: int) -> list[Cue]:
    """Every cue of the subtitle stream with container index ``stream_index``, sorted by start. Subtitle streams
    are small: they are read whole before the conversion starts."""
    cues: list[Cue] = []
    try:
        with open_input(info.path) as container:
            stream = container.streams[stream_index]
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                lines = []
                for subtitle in packet.decode():
                    raw = getattr(subtitle, "dialogue", None) or getattr(subtitle, "text", b"")
                    text = dialogue_text(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
                    if text:
                        lines.append(text)
                if lines and end > start:
                    cues.append(Cue(start, end, "\n".join(lines)))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{info.path}: cannot read subtitle stream {stream_index}: {ffmpeg_reason(exc)}") from exc
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


@lru_cache(maxsize=16)
def text_masks(text: str, size: int, max_width: int) -> tuple[np.ndarray, np.ndarray]:
    """``text`` drawn with Pillow's bundled font at ``size`` px (smaller if it would be wider than ``max_width``),
    centred, as two float32 hxw coverage masks in [0, 1]: the glyphs, and the glyphs with their outline."""
    while True:
        font = ImageFont.load_default(size=size)
        stroke = max(1, round(size / 12))
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        box = probe.multiline_textbbox((0, 0), text, font=font, align="center", stroke_width=stroke)
        left, top = math.floor(box[0]), math.floor(box[1])  # float for several lines
        right, bottom = math.ceil(box[2]), math.ceil(box[3])
        if right - left <= max_width or size <= 8:
            break
        size = max(8, math.floor(size * max_width / (right - left)))
    box = (right - left + 2, bottom - top + 2)
    masks = []
    for width in (0, stroke):
        image = Image.new("L", box, 0)
        ImageDraw.Draw(image).multiline_text((1 - left, 1 - top), text, font=font, fill=255, align="center",
                                             stroke_width=width, stroke_fill=255)  # fmt: skip
        masks.append(np.asarray(image, dtype=np.float32) / 255.0)
    return masks[0], masks[1]


@dataclass(frozen=True)
class Caption:
    """A cue placed on one frame: its ``fill`` and ``outline`` masks (float32 hxw), the box's top-left corner
    ``(x, y)`` in the source frame and the per-eye disparity ``d`` in whole pixels (the left eye's text is drawn
    ``d`` px right of the box, the right eye's ``d`` px left of it)."""

    fill: np.ndarray
    outline: np.ndarray
    x: int
    y: int
    disparity: int

    def resized(self, frame: tuple[int, int], size: tuple[int, int]) -> Caption:
        """The caption for an eye rendered at ``size`` = (height, width) instead of the ``frame``'s (a half layout's
        eye at its packed size): box, masks and disparity scaled alike."""
        sy, sx = size[0] / frame[0], size[1] / frame[1]
        h, w = self.fill.shape
        shape = (max(1, round(w * sx)), max(1, round(h * sy)))
        fill = cv2.resize(self.fill, shape, interpolation=cv2.INTER_AREA)
        outline = cv2.resize(self.outline, shape, interpolation=cv2.INTER_AREA)
        return Caption(fill, outline, round(self.x * sx), round(self.y * sy), round(self.disparity * sx))

    def draw(self, image: np.ndarray, direction: int) -> None:
        """Draw into ``image`` (HxWx3 uint8 or uint16, in place) for the eye ``direction`` (+1 left, -1 right):
        white text on a black outline, clipped to the frame."""
        height, width = image.shape[:2]
        h, w = self.fill.shape
        x0, y0 = self.x + direction * self.disparity, self.y
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(width, x0 + w), min(height, y0 + h)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        region = image[cy0:cy1, cx0:cx1].astype(np.float32)
        fill = self.fill[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
        outline = self.outline[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
        white = float(np.iinfo(image.dtype).max)
        region *= 1.0 - np.maximum(fill, outline)  # black under the outline and the glyphs
        region += white * fill
        image[cy0:cy1, cx0:cx1] = np.clip(np.rint(region), 0, white).astype(image.dtype)


class CaptionTrack:
    """The in-order stage that places cues: call ``track(time, size, disparity)`` once per frame in decode order with
    the frame's time (s), its (height, width) and a function giving its per-eye disparity map at a size (float32 HxW,
    px, larger = nearer; asked for only when a cue is placed); returns the :class:`Caption` to draw on that frame, or
    None. A cue's depth is chosen on the first frame it is shown on and held while it lasts (see the module
    docstring)."""

    def __init__(self, cues: list[Cue], max_negative_parallax: float) -> None:
        self.cues = cues
        self.max_negative_parallax = max_negative_parallax  # % of width, the crossed budget
        self._starts = [cue.start for cue in cues]
        self._held: tuple[tuple[int, ...], int] | None = None  # (the cues shown, their disparity)

    def active(self, time: float) -> tuple[int, ...]:
        """Indices of the cues shown at ``time``."""
        last = bisect.bisect_right(self._starts, time + 1e-6)
        return tuple(k for k in range(max(0, last - 16), last) if self.cues[k].end > time + 1e-6)

    def __call__(
        self,
        time: float,
        size: tuple[int, int],
        disparity: Callable[[int, int], np.ndarray],
        budget: float | None = None,
    ) -> Caption | None:
        """``budget``: the crossed-parallax budget (% of width) of the frame's shot, if not the track's."""
        shown = self.active(time)
        if not shown:
            self._held = None
            return None
        height, width = size
        text = "\n".join(self.cues[k].text for k in shown)
        fill, outline = text_masks(text, max(8, round(height * _TEXT_HEIGHT)), int(width * 0.9))
        h, w = fill.shape
        x, y = (width - w) // 2, max(0, height - round(height * _BOTTOM) - h)
        if self._held is None or self._held[0] != shown:
            limit = self.max_negative_parallax if budget is None else budget
            covered = disparity(height, width)[y : y + h, max(0, x) : x + w]
            self._held = shown, self.place(covered, width, limit)
        return Caption(fill, outline, x, y, self._held[1])

    @staticmethod
    def place(covered: np.ndarray, width: int, max_negative_parallax: float) -> int:
        """The per-eye disparity (whole px) of a cue over ``covered`` (the disparity under its box) in a frame
        ``width`` px wide: the nearest content there plus the margin, at least on the screen plane, at most the
        crossed budget ``max_negative_parallax`` (% of width)."""
        budget = math.floor(max_negative_parallax / 100.0 * width / 2.0 + 1e-9)
        nearest = float(covered.max()) if covered.size else 0.0
        wanted = math.ceil(max(nearest, 0.0) + MARGIN / 100.0 * width / 2.0)
        return max(0, min(budget, wanted))


def open_captions(info: VideoInfo, config: PipelineConfig) -> CaptionTrack | None:
    """The cues to burn into a conversion of ``info`` with ``config`` (see :func:`~stereoconv.media.subtitle_mode`),
    or None when subtitles are not burned."""
    if subtitle_mode(config.output, info) != "burn":
        return None
    cues = read_cues(info, choose_stream(info, config.output.subtitle_stream))
    return CaptionTrack(cues, config.stereo.max_negative_parallax)
