#!/usr/bin/env python
"""The compiled CPU kernels against the whole-array code they replaced, on the same frames, in one run.

Each row times a stage two ways over the same inputs, taking turns frame by frame (so a change in the machine's load
hits both alike), and reports the median ms per frame of each, their ratio, and how far the two results are apart:

- temporal smoothing: ``stereoconv.temporal.TemporalSmoother`` (compiled passes) against the numpy smoother kept
  as the tests' reference (``tests/temporal_reference.py``), over the frames in order;
- edge refinement: ``refine.refine_disparity`` (tiles, only where a window may span a depth edge) against
  ``refine.refine_disparity_reference`` (whole-frame window filters);
- one eye: ``dibr.synthesize_view`` (one compiled pass per row) against ``dibr.synthesize_view_reference`` (numpy
  and OpenCV over whole arrays);
- both eyes: ``parallax.render_views`` (the two eyes at once on two threads) against the two eyes one after the other;
- smoothing, flow ahead: the smoother over the sequence computing its optical flow itself, against the pipeline's
  way (``engine.with_motion``: each frame's grey and flow computed ahead on other threads); the smoothing thread's
  wall time per frame;
- half-SBS packing: ``packing.pack`` (the squeeze compiled, straight into the packed frame) against two
  ``cv2.resize(INTER_AREA)`` and ``np.hstack``.

Inputs: ``--frames`` frames of ``--input`` from ``--start`` scaled to ``--height``, and depth on the working grid of
two kinds: noise (what a random-weight model delivers: depth edges everywhere) and scene-like maps (a ramp and five
drifting objects, ``throughput.scene_depth``). The depth goes through the pipeline's own smoothing and stereo plan
(the film preset's settings) to the disparity at the frame's size, refined before it is rendered.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

import cv2
import numpy as np
import torch
from _common import SHARED_DATA, TESTS, facts_line, failer, finish, machine_facts, parser, table

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from temporal_reference import ReferenceSmoother
from throughput import decode_frames, resized_frames, scene_depth

from stereoconv.config import load_config
from stereoconv.depth import working_shape
from stereoconv.dibr import synthesize_view, synthesize_view_reference
from stereoconv.engine import motion_workers, with_motion
from stereoconv.media import probe
from stereoconv.packing import eye_size, pack
from stereoconv.parallax import StereoRenderer, render_views
from stereoconv.refine import refine_disparity, refine_disparity_reference
from stereoconv.temporal import TemporalSmoother

DEFAULT_INPUT = SHARED_DATA / "videos" / "pyscenedetect" / "testvideo.mp4"
MODEL_SIDE = 518  # Depth Anything V2's input short side: the working grid is about this size


def parse_args(argv: Sequence[str] | None = None) -> Any:
    made = parser("kernels", "Time stereoconv's compiled CPU kernels against the whole-array code they replaced.")
    made.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="input video")
    made.add_argument(
        "--start", type=float, default=1.0, help="start of the frames [s] (testvideo.mp4 is black before)"
    )
    made.add_argument("--frames", type=int, default=8, help="frames to time each stage on")
    made.add_argument("--height", type=int, default=1080, help="frame height the frames are scaled to [px]")
    made.add_argument("--repeat", type=int, default=3, help="passes over the frames; every call counts in the median")
    args = made.parse_args(argv)
    if args.frames < 2 or args.repeat < 1 or args.height < 64:
        made.error("--frames must be at least 2, --repeat at least 1 and --height at least 64")
    return args


def noise_depth(count: int, shape: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Blurred noise on the working grid, like a random-weight model's maps: depth edges everywhere."""
    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 3.0) for _ in range(count)]


