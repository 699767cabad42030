#!/usr/bin/env python
"""How fast is a 2D->3D conversion, and how much slower than re-encoding the video without any 3D work?

One run, on one input range of ``--frames`` frames, measures:

1. **Transcode baseline**: decode the range and encode it again, with nothing in between. It uses the same code as
   ``stereoconv.convert`` for both ends - ``media.decode`` in the same background thread (``pipeline.threaded``),
   ``media.VideoWriter`` with the same encoder settings (codec, crf, preset, pixel format from the config) and the
   same output geometry (the packed frame size of the layout; for the default half-sbs that is the input size, so
   the source frames are written as they are). It is timed from ``probe`` to the closed file, as ``convert`` is.
   The only work ``convert`` does on top of it is the 3D work, so ``full / transcode`` (time per frame) is the cost
   of the 3D conversion relative to a plain re-encode on this machine.
2. **Full pipeline**: ``stereoconv.convert`` on the same range, with a tiny random-weight Depth Anything model
   (tests/synth.py ``make_tiny_model``): it runs every stage for real, but its depth cost is far below a real
   model's. The model is loaded and warmed up (one batch) before timing, so neither load time nor first-call setup
   is counted.
3. With ``--real-size``: the same with the real Depth-Anything-V2-Small architecture (random weights), on the first
   ``--real-size-frames`` frames only (it is slow on a CPU), plus its depth stage alone.
4. **Per-stage cost** on the same frames: decode (to RGB) once into memory, then run each stage on its own over the
   frames held in memory, in pipeline order, feeding each stage the previous stage's output: scene detection, depth
   (model with pre/post-processing, at the configured batch size), temporal smoothing, DIBR render (both eyes),
   packing, encode. Nothing in the library is instrumented. The stages' sum can exceed the full pipeline's time per
   frame: in ``convert`` decoding overlaps the rest in its own thread.

Results go to stdout as a table and to ``--json`` (default benchmarks/results/convert_speed.json, git-ignored).
Nothing here asserts a time: the numbers depend on the machine, and are reported with its facts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import av
import cv2
import numpy as np
import torch

from stereoconv.config import LAYOUTS, PipelineConfig, load_config
from stereoconv.depth import DepthEstimator, TransformersDepthEstimator, load_estimator
from stereoconv.errors import StereoconvError
from stereoconv.media import Frame, VideoInfo, VideoWriter, decode, probe
from stereoconv.packing import pack, packed_size
from stereoconv.parallax import StereoRenderer
from stereoconv.pipeline import convert, threaded
from stereoconv.scenes import make_detector
from stereoconv.temporal import TemporalSmoother

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_INPUT = SHARED_DATA / "videos" / "pyscenedetect" / "testvideo.mp4"
REAL_MODEL_CONFIG = SHARED_DATA / "models" / "depth-anything-v2-small-config"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "convert_speed.json"

T = TypeVar("T")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure stereoconv's conversion speed against a plain PyAV transcode of the same frames, "
        "and each pipeline stage's cost per frame.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="input video")
    parser.add_argument("--start", type=float, default=0.0, help="start of the measured range [s]")
    parser.add_argument("--frames", type=int, default=120, help="frames to measure (from --start)")
    parser.add_argument("--preset", default=None, help="stereoconv preset the settings come from (default: film)")
    parser.add_argument("--layout", choices=LAYOUTS, default=None, help="stereo layout (default: the preset's)")
    parser.add_argument("--input-size", type=int, default=518, help="short side of the depth model input [px]")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per model call (default: the preset's)")
    parser.add_argument("--device", default="auto", help="depth model device: auto, cpu, cuda, mps")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--real-size", action="store_true", help="also measure the real-size model architecture")
    parser.add_argument("--real-size-frames", type=int, default=8, help="frames for the --real-size measurement")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results as JSON")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.real_size_frames < 1:
        parser.error("--frames and --real-size-frames must be at least 1")
    return args


def fail(message: str) -> NoReturn:
    """Exit with one line on stderr and status 2."""
    print(f"convert_speed: {message}", file=sys.stderr)
    sys.exit(2)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


# ------------------------------------------------------------------------------------------------------- setup


def machine_facts(device: torch.device) -> dict[str, Any]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpus,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "pyav": av.__version__,
        "libavcodec": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def make_model(directory: Path, *, real_size: bool) -> Path:
    """A random-weight Depth Anything saved to ``directory`` by tests/synth.py."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from synth import make_tiny_model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's bar would interleave with the report
    return make_tiny_model(directory, real_config=real_size)


