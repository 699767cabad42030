"""Damaged inputs: corrupt packets and truncation convert what decodes (exit 5, losses listed) or fail cleanly.

The fuzz test damages real clips from ../shared/data and a synthetic one at random (seeded): truncation at a random
point, and byte flips in the middle third of the bytes holding the converted range. Every case runs through
``stereoconv convert`` in a worker subprocess under a timeout, so a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from synth import make_clip

from stereoconv.cli import main
from stereoconv.media import DecodeLosses, decode, probe

TINY = ["--set", "depth.input_size=56", "-q"]
CASES_PER_CLIP = 6
REAL_CLIPS = {"counter.mp4": 1.0, "fades.mp4": 2.0, "goldeneye-vfr-drop3.mp4": 2.0}  # name -> --end (s)


def video_byte_span(path: Path, end: float) -> tuple[int, int]:
    """First and last byte of the video packets before ``end`` seconds (where damage reaches the conversion)."""
    first, last = None, 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.pos is None or packet.pos < 0:
                continue
            if float(packet.pts * stream.time_base) >= end:
                continue
            first = packet.pos if first is None else min(first, packet.pos)
            last = max(last, packet.pos + packet.size)
    if first is None:
        return 0, path.stat().st_size
    return first, last


def garble_packets(path: Path, first: int, count: int, seed: int = 0) -> list[float]:
    """Overwrite the payload of video packets ``first`` .. ``first + count - 1`` (in file order) with random bytes
    (seeded), in place: packets the decoder rejects in the middle of the file. Returns the times (s) of those
    packets. In MP4 the container stays readable, so only those frames are lost."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pos, p.size, float(p.pts * stream.time_base)) for p in container.demux(stream) if p.size]
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for pos, size, _ in packets[first : first + count]:
        data[pos + 2 : pos + size] = bytes(rng.randrange(256) for _ in range(size - 2))
    path.write_bytes(bytes(data))
    return [t for _, _, t in packets[first : first + count]]


class PixelDepth:
    """A depth estimator computed from the pixels alone (brightness, larger = nearer): the same frame gets the same
    depth whatever came before it or which chunk decodes it, damaged (error-concealed) frames included."""

    batch_size = 3

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [frame.astype(np.float32).mean(axis=2) / 255.0 + 1.0 for frame in frames]


