"""Single pass vs chunked (local) vs Ray: wall time and frame exactness on a real clip.

The same clip is converted three ways with the same settings and the tiny random-weight model (the model's speed is
not what is compared; tests/synth.py builds it): ``convert`` in one pass, ``convert --work-dir`` (plan, render every
chunk in this process, assemble), and the same with ``--backend ray`` (chunks as Ray tasks, the model loaded once per
worker). Output is lossless (x264 crf 0, yuv444p) so frames can be compared exactly after decoding:

- frames in chunks that start on a scene cut must equal the single pass bit for bit (every temporal state resets at a
  cut, so a chunk there sees exactly what the single pass saw);
- frames in chunks split mid-shot start from a pre-roll instead of the shot's start: the largest and mean absolute
  difference is reported;
- frame count and timestamps must be equal.

Wall times include planning (scene detection) and assembly for the chunked runs, and Ray's start-up for the Ray run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np
from _common import SHARED_DATA, TESTS, facts_line, failer, finish, machine_facts, parser, table, timed

sys.path.insert(0, str(TESTS))
from synth import make_tiny_model

from stereoconv import PipelineConfig, convert
from stereoconv.farm import load_job

fail = failer("chunked")
DEFAULT_INPUT = SHARED_DATA / "videos" / "pyscenedetect" / "issue-134-rotate.mp4"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser("chunked", __doc__.splitlines()[0])
    args.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="a real clip with scene cuts and audio")
    args.add_argument("--chunk-seconds", type=float, default=3.0, help="chunk length for the chunked runs [s]")
    args.add_argument("--input-size", type=int, default=196, help="depth model input short side [px]")
    args.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    return args.parse_args(argv)


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(round(float(frame.pts * stream.time_base), 6))
    return frames, times


def timed_convert(source: Path, output: Path, config: PipelineConfig, **options: Any) -> float:
    return timed(lambda: convert(source, output, config, **options))[1]


def compare(single: Path, other: Path, work_dir: Path) -> dict[str, Any]:
    """Frame count, timestamps, and exactness per chunk kind (starting on a cut or mid-shot)."""
    a_frames, a_times = decoded(single)
    b_frames, b_times = decoded(other)
    job = load_job(work_dir / "job.json")
    on_cut, mid_shot = [], []
    for chunk in job.chunks:
        for index in range(chunk.first_frame, chunk.last_frame + 1):
            if index < len(a_frames) and index < len(b_frames):
                diff = np.abs(a_frames[index].astype(int) - b_frames[index].astype(int))
                (on_cut if chunk.starts_at_cut else mid_shot).append(diff)
    result: dict[str, Any] = {
        "frames": [len(a_frames), len(b_frames)],
        "timestamps_equal": a_times == b_times,
        "chunks": len(job.chunks),
        "chunks_on_cuts": sum(c.starts_at_cut for c in job.chunks),
        "on_cut_frames": len(on_cut),
        "on_cut_identical": all(not d.any() for d in on_cut),
        "mid_shot_frames": len(mid_shot),
        "mid_shot_max_abs": int(max((d.max() for d in mid_shot), default=0)),
        "mid_shot_mean_abs": float(np.mean([d.mean() for d in mid_shot])) if mid_shot else 0.0,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.input.exists():
        fail(f"input not found: {args.input}")
    print(facts_line(machine_facts()))
    with tempfile.TemporaryDirectory(prefix="stereoconv-chunked-") as tmp_name:
        tmp = Path(tmp_name)
        model = make_tiny_model(tmp / "model")
        config = PipelineConfig().replace({
            "depth.model": str(model), "depth.input_size": args.input_size, "output.crf": 0,
            "output.pix_fmt": "yuv444p", "output.preset": "ultrafast",
        })  # fmt: skip
        runs = {"single pass": timed_convert(args.input, tmp / "single.mkv", config)}
        runs["chunked, local"] = timed_convert(args.input, tmp / "local.mkv", config, work_dir=tmp / "work-local",
                                               chunk_seconds=args.chunk_seconds, keep_work_dir=True)  # fmt: skip
        checks = {"chunked, local": compare(tmp / "single.mkv", tmp / "local.mkv", tmp / "work-local")}
        if not args.no_ray:
            try:
                runs["chunked, ray"] = timed_convert(args.input, tmp / "ray.mkv", config, work_dir=tmp / "work-ray",
                                                     chunk_seconds=args.chunk_seconds, backend="ray",
                                                     keep_work_dir=True)  # fmt: skip
                checks["chunked, ray"] = compare(tmp / "single.mkv", tmp / "ray.mkv", tmp / "work-ray")
            except Exception as exc:  # Ray missing or unable to start: say so, keep the rest
                print(f"ray run skipped: {exc}")
    print(f"input: {args.input.name}, chunks of about {args.chunk_seconds:g} s, tiny model at {args.input_size} px\n")
    rows = [["run", "seconds", "x single pass"]]
    for name, seconds in runs.items():
        rows.append([name, f"{seconds:.2f}", f"{seconds / runs['single pass']:.2f}"])
    print(table(rows, [False, True, True]))
    print()
    rows = [["run", "frames", "timestamps", "chunks (on cuts)", "on-cut frames identical", "mid-shot max |diff|",
             "mid-shot mean |diff|"]]  # fmt: skip
    for name, c in checks.items():
        rows.append([name, f"{c['frames'][1]} / {c['frames'][0]}", "equal" if c["timestamps_equal"] else "DIFFER",
                     f"{c['chunks']} ({c['chunks_on_cuts']})",
                     f"{'yes' if c['on_cut_identical'] else 'NO'} ({c['on_cut_frames']})",
                     f"{c['mid_shot_max_abs']}", f"{c['mid_shot_mean_abs']:.3f}"])  # fmt: skip
    print(table(rows, [False, True, False, True, False, True, True]))
    finish(args.json, {"machine": machine_facts(), "runs": runs, "checks": checks})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
