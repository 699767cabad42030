"""The conversion pipeline: decode -> scene cuts -> depth -> temporal smoothing -> stereo views -> packing -> encode.

Each stage is a generator over the frame stream, so the wiring below reads like the pipeline. The stages overlap:
decoding, cuts + depth, and smoothing + rendering each run in their own thread (rendering spread over a few worker
threads), and encoding in the caller's, joined by bounded queues so memory does not grow with the video. An exception
in any stage stops the others and surfaces in the caller; every thread is always joined, on Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from .cache import CachedEstimator, cached_estimator
from .config import PipelineConfig
from .depth import DepthEstimator, load_estimator
from .dibr import synthesize_view, torch_synthesizer
from .encode import VideoWriter, atomic_output, check_output_path, renders_deep, video_notes
from .errors import StereoconvError, UsageError
from .media import DecodeLosses, Frame, VideoInfo, decode, probe
from .packing import pack, packed_size
from .parallax import StereoPlan, StereoRenderer, Synthesizer, render_views
from .report import ShotReport, check_report_path
from .scenes import CutDetector, make_detector
from .temporal import TemporalSmoother

T = TypeVar("T")


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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SceneList:
    """Result of scene detection: cut indices, the number of frames scanned and the stream's average frame rate."""

    cuts: list[int]
    frames: int
    fps: float

    def to_dict(self) -> dict[str, object]:
        return {"cuts": self.cuts, "frames": self.frames, "fps": round(self.fps, 6)}


# ----------------------------------------------------------------------------------------------------- stages


def threaded(items: Iterable[T], maxsize: int = 8, name: str = "stereoconv-decode") -> Iterator[T]:
    """Run ``items`` in a background thread behind a bounded queue.

    The producer's exception is re-raised in the consumer; when the consumer stops early (an error downstream,
    Ctrl-C) the producer is told to stop, and the thread is always joined.
    """
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    try:
        # Started inside the try: an exception arriving just after the start (a signal) must still stop and join it.
        thread.start()
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value  # type: ignore[misc]
            elif kind == "error":
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        if thread.ident is not None:  # it did start
            thread.join()


def with_cuts(frames: Iterable[Frame], detector: CutDetector) -> Iterator[tuple[Frame, bool]]:
    """Pair each frame with whether it starts a new shot; holds back ``detector.lookahead`` frames."""
    pending: deque[Frame] = deque()

    def release(decisions: list[tuple[int, bool]]) -> Iterator[tuple[Frame, bool]]:
        for index, is_cut in decisions:
            frame = pending.popleft()
            assert frame.index == index, f"detector decided frame {index}, next frame is {frame.index}"
            yield frame, is_cut

    for frame in frames:
        pending.append(frame)
        yield from release(detector.push(frame.rgb))
    yield from release(detector.flush())


def with_depth(
    items: Iterable[tuple[Frame, bool]], estimator: DepthEstimator
) -> Iterator[tuple[Frame, bool, np.ndarray]]:
    """Add the raw depth (relative inverse depth, larger = nearer) to each frame, running the model in batches."""
    batch: list[tuple[Frame, bool]] = []

    def run() -> Iterator[tuple[Frame, bool, np.ndarray]]:
        rgbs = [frame.rgb for frame, _ in batch]
        if isinstance(estimator, CachedEstimator):  # a cache looks frames up by their source timestamp
            depths = estimator(rgbs, keys=[frame.pts for frame, _ in batch])
        else:
            depths = estimator(rgbs)
        if len(depths) != len(batch):
            raise StereoconvError(f"depth estimator returned {len(depths)} maps for {len(batch)} frames")
        for (frame, is_cut), depth in zip(batch, depths, strict=False):
            yield frame, is_cut, depth
        batch.clear()

    for item in items:
        batch.append(item)
        if len(batch) >= estimator.batch_size:
            yield from run()
    if batch:
        yield from run()


