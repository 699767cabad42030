"""The single pass: ``convert`` writes the engine's frames, in one run over the input, to the output file (with a
per-shot report if asked), and ``detect_scenes`` lists the cuts the engine's detector finds.

This driver adds only its own concern to :mod:`stereoconv.engine`: checking the output (and report) before any work,
the encoder, the progress bar, the report and the result. The resumable ``convert --work-dir`` is chosen above it
(:func:`stereoconv.api.convert`), so the single pass knows nothing of farms.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import PipelineConfig, ShotOverrides, shot_configs
from .depth import DepthEstimator
from .encode import VideoWriter, atomic_output, check_output_path, conversion_notes, renders_deep
from .engine import StereoFrame, frame_stream, open_estimator, scan
from .media import DecodeLosses, probe
from .packing import packed_size
from .progress import JsonProgress, expected_frames, progress_bar
from .report import ShotReport, check_report_path


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion did. ``output``: the file written (named by the layout when OUTPUT was a directory).
    ``cuts``: indices of the first frame of each new shot (0-based, decode order)."""

    output: Path
    frames: int
    cuts: list[int]
    seconds: float
    depth_cache: str | None = None  # what the depth cache did, e.g. "depth cache: 22 of 22 frames read, 0 computed"
    work: str | None = None  # with a work directory: what it held and what became of it, e.g. "resumed: 3 of 5 ..."
    losses: DecodeLosses | None = None  # frames lost to a damaged input (None with media.strict)
    notes: list[str] = field(default_factory=list)  # what of the source was dropped or re-encoded, and why
    # what the user must hear even with --quiet: a depth cache that could not store (or read) frames, and so on
    warnings: list[str] = field(default_factory=list)
    shot_settings: dict[int, dict[str, Any]] = field(default_factory=dict)  # shots with settings of their own

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SceneList:
    """Result of scene detection: cut indices, the number of frames scanned and the stream's average frame rate."""

    cuts: list[int]
    frames: int
    fps: float
    cut_times: list[float] = field(default_factory=list)  # time (s, in the input) of each cut's frame
    start_time: float = 0.0  # time of the first frame scanned
    end_time: float | None = None  # time just after the last frame scanned

    def bounds(self) -> list[tuple[float, float | None]]:
        """Each shot's ``(start, end)`` in seconds of the input, in order (the last one's end: the scan's)."""
        starts = [self.start_time, *self.cut_times]
        return list(zip(starts, [*self.cut_times, self.end_time], strict=True))

    def to_dict(self) -> dict[str, object]:
        """The cuts, and the shots between them as a shots file's entries (``--shots``, see
        :func:`~stereoconv.config.parse_shots`): this output is a shots file that changes nothing yet."""
        firsts = [0, *self.cuts]
        shots = [{"index": k, "first_frame": first, "frames": last - first,
                  "start": round(begin, 6), **({} if end is None else {"end": round(end, 6)})}
                 for k, (first, last, (begin, end)) in enumerate(zip(firsts, [*self.cuts, self.frames],
                                                                     self.bounds(), strict=True))]  # fmt: skip
        return {"cuts": self.cuts, "frames": self.frames, "fps": round(self.fps, 6), "shots": shots}


