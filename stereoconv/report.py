"""Per-shot report of a conversion: parallax range, flicker, window violations and hole area, shot by shot.

:class:`ShotReport` is a streaming accumulator fed once per frame, in decode order, from the pipeline loop with what
it already has: the frame's index, time and pixels, whether it starts a shot, the per-eye disparity it was rendered
with, the floating-window bands and the share of hole pixels in each eye. Memory does not grow with the video beyond a
few scalars per frame (for the plot) and one record per shot: maps are never kept, only the previous frame at a quarter
of its size (for flicker) and a bounded sample of the current shot's parallax (for its percentiles).

Conventions (as in :mod:`stereoconv.parallax`): per-eye disparity ``d`` is in pixels, larger = nearer; screen
parallax ``P = x_right - x_left = -2 d`` pixels, or ``100 * P / W`` % of the frame width ``W``. ``P > 0`` (uncrossed)
appears behind the screen, ``P < 0`` (crossed) in front of it. Every figure in the report is screen parallax.

Per shot (:class:`ShotStats`):

- **parallax percentiles** 1/5/50/95/99 (and the exact min and max) of the parallax of every pixel of the shot, in
  px and in % of width. Each frame contributes an even grid subsample of at most 16384 pixels (the same count for
  every frame of the shot, so frames weigh equally, as their pixels do), pooled in a uniform reservoir sample of at
  most 65536 values (Vitter's algorithm R, fixed seed: the same input gives the same report). The percentiles of the
  pooled values are those of the shot's whole parallax distribution, up to sampling: with 65536 values the rank error
  of the 1st percentile is about 0.04 % of the pixels. Per-frame percentiles cannot be combined into the shot's (the
  1st percentile of a shot is not any average of its frames' 1st percentiles); per-frame 1/50/99 percentiles are kept
  only for the plot.
- **flicker**: the mean absolute frame-to-frame change of parallax, in px (and % of width), over the pixels whose
  colour did not change. Both frames are reduced to a quarter of their width and height (``cv2.INTER_AREA``: each
  value is the mean of a 4x4 block, which also averages out sensor noise); a pixel "did not change" when its grey
  level (BT.601 luma of the reduced RGB, 0-255) differs by at most 4 between the two frames. On such pixels the true
  depth is (almost always) unchanged, so any parallax change there is flicker. Pixel-weighted over all pairs of
  consecutive frames of the shot; None when the shot has a single frame or no unchanged pixel (the camera never stops).
- **window violations**: frames whose crossed parallax reaches a frame edge
  (:func:`~stereoconv.parallax.window_violations` ``> 0``), whether or not the floating window masks them, with the
  largest such parallax; and the number of frames where the floating window was on (a band > 0).
- **hole area**: mean share (%) of the pixels of each eye that no source pixel lands on (disocclusions and the strip
  uncovered at the frame edge), filled by the renderer; before the floating window is applied.

Besides the shots, a report carries what happened to the source (:attr:`ShotReport.losses`, :attr:`ShotReport.notes`,
or passed to :meth:`ShotReport.write`): the frames a damaged input lost (:class:`~stereoconv.media.DecodeLosses`:
where, how many, packets rejected, frames kept with decode errors) and what of the source was dropped or re-encoded.

Output: :meth:`ShotReport.to_json` (all figures, plus the per-frame series) and :meth:`ShotReport.to_html` (a shot
table and a plot of the parallax range over time, with cut markers, the budget and lost ranges, and a short section
on the source's losses and notes when there are any; needs matplotlib, the ``report`` extra: ``pip install
'stereoconv[report]'``). Both write atomically: a temporary file beside the target, renamed.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import math
import os
from array import array
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .dibr import warp_disparity
from .encode import atomic_output, check_writable_file
from .errors import UsageError
from .media import DecodeLosses
from .parallax import ParallaxBudget, window_violations

if TYPE_CHECKING:
    from .config import PipelineConfig
    from .media import VideoInfo

PERCENTILES = (1, 5, 50, 95, 99)
REPORT_SUFFIXES = (".json", ".html", ".htm")
FORMAT_VERSION = 1

_REDUCE = 4  # flicker is measured at 1/_REDUCE of the width and height
_UNCHANGED_GREY = 4.0  # grey levels (0-255): at most this change, a pixel "did not change" between frames
_FRAME_SAMPLES = 16384  # parallax values per frame (even grid subsample)
_RESERVOIR = 65536  # parallax values kept per shot (and for the whole video)
_HOLE_ROWS = 90  # when the caller does not pass hole shares, they are measured on about this many evenly spaced rows
_SEED = 0
_INSTALL_HINT = "pip install 'stereoconv[report]'"


# ------------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class ShotStats:
    """The figures of one shot (or, for :attr:`ShotReport.overall`, of the whole video).

    ``first_frame``/``last_frame``: 0-based frame indices (decode order, as the pipeline numbers them), inclusive.
    ``start``: time of the first frame, s; ``end``: time the shot ends, s (the next shot's first frame, or the last
    frame's time plus one frame duration). ``parallax_px``/``parallax_pct``: screen parallax (``-2 d``, > 0 behind the
    screen) in px and % of width, keys ``min``, ``p1``, ``p5``, ``p50``, ``p95``, ``p99``, ``max``. ``flicker_px``/
    ``flicker_pct``: mean absolute frame-to-frame parallax change on unchanged pixels (None: no such pixel).
    ``window_violation_frames``: frames with crossed parallax reaching a frame edge; ``window_violation_max_px``: the
    largest crossed parallax (px, >= 0) reaching one. ``floating_window_frames``: frames with a floating-window band.
    ``holes_pct``: mean % of hole pixels in the (left, right) eye.
    """

    index: int
    first_frame: int
    last_frame: int
    frames: int
    start: float
    end: float
    parallax_px: dict[str, float]
    parallax_pct: dict[str, float]
    flicker_px: float | None
    flicker_pct: float | None
    window_violation_frames: int
    window_violation_max_px: float
    floating_window_frames: int
    holes_pct: tuple[float, float]

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["holes_pct"] = {"left": self.holes_pct[0], "right": self.holes_pct[1]}
        return out


class _Reservoir:
    """A uniform random sample of at most ``capacity`` of all the values added (Vitter's algorithm R, vectorized)."""

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self._values = np.empty(capacity, np.float32)
        self._filled = 0
        self._seen = 0
        self._rng = rng

    def add(self, values: np.ndarray) -> None:
        capacity = self._values.size
        fill = min(values.size, capacity - self._filled)
        self._values[self._filled : self._filled + fill] = values[:fill]
        self._filled += fill
        rest = values[fill:]
        if rest.size:
            # The i-th value seen overall (0-based) replaces a random slot with probability capacity / (i + 1).
            seen = self._seen + fill + np.arange(rest.size, dtype=np.int64)
            slot = self._rng.integers(0, seen + 1)
            keep = slot < capacity
            self._values[slot[keep]] = rest[keep]
        self._seen += values.size

    @property
    def values(self) -> np.ndarray:
        return self._values[: self._filled]


class _Accumulator:
    """Running totals of one shot or of the whole video; per-frame quantities come in already measured."""

    def __init__(self, first_frame: int, start: float, rng: np.random.Generator) -> None:
        self.first_frame, self.last_frame = first_frame, first_frame
        self.start, self.last_time = start, start
        self.frames = 0
        self.samples = _Reservoir(_RESERVOIR, rng)
        self.low, self.high = math.inf, -math.inf
        self.flicker_sum, self.flicker_count = 0.0, 0
        self.violation_frames, self.violation_max = 0, 0.0
        self.window_frames = 0
        self.holes = [0.0, 0.0]

    def add(self, frame: _FrameFigures) -> None:
        self.last_frame, self.last_time = frame.index, frame.time
        self.frames += 1
        self.samples.add(frame.samples)
        self.low, self.high = min(self.low, frame.low), max(self.high, frame.high)
        self.flicker_sum += frame.flicker_sum
        self.flicker_count += frame.flicker_count
        if frame.violation > 0.0:
            self.violation_frames += 1
            self.violation_max = max(self.violation_max, frame.violation)
        self.window_frames += frame.window > 0.0
        self.holes[0] += frame.holes[0]
        self.holes[1] += frame.holes[1]

    def stats(self, index: int, end: float, width: int) -> ShotStats:
        values = self.samples.values
        px = dict(zip((f"p{p}" for p in PERCENTILES), np.percentile(values, PERCENTILES).tolist(), strict=True))
        px = {"min": self.low, **px, "max": self.high}
        pct = {key: 100.0 * value / width for key, value in px.items()}
        flicker = self.flicker_sum / self.flicker_count if self.flicker_count else None
        return ShotStats(
            index=index, first_frame=self.first_frame, last_frame=self.last_frame, frames=self.frames,
            start=self.start, end=end, parallax_px=px, parallax_pct=pct, flicker_px=flicker,
            flicker_pct=None if flicker is None else 100.0 * flicker / width,
            window_violation_frames=self.violation_frames, window_violation_max_px=self.violation_max,
            floating_window_frames=self.window_frames,
            holes_pct=(100.0 * self.holes[0] / self.frames, 100.0 * self.holes[1] / self.frames),
        )  # fmt: skip


@dataclass(frozen=True)
class _FrameFigures:
    index: int
    time: float
    samples: np.ndarray  # parallax, px
    low: float
    high: float
    flicker_sum: float
    flicker_count: int
    violation: float  # px, 0 when none
    window: float  # widest floating-window band, px
    holes: tuple[float, float]  # fractions 0-1


# ------------------------------------------------------------------------------------------------------- losses


# ---------------------------------------------------------------------------------------------------- the report


def hole_fractions(disparity: np.ndarray, rows: int = _HOLE_ROWS) -> tuple[float, float]:
    """Share (0-1) of the pixels of the (left, right) eye that no source pixel lands on, for per-eye ``disparity``
    (float32 HxW, px, larger = nearer), measured with :func:`~stereoconv.dibr.warp_disparity` on about ``rows`` evenly
    spaced rows (the warp is row by row, so those rows are exact; holes follow object edges over many rows, so the
    share on the sample is the frame's within a fraction of a percent). About 3 ms per frame at 1280x720; the renderer
    knows the exact value for free (``warp_disparity(...)`` is its first step), so prefer passing that."""
    step = max(1, disparity.shape[0] // max(1, rows))
    sample = disparity[::step]
    left = float(np.isneginf(warp_disparity(sample, +1)).mean())
    right = float(np.isneginf(warp_disparity(sample, -1)).mean())
    return left, right


class ShotReport:
    """Streaming per-shot report. Feed every frame in decode order with :meth:`add`, then :meth:`write` (or
    :meth:`to_json` / :meth:`to_html`).

    ``width``/``height``: frame size in pixels (the disparity maps' size); ``fps``: average frame rate (for the end of
    the last shot). ``budget``: the parallax budget the video was made for (plotted and recorded; optional).
    ``source``: the input's name, for the titles.

    What happened to the source, recorded as given (set these attributes, or pass them to :meth:`write`):
    ``losses``: the frames a damaged input lost (None: not tracked, e.g. with ``media.strict``, where any loss fails
    the conversion); ``notes``: what of the source was dropped or re-encoded, and why (one line each).
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        budget: ParallaxBudget | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.width, self.height, self.fps = width, height, float(fps)
        self.budget = budget
        self.source = None if source is None else str(source)
        self.losses: DecodeLosses | None = None
        self.notes: list[str] = []
        self.warnings: list[str] = []
        # Shots converted with settings of their own (a shots file): {shot index: dotted settings}.
        self.shot_settings: dict[int, dict[str, Any]] = {}
        self._rng = np.random.default_rng(_SEED)
        self._shots: list[ShotStats] = []
        self._shot: _Accumulator | None = None
        self._all: _Accumulator | None = None
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # reduced grey and parallax of the last frame
        self._small = (max(1, round(width / _REDUCE)), max(1, round(height / _REDUCE)))
        step = max(1, math.ceil(math.sqrt(width * height / _FRAME_SAMPLES)))
        self._step = step
        # Per-frame series, for the plot and the JSON: compact typed arrays, not Python lists of floats.
        self._series: dict[str, array] = {
            "index": array("q"), "time": array("d"), "p1_pct": array("f"), "p50_pct": array("f"),
            "p99_pct": array("f"), "flicker_px": array("f"), "window_violation_px": array("f"),
            "window_px": array("f"), "holes_left_pct": array("f"), "holes_right_pct": array("f"),
        }  # fmt: skip

    @classmethod
    def for_video(cls, info: VideoInfo, config: PipelineConfig) -> ShotReport:
        """A report for converting the video ``info`` describes with ``config`` (its size, frame rate, name and the
        parallax budget of ``config.stereo``)."""
        return cls(info.width, info.height, info.fps, budget=ParallaxBudget.from_config(config.stereo),
                   source=info.path.name)  # fmt: skip

    @property
    def frames(self) -> int:
        return len(self._series["index"])

    def add_frame(self, item: Any) -> None:
        """:meth:`add` for a :class:`~stereoconv.engine.StereoFrame` (``convert(..., on_frame=report.add_frame)``):
        its frame, cut flag, the disparity (at the frame's size, edges not refined) and window of its ``plan``, and
        its ``holes`` if it has them."""
        frame, plan = item.frame, item.plan
        disparity = plan.at(*frame.rgb.shape[:2])
        self.add(frame.index, frame.time, item.is_cut, frame.rgb, disparity, window=plan.window,
                 holes=getattr(item, "holes", None))  # fmt: skip

    def add(
        self,
        index: int,
        time: float,
        is_cut: bool,
        rgb: np.ndarray,
        disparity: np.ndarray,
        *,
        window: tuple[float, float] = (0.0, 0.0),
        holes: tuple[float, float] | None = None,
    ) -> None:
        """Account for one frame, in decode order.

        ``index``: the frame's 0-based index; ``time``: its time in seconds; ``is_cut``: it starts a new shot (the
        first frame always does). ``rgb``: the source frame, uint8 HxWx3. ``disparity``: the per-eye disparity it was
        rendered with, float32 HxW, px, larger = nearer. ``window``: floating-window bands (left edge of the left eye,
        right edge of the right eye), px. ``holes``: share (0-1) of hole pixels in the (left, right) eye before the
        window; None measures it here (:func:`hole_fractions`, a few ms per frame).
        """
        if disparity.shape != (self.height, self.width) or rgb.shape[:2] != disparity.shape:
            raise ValueError(f"frame {rgb.shape} and disparity {disparity.shape} must be {self.height}x{self.width}")
        if holes is None:
            holes = hole_fractions(disparity)
        new_shot = self._shot is None or is_cut
        if new_shot:
            self._close_shot(end=time)
            self._shot = _Accumulator(index, time, self._rng)
            self._previous = None
        if self._all is None:
            self._all = _Accumulator(index, time, self._rng)

        samples = disparity[:: self._step, :: self._step].ravel() * np.float32(-2.0)  # parallax, px
        low, high = -2.0 * float(disparity.max()), -2.0 * float(disparity.min())
        grey = cv2.cvtColor(cv2.resize(rgb, self._small, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        parallax = cv2.resize(disparity, self._small, interpolation=cv2.INTER_AREA) * np.float32(-2.0)
        flicker_sum, flicker_count = 0.0, 0
        if self._previous is not None:
            previous_grey, previous_parallax = self._previous
            unchanged = np.abs(grey.astype(np.int16) - previous_grey.astype(np.int16)) <= _UNCHANGED_GREY
            flicker_count = int(np.count_nonzero(unchanged))
            if flicker_count:
                flicker_sum = float(np.abs(parallax[unchanged] - previous_parallax[unchanged]).sum(dtype=np.float64))
        self._previous = (grey, parallax)

        figures = _FrameFigures(
            index=index, time=float(time), samples=samples, low=low, high=high, flicker_sum=flicker_sum,
            flicker_count=flicker_count, violation=max(window_violations(disparity)), window=max(window),
            holes=(float(holes[0]), float(holes[1])),
        )  # fmt: skip
        self._shot.add(figures)  # type: ignore[union-attr]
        self._all.add(figures)

        p1, p50, p99 = np.percentile(samples, (1, 50, 99)).tolist()
        scale = 100.0 / self.width
        for key, value in (
            ("index", index), ("time", float(time)), ("p1_pct", p1 * scale), ("p50_pct", p50 * scale),
            ("p99_pct", p99 * scale), ("flicker_px", flicker_sum / flicker_count if flicker_count else math.nan),
            ("window_violation_px", figures.violation), ("window_px", figures.window),
            ("holes_left_pct", 100.0 * figures.holes[0]), ("holes_right_pct", 100.0 * figures.holes[1]),
        ):  # fmt: skip
            self._series[key].append(value)

    def _end_time(self) -> float:
        times = self._series["time"]
        return times[-1] + (1.0 / self.fps if self.fps > 0 else 0.0)

    def _close_shot(self, end: float) -> None:
        if self._shot is not None:
            self._shots.append(self._shot.stats(len(self._shots), end, self.width))
            self._shot = None

    @property
    def shots(self) -> list[ShotStats]:
        """Every shot so far, the current one included (as it stands)."""
        current = [] if self._shot is None else [self._shot.stats(len(self._shots), self._end_time(), self.width)]
        return [*self._shots, *current]

    @property
    def overall(self) -> ShotStats | None:
        """The same figures over the whole video (None before the first frame); its ``index`` is -1."""
        return None if self._all is None else self._all.stats(-1, self._end_time(), self.width)

    def series(self) -> dict[str, np.ndarray]:
        """The per-frame series: ``index``, ``time`` (s), ``p1_pct``/``p50_pct``/``p99_pct`` (parallax percentiles,
        % of width), ``flicker_px`` (NaN on a shot's first frame or without unchanged pixels),
        ``window_violation_px``, ``window_px``, ``holes_left_pct``, ``holes_right_pct``."""
        return {key: np.asarray(values) for key, values in self._series.items()}

    # -------------------------------------------------------------------------------------------------- output

    def to_dict(self, *, per_frame: bool = True) -> dict[str, Any]:
        """Everything as JSON-ready data; ``per_frame`` adds the per-frame series (columns of equal length)."""
        overall = self.overall
        out: dict[str, Any] = {
            "stereoconv_report": FORMAT_VERSION,
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self.frames,
            "conventions": "parallax = x_right - x_left, px of the frame and % of its width: > 0 behind the screen, "
            "< 0 in front; times in seconds; frame indices 0-based in decode order",
            # negative/positive: % of width; screen_width, viewing_distance, interocular: m
            "budget": None if self.budget is None else asdict(self.budget),
            "overall": None if overall is None else overall.to_dict(),
            "shots": [shot.to_dict() for shot in self.shots],
            # frames a damaged input lost (null: not tracked) and what of the source was dropped or re-encoded
            "losses": None if self.losses is None else self.losses.to_dict(),
            "notes": list(self.notes),
            # what went wrong around the conversion without stopping it (a depth cache that could not store...)
            "warnings": list(self.warnings),
            # shots converted with settings of their own (--shots): shot index -> the settings that differ
            "shot_settings": {str(k): dict(v) for k, v in sorted(self.shot_settings.items())},
        }
        if per_frame:
            out["per_frame"] = {
                key: [None if isinstance(v, float) and math.isnan(v) else _round(v) for v in values]
                for key, values in self._series.items()
            }
        return _finite(out)

    def to_json(self, path: str | os.PathLike[str], *, per_frame: bool = True) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically); returns the path."""
        text = json.dumps(self.to_dict(per_frame=per_frame), indent=1)
        return _atomic_write(Path(path), text.encode("utf-8"))

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained HTML page (summary, plot as an embedded PNG, shot table) to ``path`` (atomically).

        Raises :class:`~stereoconv.errors.UsageError` when matplotlib (the ``report`` extra) is not installed."""
        require_matplotlib()
        page = _html_page(self, _plot_png(self))
        return _atomic_write(Path(path), page.encode("utf-8"))

    def write(
        self,
        path: str | os.PathLike[str],
        *,
        losses: DecodeLosses | None = None,
        notes: Iterable[str] | None = None,
        warnings: Iterable[str] | None = None,
    ) -> Path:
        """:meth:`to_html` for ``.html``/``.htm``, :meth:`to_json` for ``.json``.

        ``losses``/``notes``/``warnings``: if given, recorded first as :attr:`losses`, :attr:`notes` and
        :attr:`warnings` (what the decoder lost from a damaged input; what of the source was dropped or re-encoded;
        what failed around the conversion without stopping it, e.g. a depth cache that could not store)."""
        if losses is not None:
            self.losses = losses
        if notes is not None:
            self.notes = list(notes)
        if warnings is not None:
            self.warnings = list(warnings)
        path = Path(path)
        if path.suffix.lower() == ".json":
            return self.to_json(path)
        if path.suffix.lower() in (".html", ".htm"):
            return self.to_html(path)
        raise UsageError(f"report {path}: the file name must end in .json or .html")


def require_matplotlib() -> None:
    """Raise :class:`~stereoconv.errors.UsageError` saying how to install matplotlib if it is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(f"an HTML report needs matplotlib: {_INSTALL_HINT} (or write a .json report)")


def check_report_path(path: str | os.PathLike[str]) -> Path:
    """Validate a report path before any work: ``.json`` or ``.html``/``.htm``, in an existing writable directory,
    and matplotlib installed for HTML. Returns it as a Path; raises :class:`~stereoconv.errors.UsageError`."""
    path = check_writable_file(path, "report", REPORT_SUFFIXES)
    if path.suffix.lower() != ".json":
        require_matplotlib()
    return path


# ------------------------------------------------------------------------------------------------------- helpers


def _round(value: float | int) -> float | int:
    return value if isinstance(value, int) else round(value, 6)


def _finite(data: Any) -> Any:
    """JSON has no NaN or infinity: those become None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


def _atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`~stereoconv.encode.atomic_output`: never a partial file."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def _timecode(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{secs:06.3f}"


def _plot_png(report: ShotReport) -> bytes:
    """The plot as PNG bytes: parallax range per frame (1st-99th percentile band, median) in % of width with the
    budget and the screen plane, cut markers and window violations; flicker; hole area."""
    from matplotlib.figure import Figure  # the object API: no pyplot global state, safe in any thread

    series = report.series()
    time = series["time"]
    cuts = [shot.start for shot in report.shots[1:]]
    figure = Figure(figsize=(12, 7.5), dpi=100, layout="constrained")
    axes = figure.subplots(3, 1, sharex=True, height_ratios=(3, 1, 1))
    lost = report.losses.ranges if report.losses is not None else []
    frame = 1.0 / report.fps if report.fps > 0 else 0.0
    for axis in axes:  # where a damaged input lost frames: nothing was rendered there
        for k, (start, end) in enumerate(lost):
            axis.axvspan(start, max(end, start + frame), color="tab:red", alpha=0.15, linewidth=0,
                         label="lost (damaged input)" if k == 0 and axis is axes[0] else None)  # fmt: skip
    ax = axes[0]
    ax.fill_between(time, series["p1_pct"], series["p99_pct"], step="mid", alpha=0.3, color="tab:blue",
                    linewidth=0, label="1st-99th percentile")  # fmt: skip
    ax.plot(time, series["p50_pct"], color="tab:blue", linewidth=1, drawstyle="steps-mid", label="median")
    ax.axhline(0.0, color="black", linewidth=0.8, label="screen plane")
    if report.budget is not None:
        ax.axhline(report.budget.positive, color="tab:red", linestyle="--", linewidth=1, label="budget")
        ax.axhline(-report.budget.negative, color="tab:red", linestyle="--", linewidth=1)
    violating = series["window_violation_px"] > 0
    if violating.any():
        ax.plot(time[violating], series["p1_pct"][violating], "x", color="tab:red", markersize=4,
                label="window violation")  # fmt: skip
    ax.set_ylabel("parallax, % of width\n(< 0: in front of the screen)")
    name = (report.source or "video").replace("$", r"\$")  # matplotlib would read $...$ as mathematics
    ax.set_title(f"{name}: screen parallax per frame, {len(report.shots)} shots")
    ax.legend(loc="upper right", fontsize="small", ncols=3)
    axes[1].plot(time, series["flicker_px"], color="tab:orange", linewidth=1)
    axes[1].set_ylabel("flicker, px")
    axes[2].plot(time, series["holes_left_pct"], linewidth=1, label="left eye")
    axes[2].plot(time, series["holes_right_pct"], linewidth=1, label="right eye")
    axes[2].set_ylabel("holes, %")
    axes[2].legend(loc="upper right", fontsize="small", ncols=2)
    axes[2].set_xlabel("time, s")
    for axis in axes:
        for cut in cuts:
            axis.axvline(cut, color="grey", linestyle=":", linewidth=0.8)
        axis.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:0.9em}th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:right}
th{background:#f0f0f0}td.bad{background:#fdd}img{max-width:100%}caption{text-align:left;padding:0.5em 0}"""


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _source_section(report: ShotReport) -> str:
    """What happened to the source (frames lost to damage, damaged frames kept, streams dropped or re-encoded), as
    a short list under its heading; empty when nothing did."""
    losses = report.losses
    items = []
    if losses is not None and (losses or losses.frames_damaged):
        items += losses.lines()
        items.append(f"in all: {losses.summary()}; {losses.packets_failed} packets could not be decoded")
    items += report.notes
    items += [f"warning: {line}" for line in report.warnings]
    if not items:
        return ""
    listed = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f"<h2 id=source>Source</h2>\n<ul class=source>{listed}</ul>\n"


def _html_page(report: ShotReport, png: bytes) -> str:
    title = f"stereoconv report: {report.source or 'video'}"
    overall = report.overall
    budget = ""
    if report.budget is not None:
        budget = f"budget: {report.budget.negative:g} % in front, {report.budget.positive:g} % behind the screen; "
    summary = (f"{report.width}x{report.height}, {report.fps:.3f} fps, {report.frames} frames, "
               f"{len(report.shots)} shots; {budget}parallax = x<sub>right</sub> - x<sub>left</sub> "
               "(&lt; 0: in front of the screen)")  # fmt: skip
    if overall is not None:
        summary += (f"<br>whole video: parallax {overall.parallax_pct['p1']:.2f} to {overall.parallax_pct['p99']:.2f} "
                    f"% of width (1st-99th percentile), flicker {_number(overall.flicker_px, 3)} px, "
                    f"{overall.window_violation_frames} frames with window violations")  # fmt: skip
    head = ("<tr><th rowspan=2>shot</th><th rowspan=2>frames</th><th rowspan=2>start</th><th rowspan=2>end</th>"
            "<th colspan=5>parallax, % of width</th><th rowspan=2>parallax p1 / p99, px</th>"
            "<th rowspan=2>flicker, px</th><th rowspan=2>window-violation frames (max, px)</th>"
            "<th rowspan=2>floating-window frames</th><th colspan=2>holes, %</th></tr>"
            "<tr>" + "".join(f"<th>p{p}</th>" for p in PERCENTILES) + "<th>left</th><th>right</th></tr>")  # fmt: skip
    rows = []
    for shot in report.shots:
        pct = shot.parallax_pct
        over = report.budget is not None and (pct["p1"] < -report.budget.negative - 1e-6
                                              or pct["p99"] > report.budget.positive + 1e-6)  # fmt: skip
        cells = [
            f"<td>{shot.index}</td>", f"<td>{shot.first_frame}-{shot.last_frame} ({shot.frames})</td>",
            f"<td>{_timecode(shot.start)}</td>", f"<td>{_timecode(shot.end)}</td>",
            *(f"<td{' class=bad' if over and p in (1, 99) else ''}>{pct[f'p{p}']:.2f}</td>" for p in PERCENTILES),
            f"<td>{shot.parallax_px['p1']:.1f} / {shot.parallax_px['p99']:.1f}</td>",
            f"<td>{_number(shot.flicker_px, 3)}</td>",
            f"<td{' class=bad' if shot.window_violation_frames else ''}>{shot.window_violation_frames}"
            f"{f' ({shot.window_violation_max_px:.1f})' if shot.window_violation_frames else ''}</td>",
            f"<td>{shot.floating_window_frames}</td>",
            f"<td>{shot.holes_pct[0]:.2f}</td>", f"<td>{shot.holes_pct[1]:.2f}</td>",
        ]  # fmt: skip
        rows.append("<tr>" + "".join(cells) + "</tr>")
    image = base64.b64encode(png).decode("ascii")
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n<p>{summary}</p>\n"
        + _source_section(report)
        + f'<img alt="parallax, flicker and holes over time" src="data:image/png;base64,{image}">\n'
        f"<table><caption>Shots (frame indices 0-based; times HH:MM:SS.mmm)</caption>\n{head}\n"
        + "\n".join(rows)
        + "\n</table>\n</body></html>\n"
    )
