"""A film-length run: RSS, open descriptors and threads over a two-hour conversion, and every frame kept.

A synthetic film (``--minutes`` of video, 120 by default, at ``--size`` and 24 fps: shots of 3 to 15 s, each a
moving texture of its own, cut hard) is written once with PyAV, a frame at a time, and kept in ``--workdir`` for the
next run. ``convert`` then turns it into half-SBS in this process with the tiny random-weight depth model
(tests/synth.py; the model's cost is not what is measured) and the default settings otherwise (but x264's
ultrafast preset: what is measured is what a long run accumulates, not the encoder). Every ``--every``
minutes of video, the converting process's resident memory (VmRSS), open file descriptors (/proc/self/fd), threads
(the kernel's count, torch's and FFmpeg's included, and Python's) and the frames per second since the last sample
are recorded.

Targets: RSS at the end within 5% of RSS after the first 10 minutes of video (after half the run for runs shorter
than 20 minutes); as many descriptors and threads at the end as then; the output has every frame of the source, at
the source's timestamps (compared exactly, as rationals), and the same duration.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from _common import TESTS, facts_line, failer, finish, machine_facts, parser, table

sys.path.insert(0, str(TESTS))
from synth import make_tiny_model

from stereoconv import PipelineConfig, convert

fail = failer("endurance")
FPS = 24


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser("endurance", __doc__.splitlines()[0])
    args.add_argument("--minutes", type=float, default=120.0, help="length of the synthetic film [min of video]")
    args.add_argument("--size", default="64x36", help="frame size WxH (even)")
    args.add_argument(
        "--every",
        type=float,
        default=None,
        help="minutes of video between samples (default: 5, or a quarter of a run under 20 min)",
    )
    args.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stereoconv-endurance",
                      help="where the source (kept for the next run) and the output go")  # fmt: skip
    args.add_argument("--input-size", type=int, default=56, help="depth model input short side [px]")
    return args.parse_args(argv)


def make_film(path: Path, frames: int, width: int, height: int) -> None:
    """Shots of 3-15 s, each a texture of its own drifting by a pixel a frame; H.264, 24 fps, written as made."""
    rng = np.random.default_rng(7)
    tmp = path.with_name(f".{path.name}.partial")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        texture, left = None, 0
        for i in range(frames):
            if left == 0:
                small = rng.integers(0, 256, (height // 4 + 2, width // 4 + 2, 3), dtype=np.uint8)
                texture = np.kron(small, np.ones((4, 4, 1), np.uint8))
                left = int(rng.integers(3 * FPS, 15 * FPS))
            left -= 1
            shift = i % (texture.shape[1] - width)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:height, shift : shift + width]),
                                               format="rgb24")  # fmt: skip
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.replace(path)


def timestamps(path: Path) -> tuple[list[Fraction], Fraction]:
    """Every video packet's pts as seconds (exact rationals), sorted; and the stream's duration in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        times = sorted(Fraction(p.pts) * tb for p in container.demux(stream) if p.pts is not None)
        duration = Fraction(stream.duration) * tb if stream.duration else Fraction(container.duration or 0, 10**6)
    return times, duration


def process_state() -> dict[str, int]:
    """This process's resident memory [KiB], open descriptors and threads (kernel and Python)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_kib": int(status["VmRSS"].split()[0]), "fds": len(os.listdir("/proc/self/fd")),
            "threads": int(status["Threads"]), "py_threads": threading.active_count()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/status").exists():
        fail("needs Linux's /proc to read the process's memory, descriptors and threads")
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = round(args.minutes * 60 * FPS)
    every = args.every or (5.0 if args.minutes >= 20 else args.minutes / 4)
    baseline_minutes = 10.0 if args.minutes >= 20 else args.minutes / 2
    sample_frames = max(1, round(every * 60 * FPS))
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"film_{width}x{height}_{frames}.mp4"
    print(facts_line(machine_facts()))
    if not source.exists():
        started = time.perf_counter()
        make_film(source, frames, width, height)
        print(f"made {source.name}: {frames} frames in {time.perf_counter() - started:.0f} s")
    model = make_tiny_model(args.workdir / "tiny-model")
    config = PipelineConfig().replace({"depth.model": str(model), "depth.input_size": args.input_size,
                                       "output.preset": "ultrafast"})  # fmt: skip
    output = args.workdir / "film_3d.mp4"
    output.unlink(missing_ok=True)

    samples: list[dict[str, Any]] = []
    clock = {"t0": time.perf_counter(), "last_t": time.perf_counter(), "last_n": 0, "n": 0}

    def sample(n: int) -> None:
        now = time.perf_counter()
        fps = (n - clock["last_n"]) / (now - clock["last_t"])
        samples.append({"video_minutes": round(n / FPS / 60, 2), "frames": n, "wall_s": round(now - clock["t0"], 1),
                        "fps": round(fps, 1), **process_state()})  # fmt: skip
        clock["last_t"], clock["last_n"] = now, n

    def on_frame(_: object) -> None:
        clock["n"] += 1
        if clock["n"] % sample_frames == 0:
            sample(clock["n"])

    sample(0)
    result = convert(source, output, config, on_frame=on_frame)
    if clock["n"] % sample_frames:
        sample(clock["n"])
    print(f"converted {result.frames} frames in {result.seconds:.0f} s ({result.fps:.1f} frames/s)\n")

    rows = [["video min", "frames", "wall s", "fps", "RSS MiB", "fds", "threads", "py threads"]]
    rows += [[f"{s['video_minutes']:g}", str(s["frames"]), f"{s['wall_s']:.0f}", f"{s['fps']:.1f}",
              f"{s['rss_kib'] / 1024:.1f}", str(s["fds"]), str(s["threads"]), str(s["py_threads"])]
             for s in samples]  # fmt: skip
    print(table(rows, [True] * 8))

    src_times, src_duration = timestamps(source)
    out_times, out_duration = timestamps(output)
    base = min((s for s in samples if s["video_minutes"] >= baseline_minutes), key=lambda s: s["frames"])
    end = samples[-1]
    growth = end["rss_kib"] / base["rss_kib"] - 1
    missing = len(set(src_times) - set(out_times))
    checks = [
        (f"RSS end vs after first {baseline_minutes:g} min",
         f"{end['rss_kib'] / 1024:.1f} / {base['rss_kib'] / 1024:.1f} MiB ({growth:+.1%})", "within 5%",
         abs(growth) <= 0.05),
        ("descriptors end vs then", f"{end['fds']} / {base['fds']}", "no growth", end["fds"] <= base["fds"]),
        ("threads end vs then", f"{end['threads']} / {base['threads']}", "no growth",
         end["threads"] <= base["threads"]),
        ("frames output / source", f"{len(out_times)} / {len(src_times)}", "equal", len(out_times) == len(src_times)),
        ("source timestamps missing in output", str(missing), "0", missing == 0 and out_times == src_times),
        ("duration output / source [s]", f"{float(out_duration):.3f} / {float(src_duration):.3f}", "equal",
         abs(out_duration - src_duration) <= Fraction(1, FPS)),
    ]  # fmt: skip
    print()
    print(table([["check", "measured", "target", "met"], *[[c, m, t, "met" if ok else "NOT met"]
                                                          for c, m, t, ok in checks]], [False] * 4))  # fmt: skip
    listed = [{"check": c, "measured": m, "target": t, "met": ok} for c, m, t, ok in checks]
    finish(args.json, {"machine": machine_facts(), "minutes": args.minutes, "size": [width, height],
                       "frames": frames, "samples": samples, "checks": listed})  # fmt: skip
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
