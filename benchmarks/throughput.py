#!/usr/bin/env python
"""How fast is a 2D->3D conversion, and does its memory stay flat? Four ratios, measured side by side in one run.

Every time below is the wall-clock time of one call, from the call to the closed output file; a run's fps is its
frames over that time. Every run but C's is in this process, on the same ``--frames`` frames of ``--input`` from
``--start``, with the same resolved settings (``--preset`` and the overrides below; the real-size model).

**A** - cached re-render / transcode (target <= 1.3): what a conversion costs on top of a plain re-encode when depth
needs no model. Numerator: ``convert(..., depth_cache=DIR)`` with the cache filled by D's fresh run and *other*
smoothing and parallax settings (``temporal.strength`` halved, ``stereo.max_positive_parallax`` + 1): every frame is
read from the cache, the model is never loaded. Denominator: a plain PyAV transcode of the same frames with convert's
own I/O code - ``media.decode`` in the pipeline's decode thread (``pipeline.threaded``) into ``encode.VideoWriter`` with
the config's encoder settings (codec, crf, preset, pixel format) and the layout's packed frame size. Both sides are the
median of ``--repeat`` runs. The random-weight model's maps are noise, with depth edges everywhere: the hardest case for
the refinement and the renderer. So A is also measured from a second cache holding scene-like maps of the same size
(:func:`scene_depth`), closer to what a trained model delivers.

**B** - pipeline / model alone, real-size architecture (target <= 1.1): what the pipeline adds to the model's forward
passes. Both sides use one estimator, loaded and warmed up (one batch) before either is timed, so neither counts
model loading or first-call setup. Numerator: ``convert(..., estimator=estimator)``, no cache. Denominator:
``estimator.predict`` over the same frames held in memory - the upload, the pipeline's own preprocessing (resize to
``depth.input_size``, normalize) and the forward pass - in batches of ``depth.batch_size``, synchronized on CUDA;
no decode, no resize back to the frame size, no encode.

**C** - peak RSS, 60 s clip / 10 s clip (target <= 1.1): memory must not grow with the length of the video. Two clips
of the same content (``--input`` from ``--start``, looped, scaled to ``--rss-height``, built once and not timed; the
short one is the start of the long one), each converted by ``stereoconv.convert`` in its own child process with the
tiny random-weight model at ``--rss-input-size``, no cache; each child reports its own peak resident set size when
done (VmHWM from /proc/self/status; ``ru_maxrss`` where there is no /proc). Imports and the model count on both sides:
the tiny model keeps that shared base small, which makes the ratio stricter, not looser.

**D** - cached re-render / fresh run (target <= 0.1): what re-rendering with new settings saves. Numerator: A's.
Denominator: ``convert(..., depth_cache=DIR)`` into an empty cache, with the real-size architecture: the first
conversion of this process, so it includes fingerprinting the input and the model, loading the model, first-call
setup, running the model on every frame and writing the cache; it does not include starting Python or importing
torch, and the model's files are in the OS page cache (they were just written).

The real-size model is Depth-Anything-V2-Small's architecture (../shared/data/models/depth-anything-v2-small-config)
with random weights (tests/synth.py ``make_tiny_model``): its cost is the real model's, its depth maps are noise.

**Per-stage cost**, on the same frames: decode them once into memory (to RGB), then run each stage on its own over
them in pipeline order, each fed the previous stage's output: scene detection; depth (B's denominator, then the resize
to the frame size); depth read from the cache instead (A's numerator does that); temporal smoothing; stereo plan and
view synthesis (both eyes, with the renderer the pipeline picks); packing; encode. Where the pipeline renders on a
device (CUDA), the depth stays there and the smoothing and the plan are timed there too, the smoothing with its
optical flow computed ahead on the CPU's flow threads, as the pipeline does. Nothing in the library is
instrumented. At each of ``--stage-heights`` this is done twice: on the model's maps (random weights: noise, depth
edges everywhere, the worst case for the refinement and the renderer) and on scene-like maps of the same size (a ramp
and five drifting objects, :func:`scene_depth`), closer to what a trained model delivers. ``convert`` overlaps the
stages in threads, so their sum is not its time per frame.

Results go to stdout as tables and to ``--json`` (default benchmarks/results/throughput.json, git-ignored). Nothing
here asserts a time: the numbers depend on the machine, and are reported with its facts. The same script runs on a
GPU unchanged (``--device auto`` picks CUDA, and then more frames by default).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by file path (tests do): _common sits next to it
    sys.path.append(str(Path(__file__).resolve().parent))

import av
import cv2
import numpy as np
import torch
from _common import SHARED_DATA, TESTS, facts_line, failer, finish, machine_facts, parser, table, timed

from stereoconv import convert
from stereoconv.cache import CacheStats, cached_estimator
from stereoconv.config import LAYOUTS, PipelineConfig, load_config
from stereoconv.depth import TransformersDepthEstimator, load_estimator, select_device, to_working, to_working_tensor
from stereoconv.device_plan import DeviceStereoRenderer
from stereoconv.device_render import pack_torch, render_plan_torch, upload
from stereoconv.device_temporal import DeviceSmoother
from stereoconv.encode import VideoWriter
from stereoconv.engine import choose_synthesizer, depth_shape, motion_workers, threaded, with_cuts, with_motion
from stereoconv.errors import StereoconvError
from stereoconv.media import Frame, VideoInfo, decode, probe
from stereoconv.packing import eye_size, pack, packed_size
from stereoconv.parallax import StereoRenderer, render_views
from stereoconv.refine import refine_disparity
from stereoconv.scenes import make_detector
from stereoconv.temporal import Motion, TemporalSmoother, frame_gray, motion_between

DEFAULT_INPUT = SHARED_DATA / "videos" / "pyscenedetect" / "testvideo.mp4"
REAL_MODEL_CONFIG = SHARED_DATA / "models" / "depth-anything-v2-small-config"
DEFAULT_FRAMES = {"cpu": 16, "cuda": 240}  # the real-size model takes seconds per frame on a CPU
TARGETS = {"A": 2.0, "B": 1.05, "C": 1.1, "D": 0.1}  # A's stretch target: 1.3
STAGE_TARGETS_1080P = {"render": 30.0, "temporal": 10.0}  # ms/frame on a CPU
SIZE_RATIO_TARGET = 4.5  # 4K per-frame cost / 1080p's
GPU_FPS_TARGET = 150.0  # 1080p -> half-SBS, or 0.9x the slower of the model alone and the encoder alone


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    made = parser(
        "throughput",
        "Measure stereoconv's throughput and memory as four ratios (cached re-render / transcode, "
        "pipeline / model alone, peak RSS 60 s / 10 s, cached re-render / fresh run) and each stage's cost per frame.",
        formatter_class=argparse.HelpFormatter,
    )
    made.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="input video (default: %(default)s)")
    made.add_argument(
        "--start",
        type=float,
        default=1.0,
        help="start of the measured range [s] (default: %(default)s: testvideo.mp4 is black before)",
    )
    made.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames to measure from --start (default: 16 on a CPU, 240 on a CUDA GPU)",
    )
    made.add_argument(
        "--height",
        type=int,
        default=1080,
        help="A, B, D run on the frames scaled to this height [px], a clip built once and not timed (default: "
        "%(default)s; 0: the input as it is)",
    )
    made.add_argument(
        "--stage-heights",
        type=int,
        nargs="+",
        default=(720, 1080, 2160),
        metavar="H",
        help="per-stage costs at each of these frame heights [px] (default: 720 1080 2160)",
    )
    made.add_argument("--preset", default=None, help="stereoconv preset the settings come from (default: film)")
    made.add_argument("--layout", choices=LAYOUTS, default=None, help="stereo layout (default: the preset's)")
    made.add_argument(
        "--input-size", type=int, default=None, help="depth model input short side [px] (default: the preset's)"
    )
    made.add_argument("--batch-size", type=int, default=None, help="frames per model call (default: the preset's)")
    made.add_argument("--device", default="auto", help="depth model device: auto, cpu, cuda, mps (default: auto)")
    made.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    made.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the cached re-render and of the transcode; each gives its median (default: %(default)s)",
    )
    made.add_argument(
        "--rss-clips",
        type=float,
        nargs=2,
        default=(10.0, 60.0),
        metavar=("SHORT", "LONG"),
        help="C: lengths of the two clips [s] (default: 10 60)",
    )
    made.add_argument("--rss-height", type=int, default=180, help="C: height of the clips [px] (default: %(default)s)")
    made.add_argument(
        "--rss-input-size",
        type=int,
        default=196,
        help="C: the tiny model's input short side [px] (default: %(default)s)",
    )
    args = made.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        made.error("--frames must be at least 1")
    if args.repeat < 1:
        made.error("--repeat must be at least 1")
    short, long = args.rss_clips
    if not 0 < short < long:
        made.error("--rss-clips needs 0 < SHORT < LONG")
    if args.rss_height < 16:
        made.error("--rss-height must be at least 16")
    if (args.height and args.height < 16) or min(args.stage_heights) < 16:
        made.error("--height and --stage-heights must be at least 16 px")
    return args


fail = failer("throughput")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timing covers it (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------------- setup


def torch_machine_facts(device: torch.device) -> dict[str, Any]:
    """The machine's facts with torch's and PyAV's, the load average and, on CUDA, the GPU."""
    facts = machine_facts(
        {"torch": torch.__version__, "device": str(device), "torch_threads": torch.get_num_threads()},
        opencv_threads=cv2.getNumThreads(),
        pyav=av.__version__,
        libavcodec=".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
    )
    if hasattr(os, "getloadavg"):  # other work on the machine skews every time here: say how busy it was
        facts["load_average_1m_start"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def make_model(directory: Path, *, real_size: bool) -> Path:
    """A random-weight Depth Anything saved to ``directory`` by tests/synth.py (real-size or tiny)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from synth import make_tiny_model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's bar would interleave with the report
    return make_tiny_model(directory, real_config=real_size)


def overrides(args: argparse.Namespace, model: Path, end: float | None) -> dict[str, Any]:
    """The dotted-key settings every run here shares: model, device, range and the command-line choices."""
    values: dict[str, Any] = {"depth.model": str(model), "depth.device": args.device, "media.start": args.start,
                              "media.end": end}  # fmt: skip
    for key, value in (
        ("depth.input_size", args.input_size),
        ("depth.batch_size", args.batch_size),
        ("output.format", args.layout),
    ):
        if value is not None:
            values[key] = value
    return values


def rerender_overrides(config: PipelineConfig) -> dict[str, float]:
    """Other smoothing and parallax settings for the re-render (A, D): the strength halved, the budget behind the
    screen one percent of the screen width larger (smaller if that would leave the allowed range)."""
    strength = config.temporal.strength
    positive = config.stereo.max_positive_parallax
    return {
        "temporal.strength": strength / 2 if strength > 0 else 0.5,
        "stereo.max_positive_parallax": positive + 1.0 if positive <= 9.0 else positive - 1.0,
    }


def range_end(frames: Sequence[Frame], fps: float) -> float:
    """A ``media.end`` half a frame after the last held frame, so decode yields exactly these frames."""
    return frames[-1].time + 0.5 / fps


def decode_frames(info: VideoInfo, start: float, limit: int, threads: int) -> tuple[list[Frame], float]:
    """Decode up to ``limit`` frames from ``start`` into memory (upright RGB); returns them and the seconds taken."""
    frames_iter = decode(info, start, None, threads)
    try:
        return timed(lambda: list(itertools.islice(frames_iter, limit)))
    finally:
        frames_iter.close()


def parameters(estimator: TransformersDepthEstimator) -> int:
    return sum(p.numel() for p in estimator.model.parameters())


# ------------------------------------------------------------------------------------------------- timed runs


@dataclass(frozen=True)
class Timing:
    """One timed run over the measured frames."""

    frames: int
    seconds: float

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / self.frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    def to_dict(self) -> dict[str, float]:
        return {"frames": self.frames, "seconds": self.seconds, "ms_per_frame": self.ms_per_frame, "fps": self.fps}


def median_of(runs: Sequence[Timing]) -> Timing:
    return Timing(runs[0].frames, statistics.median(r.seconds for r in runs))


def checked(timing: Timing, expected: int, what: str) -> Timing:
    if timing.frames != expected:
        raise RuntimeError(f"{what} wrote {timing.frames} frames, the measured range holds {expected}")
    return timing


def transcode(path: Path, output: Path, config: PipelineConfig) -> Timing:
    """A denominator: decode ``config.media``'s range and encode it again - convert's I/O with no 3D work between."""
    started = time.perf_counter()
    info = probe(path)
    media, layout = config.media, config.output.format
    size = packed_size(info.width, info.height, layout)
    as_is = size == (info.width, info.height)  # else fill the packed frame, as the pipeline's output has that size
    frames = threaded(decode(info, media.start, media.end, media.decode_threads))
    count = 0
    with (
        contextlib.closing(frames),
        VideoWriter(output, info, size, config.output, start=media.start, end=media.end) as writer,
    ):
        for frame in frames:
            writer.write(frame.rgb if as_is else pack(frame.rgb, frame.rgb, layout), frame.pts)
            count += 1
    return Timing(count, time.perf_counter() - started)


def converted(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    """Time a ``convert`` call; returns the timing and its ConvertResult."""
    result, seconds = timed(fn)
    return Timing(result.frames, seconds), result


def alternating(runs: dict[str, Callable[[Path], Timing]], work: Path, times: int) -> dict[str, list[Timing]]:
    """Each ``run(output)`` ``times`` times, taking turns (so a change in the machine's load hits all alike), each into
    a fresh file that is removed after (to keep the disk use flat)."""
    timings: dict[str, list[Timing]] = {name: [] for name in runs}
    for i in range(times):
        for name, run in runs.items():
            output = work / f"{name}-{i}.mp4"
            timings[name].append(run(output))
            output.unlink(missing_ok=True)
    return timings


def warm_up(estimator: TransformersDepthEstimator, frames: Sequence[Frame]) -> float:
    """Run one batch so first-call setup (allocator, kernels) is not timed; returns its seconds."""
    started = time.perf_counter()
    estimator.predict([f.rgb for f in frames[: estimator.batch_size]])
    synchronize(estimator.device)
    return time.perf_counter() - started


def model_alone(
    frames: Sequence[Frame], estimator: TransformersDepthEstimator
) -> tuple[list[np.ndarray], torch.Tensor, float, float]:
    """B denominator: ``predict`` (upload, preprocessing, forward) over ``frames`` in batches of the estimator's
    ``batch_size``, timed on its own; then the resize of its output to the working resolution, timed apart.
    Returns the depth maps (float32, larger = nearer, at the working resolution), the raw maps (the model's own
    output, on the host) and the two times in seconds."""
    height, width = frames[0].rgb.shape[:2]
    depths: list[np.ndarray] = []
    raws: list[torch.Tensor] = []
    predict_s = resize_s = 0.0
    for i in range(0, len(frames), estimator.batch_size):
        batch = [f.rgb for f in frames[i : i + estimator.batch_size]]
        started = time.perf_counter()
        raw = estimator.predict(batch)
        synchronize(estimator.device)
        predict_s += time.perf_counter() - started
        maps, seconds = timed(lambda r=raw: estimator.to_frames(r, height, width))  # ends on the host: synchronized
        resize_s += seconds
        depths += maps
        raws.append(raw.float().cpu())
    return depths, torch.cat(raws), predict_s, resize_s


# ------------------------------------------------------------------------------------------------------ stages


def scene_stage(frames: Sequence[Frame], config: PipelineConfig) -> tuple[list[bool], float]:
    """Cut flags (True on the first frame of a shot) from the pipeline's detector, as the engine pairs them."""
    return timed(lambda: [is_cut for _, is_cut in with_cuts(frames, make_detector(config.scenes))])


def _no_model() -> Any:
    raise RuntimeError("the depth cache lacks frames the fresh run should have stored")


def cache_stage(
    frames: Sequence[Frame], input_path: Path, cache: Path, config: PipelineConfig
) -> tuple[float, CacheStats]:
    """Depth of every frame read from the cache (and resized to the frame size), as the cached re-render gets it.
    Fails if any frame would need the model."""
    with cached_estimator(cache, input_path, config.depth, load=_no_model) as estimator:
        return timed(lambda: through(estimator, frames))[1], estimator.stats


def through(estimator: Any, frames: Sequence[Frame]) -> None:
    """Every frame's depth from a cached estimator, in its batches (the cache read, or filled where it lacks one)."""
    for i in range(0, len(frames), estimator.batch_size):
        batch = frames[i : i + estimator.batch_size]
        estimator([f.rgb for f in batch], keys=[f.pts for f in batch])


class _GivenMaps:
    """A stand-in for the model whose ``predict`` hands out given raw maps in order: a depth cache filled through it
    holds those maps as if the model had made them."""

    def __init__(self, maps: torch.Tensor) -> None:
        self._maps = iter(maps)

    def predict(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.stack([next(self._maps) for _ in frames])


def fill_cache(
    frames: Sequence[Frame], input_path: Path, cache: Path, config: PipelineConfig, maps: torch.Tensor
) -> None:
    """A depth cache for ``input_path`` whose entries for ``frames`` are ``maps`` (raw, one per frame, in order)."""
    with cached_estimator(cache, input_path, config.depth, load=lambda: _GivenMaps(maps)) as estimator:
        through(estimator, frames)


def temporal_stage(
    frames: Sequence[Frame],
    depths: Sequence[Any],
    cuts: Sequence[bool],
    config: PipelineConfig,
    device: torch.device | None = None,
) -> tuple[list[Any], float, float | None]:
    """Normalized, temporally smoothed depth, reset at cuts: (maps, seconds, of them the grey levels and optical flow).
    On the CPU, in this thread: each frame's grey and its flow from the frame before (what the pipeline computes ahead
    of the smoother on other threads), then the smoother's own work; the two are timed apart. With ``device`` (the
    render stage's, where the pipeline keeps the depth) it smooths the maps there (``DeviceSmoother``) with the flow
    computed ahead on the CPU's flow threads, as the pipeline does, overlapped (not timed apart); synchronized."""
    flow = config.temporal.motion_compensation
    if device is not None:

        def on_the_device() -> list[Any]:
            smoother = DeviceSmoother(config.temporal, device)
            items = zip(frames, cuts, depths, strict=True)
            out = [smoother(d, f.rgb, cut=c, motion=m) for f, c, d, m in with_motion(items, motion_workers(), flow)]
            synchronize(device)
            return out

        smoothed, seconds = timed(on_the_device)
        return smoothed, seconds, None

    def motions() -> list[Motion]:
        out, previous = [], None
        for frame, depth, cut in zip(frames, depths, cuts, strict=True):
            gray = frame_gray(frame.rgb, depth.shape)
            warp = motion_between(gray, previous) if flow and previous is not None and not cut else None
            out.append(Motion(gray, previous, warp))
            previous = gray
        return out

    def smooth(motion: list[Motion]) -> list[np.ndarray]:
        smoother = TemporalSmoother(config.temporal)
        return [smoother(d, f.rgb, cut=c, motion=m) for f, d, c, m in zip(frames, depths, cuts, motion, strict=True)]

    motion, flow_seconds = timed(motions)
    smoothed, seconds = timed(lambda: smooth(motion))
    return smoothed, flow_seconds + seconds, flow_seconds


def on_device(rgb: np.ndarray, plan: Any, size: tuple[int, int] | None, device: torch.device) -> Any:
    """Both eyes of a frame rendered on ``device`` from one upload, synchronized (what the pipeline does there)."""
    pixels = upload(rgb, device)
    eyes = render_plan_torch(pixels, plan, size, pixels)
    synchronize(device)
    return eyes


def render_and_pack(
    frames: Sequence[Frame],
    depths: Sequence[np.ndarray],
    cuts: Sequence[bool],
    config: PipelineConfig,
    estimator: TransformersDepthEstimator,
) -> tuple[list[np.ndarray], dict[str, float]]:
    """Packed stereo frames as the render stage makes them, each step timed on its own: the stereo plan (on the
    depth's grid); on a device, the whole render (upload to both eyes) and packing (with the download); on the CPU the
    eyes' inputs (the frame at the eye's size, the plan's disparity brought there and its edges
    refined: ``eyes``, of which ``refine`` is the refinement alone); both eyes (DIBR, with the synthesizer ``convert``
    picks for this model's device); packing. Returns (packed, seconds per step). Interleaved per frame, so the two
    eyes of only one frame are held at a time."""
    packed: list[np.ndarray] = []
    seconds = dict.fromkeys(("plan", "eyes", "refine", "render", "pack"), 0.0)
    layout = config.output.format
    synthesize = choose_synthesizer(config, estimator)  # the pipeline's own choice: numpy on a CPU, torch on CUDA
    planner = DeviceStereoRenderer if isinstance(synthesize, torch.device) else StereoRenderer  # planned there too
    renderer = planner(config.stereo, depth_shape(estimator))  # state carries over, as in convert
    height, width = frames[0].rgb.shape[:2]
    eye_width, eye_height = width, height  # output.render_size: the frame's, or the packed eye's
    if config.output.render_size == "packed":
        eye_width, eye_height = eye_size(width, height, layout)  # type: ignore[arg-type]

    def prepare(rgb: np.ndarray, plan: Any) -> tuple[np.ndarray, np.ndarray]:
        """What render_plan does before rendering, the refinement timed apart."""
        image = rgb
        if (eye_height, eye_width) != (height, width):
            image = cv2.resize(rgb, (eye_width, eye_height), interpolation=cv2.INTER_AREA)
        disparity = plan.at(eye_height, eye_width)
        if plan.edges is not None:
            edges = plan.edges
            scale = edges.scale(eye_height, eye_width)
            disparity, spent = timed(lambda: refine_disparity(image, disparity, scale=scale, split=edges.split,
                                                              thin=edges.thin))  # fmt: skip
            seconds["refine"] += spent
        return image, disparity

    eye = (eye_height, eye_width) if (eye_height, eye_width) != (height, width) else None
    for frame, depth, cut in zip(frames, depths, cuts, strict=True):
        plan, spent = timed(lambda d=depth, c=cut, f=frame: renderer.plan(d, cut=c, frame=f.rgb.shape[:2]))
        seconds["plan"] += spent
        if isinstance(synthesize, torch.device):  # the render stage on the device: upload to both eyes, then packing
            (left, right), spent = timed(lambda p=plan, f=frame: on_device(f.rgb, p, eye, synthesize))
            seconds["render"] += spent
            out, spent = timed(lambda a=left, b=right: pack_torch(a, b, layout, (width, height)).cpu().numpy())
            seconds["pack"] += spent
            packed.append(out)
            continue
        (image, disparity), spent = timed(lambda p=plan, f=frame: prepare(f.rgb, p))
        seconds["eyes"] += spent
        window = tuple(b * eye_width / width for b in plan.window)
        (left, right), spent = timed(lambda i=image, d=disparity, w=window: render_views(i, d, w, synthesize))
        seconds["render"] += spent
        out, spent = timed(lambda a=left, b=right: pack(a, b, layout, (width, height)))
        seconds["pack"] += spent
        packed.append(out)
    return packed, seconds


def encode_stage(
    packed: Sequence[np.ndarray], frames: Sequence[Frame], info: VideoInfo, config: PipelineConfig, output: Path
) -> float:
    """Encode the packed frames with the pipeline's writer, in a tight loop (x264 works in its own threads)."""
    media = config.media
    height, width = packed[0].shape[:2]

    def run() -> None:
        writer = VideoWriter(output, info, (width, height), config.output, start=media.start, end=media.end)
        try:
            for rgb, frame in zip(packed, frames, strict=True):
                writer.write(rgb, frame.pts)
            writer.close()
        except BaseException:
            writer.abort()
            raise

    return timed(run)[1]


# ------------------------------------------------------------------------------------------------ memory (C)


def clip_frames(info: VideoInfo, start: float, size: tuple[int, int], count: int) -> Iterator[np.ndarray]:
    """``count`` RGB frames of ``info`` from ``start`` to its end, looped, resized to ``size`` (width, height)."""
    produced = 0
    while produced < count:
        looped = 0
        with contextlib.closing(decode(info, start, None)) as frames:
            for frame in frames:
                yield cv2.resize(frame.rgb, size, interpolation=cv2.INTER_AREA)
                looped += 1
                produced += 1
                if produced == count:
                    return
        if not looped:
            raise RuntimeError(f"no frames in {info.path} after {start} s")


def build_clips(info: VideoInfo, start: float, seconds: Sequence[float], height: int, work: Path) -> list[Path]:
    """Clips of ``seconds`` each with the same content: the shorter ones are the start of the longest. Same frame
    rate as ``info``, ``height`` pixels high (width by the display aspect, even), x264 at high quality."""
    height = 2 * (height // 2)
    width = 2 * round(height * info.display_aspect_ratio / 2)
    rate = probe_rate(info.path)
    counts = [round(s * float(rate)) for s in seconds]
    paths = [work / f"clip-{s:g}s.mp4" for s in seconds]
    outputs = [av.open(str(p), mode="w") for p in paths]
    try:
        streams = []
        for out in outputs:
            stream = out.add_stream("libx264", rate=rate, options={"crf": "16", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            streams.append(stream)
        for index, rgb in enumerate(clip_frames(info, start, (width, height), max(counts))):
            for out, stream, count in zip(outputs, streams, counts, strict=True):
                if index < count:
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts, frame.time_base = index, 1 / rate
                    out.mux(stream.encode(frame))
        for out, stream in zip(outputs, streams, strict=True):
            out.mux(stream.encode(None))
    finally:
        for out in outputs:
            out.close()
    return paths


def probe_rate(path: Path) -> Any:
    """The video stream's average frame rate as a fraction (e.g. 30000/1001)."""
    with av.open(str(path)) as container:
        return container.streams.video[0].average_rate


# Run in a child process, so each conversion's peak memory is its own. argv[1]: a JSON spec; prints one JSON line.
# The peak is the process's own VmHWM: on Linux a child's ru_maxrss also counts the parent's peak, since the child
# starts (vfork) in the parent's address space and exec keeps that address space's high-water mark.
CHILD = """
import json, resource, sys
spec = json.loads(sys.argv[1])
import torch
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
from stereoconv import convert, load_config
result = convert(spec["input"], spec["output"], load_config(spec["preset"], overrides=spec["overrides"]))
try:
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    source = "VmHWM"
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak, source = (peak if sys.platform == "darwin" else peak * 1024), "ru_maxrss"
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
print(json.dumps({"frames": result.frames, "seconds": result.seconds, "peak_rss_bytes": peak, "peak_source": source,
                  "cuda_peak_bytes": cuda}))
"""


def peak_rss(clip: Path, output: Path, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Convert ``clip`` in a child process with the tiny model; its frames, seconds (convert's own) and peak RSS."""
    spec = {
        "input": str(clip),
        "output": str(output),
        "preset": args.preset,
        "threads": args.threads,
        "overrides": {
            "depth.model": str(model),
            "depth.device": args.device,
            "depth.input_size": args.rss_input_size,
            "output.format": args.layout,
        },
    }
    if args.layout is None:
        del spec["overrides"]["output.format"]
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"converting {clip.name} in a child process failed: {tail[0]}")
    output.unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(args: argparse.Namespace, info: VideoInfo, work: Path) -> dict[str, Any]:
    """C: peak RSS converting the long clip over converting the short one."""
    model = make_model(work / "tiny-model", real_size=False)
    clips = build_clips(info, args.start, args.rss_clips, args.rss_height, work)
    runs = {
        f"{s:g}s": peak_rss(clip, work / f"out-{clip.name}", model, args)
        for s, clip in zip(args.rss_clips, clips, strict=True)
    }
    short, long = (runs[f"{s:g}s"] for s in args.rss_clips)
    return {
        "clips": {k: {"path": str(c.name), **v} for (k, v), c in zip(runs.items(), clips, strict=True)},
        "clip_size": f"{probe(clips[0]).width}x{probe(clips[0]).height}",
        "input_size": args.rss_input_size,
        "ratio": long["peak_rss_bytes"] / short["peak_rss_bytes"],
    }


# ---------------------------------------------------------------------------------------------------- measure


def scaled_clip(info: VideoInfo, start: float, frames: int, height: int, work: Path) -> Path:
    """``frames`` frames of ``info`` from ``start``, scaled to ``height`` (width by the display aspect, even): x264 at
    high quality, built once and not timed, so every run here reads the same file at the size measured."""
    height = 2 * (height // 2)
    width = 2 * round(height * info.display_aspect_ratio / 2)
    rate = probe_rate(info.path)
    path = work / f"input-{height}p.mp4"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "16", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, rgb in enumerate(clip_frames(info, start, (width, height), frames)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = index, 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def resized_frames(frames: Sequence[Frame], height: int) -> list[Frame]:
    """``frames`` at ``height`` (width by their aspect, even): area-averaged down, bicubic up."""
    h, w = frames[0].rgb.shape[:2]
    size = (2 * round(height * w / h / 2), 2 * (height // 2))
    interpolation = cv2.INTER_AREA if height <= h else cv2.INTER_CUBIC
    return [dataclasses.replace(f, rgb=cv2.resize(f.rgb, size, interpolation=interpolation), picture=None)
            for f in frames]  # fmt: skip


def scene_depth(raw: torch.Tensor) -> torch.Tensor:
    """Depth maps shaped like ``raw`` (the model's, [N, h, w], on the model's grid) with the structure of a real
    scene instead of the random-weight model's noise: a floor and a back wall (a ramp, farther to the top), and five
    objects in front of them (rounded ellipses, each at its own depth, some overlapping) that drift across the frame,
    blurred by a pixel of the grid as a network's edges are. Relative inverse depth, larger =
    nearer, like the model's."""
    count, height, width = raw.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ground = 0.1 + 0.5 * np.clip((ys / height - 0.35) / 0.65, 0.0, 1.0)
    objects = [(0.25, 0.55, 0.10, 0.30, 0.70, 1.5), (0.50, 0.45, 0.08, 0.22, 0.85, -1.0), (0.70, 0.70, 0.12, 0.18,
               0.95, 0.8), (0.85, 0.30, 0.05, 0.35, 0.65, -0.6), (0.40, 0.80, 0.15, 0.08, 1.00, 1.2)]  # fmt: skip
    maps = []
    for i in range(count):
        depth = ground.copy()
        for cx, cy, rx, ry, near, speed in objects:  # centre and radii as shares of the map, depth, px/frame
            x0 = cx * width + speed * i
            r2 = ((xs - x0) / (rx * width)) ** 2 + ((ys - cy * height) / (ry * height)) ** 2
            inside = r2 <= 1.0  # rounded: nearest at the centre, 0.1 farther at the rim
            depth[inside] = np.maximum(depth[inside], near - 0.1 * r2[inside])
        maps.append(cv2.GaussianBlur(depth, (0, 0), 1.0))
    return torch.from_numpy(np.stack(maps)).to(raw.dtype)


def stage_costs(
    frames: Sequence[Frame],
    raw: torch.Tensor,
    config: PipelineConfig,
    estimator: TransformersDepthEstimator,
    info: VideoInfo,
    output: Path,
) -> tuple[dict[str, float], list[bool]]:
    """Seconds of each stage after the model over ``frames`` (any size; ``raw``: the model's maps for them: the model
    sees the same input at any frame size of one aspect), each stage alone, fed the one before's output."""
    height, width = frames[0].rgb.shape[:2]
    seconds: dict[str, float] = {}
    cuts, seconds["scenes"] = scene_stage(frames, config)
    synthesize = choose_synthesizer(config, estimator)
    device = synthesize if isinstance(synthesize, torch.device) else None  # the depth stays there in the pipeline

    def resized() -> list[Any]:
        if device is None:
            return to_working(raw.to(estimator.device), height, width)
        maps = list(to_working_tensor(raw.to(device), height, width))
        synchronize(device)
        return maps

    depths, seconds["depth_resize"] = timed(resized)
    smoothed, seconds["temporal"], flow = temporal_stage(frames, depths, cuts, config, device)
    if flow is not None:
        seconds["temporal_flow"] = flow
    del depths
    packed, steps = render_and_pack(frames, smoothed, cuts, config, estimator)
    seconds.update(steps)
    del smoothed
    gc.collect()
    seconds["encode"] = encode_stage(packed, frames, info, config, output)
    return seconds, cuts


def measure_speed(args: argparse.Namespace, info: VideoInfo, device: torch.device, work: Path) -> dict[str, Any]:
    """A, B, D and the per-stage costs, on the same frames."""
    model = make_model(work / "real-size-model", real_size=True)
    limit = args.frames or DEFAULT_FRAMES.get(device.type, DEFAULT_FRAMES["cpu"])
    source = args.input
    if args.height and args.height != info.height:
        source = scaled_clip(info, args.start, limit, args.height, work)
        args = argparse.Namespace(**{**vars(args), "input": source, "start": 0.0})
        info = probe(source)
    threads = load_config(args.preset, overrides=overrides(args, model, None)).media.decode_threads
    frames, decode_s = decode_frames(info, args.start, limit, threads)
    n = len(frames)
    config = load_config(args.preset, overrides=overrides(args, model, range_end(frames, info.fps)))
    changed = rerender_overrides(config)
    rerender = config.replace(changed)
    cache = work / "depth-cache"

    # D denominator first: the first conversion in this process, as a user's first run is.
    fresh, fresh_result = converted(lambda: convert(args.input, work / "fresh.mp4", config, depth_cache=cache))
    checked(fresh, n, "the fresh run")

    # B: one estimator, loaded and warmed up before both sides.
    estimator, load_s = timed(lambda: load_estimator(config.depth))
    warm_s = warm_up(estimator, frames)
    depths, raw, predict_s, _ = model_alone(frames, estimator)
    del depths
    alone = Timing(n, predict_s)
    pipeline, _ = converted(lambda: convert(args.input, work / "pipeline.mp4", config, estimator=estimator))
    checked(pipeline, n, "the pipeline run")

    # A and D numerator, A denominator; A again from a cache of scene-like maps instead of the model's noise.
    scene_maps = scene_depth(raw)
    scene_cache = work / "scene-depth-cache"
    fill_cache(frames, args.input, scene_cache, config, scene_maps)

    def rerender_once(output: Path, directory: Path = cache) -> Timing:
        run, _ = converted(lambda: convert(args.input, output, rerender, depth_cache=directory))
        return checked(run, n, "the cached re-render")

    def transcode_once(output: Path) -> Timing:
        return checked(transcode(args.input, output, config), n, "the transcode")

    repeats = alternating({"cached": rerender_once, "transcode": transcode_once,
                           "cached_scene": lambda out: rerender_once(out, scene_cache)}, work, args.repeat)  # fmt: skip
    cached, baseline = median_of(repeats["cached"]), median_of(repeats["transcode"])
    cached_scene = median_of(repeats["cached_scene"])

    # Per-stage costs, each stage alone over the frames in memory: at the measured size, then at each stage height.
    seconds = {"decode": decode_s, "depth_model": predict_s}
    seconds["depth_cache"], cache_stats = cache_stage(frames, args.input, cache, config)
    spent, cuts = stage_costs(frames, raw, config, estimator, info, work / "encode.mp4")
    seconds.update(spent)
    sizes: dict[str, dict[str, float]] = {}
    scene_sizes: dict[str, dict[str, float]] = {}
    for stage_height in args.stage_heights:
        at_size = resized_frames(frames, stage_height)
        size = f"{at_size[0].rgb.shape[1]}x{at_size[0].rgb.shape[0]}"
        for maps, into in ((raw, sizes), (scene_maps, scene_sizes)):
            spent, _ = stage_costs(at_size, maps, config, estimator, info, work / f"encode-{stage_height}.mp4")
            into[size] = {k: 1000 * v / n for k, v in spent.items()}
        del at_size
        gc.collect()
    width, height = packed_size(info.width, info.height, config.output.format)
    encoder = Timing(n, seconds["encode"])

    return {
        "input": {
            "path": str(args.input),
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "start": args.start,
            "end": config.media.end,
            "frames": n,
            "output": f"{config.output.format} {width}x{height}",
        },
        "config": config.to_dict(),
        "rerender_overrides": changed,
        "model": {
            "parameters": parameters(estimator),
            "load_seconds": load_s,
            "warm_up_seconds": warm_s,
            "batch_size": estimator.batch_size,
            "input_size": config.depth.input_size,
            "input_shape": list(estimator.prep.input_shape(info.height, info.width)),
        },
        "stage_labels": stage_labels(config, estimator.batch_size),
        "stages_ms_per_frame": {k: 1000 * s / n for k, s in seconds.items()},
        "stages_by_size_ms_per_frame": sizes,
        "stages_by_size_scene_depth_ms_per_frame": scene_sizes,
        "runs": {
            "fresh": fresh.to_dict(),
            "pipeline": pipeline.to_dict(),
            "model_alone": alone.to_dict(),
            "cached": cached.to_dict(),
            "cached_scene": cached_scene.to_dict(),
            "transcode": baseline.to_dict(),
            "encoder_alone": encoder.to_dict(),
        },
        "repeats": {name: [t.seconds for t in runs] for name, runs in repeats.items()},
        "depth_cache": {"fresh": fresh_result.depth_cache, "cache_stage": cache_stats.summary()},
        "cuts": [i for i, c in enumerate(cuts) if c],
        "ratios_speed": {
            "A": cached.seconds / baseline.seconds,
            "A, scene-like depth": cached_scene.seconds / baseline.seconds,
            "B": pipeline.seconds / alone.seconds,
            "D": cached.seconds / fresh.seconds,
        },
    }


def ratios(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The four ratios with their targets."""
    measured = {**report["ratios_speed"], "C": report["memory"]["ratio"]}
    what = {
        "A": "cached re-render (new smoothing + parallax) / PyAV transcode, time; the model's maps (noise)",
        "A, scene-like depth": "the same, the cache holding scene-like maps (a ramp and drifting objects)",
        "B": "pipeline / model forward alone, real-size, time",
        "C": "peak RSS converting the long clip / the short clip",
        "D": "cached re-render / fresh real-size run, time",
    }
    return [
        {
            "ratio": k,
            "what": what[k],
            "measured": measured[k],
            "target": TARGETS[k[0]],
            "met": measured[k] <= TARGETS[k[0]],
        }
        for k in sorted(measured)
    ]


# ----------------------------------------------------------------------------------------------------- report


def stage_labels(config: PipelineConfig, batch_size: int) -> dict[str, str]:
    out, depth = config.output, config.depth
    return {
        "decode": "decode (to RGB)",
        "depth_model": f"depth: model (preprocess + forward, batch {batch_size}, input {depth.input_size})",
        "depth_cache": "depth: read from cache (+ resize), instead",
        "scenes": "scene detection",
        "depth_resize": "depth: to the working resolution",
        "temporal": "temporal smoothing (working resolution)",
        "temporal_flow": "  of which grey + optical flow (other threads in the pipeline)",
        "plan": "stereo plan (convergence, disparity, window)",
        "eyes": "eyes' inputs at their size (frame, disparity, edges)",
        "refine": "  of which edge refinement",
        "render": "DIBR render (both eyes, at once on the CPU)",
        "pack": f"packing ({out.format})",
        "encode": f"encode ({out.codec} crf {out.crf} {out.preset} {out.pix_fmt})",
    }


_NOT_SUMMED = ("refine", "temporal_flow")  # parts of another row


def stage_table(report: dict[str, Any]) -> str:
    ms, labels = report["stages_ms_per_frame"], report["stage_labels"]
    rows = [["stage", "ms/frame"]] + [[labels[k], f"{v:.1f}"] for k, v in ms.items()]
    fresh = sum(v for k, v in ms.items() if k not in ("depth_cache", *_NOT_SUMMED))
    cached = sum(v for k, v in ms.items() if k not in ("depth_model", "depth_resize", *_NOT_SUMMED))
    rows.append(["sum, depth from the model", f"{fresh:.1f}"])
    rows.append(["sum, depth from the cache", f"{cached:.1f}"])
    return table(rows, [False, True])


DEPTHS = {  # the per-size tables: report key, what the depth is
    "stages_by_size_ms_per_frame": "the model's maps (random weights: noise, edges everywhere)",
    "stages_by_size_scene_depth_ms_per_frame": "scene-like maps (a ramp and five drifting objects)",
}


def size_costs(report: dict[str, Any], key: str = "stages_by_size_ms_per_frame") -> dict[str, float]:
    """Per size, the sum of the stages after the depth (the per-frame cost of a cached re-render, decode aside)."""
    return {size: sum(v for k, v in ms.items() if k not in _NOT_SUMMED)
            for size, ms in report[key].items()}  # fmt: skip


def size_table(report: dict[str, Any], key: str = "stages_by_size_ms_per_frame") -> str:
    by_size, labels = report[key], report["stage_labels"]
    sizes = list(by_size)
    rows = [["stage, ms/frame", *sizes]]
    for stage in next(iter(by_size.values())):
        rows.append([labels[stage], *(f"{by_size[size][stage]:.1f}" for size in sizes)])
    costs = size_costs(report, key)
    rows.append(["sum after the depth", *(f"{costs[size]:.1f}" for size in sizes)])
    return table(rows, [False, *([True] * len(sizes))])


def size_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-stage targets at 1080p and 4K / 1080p, where those sizes were measured, on either depth."""
    rows = []
    for depth_key, depth in (("stages_by_size_ms_per_frame", "model's maps"),
                             ("stages_by_size_scene_depth_ms_per_frame", "scene-like maps")):  # fmt: skip
        by_size, costs = report.get(depth_key, {}), size_costs(report, depth_key) if depth_key in report else {}
        full_hd = next((size for size in by_size if size.endswith("x1080")), None)
        uhd = next((size for size in by_size if size.endswith("x2160")), None)
        if full_hd is not None:
            for key, target in STAGE_TARGETS_1080P.items():
                value = by_size[full_hd][key]
                rows.append({"what": f"{report['stage_labels'][key]} at {full_hd}, {depth}, ms/frame",
                             "measured": value, "target": target, "met": value <= target})  # fmt: skip
        if full_hd is not None and uhd is not None:
            value = costs[uhd] / costs[full_hd]
            rows.append({"what": f"per-frame cost {uhd} / {full_hd}, {depth}", "measured": value,
                         "target": SIZE_RATIO_TARGET, "met": value <= SIZE_RATIO_TARGET})  # fmt: skip
    return rows


def gpu_target(report: dict[str, Any]) -> dict[str, Any] | None:
    """On CUDA: the pipeline's fps against 150 fps, or 0.9x the slower of the model alone and the encoder alone."""
    if not report["machine"].get("device", "").startswith("cuda"):
        return None
    runs = report["runs"]
    pipeline = runs["pipeline"]["fps"]
    slower = min(runs["model_alone"]["fps"], runs["encoder_alone"]["fps"])
    return {"pipeline_fps": pipeline, "slower_alone_fps": slower, "ratio": pipeline / slower,
            "met": pipeline >= GPU_FPS_TARGET or pipeline >= 0.9 * slower}  # fmt: skip


def target_table(rows: Sequence[dict[str, Any]]) -> str:
    out = [["target", "measured", "target", ""]]
    for r in rows:
        out.append([r["what"], f"{r['measured']:.2f}", f"<= {r['target']:g}", "met" if r["met"] else "NOT met"])
    return table(out, [False, True, True, False])


RUN_LABELS = {
    "fresh": "fresh run, real-size model, empty cache (D den.)",
    "pipeline": "pipeline, real-size model preloaded (B num.)",
    "model_alone": "model alone: predict (B den.)",
    "cached": "re-render from cache, new settings (A, D num.)",
    "cached_scene": "the same from a cache of scene-like maps (A num.)",
    "transcode": "PyAV transcode (A den.)",
    "encoder_alone": "encoder alone, packed frames in memory",
}


def run_table(runs: dict[str, dict[str, float]]) -> str:
    rows = [["end to end", "frames", "seconds", "ms/frame", "fps"]]
    for key, run in runs.items():
        rows.append([RUN_LABELS[key], str(run["frames"]), f"{run['seconds']:.2f}", f"{run['ms_per_frame']:.1f}",
                     f"{run['fps']:.2f}"])  # fmt: skip
    return table(rows, [False, True, True, True, True])


def memory_table(memory: dict[str, Any]) -> str:
    rows = [["C: clip", "frames", "seconds", "fps", "peak RSS MiB"]]
    for name, run in memory["clips"].items():
        rows.append([f"{name} ({memory['clip_size']}, tiny model, input {memory['input_size']})", str(run["frames"]),
                     f"{run['seconds']:.1f}", f"{run['frames'] / run['seconds']:.1f}",
                     f"{run['peak_rss_bytes'] / 2**20:.0f}"])  # fmt: skip
    return table(rows, [False, True, True, True, True])


def ratio_table(rows: Sequence[dict[str, Any]]) -> str:
    out = [["ratio", "measured", "target", "", "what"]]
    for r in rows:
        out.append([r["ratio"], f"{r['measured']:.3f}", f"<= {r['target']:g}", "met" if r["met"] else "NOT met",
                    r["what"]])  # fmt: skip
    return table(out, [False, True, True, False, False])


def print_report(report: dict[str, Any]) -> None:
    facts, media, model = report["machine"], report["input"], report["model"]
    print(facts_line(facts))
    print(
        f"input: {media['path']} ({media['width']}x{media['height']}, {media['fps']:.3f} fps), "
        f"{media['frames']} frames from {media['start']:g} s; output {media['output']}"
    )
    print(
        f"real-size model: {model['parameters']} parameters, input {model['input_shape'][0]}x{model['input_shape'][1]}"
        f", batch {model['batch_size']}; B's load {model['load_seconds']:.2f} s and warm-up batch "
        f"{model['warm_up_seconds']:.2f} s are not timed in B"
    )
    print("re-render settings: " + ", ".join(f"{k} = {v:g}" for k, v in report["rerender_overrides"].items()))
    print()
    print(stage_table(report))
    print()
    for key, depth in DEPTHS.items():
        if key in report:
            print(f"depth: {depth}")
            print(size_table(report, key))
    print("(each size: the same frames resized, the same maps brought to that size's working resolution)")
    print()
    print(target_table(size_targets(report)))
    print()
    print(run_table(report["runs"]))
    print(
        "fresh: the process's first convert, incl. fingerprints, model load, first-call setup and cache writes; "
        "pipeline and model alone: model loaded and warmed up before; cached re-render and transcode: median of "
        f"{len(report['repeats']['cached'])} alternating runs"
    )
    print(f"fresh run: {report['depth_cache']['fresh']}; stage check: {report['depth_cache']['cache_stage']}")
    print()
    print(memory_table(report["memory"]))
    print()
    print(ratio_table(report["ratios"]))
    gpu = report.get("gpu")
    if gpu is not None:
        print(f"GPU: pipeline {gpu['pipeline_fps']:.1f} fps, the slower of model alone and encoder alone "
              f"{gpu['slower_alone_fps']:.1f} fps: {gpu['ratio']:.2f}x; target >= {GPU_FPS_TARGET:g} fps or >= 0.9x: "
              f"{'met' if gpu['met'] else 'NOT met'}")  # fmt: skip


# ------------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.input.is_file():
        fail(f"input video not found: {args.input} (pass --input PATH)")
    if not REAL_MODEL_CONFIG.is_dir():
        fail(f"real-size model config not found: {REAL_MODEL_CONFIG}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = select_device(args.device)
        info = probe(args.input)
        machine = torch_machine_facts(device)
        with tempfile.TemporaryDirectory(prefix="stereoconv-bench-") as tmp:
            report = {"machine": machine, **measure_speed(args, info, device, Path(tmp))}
            report["memory"] = measure_memory(args, info, Path(tmp))
    except StereoconvError as exc:
        fail(str(exc))
    if hasattr(os, "getloadavg"):
        machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    report["ratios"] = ratios(report)
    report["gpu"] = gpu_target(report)
    print_report(report)
    finish(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