def planned(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The pipeline's smoothing and stereo plan over the frames: (smoothed depth on the grid, unrefined disparity at
    the frame's size in pixels)."""
    config = load_config("film")
    smoother = TemporalSmoother(config.temporal)
    renderer = StereoRenderer(config.stereo)
    height, width = frames[0].shape[:2]
    smoothed, disparities = [], []
    for i, (rgb, depth) in enumerate(zip(frames, depths, strict=True)):
        normalized = smoother(depth, rgb, cut=i == 0)
        plan = renderer.plan(normalized, cut=i == 0, frame=(height, width))
        smoothed.append(normalized)
        disparities.append(plan.at(height, width))
    return smoothed, disparities


def compare(
    name: str,
    inputs: Sequence[Any],
    old: Callable[[Any], Any],
    new: Callable[[Any], Any],
    repeat: int,
    difference: Callable[[Any, Any], float],
) -> dict[str, Any]:
    """``old(x)`` and ``new(x)`` for every x in ``inputs``, taking turns, ``repeat`` passes; medians in ms and the
    largest difference of the results."""
    times: dict[str, list[float]] = {"old": [], "new": []}
    apart = 0.0
    for _ in range(repeat):
        for item in inputs:
            results = {}
            for which, fn in (("old", old), ("new", new)):
                started = time.perf_counter()
                results[which] = fn(item)
                times[which].append(1000 * (time.perf_counter() - started))
            apart = max(apart, difference(results["old"], results["new"]))
    old_ms, new_ms = statistics.median(times["old"]), statistics.median(times["new"])
    return {"stage": name, "old_ms": old_ms, "new_ms": new_ms, "ratio": old_ms / new_ms, "max_difference": apart}


def largest(a: Any, b: Any) -> float:
    """The largest absolute difference of two arrays or of two tuples of arrays."""
    pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in pairs)


def sequence_runner(make: Callable[[], Any], frames: Sequence[np.ndarray], depths: Sequence[np.ndarray]) -> Any:
    """A stage over one frame at a time that keeps a smoother per side, reset at the first frame."""
    state: dict[str, Any] = {}

    def run(i: int) -> np.ndarray:
        if i == 0 or "smoother" not in state:
            state["smoother"] = make()
        return state["smoother"](depths[i], frames[i], cut=i == 0)

    return run


class _Frame:
    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb


def flow_ahead(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray], repeat: int) -> dict[str, Any]:
    """The smoothing thread's wall time per frame over the whole sequence: the smoother computing its optical flow
    itself, against the pipeline's way, the flow computed ahead on :func:`~stereoconv.engine.motion_workers` threads
    (``engine.with_motion``) while the smoother works on the frame before."""
    workers = motion_workers()
    items = [(_Frame(rgb), i == 0, depth) for i, (rgb, depth) in enumerate(zip(frames, depths, strict=True))]
    times: dict[str, list[float]] = {"old": [], "new": []}
    apart = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        inline = TemporalSmoother()
        old = [inline(d, f.rgb, cut=c) for f, c, d in items]
        times["old"].append(1000 * (time.perf_counter() - started) / len(items))
        started = time.perf_counter()
        ahead = TemporalSmoother()
        new = [ahead(d, f.rgb, cut=c, motion=m) for f, c, d, m in with_motion(iter(items), workers)]
        times["new"].append(1000 * (time.perf_counter() - started) / len(items))
        apart = max(apart, largest(tuple(old), tuple(new)))
    old_ms, new_ms = statistics.median(times["old"]), statistics.median(times["new"])
    return {"stage": f"smoothing, flow ahead ({workers} thread{'s' * (workers > 1)})", "old_ms": old_ms,
            "new_ms": new_ms, "ratio": old_ms / new_ms, "max_difference": apart}  # fmt: skip