def settings(args: argparse.Namespace, model: Path, start: float, end: float | None) -> PipelineConfig:
    """The resolved config: the preset, then the model, range and the command-line overrides."""
    overrides: dict[str, Any] = {
        "depth.model": str(model),
        "depth.device": args.device,
        "depth.input_size": args.input_size,
        "media.start": start,
        "media.end": end,
    }
    if args.batch_size is not None:
        overrides["depth.batch_size"] = args.batch_size
    if args.layout is not None:
        overrides["output.format"] = args.layout
    return load_config(args.preset, overrides=overrides)


def range_end(frames: Sequence[Frame], fps: float) -> float:
    """A ``media.end`` half a frame after the last held frame, so decode yields exactly these frames."""
    return frames[-1].time + 0.5 / fps


def warm_up(estimator: DepthEstimator, frames: Sequence[Frame]) -> float:
    """Run one batch so first-call setup (allocator, kernels) is not timed; returns its seconds."""
    _, seconds = timed(lambda: estimator([f.rgb for f in frames[: estimator.batch_size]]))
    return seconds


# ---------------------------------------------------------------------------------------------- end to end


@dataclass(frozen=True)
class EndToEnd:
    """One timed run over the whole range."""

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


def transcode(path: Path, output: Path, config: PipelineConfig) -> EndToEnd:
    """Decode ``config.media``'s range and encode it again: convert's I/O with no 3D work in between."""
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
    return EndToEnd(count, time.perf_counter() - started)


def full_convert(
    path: Path, output: Path, config: PipelineConfig, estimator: DepthEstimator, expected: int
) -> tuple[EndToEnd, list[int]]:
    """``stereoconv.convert`` with a loaded estimator; returns its timing and cuts."""
    result, seconds = timed(lambda: convert(path, output, config, estimator=estimator))
    if result.frames != expected:
        raise RuntimeError(f"convert wrote {result.frames} frames, the measured range holds {expected}")
    return EndToEnd(result.frames, seconds), result.cuts


# ------------------------------------------------------------------------------------------------------ stages


def decode_frames(info: VideoInfo, start: float, limit: int, threads: int) -> tuple[list[Frame], float]:
    """Decode up to ``limit`` frames from ``start`` into memory (upright RGB)."""
    frames_iter = decode(info, start, None, threads)
    try:
        return timed(lambda: list(itertools.islice(frames_iter, limit)))
    finally:
        frames_iter.close()


def scene_stage(frames: Sequence[Frame], config: PipelineConfig) -> tuple[list[bool], float]:
    """Cut flags (True on the first frame of a shot) from the pipeline's detector."""

    def run() -> list[bool]:
        detector = make_detector(config.scenes)
        decisions = [d for f in frames for d in detector.push(f.rgb)] + detector.flush()
        return [is_cut for _, is_cut in decisions]

    return timed(run)


def depth_stage(frames: Sequence[Frame], estimator: DepthEstimator) -> tuple[list[np.ndarray], float]:
    """Raw depth of every frame, the model called in batches of ``estimator.batch_size``."""

    def run() -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i in range(0, len(frames), estimator.batch_size):
            out += estimator([f.rgb for f in frames[i : i + estimator.batch_size]])
        return out

    return timed(run)


def temporal_stage(
    frames: Sequence[Frame], depths: Sequence[np.ndarray], cuts: Sequence[bool], config: PipelineConfig
) -> tuple[list[np.ndarray], float]:
    """Normalized, temporally smoothed depth, reset at cuts."""

    def run() -> list[np.ndarray]:
        smoother = TemporalSmoother(config.temporal)
        return [smoother(d, f.rgb, cut=c) for f, d, c in zip(frames, depths, cuts, strict=True)]

    return timed(run)


