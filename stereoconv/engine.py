"""The frame engine: the one place the frame stream is built.

decode -> scene cuts (detected, or given: a plan's cut list) -> depth -> temporal smoothing -> stereo plan ->
rendering -> packing, for a range of the input with an optional pre-roll (frames that go through every stateful stage
but are not rendered). Each stage is a generator over the frame stream, so the wiring reads like the pipeline. The
stages overlap: decoding, cuts + depth (on a device, apart), and smoothing + rendering each run in their own thread
(rendering spread over a few worker threads), and the caller consumes the packed frames in its own, joined by bounded
queues so memory does not grow with the video. An exception in any stage stops the others and surfaces in the caller;
every thread is always joined, on Ctrl-C too.

The engine knows nothing of the files a run writes, of chunks, jobs, reports or progress bars: those are the
drivers' (:mod:`~stereoconv.single_pass`, :mod:`~stereoconv.preview`, :mod:`~stereoconv.farm`,
:mod:`~stereoconv.resume`), each a loop over :func:`frame_stream` (or :func:`scan`, for cuts alone).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from .cache import CachedEstimator, cached_estimator
from .config import PipelineConfig, usable_cores
from .depth import DepthEstimator, load_estimator
from .device_plan import DeviceStereoRenderer
from .device_render import finish, own_stream, render_eyes, render_packed, used_here
from .device_temporal import DeviceSmoother
from .dibr import synthesize_view
from .errors import StereoconvError, UsageError
from .media import DecodeLosses, Frame, VideoInfo, decode
from .packing import eye_size, pack
from .parallax import StereoPlan, StereoRenderer, Synthesizer, render_plan
from .scenes import CutDetector, make_detector
from .subtitles import Caption, CaptionTrack, open_captions
from .temporal import Motion, TemporalSmoother, frame_gray, motion_between

T = TypeVar("T")
Depth = np.ndarray | torch.Tensor  # a depth map: on the host, or on the device the pipeline runs on


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


def with_given_cuts(
    frames: Iterable[Frame], cuts: Collection[int], first_index: int = 0
) -> Iterator[tuple[Frame, bool]]:
    """Pair each frame with a cut decision made before (a plan's): frame ``first_index + frame.index`` starts a shot
    when it is in ``cuts``. Holds nothing back."""
    cut_set = set(cuts)
    for frame in frames:
        yield frame, frame.index + first_index in cut_set


def with_depth(
    items: Iterable[tuple[Frame, bool]], estimator: DepthEstimator, on_device: bool = False
) -> Iterator[tuple[Frame, bool, Depth]]:
    """Add the raw depth (relative inverse depth, larger = nearer) to each frame, running the model in batches.
    ``on_device``: the maps stay on the model's device as tensors, where the estimator can (``device_maps``), for a
    pipeline that smooths, plans and renders there. A batch's maps then come out once the device has made them, while
    it works on the next batch (one batch is in flight): the stages after this one run on streams of their own."""
    batch: list[tuple[Frame, bool]] = []
    device_maps = getattr(estimator, "device_maps", None) if on_device else None
    in_flight: deque[tuple[list[tuple[Frame, bool]], list[Depth], torch.cuda.Event | None]] = deque()

    def release() -> Iterator[tuple[Frame, bool, Depth]]:
        done, depths, made = in_flight.popleft()
        if made is not None:
            made.synchronize()
        for (frame, is_cut), depth in zip(done, depths, strict=True):
            yield frame, is_cut, depth

    def run() -> Iterator[tuple[Frame, bool, Depth]]:
        rgbs = [frame.rgb for frame, _ in batch]
        if isinstance(estimator, CachedEstimator):  # a cache looks frames up by their source timestamp
            depths = estimator(rgbs, keys=[frame.pts for frame, _ in batch])
        elif device_maps is not None:
            depths = device_maps(rgbs)
        else:
            depths = estimator(rgbs)
        if len(depths) != len(batch):
            raise StereoconvError(f"depth estimator returned {len(depths)} maps for {len(batch)} frames")
        in_flight.append((list(batch), depths, _made_event(depths)))
        batch.clear()
        if device_maps is None or len(in_flight) > 1:
            yield from release()

    try:
        for item in items:
            batch.append(item)
            if len(batch) >= estimator.batch_size:
                yield from run()
        if batch:
            yield from run()
        while in_flight:
            yield from release()
    finally:
        _closing(items)  # a stage before it in a thread of its own stops with it


def _made_event(depths: list[Depth]) -> torch.cuda.Event | None:
    """An event the maps' CUDA stream reaches once they are made; None for maps off CUDA."""
    first = depths[0] if depths else None
    if not isinstance(first, torch.Tensor) or first.device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(first.device))
    return event