def measure(args: Any) -> dict[str, Any]:
    info = probe(args.input)
    decoded, _ = decode_frames(info, args.start, args.frames, 0)
    frames = [f.rgb for f in resized_frames(decoded, args.height)]
    height, width = frames[0].shape[:2]
    # The model's output for this frame (short side 518, the long one a multiple of its 14 px patches), then the grid.
    rows, cols = sorted((MODEL_SIDE, 14 * round(MODEL_SIDE * max(height, width) / min(height, width) / 14)))
    grid = working_shape(height, width, *((rows, cols) if height <= width else (cols, rows)))
    kinds = {
        "noise": noise_depth(len(frames), grid),
        "scene-like": list(scene_depth(torch.zeros(len(frames), *grid)).numpy()),
    }
    scale = max(height / grid[0], width / grid[1])
    rows = []
    for kind, depths in kinds.items():
        _, disparities = planned(frames, depths)
        refined = [refine_disparity(f, d, scale=scale) for f, d in zip(frames, disparities, strict=True)]
        indices = list(range(len(frames)))
        old_smoother = sequence_runner(ReferenceSmoother, frames, depths)
        new_smoother = sequence_runner(TemporalSmoother, frames, depths)
        rows.append({"depth": kind, **compare("temporal smoothing", indices, old_smoother, new_smoother, args.repeat,
                                              largest)})  # fmt: skip
        rows.append({"depth": kind, **flow_ahead(frames, depths, args.repeat)})
        pairs = list(zip(frames, disparities, strict=True))
        rows.append({"depth": kind, **compare(
            "edge refinement", pairs, lambda p: refine_disparity_reference(p[0], p[1], scale=scale),
            lambda p: refine_disparity(p[0], p[1], scale=scale), args.repeat, largest)})  # fmt: skip
        views = list(zip(frames, refined, strict=True))
        rows.append({"depth": kind, **compare(
            "view synthesis, one eye", views, lambda p: synthesize_view_reference(p[0], p[1], +1),
            lambda p: synthesize_view(p[0], p[1], +1), args.repeat, largest)})  # fmt: skip
        rows.append({"depth": kind, **compare(
            "view synthesis, both eyes", views, lambda p: (synthesize_view(p[0], p[1], +1),
                                                           synthesize_view(p[0], p[1], -1)),
            lambda p: render_views(p[0], p[1]), args.repeat, largest)})  # fmt: skip
    size = eye_size(width, height, "half-sbs")
    eyes = [(f, np.ascontiguousarray(f[:, ::-1])) for f in frames]
    rows.append({"depth": "-", **compare(
        "half-SBS packing", eyes, lambda e: np.hstack([cv2.resize(v, size, interpolation=cv2.INTER_AREA) for v in e]),
        lambda e: pack(e[0], e[1], "half-sbs", (width, height)), args.repeat, largest)})  # fmt: skip
    return {"input": {"path": str(args.input), "frames": len(frames), "width": width, "height": height,
                      "grid": list(grid)}, "repeat": args.repeat, "rows": rows}  # fmt: skip


def print_report(report: dict[str, Any]) -> None:
    print(facts_line(report["machine"]))
    media = report["input"]
    print(f"input: {media['path']}, {media['frames']} frames at {media['width']}x{media['height']}, depth on a "
          f"{media['grid'][0]}x{media['grid'][1]} grid; medians of {report['repeat']} passes, old and new taking "
          "turns per frame")  # fmt: skip
    out = [["stage", "depth", "old ms", "new ms", "old / new", "max difference"]]
    for r in report["rows"]:
        out.append([r["stage"], r["depth"], f"{r['old_ms']:.1f}", f"{r['new_ms']:.1f}", f"{r['ratio']:.2f}",
                    f"{r['max_difference']:g}"])  # fmt: skip
    print(table(out, [False, False, True, True, True, True]))
    print("old: temporal_reference.ReferenceSmoother, refine_disparity_reference, synthesize_view_reference, the two "
          "eyes one after the other, cv2.resize + np.hstack; new: what the pipeline runs")  # fmt: skip


fail = failer("kernels")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.input.is_file():
        fail(f"input video not found: {args.input} (pass --input PATH)")
    report = {"machine": machine_facts(cv2_threads=cv2.getNumThreads()), **measure(args)}
    print_report(report)
    finish(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