def render_and_pack(
    frames: Sequence[Frame], depths: Sequence[np.ndarray], config: PipelineConfig
) -> tuple[list[np.ndarray], float, float]:
    """Packed stereo frames; each call timed on its own. Returns (packed, render seconds, pack seconds).

    Interleaved per frame so the two eyes of only one frame are held at a time; neither runs work in the
    background, so the per-call timings add up to what each stage costs alone.
    """
    packed: list[np.ndarray] = []
    render_s = pack_s = 0.0
    layout = config.output.format
    renderer = StereoRenderer(config.stereo)  # convergence and floating window carry over, as in the pipeline
    for frame, depth in zip(frames, depths, strict=True):
        views, seconds = timed(lambda f=frame, d=depth: renderer(f.rgb, d))
        render_s += seconds
        out, seconds = timed(lambda v=views: pack(v.left, v.right, layout))
        pack_s += seconds
        packed.append(out)
    return packed, render_s, pack_s


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


def stage_costs(
    frames: list[Frame], decode_s: float, info: VideoInfo, config: PipelineConfig, estimator: DepthEstimator, out: Path
) -> tuple[dict[str, float], list[int]]:
    """Seconds per stage over ``frames`` (decode already timed), and the cuts the detector found."""
    seconds = {"decode": decode_s}
    cuts, seconds["scenes"] = scene_stage(frames, config)
    depths, seconds["depth"] = depth_stage(frames, estimator)
    smoothed, seconds["temporal"] = temporal_stage(frames, depths, cuts, config)
    del depths
    packed, seconds["render"], seconds["pack"] = render_and_pack(frames, smoothed, config)
    del smoothed
    gc.collect()
    seconds["encode"] = encode_stage(packed, frames, info, config, out)
    return seconds, [i for i, c in enumerate(cuts) if c]


# ----------------------------------------------------------------------------------------------------- report


def stage_labels(config: PipelineConfig, model: str) -> dict[str, str]:
    out = config.output
    return {
        "decode": "decode (to RGB)",
        "scenes": "scene detection",
        "depth": f"depth ({model} model, batch {config.depth.batch_size}, input {config.depth.input_size})",
        "temporal": "temporal smoothing",
        "render": "DIBR render (both eyes)",
        "pack": f"packing ({out.format})",
        "encode": f"encode ({out.codec} crf {out.crf} {out.preset} {out.pix_fmt})",
    }