def convert(
    input: str | Path,
    output: str | Path,
    config: PipelineConfig | None = None,
    *,
    estimator: DepthEstimator | None = None,
    depth_cache: str | Path | None = None,
    report: str | Path | None = None,
    progress: bool = False,
    on_frame: Callable[[StereoFrame], None] | None = None,
    shots: ShotOverrides | None = None,
    json_progress: JsonProgress | None = None,
) -> ConvertResult:
    """Convert ``input`` to a stereo 3D video at ``output`` in a single pass: see :func:`stereoconv.api.convert`,
    which takes the same arguments (and, for a resumable run, a work directory)."""
    config = config or PipelineConfig()
    started = time.perf_counter()
    info = probe(input)
    out_path = check_output_path(output, input, config.output.format)
    deep = renders_deep(config.output, info, out_path)  # also checks encoder, pix_fmt and container: before the model
    report_path = check_report_path(report) if report is not None else None  # before any work, like the output
    shots_report = ShotReport.for_video(info, config) if report_path is not None else None
    given_cuts, resolved = resolve_shots(input, config, shots)  # a time entry needs the cuts first: a quick scan
    if shots_report is not None:
        shots_report.shot_settings = resolved
    estimator, cache = open_estimator(input, config, estimator, depth_cache)

    media = config.media
    cuts: list[int] = []
    count = 0
    losses = None if media.strict else DecodeLosses()
    size = packed_size(info.width, info.height, config.output.format)
    total = expected_frames(info, media.start, media.end)
    if json_progress is not None:
        json_progress.start(total, input=str(input), output=str(out_path))
    with (
        # Exits last, after every stage thread is joined: writes the cache's last, partial chunk.
        contextlib.nullcontext() if cache is None else cache,
        atomic_output(out_path) as tmp,
        progress_bar(total, progress, "converting") as bar,
        VideoWriter(tmp, info, size, config.output, start=media.start, end=media.end) as writer,
        # Closed first (a with-statement exits in reverse): the engine's threads stop before the writer finishes.
        frame_stream(
            info,
            config,
            estimator,
            start=media.start,
            end=media.end,
            losses=losses,
            deep=deep,
            cuts=given_cuts,
            shots=shot_configs(config, resolved),
        ) as items,
    ):
        for item in items:
            if item.is_cut:
                cuts.append(item.frame.index)
            writer.write(item.packed, item.frame.pts)
            count += 1
            bar.update()
            if json_progress is not None:
                json_progress.frame()
            if shots_report is not None:
                shots_report.add_frame(item)
            if on_frame is not None:
                on_frame(item)
    summary = cache.stats.summary() if cache is not None else None
    warnings = cache.stats.warnings() if cache is not None else []
    notes = conversion_notes(info, config, out_path) + model_notes(estimator) + writer.notes
    if shots_report is not None and report_path is not None:
        shots_report.write(report_path, losses=losses, notes=notes, warnings=warnings)
    if json_progress is not None:
        json_progress.finish(output=str(out_path), frames=count, cuts=len(cuts))
    return ConvertResult(out_path, count, cuts, time.perf_counter() - started, summary, losses=losses,
                         notes=notes, warnings=warnings, shot_settings=resolved)  # fmt: skip


def resolve_shots(
    input: str | Path, config: PipelineConfig, shots: ShotOverrides | None
) -> tuple[list[int] | None, dict[int, dict[str, Any]]]:
    """The settings of each shot a shots file changes, ``{shot index: dotted settings}``, and the cuts when they had
    to be found first (an entry selecting shots by time needs every shot's times: one scan, decoding only, with the
    detector the conversion would use; the conversion then takes those cuts instead of detecting them again)."""
    if shots is None:
        return None, {}
    if not shots.needs_times:
        return None, shots.resolve()
    scenes = detect_scenes(input, config)
    return scenes.cuts, shots.resolve(bounds=scenes.bounds())


def model_notes(estimator: DepthEstimator) -> list[str]:
    """What was assumed about the depth model in loading it (:attr:`TransformersDepthEstimator.notes
    <stereoconv.depth.TransformersDepthEstimator>`): a family stereoconv does not know, an input size it ignores.
    None for a model a depth cache never had to load."""
    model = getattr(estimator, "model", None) if not hasattr(estimator, "notes") else estimator
    return list(getattr(model, "notes", None) or [])


def detect_scenes(input: str | Path, config: PipelineConfig | None = None, *, progress: bool = False) -> SceneList:
    """Scan ``input`` for scene cuts with the same detector ``convert`` uses."""
    config = config or PipelineConfig()
    info = probe(input)
    media = config.media
    cuts: list[int] = []
    cut_times: list[float] = []
    first: float | None = None
    last = media.start
    count = 0
    total = expected_frames(info, media.start, media.end)
    with (
        scan(info, config, start=media.start, end=media.end) as decided,
        progress_bar(total, progress, "scanning") as bar,
    ):
        for frame, is_cut in decided:
            count += 1
            first = frame.time if first is None else first
            last = frame.time
            if is_cut:
                cuts.append(frame.index)
                cut_times.append(frame.time)
            bar.update()
    end = last + 1.0 / info.fps if info.fps > 0 else None
    return SceneList(cuts=cuts, frames=count, fps=info.fps, cut_times=cut_times,
                     start_time=first if first is not None else media.start, end_time=end)  # fmt: skip