def damage(data: bytes, kind: str, span: tuple[int, int], rng: random.Random) -> bytes:
    if kind == "truncate":
        return data[: rng.randrange(len(data) // 20, len(data) * 19 // 20)]
    lo, hi = span
    third = max((hi - lo) // 3, 1)
    buf = bytearray(data)
    for _ in range(20):
        pos = rng.randrange(lo + third, min(lo + 2 * third, len(buf)))
        buf[pos] ^= rng.randrange(1, 256)
    return bytes(buf)


def run_case(source: Path, out: Path, model: str, end: float | None) -> dict[str, object]:
    """One conversion in this process; its exit code, stderr lines and what it left in the output folder."""
    err = io.StringIO()
    args = ["convert", str(source), str(out), "--model", model, *TINY]
    if end is not None:
        args += ["--end", str(end)]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    result: dict[str, object] = {
        "case": source.name,
        "code": code,
        "stderr": [line for line in err.getvalue().splitlines() if line.strip()],
        "left": sorted(p.name for p in out.parent.iterdir()),
        "decodes": None,
    }
    if out.exists():
        try:
            with av.open(str(out)) as container:
                result["decodes"] = sum(1 for _ in container.decode(video=0))
        except av.error.FFmpegError as exc:
            result["decodes"] = f"error: {exc}"
    return result


def worker(model: str, cases: list[tuple[str, str, float | None]]) -> None:
    """Run every (source, output, end) case and print one JSON result per line."""
    for source, out, end in cases:
        print(json.dumps(run_case(Path(source), Path(out), model, end)), flush=True)


def make_cases(clip: Path, end: float | None, root: Path, seed: int) -> list[tuple[str, str, float | None]]:
    rng = random.Random(seed)
    data = clip.read_bytes()
    span = video_byte_span(clip, end if end is not None else 1e9)
    cases = []
    for k in range(CASES_PER_CLIP):
        kind = "truncate" if k % 2 == 0 else "flip"
        folder = root / f"{clip.name}-{k}-{kind}"
        folder.mkdir()
        source = folder / f"in{clip.suffix}"
        source.write_bytes(damage(data, kind, span, rng))
        cases.append((str(source), str(folder / "out.mkv"), end))
    return cases


def classify(result: dict[str, object]) -> str:
    """clean (exit 0), error (exit 3, clean), partial (exit 5, reported) or crash (anything else)."""
    code, lines, left = result["code"], result["stderr"], result["left"]
    source = str(result["case"])
    if code == 0:
        ok = left == sorted([source, "out.mkv"]) and isinstance(result["decodes"], int) and result["decodes"] > 0
        return "clean" if ok and not any("Traceback" in line for line in lines) else "crash"
    if not lines or not str(lines[-1]).startswith("stereoconv: ") or any("Traceback" in line for line in lines):
        return "crash"
    if code == 3:
        ok = left == [source] and str(lines[-1]).startswith("stereoconv: error: ") and len(lines) == 1
        return "error" if ok else "crash"
    if code == 5:
        ok = left == sorted([source, "out.mkv"]) and isinstance(result["decodes"], int) and result["decodes"] > 0
        ok = ok and str(lines[-1]).startswith("stereoconv: completed with losses: ")
        ok = ok and all(line.startswith("stereoconv: warning: ") for line in lines[:-1])
        return "partial" if ok else "crash"
    return "crash"


def test_fuzz_damaged_inputs_never_hang_or_crash(tmp_path, tiny_model):
    from conftest import VIDEOS

    clips: list[tuple[Path, float | None]] = [
        (make_clip(tmp_path / "synthetic.mkv", (15, 15), audio=True).path, None),
        (make_clip(tmp_path / "synthetic.mp4", (15, 15), audio=True).path, None),
    ]
    clips += [(VIDEOS / name, end) for name, end in REAL_CLIPS.items() if (VIDEOS / name).exists()]
    cases = []
    for seed, (clip, end) in enumerate(clips):
        cases += make_cases(clip, end, tmp_path, seed)

    spec = json.dumps([str(tiny_model), cases])
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_damaged as t; "
    code += f"t.worker(*json.loads({spec!r}))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the damaged inputs hung a conversion: {exc.stdout!r}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases), proc.stderr[-3000:]

    counts = {"clean": 0, "error": 0, "partial": 0, "crash": 0}
    crashes = []
    for case, result in zip(cases, results, strict=True):
        kind = classify(result)
        counts[kind] += 1
        if kind == "crash":
            crashes.append((Path(case[0]).parent.name, result))
    print(f"\nfuzz: {len(cases)} cases: {counts}")
    assert counts["crash"] == 0, crashes
    assert counts["partial"] > 0, counts  # the synthetic mkv truncations at least convert with losses


def test_strict_decode_raises_and_tolerant_decode_records(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", (20, 20))
    data = clip.path.read_bytes()
    clip.path.write_bytes(data[: len(data) * 2 // 3])
    info = probe(clip.path)

    from stereoconv.errors import MediaError

    with pytest.raises(MediaError, match="truncated or damaged"):
        list(decode(info))
    losses = DecodeLosses()
    frames = list(decode(info, losses=losses))
    assert losses and losses.frames_lost > 0 and len(losses.ranges) == 1
    start, end = losses.ranges[0]
    assert frames[-1].time < start < end
    assert abs(len(frames) + losses.frames_lost - 40) <= 2
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(a.pts < b.pts for a, b in itertools.pairwise(frames))


def test_clean_input_has_no_losses(two_shot_clip):
    losses = DecodeLosses()
    frames = list(decode(probe(two_shot_clip.path), losses=losses))
    assert len(frames) == 22
    assert not losses and losses.ranges == [] and losses.summary() == "no frames lost"


def cfr_clip_with_a_gap(path: Path, kept: Sequence[int], rate: int = 24) -> Path:
    """A constant-rate clip holding only the frames ``kept`` (by their pts): what a demuxer that silently skipped a
    broken Matroska cluster delivers."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qp": "0", "bframes": "0"}
        for i in kept:
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 5) % 256, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_silent_timestamp_jump_in_a_constant_rate_stream_is_a_loss(tmp_path):
    clip = cfr_clip_with_a_gap(tmp_path / "gap.mkv", [*range(40), *range(120, 160)])
    info = probe(clip)
    assert info.constant_rate
    losses = DecodeLosses()
    assert len(list(decode(info, losses=losses))) == 80
    assert losses.frames_lost == 80 and len(losses.ranges) == 1  # frames 40 to 119
    start, end = losses.ranges[0]
    assert start == pytest.approx(40 / 24, abs=1e-3) and end == pytest.approx(120 / 24, abs=1e-3)
    from stereoconv.errors import MediaError

    with pytest.raises(MediaError, match=r"about 80 frames missing between 1\.667 s and 5\.000 s"):
        list(decode(info))
    # The same clip without the gap has no loss: the rule does not fire on regular timestamps.
    whole = cfr_clip_with_a_gap(tmp_path / "steady.mkv", range(60))
    losses = DecodeLosses()
    assert len(list(decode(probe(whole), losses=losses))) == 60 and not losses