@dataclass(frozen=True)
class StereoFrame:
    """One frame through every stage before encoding.

    ``depth``: normalized, smoothed depth (float32 HxW in [0, 1], larger = nearer). ``plan``: the disparity,
    convergence and floating window the views were rendered from. ``packed``: the frame in the output layout, rendered
    from ``frame.source`` (uint8, or uint16 from a deep source's ``picture``)
    (None for a frame :func:`stereo_frames` was told not to render).
    ``is_cut``: the frame starts a new shot.
    """

    frame: Frame
    is_cut: bool
    depth: np.ndarray
    plan: StereoPlan
    packed: np.ndarray | None


def _closing(items: Iterable[object]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def plan_stage(
    items: Iterable[tuple[Frame, bool, np.ndarray]], config: PipelineConfig, estimator: DepthEstimator | None = None
) -> Iterator[tuple[Frame, bool, np.ndarray, StereoPlan]]:
    """Temporal smoothing and the stereo plan (convergence, disparity, refined edges, window): the stateful steps, in
    frame order. ``estimator``: the one the depth came from, which says how much its maps were upsampled."""
    smoother = TemporalSmoother(config.temporal)
    renderer = StereoRenderer(config.stereo, depth_shape=depth_shape(estimator))
    try:
        for frame, is_cut, raw_depth in items:
            depth = smoother(raw_depth, frame.rgb, cut=is_cut)
            yield frame, is_cut, depth, renderer.plan(depth, cut=is_cut, image=frame.rgb)
    finally:
        _closing(items)


def render_stage(
    items: Iterable[tuple[Frame, bool, np.ndarray, StereoPlan]],
    layout: str,
    synthesize: Synthesizer = synthesize_view,
    workers: int = 1,
    wanted: Callable[[Frame], bool] | None = None,
) -> Iterator[StereoFrame]:
    """Both eyes and the packed frame for each planned frame (only for frames ``wanted`` accepts, if given; the
    others come through with ``packed=None``). Rendering needs no state, so ``workers`` threads render different
    frames at once; results come out in frame order, whatever finishes first."""

    def render(item: tuple[Frame, bool, np.ndarray, StereoPlan]) -> StereoFrame:
        frame, is_cut, depth, plan = item
        if wanted is not None and not wanted(frame):
            return StereoFrame(frame, is_cut, depth, plan, None)
        left, right = render_views(frame.source, plan.disparity, plan.window, synthesize)
        return StereoFrame(frame, is_cut, depth, plan, pack(left, right, layout))

    if workers <= 1:
        try:
            yield from map(render, items)
        finally:
            _closing(items)
        return
    pending: deque[Future[StereoFrame]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="stereoconv-render") as pool:
        try:
            for item in items:
                pending.append(pool.submit(render, item))
                if len(pending) > workers:  # keep the workers busy, hold no more than that many frames
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            _closing(items)


def depth_shape(estimator: DepthEstimator | None) -> Callable[[int, int], tuple[int, int]] | None:
    """The size of the depth map ``estimator``'s model delivers for a frame size, from how it feeds the model (its
    ``prep``: a loaded model's, or a depth cache's read from the model's files); None where that is unknown (an
    estimator given through the API without one)."""
    prep = getattr(estimator, "prep", None)
    return prep.input_shape if prep is not None else None


def choose_synthesizer(config: PipelineConfig, estimator: DepthEstimator) -> Synthesizer:
    """numpy view synthesis, or the torch path on the model's device (``runtime.renderer``; auto: torch on CUDA)."""
    choice = config.runtime.renderer
    device = getattr(estimator, "device", None)
    on_cuda = isinstance(device, torch.device) and device.type == "cuda"
    if choice == "numpy" or (choice == "auto" and not on_cuda):
        return synthesize_view
    return torch_synthesizer(device if isinstance(device, torch.device) else "cpu")


def stereo_frames(
    frames: Iterable[Frame],
    estimator: DepthEstimator,
    config: PipelineConfig,
    *,
    render: Callable[[Frame], bool] | None = None,
) -> Iterator[StereoFrame]:
    """Scene cuts -> depth -> temporal smoothing -> parallax and DIBR -> packing, for frames in decode order.

    ``render``: if given, only frames it accepts are rendered and packed; the others still go through every stateful
    stage (a preview's warm-up) and come out with ``packed=None``.

    The stages overlap: cuts and depth run in one thread, smoothing and planning then rendering and packing in
    another (rendering spread over ``runtime.render_workers`` threads), each handing on through a queue of at most
    ``runtime.queue_frames`` frames. Output is the same, frame for frame, however many workers render.
    """
    runtime = config.runtime
    depth = threaded(with_depth(with_cuts(frames, make_detector(config.scenes)), estimator), runtime.queue_frames,
                     name="stereoconv-depth")  # fmt: skip
    planned = plan_stage(depth, config, estimator)
    synthesize = choose_synthesizer(config, estimator)
    rendered = render_stage(planned, config.output.format, synthesize, runtime.render_workers, render)
    return threaded(rendered, runtime.queue_frames, name="stereoconv-render-stage")


# --------------------------------------------------------------------------------------------------- commands


def expected_frames(info: VideoInfo, start: float, end: float | None) -> int | None:
    """About how many frames ``[start, end)`` seconds of ``info`` hold (None if unknown): a progress bar's total."""
    if info.frames is None or info.duration is None or info.fps <= 0:
        return info.frames
    stop = min(end, info.duration) if end is not None else info.duration
    return max(0, min(info.frames, round((stop - start) * info.fps)))


def progress_bar(total: int | None, enabled: bool, desc: str) -> tqdm:
    """A frame counter on stderr with frames/s and ETA (when ``total`` is known); silent unless ``enabled``."""
    return tqdm(total=total, unit="frame", desc=desc, disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def open_estimator(
    input: str | Path,
    config: PipelineConfig,
    estimator: DepthEstimator | None = None,
    depth_cache: str | Path | None = None,
) -> tuple[DepthEstimator, CachedEstimator | None]:
    """The depth estimator a run uses, and the cache if it is one: the given ``estimator``, else the configured model
    behind ``depth_cache`` (loaded only on a cache miss), else the configured model. The cache must be closed after
    the run (it is a context manager) to store its last frames."""
    if estimator is None and depth_cache is not None:
        cache = cached_estimator(depth_cache, input, config.depth)
        return cache, cache
    if estimator is None:
        return load_estimator(config.depth), None
    if depth_cache is not None:
        raise UsageError("a depth cache needs the configured model: it cannot key the output of a given estimator")
    return estimator, None


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
    work_dir: str | Path | None = None,
    chunk_seconds: float = 60.0,
    backend: Literal["local", "ray"] = "local",
    ray_address: str | None = None,
    keep_work_dir: bool = False,
) -> ConvertResult:
    """Convert ``input`` to a stereo 3D video at ``output``.

    ``output``: a file name, or an existing directory to write ``<input stem>_<layout suffix><ext>`` into (see
    :func:`~stereoconv.encode.output_name`); ``ConvertResult.output`` is the file written. ``config``: all settings
    (default: the built-in defaults). ``estimator``: a depth estimator to use instead of loading
    ``config.depth.model``. ``depth_cache``: a directory keeping the model's raw output per frame, keyed by the
    input and the model: a later run with other settings reads it instead of running (or even loading) the model.
    ``report``: write a per-shot report (parallax percentiles, flicker, window violations, holes; see
    :mod:`stereoconv.report`) here, as JSON or, for a .html name, a page with plots; only if the conversion succeeds.
    ``progress``: show a progress bar on stderr. ``on_frame``: called with each :class:`StereoFrame` once it is
    encoded (reports, progress hooks; an exception raised there aborts). The output file appears only when the
    conversion succeeded; on any failure or interruption nothing is left at the output path.

    ``work_dir``: convert resumably, as a render farm does (:mod:`stereoconv.farm`): plan chunks of about
    ``chunk_seconds`` into ``work_dir``, render those not yet rendered, assemble them into ``output``. Run again
    after a crash or Ctrl-C with the same arguments, it keeps the chunks already rendered; a work directory holding
    another conversion's plan (other input, settings, model or ``chunk_seconds``) or other files is refused. It is
    removed after success unless ``keep_work_dir``. ``backend``: "local" renders the chunks here, one after the
    other, with the model loaded once; "ray" on a Ray cluster (``ray_address``; needs ``stereoconv[ray]``).
    ``report`` and ``on_frame`` need the single pass (no ``work_dir``). The output is the farm's: where a long shot
    is split, the chunk after the split starts from a few seconds of pre-roll rather than the whole shot, so its
    first frames can differ slightly from the single pass's.
    Raises :class:`~stereoconv.errors.StereoconvError` subclasses for user-facing problems.
    """
    config = config or PipelineConfig()
    if work_dir is not None:
        if report is not None or on_frame is not None:
            raise UsageError("a report (--report) needs the single pass: convert without --work-dir")
        from .resume import convert_in_work_dir

        return convert_in_work_dir(input, output, config, work_dir, chunk_seconds=chunk_seconds, backend=backend,
                                   ray_address=ray_address, keep_work_dir=keep_work_dir, estimator=estimator,
                                   depth_cache=depth_cache, progress=progress)  # fmt: skip
    if backend != "local" or ray_address is not None or keep_work_dir:
        raise UsageError("--backend, --ray-address and --keep-work-dir need --work-dir")
    started = time.perf_counter()
    info = probe(input)
    out_path = check_output_path(output, input, config.output.format)
    deep = renders_deep(config.output, info, out_path)  # also checks encoder, pix_fmt and container: before the model
    report_path = check_report_path(report) if report is not None else None  # before any work, like the output
    shots = ShotReport.for_video(info, config) if report_path is not None else None
    estimator, cache = open_estimator(input, config, estimator, depth_cache)

    media = config.media
    cuts: list[int] = []
    count = 0
    losses = None if media.strict else DecodeLosses()
    frames = threaded(decode(info, media.start, media.end, media.decode_threads, losses, deinterlace=media.deinterlace,
                             deep=deep))  # fmt: skip
    size = packed_size(info.width, info.height, config.output.format)
    total = expected_frames(info, media.start, media.end)
    with (
        # Exits last, after every stage thread is joined: writes the cache's last, partial chunk.
        contextlib.nullcontext() if cache is None else cache,
        contextlib.closing(frames),
        atomic_output(out_path) as tmp,
        progress_bar(total, progress, "converting") as bar,
        VideoWriter(tmp, info, size, config.output, start=media.start, end=media.end) as writer,
        # Closed first (a with-statement exits in reverse): the stage threads stop and are joined before the
        # decoder they read from is closed.
        contextlib.closing(stereo_frames(frames, estimator, config)) as items,
    ):
        for item in items:
            if item.is_cut:
                cuts.append(item.frame.index)
            writer.write(item.packed, item.frame.pts)
            count += 1
            bar.update()
            if shots is not None:
                shots.add_frame(item)
            if on_frame is not None:
                on_frame(item)
    summary = cache.stats.summary() if cache is not None else None
    notes = conversion_notes(info, config, out_path) + model_notes(estimator) + writer.notes
    if shots is not None and report_path is not None:
        shots.write(report_path, losses=losses, notes=notes)
    return ConvertResult(out_path, count, cuts, time.perf_counter() - started, summary, losses=losses,
                         notes=notes)  # fmt: skip


def conversion_notes(info: VideoInfo, config: PipelineConfig, output: Path) -> list[str]:
    """What a conversion of ``info`` to ``output`` changes of the source's picture, and why: colour it cannot keep
    (:func:`~stereoconv.encode.video_notes`) and interlacing. The other streams' notes come from the writer."""
    notes = video_notes(config.output, info, output)
    if info.interlaced:
        how = "deinterlaced with bwdif" if config.media.deinterlace else "use --deinterlace for a cleaner result"
        notes.append(f"input is interlaced ({info.field_order}): {how}")
    return notes


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
    detector = make_detector(config.scenes)
    cuts: list[int] = []
    count = 0
    frames = threaded(
        decode(
            info,
            config.media.start,
            config.media.end,
            config.media.decode_threads,
            deinterlace=config.media.deinterlace,
        )
    )
    total = expected_frames(info, config.media.start, config.media.end)
    with contextlib.closing(frames), progress_bar(total, progress, "scanning") as bar:
        for frame, is_cut in with_cuts(frames, detector):
            count += 1
            if is_cut:
                cuts.append(frame.index)
            bar.update()
    return SceneList(cuts=cuts, frames=count, fps=info.fps)