@dataclass(frozen=True)
class StereoFrame:
    """One frame through every stage before encoding.

    ``depth``: normalized, smoothed depth (float32 in [0, 1], larger = nearer) at the working resolution (the
    frame's aspect at about the model's own size; the frame's size at most), on the host. ``plan``: the disparity,
    convergence and floating window the views were rendered from. ``packed``: the frame in the output layout, rendered
    from ``frame.source`` (uint8, or uint16 from a deep source's ``picture``)
    (None for a frame of the pre-roll, which is not rendered).
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


def motion_workers(cores: int | None = None) -> int:
    """Threads computing the smoother's optical flow ahead of it: a quarter of the cores, 1 to 4. The flow needs no
    state, so it leaves the smoothing thread (which must go frame by frame) only the per-pixel work."""
    cores = cores if cores is not None else usable_cores()
    return max(1, min(4, cores // 4))


def _warp(previous: Future[np.ndarray], current: Future[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return motion_between(current.result(), previous.result())


def with_motion(
    items: Iterable[tuple[Frame, bool, Depth]], workers: int, flow: bool = True
) -> Iterator[tuple[Frame, bool, Depth, Motion]]:
    """``items`` (frame, cut, depth) with each frame's :class:`~stereoconv.temporal.Motion`: its grey on the depth's
    grid and, unless it starts a shot (or ``flow`` is off), the warp from the frame before, computed on ``workers``
    threads a few frames ahead of the consumer. The threads are always joined."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="stereoconv-flow")
    # frame, cut, depth, and the futures of the grey before, its grey and the warp between them
    pending: deque[tuple[Frame, bool, Depth, Future | None, Future, Future | None]] = deque()
    previous: Future[np.ndarray] | None = None

    def ready(
        item: tuple[Frame, bool, Depth, Future | None, Future, Future | None],
    ) -> tuple[Frame, bool, Depth, Motion]:
        frame, is_cut, depth, before, gray, warp = item
        if warp is None or before is None:
            return frame, is_cut, depth, Motion(gray.result())
        return frame, is_cut, depth, Motion(gray.result(), before.result(), warp.result())

    try:
        for frame, is_cut, depth in items:
            gray = pool.submit(frame_gray, frame.rgb, tuple(depth.shape))
            # Submitted after both greys it waits for (the pool runs tasks in order): no task waits on one not started
            warp = pool.submit(_warp, previous, gray) if flow and previous is not None and not is_cut else None
            pending.append((frame, is_cut, depth, previous, gray, warp))
            previous = gray
            if len(pending) > 2 * workers:
                yield ready(pending.popleft())
        while pending:
            yield ready(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _closing(items)


def plan_stage(
    items: Iterable[tuple[Frame, bool, Depth]],
    config: PipelineConfig,
    estimator: DepthEstimator | None = None,
    *,
    shots: Mapping[int, PipelineConfig] | None = None,
    first_shot: int = 0,
    captions: CaptionTrack | None = None,
    device: torch.device | None = None,
) -> Iterator[tuple[Frame, bool, Depth, StereoPlan, Caption | None]]:
    """Temporal smoothing and the stereo plan (convergence, disparity, window): the stateful steps, in frame order,
    on the depth's own grid (the working resolution). ``estimator``: the one the depth came from, which says the
    size of its model's maps (how far the refinement at rendering looks).

    ``shots``: settings for some shots (by index, counted from ``first_shot`` for the first frame here, plus one at
    every cut after it), whose ``temporal`` and ``stereo`` sections replace ``config``'s for that shot's frames. Every
    state resets at a cut anyway, so a shot's own smoother and renderer start there afresh; the other shots run
    exactly as without ``shots``. ``captions``: subtitle cues to place on the frames (the last item of each tuple).
    ``device``: smoothing and planning run there as torch ops (:mod:`~stereoconv.device_temporal`,
    :mod:`~stereoconv.device_plan`; the depth and the plan's disparity stay there, host maps are uploaded once),
    for a render stage on that device; None: on the host, compiled."""
    shape = depth_shape(estimator)

    def stages(cfg: PipelineConfig) -> tuple[TemporalSmoother, StereoRenderer]:
        if device is not None:
            return DeviceSmoother(cfg.temporal, device), DeviceStereoRenderer(cfg.stereo, depth_shape=shape)
        return TemporalSmoother(cfg.temporal), StereoRenderer(cfg.stereo, depth_shape=shape)

    default = stages(config)
    smoother, renderer = default
    shot, first = first_shot, True
    flow = config.temporal.motion_compensation or any(c.temporal.motion_compensation for c in (shots or {}).values())

    stream = with_motion(items, motion_workers(), flow)
    try:
        for frame, is_cut, raw_depth, motion in stream:
            if is_cut and not first:
                shot += 1
            if shots and (is_cut or first):
                smoother, renderer = stages(shots[shot]) if shot in shots else default
            first = False
            size = frame.rgb.shape[:2]
            with own_stream(device):  # the plan's own stream on CUDA: its syncs wait for nothing else
                if isinstance(raw_depth, torch.Tensor):
                    used_here(raw_depth)
                depth = smoother(raw_depth, frame.rgb, cut=is_cut, motion=motion)
                plan = renderer.plan(depth, cut=is_cut, frame=size)
                caption = None
                if captions is not None:  # placed over the disparity at the frame's size, brought there per cue
                    caption = captions(frame.time, size, plan.at, renderer.config.max_negative_parallax)
                finish(device)  # the depth and the plan complete before the render stage reads them
            yield frame, is_cut, depth, plan, caption
    finally:
        _closing(stream)
        _closing(items)


def render_stage(
    items: Iterable[tuple[Frame, bool, Depth, StereoPlan, Caption | None]],
    layout: str,
    synthesize: Synthesizer | torch.device = synthesize_view,
    workers: int = 1,
    wanted: Callable[[Frame], bool] | None = None,
    packed_size: bool = False,
) -> Iterator[StereoFrame]:
    """Both eyes and the packed frame for each planned frame (only for frames ``wanted`` accepts, if given; the
    others come through with ``packed=None``). Each eye's disparity is brought from the plan's grid to the size the
    eye is rendered at and its depth edges refined there: the frame's size, or with ``packed_size`` the size it is
    packed at (half layouts: half the width or height; ``output.render_size``). ``synthesize``: renders one eye on
    the CPU, or a torch device where the whole stage runs (:mod:`stereoconv.device_render`: the frame goes up once,
    the packed frame comes down). Rendering needs no state, so ``workers`` threads render different frames at once;
    results come out in frame order, whatever finishes first. The depth comes out on the host, wherever it was."""

    device = synthesize if isinstance(synthesize, torch.device) else None

    def render(item: tuple[Frame, bool, Depth, StereoPlan, Caption | None]) -> StereoFrame:
        with own_stream(device):  # each render thread's own stream on CUDA: its syncs wait for nothing else
            return render_one(*item)

    def render_one(frame: Frame, is_cut: bool, depth: Depth, plan: StereoPlan, caption: Caption | None) -> StereoFrame:
        if isinstance(depth, torch.Tensor):
            depth = used_here(depth).cpu().numpy()
        if wanted is not None and not wanted(frame):
            return StereoFrame(frame, is_cut, depth, plan, None)
        size = None
        frame_size = (frame.rgb.shape[1], frame.rgb.shape[0])
        if packed_size:
            width, height = eye_size(*frame_size, layout)  # type: ignore[arg-type]
            size = (height, width)
        if isinstance(synthesize, torch.device):
            if isinstance(plan.disparity, torch.Tensor):
                used_here(plan.disparity)
            if caption is None:
                packed = render_packed(frame.source, frame.rgb, plan, layout, synthesize, packed_size)  # type: ignore[arg-type]
                return StereoFrame(frame, is_cut, depth, plan, packed)
            left, right = render_eyes(frame.source, frame.rgb, plan, synthesize, size)  # a cue is drawn on the host
        else:
            left, right = render_plan(frame.source, plan, size, frame.rgb, synthesize)
        if caption is not None:  # into each eye before packing, shifted by its disparity
            if size is not None:
                caption = caption.resized(frame.rgb.shape[:2], size)
            caption.draw(left, +1)
            caption.draw(right, -1)
        return StereoFrame(frame, is_cut, depth, plan, pack(left, right, layout, frame_size))  # type: ignore[arg-type]

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


def render_workers(setting: int, on_cpu: bool, cores: int | None = None) -> int:
    """The render threads for ``runtime.render_workers`` (0: sized to the machine): the CPU renderer's compiled passes
    release the GIL, so half the cores (at least 2, at most 8) keep them busy next to decoding, the model and the
    encoder; a GPU renders a frame in one go, and 2 threads keep it fed."""
    if setting > 0:
        return setting
    if not on_cpu:
        return 2
    cores = cores if cores is not None else usable_cores()
    return max(2, min(8, cores // 2))


def choose_synthesizer(config: PipelineConfig, estimator: DepthEstimator) -> Synthesizer | torch.device:
    """The CPU renderer (the compiled :func:`~stereoconv.dibr.synthesize_view`), or the model's device, where the
    render stage then runs whole (``runtime.renderer``: numpy, torch, or auto: the device on CUDA)."""
    choice = config.runtime.renderer
    device = getattr(estimator, "device", None)
    on_cuda = isinstance(device, torch.device) and device.type == "cuda"
    if choice == "numpy" or (choice == "auto" and not on_cuda):
        return synthesize_view
    return device if isinstance(device, torch.device) else torch.device("cpu")


def stereo_frames(
    frames: Iterable[Frame],
    estimator: DepthEstimator,
    config: PipelineConfig,
    *,
    render: Callable[[Frame], bool] | None = None,
    cuts: Collection[int] | None = None,
    first_index: int = 0,
    shots: Mapping[int, PipelineConfig] | None = None,
    first_shot: int = 0,
    captions: CaptionTrack | None = None,
) -> Iterator[StereoFrame]:
    """Scene cuts -> depth -> temporal smoothing -> parallax and DIBR -> packing, for frames in decode order.

    ``render``: if given, only frames it accepts are rendered and packed; the others still go through every stateful
    stage (a pre-roll) and come out with ``packed=None``. ``cuts``: if given, the shots start at these frames
    (counted so that the first frame here is ``first_index``: see :func:`with_given_cuts`) instead of where the
    configured detector finds cuts.

    The stages overlap: cuts and depth run in one thread (in two on a device), smoothing and planning then rendering
    and packing in another (rendering spread over ``runtime.render_workers`` threads), each handing on through a
    queue of at most ``runtime.queue_frames`` frames. Output is the same, frame for frame, however many workers render.
    ``shots``, ``first_shot``: per-shot settings (see :func:`plan_stage`). ``captions``: subtitle cues burned into
    both eyes (:mod:`stereoconv.subtitles`).
    """
    runtime = config.runtime
    synthesize = choose_synthesizer(config, estimator)
    device = synthesize if isinstance(synthesize, torch.device) else None  # all after the model stays there
    if cuts is None:
        decided = with_cuts(frames, make_detector(config.scenes))
        if device is not None:  # a thread of its own, so that the model's thread only feeds the device
            decided = threaded(decided, runtime.queue_frames, name="stereoconv-cuts")
    else:
        decided = with_given_cuts(frames, cuts, first_index)
    depth = threaded(with_depth(decided, estimator, device is not None), runtime.queue_frames, name="stereoconv-depth")
    planned = plan_stage(depth, config, estimator, shots=shots, first_shot=first_shot, captions=captions,
                         device=device)  # fmt: skip
    packed_size = config.output.render_size == "packed"
    workers = render_workers(runtime.render_workers, synthesize is synthesize_view)
    rendered = render_stage(planned, config.output.format, synthesize, workers, render, packed_size)
    return threaded(rendered, runtime.queue_frames, name="stereoconv-render-stage")


# -------------------------------------------------------------------------------------------------- the stream


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


@contextlib.contextmanager
def frame_stream(
    info: VideoInfo,
    config: PipelineConfig,
    estimator: DepthEstimator,
    *,
    start: float,
    end: float | None,
    preroll: int = 0,
    cuts: Collection[int] | None = None,
    first_index: int = 0,
    losses: DecodeLosses | None = None,
    deep: bool = False,
    shots: Mapping[int, PipelineConfig] | None = None,
    first_shot: int = 0,
) -> Iterator[Iterator[StereoFrame]]:
    """The frames of ``info`` whose times fall in ``[start, end)`` seconds through every stage, in decode order, as
    a context manager: leaving it stops and joins every stage thread, then closes the decoder.

    ``preroll``: the first this many frames go through every stateful stage (cuts, depth, smoothing, the plan) but
    are not rendered or packed (``packed=None``): they warm up the state of a range that starts mid-shot.
    ``cuts``, ``first_index``: the cuts given (a plan's), as for :func:`stereo_frames`; None: detected.
    ``losses``: decode tolerantly, recording the frames lost in it (None: strictly, MediaError on any loss).
    ``deep``: frames of a deep source also carry their 16-bit ``picture``, which is what gets rendered.
    ``shots``, ``first_shot``: settings of some shots, by index (see :func:`plan_stage`). Subtitle cues are burned in
    when ``output.subtitles`` says so (:func:`~stereoconv.subtitles.open_captions`).
    Decoding uses ``config.media``'s threads and deinterlacing; the range is the caller's (not ``media.start``).
    """
    media = config.media
    captions = open_captions(info, config)
    frames = threaded(decode(info, start, end, media.decode_threads, losses, deinterlace=media.deinterlace,
                             deep=deep))  # fmt: skip
    render = (lambda frame: frame.index >= preroll) if preroll > 0 else None
    # Closed first (a with-statement exits in reverse): the stage threads stop and are joined before the decoder
    # they read from is closed.
    with (
        contextlib.closing(frames),
        contextlib.closing(
            stereo_frames(
                frames,
                estimator,
                config,
                render=render,
                cuts=cuts,
                first_index=first_index,
                shots=shots,
                first_shot=first_shot,
                captions=captions,
            )
        ) as items,
    ):
        yield items


@contextlib.contextmanager
def scan(
    info: VideoInfo,
    config: PipelineConfig,
    *,
    start: float,
    end: float | None,
    losses: DecodeLosses | None = None,
    on_decoded: Callable[[Frame], None] | None = None,
) -> Iterator[Iterator[tuple[Frame, bool]]]:
    """The first steps of the stream alone: the frames of ``info`` in ``[start, end)`` seconds paired with whether
    each starts a new shot (the configured detector, as :func:`frame_stream` decides), as a context manager that
    closes the decoder. Decoding only, no model: cheap. ``losses``: as for :func:`frame_stream`. ``on_decoded``:
    called with each frame as it is decoded, before the detector's lookahead holds it back."""
    media = config.media
    frames = threaded(decode(info, start, end, media.decode_threads, losses, deinterlace=media.deinterlace))

    def tapped(items: Iterable[Frame]) -> Iterator[Frame]:
        for frame in items:
            on_decoded(frame)  # type: ignore[misc]
            yield frame

    with contextlib.closing(frames):
        yield with_cuts(frames if on_decoded is None else tapped(frames), make_detector(config.scenes))