def table(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Plain-text table, columns padded to their widest cell; ``right`` marks the right-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def stage_table(report: dict[str, Any]) -> str:
    rows = [["stage", "ms/frame", "share"]]
    for key, ms in report["stages_ms_per_frame"].items():
        rows.append([report["stage_labels"][key], f"{ms:.1f}", f"{100 * report['stages_share'][key]:.1f}%"])
    rows.append(["sum of stages", f"{sum(report['stages_ms_per_frame'].values()):.1f}", "100.0%"])
    return table(rows, [False, True, True])


def end_to_end_table(runs: dict[str, dict[str, float]], baseline_ms: float) -> str:
    rows = [["end to end", "frames", "seconds", "ms/frame", "fps", "x transcode"]]
    for name, run in runs.items():
        rows.append(
            [
                name,
                str(run["frames"]),
                f"{run['seconds']:.2f}",
                f"{run['ms_per_frame']:.1f}",
                f"{run['fps']:.2f}",
                f"{run['ms_per_frame'] / baseline_ms:.2f}",
            ]
        )
    return table(rows, [False, True, True, True, True, True])


def print_report(report: dict[str, Any]) -> None:
    facts, media, tiny, real = report["machine"], report["input"], report["tiny_model"], report["real_size"]
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(
        f"input: {media['path']} ({media['width']}x{media['height']}, {media['fps']:.3f} fps), "
        f"{media['frames']} frames from {media['start']:g} s; output {media['output']}"
    )
    print(
        f"tiny model: {tiny['parameters']} parameters; load {tiny['model_load_seconds']:.2f} s and warm-up batch "
        f"{tiny['warm_up_seconds']:.2f} s, neither timed below"
    )
    print()
    print(stage_table(report))
    print()
    runs = {"transcode baseline": report["transcode"], "full convert (tiny model)": report["convert"]}
    if real is not None:
        runs["full convert (real-size model)"] = real["convert"]
    print(end_to_end_table(runs, report["transcode"]["ms_per_frame"]))
    print(f"ratio full/transcode (time per frame): {report['ratio_full_over_transcode']:.2f}x")
    if real is not None:
        print(
            f"real-size model: {real['parameters']} parameters, first {real['convert']['frames']} frames; "
            f"depth alone {real['depth_ms_per_frame']:.1f} ms/frame; "
            f"full/transcode {real['x_transcode']:.2f}x"
        )
    cuts = report["cuts"]
    if cuts["convert"] != cuts["stages"]:
        print(f"note: cuts differ between convert {cuts['convert']} and the stage run {cuts['stages']}")
    print("note: the tiny model's depth cost is far below a real model's (see --real-size)")


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------------- main


def parameters(estimator: TransformersDepthEstimator) -> int:
    return sum(p.numel() for p in estimator.model.parameters())


def measure_real_size(
    args: argparse.Namespace, frames: list[Frame], info: VideoInfo, baseline: EndToEnd, work: Path
) -> dict[str, Any]:
    """Full convert and the depth stage alone with the real-size architecture, on the first --real-size-frames."""
    subset = frames[: args.real_size_frames]
    model = make_model(work / "real-size-model", real_size=True)
    config = settings(args, model, args.start, range_end(subset, info.fps))
    estimator, load_s = timed(lambda: load_estimator(config.depth))
    warm_s = warm_up(estimator, subset)
    run, cuts = full_convert(args.input, work / "real-size.mp4", config, estimator, len(subset))
    _, depth_s = depth_stage(subset, estimator)
    return {
        "convert": run.to_dict(),
        "x_transcode": run.ms_per_frame / baseline.ms_per_frame,
        "depth_ms_per_frame": 1000 * depth_s / len(subset),
        "parameters": parameters(estimator),
        "model_load_seconds": load_s,
        "warm_up_seconds": warm_s,
        "cuts": cuts,
    }


def measure(args: argparse.Namespace, info: VideoInfo, work: Path) -> dict[str, Any]:
    """Run every measurement on the same frames; returns the report."""
    model = make_model(work / "tiny-model", real_size=False)
    threads = settings(args, model, args.start, None).media.decode_threads
    frames, decode_s = decode_frames(info, args.start, args.frames, threads)
    n = len(frames)
    config = settings(args, model, args.start, range_end(frames, info.fps))
    estimator, load_s = timed(lambda: load_estimator(config.depth))
    warm_s = warm_up(estimator, frames)

    baseline = transcode(args.input, work / "transcode.mp4", config)
    if baseline.frames != n:
        raise RuntimeError(f"transcode wrote {baseline.frames} frames, the measured range holds {n}")
    full, convert_cuts = full_convert(args.input, work / "convert.mp4", config, estimator, n)
    seconds, stage_cuts = stage_costs(frames, decode_s, info, config, estimator, work / "encode.mp4")
    real = measure_real_size(args, frames, info, baseline, work) if args.real_size else None

    width, height = packed_size(info.width, info.height, config.output.format)
    total = sum(seconds.values())
    return {
        "machine": machine_facts(estimator.device),
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
        "stage_labels": stage_labels(config, "tiny random-weight"),
        "stages_ms_per_frame": {k: 1000 * s / n for k, s in seconds.items()},
        "stages_share": {k: s / total for k, s in seconds.items()},
        "transcode": baseline.to_dict(),
        "convert": full.to_dict(),
        "ratio_full_over_transcode": full.ms_per_frame / baseline.ms_per_frame,
        "cuts": {"convert": convert_cuts, "stages": stage_cuts},
        "tiny_model": {"parameters": parameters(estimator), "model_load_seconds": load_s, "warm_up_seconds": warm_s},
        "real_size": real,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.input.is_file():
        fail(f"input video not found: {args.input} (pass --input PATH)")
    if args.real_size and not REAL_MODEL_CONFIG.is_dir():
        fail(f"real-size model config not found: {REAL_MODEL_CONFIG}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        info = probe(args.input)
        with tempfile.TemporaryDirectory(prefix="stereoconv-bench-") as tmp:
            report = measure(args, info, Path(tmp))
    except StereoconvError as exc:
        fail(str(exc))
    print_report(report)
    write_json(args.json, report)
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
