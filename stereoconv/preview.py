"""Preview one frame of a conversion as a PNG, rendered exactly as ``convert`` renders it.

The frame at TIME is the first frame whose time is at or after TIME (the frame ``--start TIME`` would begin with);
TIME is a time in the input, in seconds. It goes through :func:`~stereoconv.engine.frame_stream`, the code path
of ``convert``, with the stages' state (temporal smoothing, convergence, floating window) warmed up on the frames of
its shot before it:

1. The frames from ``max(media.start, TIME - warmup)`` to TIME are scanned for scene cuts with the pipeline's own
   detector (decoding only: cheap).
2. The engine runs from the last cut up to TIME (every state resets there, in ``convert`` too, so nothing
   earlier matters) or, if there is none, from the start of the warm-up, up to the frame at TIME. Decoding stops
   right after the frames the cut detector looks ahead to, so the stages do no work past TIME.

From a cut on, the preview equals ``convert``'s frame exactly. Without a cut in the warm-up the states start from the
warm-up's first frame instead of the shot's. With the default settings the slowest memory is the depth's scale and
offset, which keeps about ``1 - (1 - temporal.strength) * (1 - temporal.alignment) = 0.98`` of its state per frame;
convergence and floating window keep ``stereo.convergence_smoothing = 0.9``. On the synthetic shots of
``benchmarks/temporal.py`` (static, pan, zoom; 300 frames), the parallax after a 10 s warm-up differs from a run
from the shot's start by under 0.002 % of width at the 99th percentile of the pixels, after 4 s by under 0.07 %, and
with no warm-up by up to 0.64 %. The default, 4 s, is well under what anyone can see, and warm-up frames are cheap:
they go through decoding, depth and the stateful stages only, not rendering or packing.
A cut within ``scenes.min_scene_len`` frames of the
warm-up's start is not seen (the detector needs that much of a shot before it), as for a cut that close to
``--start`` in ``convert``.

Layouts (:data:`PREVIEW_LAYOUTS`), whatever ``output.format`` says, so that both eyes can be inspected at full
resolution:

- ``sbs``: full side-by-side, left eye | right eye, each at the source size (height rounded up to even, as in every
  output);
- ``anaglyph``: the red-cyan (Dubois) anaglyph, as ``output.format = "anaglyph"`` would encode it;
- ``depth``: the smoothed normalized depth the views were rendered from, colour-mapped (inferno: dark = far, bright
  yellow = near), at the source size;
- ``grid``: 2x2 at the eye size: source | depth on top, anaglyph | half side-by-side below, each under a band
  naming it; the depth tile's band is its legend, the colour map from far to near.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from .config import DEFAULT_WARMUP, PREVIEW_LAYOUTS, PipelineConfig, ShotOverrides
from .depth import DepthEstimator
from .encode import atomic_output, check_writable_file
from .engine import StereoFrame, frame_stream, open_estimator, scan
from .errors import MediaError, StereoconvError, StorageError, UsageError
from .media import Frame, VideoInfo, probe
from .packing import pack
from .subtitles import Caption, text_masks

PreviewLayout = Literal["sbs", "anaglyph", "depth", "grid"]
_TIME_TOLERANCE = 1e-6  # s, as media.decode compares times


@dataclass(frozen=True)
class PreviewFrame:
    """One frame through every stage, as ``convert`` made it, and how it was warmed up.

    ``item``: the frame after every stage (``item.packed`` is full side-by-side: left eye | right eye, each
    ``width`` x even ``height``; ``item.frame.index`` counts from the start of the run, not of the video; ``time`` is
    its time in the input). ``warmup_frames``: frames run through the stages before it. ``run_start``: time (s) of
    the first frame of the run: the last cut up to TIME, or the warm-up's start. ``exact``: the run started where
    ``convert``'s state starts afresh too (a cut, or the start of the converted range), so the frame equals
    ``convert``'s exactly.
    """

    item: StereoFrame
    warmup_frames: int
    run_start: float
    exact: bool

    @property
    def time(self) -> float:
        return self.item.frame.time

    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Left and right views, uint8 HxWx3 (height rounded up to even as in the packed output)."""
        packed = self.item.packed
        width = packed.shape[1] // 2
        return packed[:, :width], packed[:, width:]

    def image(self, layout: PreviewLayout = "sbs") -> np.ndarray:
        """The preview picture in ``layout`` (see the module docstring), uint8 HxWx3 RGB."""
        left, right = self.eyes()
        if layout == "sbs":
            return self.item.packed
        if layout == "anaglyph":
            return pack(left, right, "anaglyph")
        if layout == "depth":  # the depth's own grid brought to the frame's size
            rgb = self.item.frame.rgb
            return _fit(colorize_depth(self.item.depth), (rgb.shape[1], rgb.shape[0]))
        if layout == "grid":
            anaglyph = pack(left, right, "anaglyph")  # even width and height: the size of every tile
            tile = (anaglyph.shape[1], anaglyph.shape[0])
            source = _fit(self.item.frame.rgb, tile)
            depth = _fit(colorize_depth(self.item.depth), tile)
            band = grid_band_height(tile[1])
            labels = np.hstack((label_band("source", tile[0], band), depth_legend(tile[0], band)))
            below = np.hstack((label_band("anaglyph (red-cyan)", tile[0], band),
                               label_band("half side-by-side: left | right", tile[0], band)))  # fmt: skip
            return np.vstack((labels, np.hstack((source, depth)), below,
                              np.hstack((anaglyph, pack(left, right, "half-sbs")))))  # fmt: skip
        raise UsageError(f"unknown preview layout {layout!r}: choose one of {', '.join(PREVIEW_LAYOUTS)}")


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """Normalized depth (float32 HxW in [0, 1], larger = nearer) as uint8 HxWx3 RGB, inferno colour map: near is
    bright."""
    levels = np.clip(np.rint(depth * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def grid_band_height(tile_height: int) -> int:
    """Height of the label band above each tile of the grid: 6 % of a tile, at least 14 px, even."""
    return max(14, round(tile_height * 0.03) * 2)


def _write(image: np.ndarray, text: str, where: str, share: float = 1.0) -> None:
    """Draw ``text`` (white, black outline; Pillow's font) into the band ``image`` in place, at its left, centre or
    right, in at most ``share`` of its width."""
    height, width = image.shape[:2]
    fill, outline = text_masks(text, max(8, round(height * 0.7)), max(8, int(width * share) - 4))
    h, w = fill.shape
    x = {"left": 2, "center": (width - w) // 2, "right": width - w - 2}[where]
    Caption(fill, outline, x, (height - h) // 2, 0).draw(image, +1)


def label_band(text: str, width: int, height: int) -> np.ndarray:
    """A dark band (uint8 height x width x 3) labelled ``text`` at its left: the title of a grid tile."""
    band = np.full((height, width, 3), 40, np.uint8)
    _write(band, text, "left")
    return band


def depth_legend(width: int, height: int) -> np.ndarray:
    """The depth tile's title band: the colour map from far (left) to near (right) as a bar, labelled."""
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, width))
    band = colorize_depth(np.ascontiguousarray(ramp))
    _write(band, "far", "left", 0.3)
    _write(band, "depth", "center", 0.3)
    _write(band, "near", "right", 0.3)
    return band


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _check_layout(layout: str) -> None:
    if layout not in PREVIEW_LAYOUTS:
        raise UsageError(f"unknown preview layout {layout!r}: choose one of {', '.join(PREVIEW_LAYOUTS)}")


def _check_time(at: float, config: PipelineConfig) -> None:
    media = config.media
    if not math.isfinite(at) or at < 0:
        raise UsageError(f"preview time {at} s must be a time in the video, >= 0")
    if at < media.start - _TIME_TOLERANCE:
        raise UsageError(f"preview time {at:.3f} s is before media.start = {media.start:.3f} s")
    if media.end is not None and at >= media.end - _TIME_TOLERANCE:
        raise UsageError(f"preview time {at:.3f} s is not before media.end = {media.end:.3f} s")


def _beyond_end(info: VideoInfo, at: float, last: float | None) -> UsageError:
    duration = f"{info.duration:.3f} s" if info.duration is not None else "of unknown duration"
    last_frame = f"; its last frame is at {last:.3f} s" if last is not None else ""
    return UsageError(f"preview time {at:.3f} s is beyond the end of {info.path} (video {duration}{last_frame})")


@dataclass(frozen=True)
class _Scan:
    last_cut: float | None  # time of the last cut up to and including the frame at TIME
    target: float  # time of the frame at TIME
    through: float  # time of the last frame the detector needed to decide it (its lookahead)
    before: int  # frames from the run's start (the last cut, else the scan's start) to the frame at TIME


def _scan(info: VideoInfo, at: float, start: float, config: PipelineConfig) -> _Scan:
    """Scan the frames from ``start`` to the frame at ``at`` for cuts with the pipeline's detector. The frame's own
    decision waits for the detector's lookahead, as in ``convert``."""
    last_cut: float | None = None
    last_time: float | None = None
    decoded: list[float] = []
    before = 0

    def timed(frame: Frame) -> None:
        decoded.append(frame.time)

    try:
        with scan(info, config, start=start, end=config.media.end, on_decoded=timed) as decided:
            for frame, is_cut in decided:
                last_time = frame.time
                if is_cut:
                    last_cut = frame.time
                    before = 0
                if frame.time >= at - _TIME_TOLERANCE:
                    return _Scan(last_cut, frame.time, decoded[-1], before)
                before += 1
    except MediaError as exc:
        # decode() refuses a range with no frame at all: a start beyond the last frame.
        if last_time is None and info.duration is not None and start >= info.duration - 1.0 / max(info.fps, 1.0):
            raise _beyond_end(info, at, None) from exc
        raise
    raise _beyond_end(info, at, last_time)


def _shot_settings(info: VideoInfo, at: float, config: PipelineConfig, shots: ShotOverrides) -> dict[str, object]:
    """The settings ``shots`` gives the shot holding the frame at ``at``: its index and times from a scan for cuts
    from ``media.start`` (as ``convert`` counts shots) to the cut after it."""
    index, begin, finish = 0, config.media.start, None
    first, reached = True, False  # reached: past the frame at ``at`` (the first at or after it)
    with scan(info, config, start=config.media.start, end=config.media.end) as decided:
        for frame, is_cut in decided:
            if first:
                begin, first = frame.time, False
            elif is_cut and reached:
                finish = frame.time
                break
            elif is_cut:
                index, begin = index + 1, frame.time
            reached = reached or frame.time >= at - _TIME_TOLERANCE
    return shots.for_shot(index, begin, finish)


def preview_frame(
    input: str | os.PathLike[str],
    at: float,
    config: PipelineConfig | None = None,
    *,
    estimator: DepthEstimator | None = None,
    depth_cache: str | os.PathLike[str] | None = None,
    warmup_seconds: float = DEFAULT_WARMUP,
    shots: ShotOverrides | None = None,
) -> PreviewFrame:
    """Run the frame of ``input`` at time ``at`` (s, a time in the input) through every stage of ``convert``, with
    the stages warmed up on up to ``warmup_seconds`` of its shot before it (see the module docstring).

    ``config``: all settings (default: built-in defaults); ``output.format`` is ignored (the eyes come back full
    side-by-side). ``estimator``: a depth estimator instead of loading ``config.depth.model``. ``depth_cache``: the
    directory of ``convert``'s depth cache: frames a conversion (or an earlier preview) of the same input with the same
    model already ran are read from it, and the model is loaded only if some frame is missing; the frames computed
    here are added to it. Raises :class:`~stereoconv.errors.UsageError` for a time outside the video or the
    configured range, :class:`~stereoconv.errors.MediaError` for an unreadable input. ``shots``: per-shot settings,
    as ``convert`` applies them: the frame's shot is found by scanning for cuts from ``media.start`` (decoding only).
    """
    config = (config or PipelineConfig()).replace({"output.format": "full-sbs"})
    if not warmup_seconds >= 0:
        raise UsageError(f"warm-up must be >= 0 s, got {warmup_seconds}")
    at = float(at)
    info = probe(input)
    _check_time(at, config)
    if shots is not None and shots.rules:
        config = config.replace(_shot_settings(info, at, config, shots))
    start = max(config.media.start, at - warmup_seconds)
    found = _scan(info, at, start, config)  # before the model is loaded: a time beyond the end fails at once
    run_start = found.last_cut if found.last_cut is not None else start
    exact = found.last_cut is not None or start == config.media.start
    # As convert chooses its estimator.
    estimator, cache = open_estimator(input, config, estimator, depth_cache)

    # Decoding stops just after the frames the cut detector looks ahead to: the stages, which run ahead of this loop
    # in their own threads, then have nothing more to work on.
    end = found.through + 1e-3  # decode() stops before the first frame at or after ``end``: any later frame
    if config.media.end is not None:
        end = min(end, config.media.end)
    with (
        contextlib.nullcontext() if cache is None else cache,  # exits last: stores what was computed
        # Warm-up frames need the stateful stages only (the pre-roll): rendering and packing them would be thrown away.
        frame_stream(info, config, estimator, start=run_start, end=end, preroll=found.before) as items,
    ):
        for count, item in enumerate(items):
            if item.frame.time >= found.target - _TIME_TOLERANCE:
                if item.packed is None:  # decoded from the run's start, more frames came before it than in the scan
                    break
                return PreviewFrame(item, count, run_start, exact)
    raise StereoconvError(f"{info.path}: the frame at {found.target:.3f} s was found, then not decoded again")


def preview(
    input: str | os.PathLike[str],
    at: float,
    output: str | os.PathLike[str],
    config: PipelineConfig | None = None,
    *,
    layout: PreviewLayout = "sbs",
    estimator: DepthEstimator | None = None,
    depth_cache: str | os.PathLike[str] | None = None,
    warmup_seconds: float = DEFAULT_WARMUP,
    shots: ShotOverrides | None = None,
) -> Path:
    """Render the frame of ``input`` at ``at`` seconds as ``convert`` would (:func:`preview_frame`) and write it to
    the PNG ``output`` in ``layout`` (``sbs``, ``anaglyph``, ``depth`` or ``grid``; see the module docstring).

    The PNG appears only when complete (written beside ``output``, then renamed). Returns the path written.
    Raises :class:`~stereoconv.errors.UsageError` for a bad layout, output path or time.
    """
    _check_layout(layout)
    out = check_png_path(output)
    frame = preview_frame(input, at, config, estimator=estimator, depth_cache=depth_cache,
                          warmup_seconds=warmup_seconds, shots=shots)  # fmt: skip
    return write_png(out, frame.image(layout))


def check_png_path(output: str | os.PathLike[str]) -> Path:
    """Validate a preview output before any work: a ``.png`` file name in an existing writable directory."""
    return check_writable_file(output, "preview output", (".png",))


def write_png(output: Path, rgb: np.ndarray) -> Path:
    """Write uint8 HxWx3 RGB as a PNG through :func:`~stereoconv.encode.atomic_output`: never a partial file."""
    try:
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise UsageError(f"cannot write {output}: PNG encoding failed")
        # Written here, not by OpenCV: a full disk is then an OSError with its errno (a StorageError, exit 6).
        with atomic_output(output) as tmp:
            tmp.write_bytes(png.tobytes())
    except StorageError:
        raise
    except (OSError, cv2.error) as exc:
        raise UsageError(f"cannot write {output}: {getattr(exc, 'strerror', None) or exc}") from exc
    return output
