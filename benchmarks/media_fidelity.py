#!/usr/bin/env python
"""What the output keeps (issue 7): every kind of input converted through ``stereoconv.convert``, and what came out.

Each kind of input is made in a temporary folder with PyAV (the makers of tests/ where they fit: ``synth.make_clip``,
``test_streams.make_rich_clip``, ``test_colour.make_source``, ``test_geometry.write_yuv``,
``test_damaged.garble_packets``), or is a real clip from ../shared/data/videos/pyscenedetect (skipped, with the
reason printed, where the folder is absent). Every one is converted by the public API with the default settings
(half side-by-side, libx264 crf 18 preset medium, ``--pix-fmt source``, ``--audio copy``) plus the few the kind is
about, and a cheap depth estimator (a left-to-right ramp: no model). libx265 runs only in child processes: it has
corrupted the heap in-process here (see tests/test_colour.py).

Per kind it records the exit code the CLI would give (0; 5 when ``result.losses`` lost frames; a
``StereoconvError``'s ``exit_code``; 1 for any other exception, a crash), ``result.notes``, the losses, and, read
back from the input (over the converted range) and from the output with PyAV: the video stream (codec, pixel
format, size, sample aspect ratio, rotation of the first frame, colour tags, HDR10 static metadata of the first frame
via ``stereoconv.colour.Hdr10Metadata.from_frame``, Matroska stereo mode), every audio and subtitle stream (codec,
language, title, disposition; for audio the seconds its packets span), chapters, the global title, and every frame's
timestamp. From those it lists the findings: what the output lost or changed that README.md's "What the output keeps"
says it keeps (audio streams, their tags and span; subtitles in MKV; chapters; title; bit depth, colour tags and HDR10
metadata unless the output is 8-bit or anaglyph; SAR; upright frames; the packed size; every timestamp; every frame
unless a loss is reported, and reported loss ranges where the frames are missing), a crash, a file left by a
failed run, and an exit code the kind did not expect.

Columns of the table: kind (the input, ``in->out`` containers) | exit | video out (codec, pixel format, size; SAR
and rotation where either side has one) | colour out (matrix/primaries/transfer/range; the input's where they
differ; HDR10 metadata) | audio/subs/chapters (output of input counts, languages, title) | timing (frames made or in
the range -> frames out, ``vfr`` for a variable-rate input, whether every output timestamp is an input timestamp) |
notes (``result.notes``, shortened, the losses and the error). The same, in full, goes to ``--json``.

No time is asserted; the whole run takes about a minute on 2 CPU cores (``--quick``, without the 8K frames and the
real clips, about 10 s).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from _common import REPO, SHARED_DATA, facts_line, finish, machine_facts, markdown, parser, source_line, source_state

sys.path.insert(0, str(REPO / "tests"))
from synth import _write_tone, make_clip, shot_frames
from test_colour import HDR10, MASTERING, PQ_100_NITS, make_source
from test_damaged import garble_packets
from test_geometry import write_yuv
from test_streams import make_rich_clip

from stereoconv import PipelineConfig, convert
from stereoconv.colour import Hdr10Metadata
from stereoconv.errors import EXIT_COMPLETED_WITH_LOSSES, StereoconvError
from stereoconv.media import MIN_SIZE
from stereoconv.packing import packed_size

BENCH = Path(__file__).resolve().parent
VIDEOS = SHARED_DATA / "videos" / "pyscenedetect"
REAL_SECONDS = 3.0  # media.end for the real clips
TIME_TOLERANCE = 0.0006  # s: Matroska stores timestamps in whole milliseconds
HDR_TRC = (16, 18)  # PQ, HLG

# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange codes, as short names.
MATRICES = {0: "rgb", 1: "709", 2: "unspec", 5: "470bg", 6: "170m", 9: "2020nc", 10: "2020c"}
PRIMARIES = {1: "709", 2: "unspec", 5: "470bg", 6: "170m", 9: "2020"}
TRANSFERS = {1: "709", 2: "unspec", 6: "601", 13: "srgb", 14: "2020-10", 16: "pq", 18: "hlg"}
RANGES = {0: "unspec", 1: "tv", 2: "pc"}


class Ramp:
    """Depth estimator: a left-to-right ramp (nearer to the right), as tests/test_colour.py's FlatDepth. No model."""

    batch_size = 4

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.tile(np.linspace(0, 1, f.shape[1], dtype=np.float32), (f.shape[0], 1)) for f in frames]


# ------------------------------------------------------------------------------------------------------ inputs

Made = tuple[Path, int | None]  # the input file, and the frames it was made with (None: a real clip)
TRACKS = (("eng", "English", av.stream.Disposition.default), ("fra", "Français", av.stream.Disposition.forced))
MS = Fraction(1, 1000)


def make_tracks(path: Path, *, tracks: int = 2, chapters: bool = False, title: str | None = None) -> Made:
    """1 s, 96x64 lossless video with ``tracks`` AAC tracks tagged as in tests/test_streams.py (eng "English"
    default, fra "Français" forced), optionally two chapters and a global title."""
    frames, _ = shot_frames(24, 64, 96, seed=5)
    with av.open(str(path), "w") as out:
        if title:
            out.metadata["title"] = title
        video = out.add_stream("libx264rgb", rate=24)
        video.width, video.height, video.pix_fmt = 96, 64, "rgb24"
        video.options = {"qp": "0", "preset": "ultrafast"}
        audio = []
        for language, name, disposition in TRACKS[:tracks]:
            stream = out.add_stream("aac", rate=48000)
            stream.layout = "stereo"
            stream.metadata["language"], stream.metadata["title"] = language, name
            stream.disposition = disposition
            audio.append(stream)
        if chapters:
            out.set_chapters([
                {"id": 1, "start": 0, "end": 500, "time_base": MS, "metadata": {"title": "One"}},
                {"id": 2, "start": 500, "end": 1000, "time_base": MS, "metadata": {"title": "Two"}},
            ])  # fmt: skip
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for stream in audio:
            _write_tone(out, stream, 1.0)
    return path, len(frames)


def make_rich(path: Path) -> Made:
    """tests/test_streams.py's clip: 2 tagged AAC tracks, an SRT track (eng), 2 chapters, a title; 24 frames."""
    make_rich_clip(path)
    return path, 24


def make_colour(path: Path, luma: int, **tags: Any) -> Made:
    """tests/test_colour.py's 64x48 lossless libx264 clip (10-bit unless ``pix_fmt``), 6 frames."""
    make_source(path, luma, **tags)
    return path, 6


def write_hevc(path: str, x265_params: str, luma: int) -> str:
    """(Child process only: libx265.) 6 frames of lossless 10-bit HEVC, 64x48, BT.2020 PQ, luma ``luma``, as
    tests/test_colour.py's HEVC_SCRIPT makes them."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx265", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        cc = stream.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 9, 1, 9, 16
        stream.options = {"x265-params": "lossless=1:log-level=error:" + x265_params}
        for i in range(6):
            plane = np.full((72, 64), 512, np.uint16)
            plane[:48] = luma
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p10le")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def in_child(function: str, *args: Any, timeout: float = 600) -> tuple[Any, str | None]:
    """``function(*args)`` of this module in a child process: (its JSON result, None), or (None, why it failed)."""
    code = (f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); import media_fidelity as m; "
            f"print(json.dumps(m.{function}(*json.loads(sys.argv[1]))))")  # fmt: skip
    try:
        run = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                             timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"child process timed out after {timeout:g} s"
    lines = [line for line in run.stdout.splitlines() if line.startswith(("{", "[", '"'))]
    if run.returncode != 0 or not lines:
        how = f"killed by signal {-run.returncode}" if run.returncode < 0 else f"exit {run.returncode}"
        tail = " / ".join(run.stderr.strip().splitlines()[-3:])
        return None, f"child process {how}: {tail}"
    return json.loads(lines[-1]), None


def make_hevc(path: Path) -> Made:
    params = f"master-display={MASTERING}:max-cll=1000,400"
    _, error = in_child("write_hevc", str(path), params, PQ_100_NITS)
    if error is not None:
        raise RuntimeError(f"making the HEVC source failed: {error}")
    return path, 6


def make_small(path: Path, width: int, height: int) -> Made:
    clip = make_clip(path, (5, 4), width=width, height=height)
    return path, len(clip.frames)


def make_flat(path: Path, width: int, height: int, frames: int) -> Made:
    """libx264 yuv420p frames of flat grey levels (tests/test_geometry.py's ``write_yuv``)."""
    write_yuv(path, [np.full((height, width, 3), 60 + 100 * (i % 2), np.uint8) for i in range(frames)])
    return path, frames


def make_interlaced(path: Path) -> Made:
    frames, _ = shot_frames(10, 64, 96, seed=3)
    write_yuv(path, frames, interlaced=True)
    return path, len(frames)


def make_vfr(path: Path) -> Made:
    clip = make_clip(path, (12, 12), audio=True, vfr=True)
    return path, len(clip.frames)


def make_corrupt(path: Path) -> Made:
    """30 frames with audio; video packets 12-14 (of 30, in file order) overwritten with random bytes."""
    clip = make_clip(path, (15, 15), audio=True)
    garble_packets(path, 12, 3)
    return path, len(clip.frames)


def make_truncated(path: Path) -> Made:
    """40 frames with audio, the file cut at two thirds of its bytes."""
    clip = make_clip(path, (20, 20), audio=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path, len(clip.frames)


def real_clip(name: str) -> Callable[[Path], Made]:
    def make(folder: Path) -> Made:
        return VIDEOS / name, None

    return make


# ------------------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One kind of input: ``make(path)`` builds it at ``path`` (``name`` + ``ext`` in the case's folder); it is
    converted to ``out_ext`` with ``settings`` (dotted keys) on top of the defaults; ``expect_exit``: the exit codes
    that are right for it; ``quick``: run with --quick too; ``child``: convert in a child process (libx265)."""

    kind: str
    source: str
    ext: str
    make: Callable[[Path], Made]
    out_ext: str
    settings: dict[str, Any] = field(default_factory=dict)
    expect_exit: tuple[int, ...] = (0,)
    quick: bool = True
    child: bool = False
    real: bool = False


PQ = {"colorspace": 9, "primaries": 9, "trc": 16, "x264_params": HDR10}
END = {"media.end": REAL_SECONDS}

# fmt: off
CASES = [
    Case("2 audio, tags (mp4->mp4)", "96x64, 2 AAC: eng English default, fra Français forced", ".mp4",
         make_tracks, ".mp4"),
    Case("2 audio, tags (mkv->mkv)", "as above, in MKV", ".mkv", make_tracks, ".mkv"),
    Case("SRT + 2 audio + chapters + title (mkv->mkv)", "tests/test_streams.py make_rich_clip", ".mkv",
         make_rich, ".mkv"),
    Case("SRT + 2 audio + chapters + title (mkv->mp4)", "the same into MP4: SRT dropped with a note", ".mkv",
         make_rich, ".mp4"),
    Case("same, --start 0.5 (mkv->mkv)", "make_rich_clip from 0.5 s: chapter Two shifted to 0", ".mkv",
         make_rich, ".mkv", {"media.start": 0.5}),
    Case("chapters + title, 1 audio (mp4->mp4)", "2 chapters, title 'My Film', 1 AAC track", ".mp4",
         lambda p: make_tracks(p, tracks=1, chapters=True, title="My Film"), ".mp4"),
    Case("10-bit H.264 SDR (mkv->mkv)", "yuv420p10le BT.709, luma 504", ".mkv",
         lambda p: make_colour(p, 504), ".mkv"),
    Case("10-bit PQ BT.2020 HDR10, x264 (mkv->mp4)", "libx264 high10, mastering display + MaxCLL as SEI", ".mkv",
         lambda p: make_colour(p, PQ_100_NITS, **PQ), ".mp4"),
    Case("10-bit HEVC PQ HDR10 (mkv->mkv, x264)", "libx265 source (child process), default libx264 out", ".mkv",
         make_hevc, ".mkv"),
    Case("10-bit HEVC PQ HDR10 (mkv->mkv, x265)", "the same, output.codec libx265 (child process)", ".mkv",
         make_hevc, ".mkv", {"output.codec": "libx265"}, child=True),
    Case("10-bit HLG BT.2020 (mkv->mkv)", "yuv420p10le, transfer arib-std-b67, no HDR10 metadata", ".mkv",
         lambda p: make_colour(p, 504, colorspace=9, primaries=9, trc=18), ".mkv"),
    Case("PQ HDR10 -> 8-bit (mkv->mkv)", "output.pix_fmt yuv420p: tone-mapped SDR with a note", ".mkv",
         lambda p: make_colour(p, PQ_100_NITS, **PQ), ".mkv", {"output.pix_fmt": "yuv420p"}),
    Case("PQ HDR10 -> anaglyph (mkv->mkv)", "output.format anaglyph: tone-mapped SDR with a note", ".mkv",
         lambda p: make_colour(p, PQ_100_NITS, **PQ), ".mkv", {"output.format": "anaglyph"}),
    Case("VFR synthetic (mp4->mp4)", "24 frames of 1, 1.5, 0.7 frame durations, AAC", ".mp4", make_vfr, ".mp4"),
    Case("VFR synthetic (mp4->mkv)", "the same into MKV (1 ms timestamps)", ".mp4", make_vfr, ".mkv"),
    Case("odd size 101x77", "make_clip 101x77, 9 frames", ".mp4", lambda p: make_small(p, 101, 77), ".mp4"),
    Case("tiny 64x36", "make_clip 64x36, 9 frames", ".mp4", lambda p: make_small(p, 64, 36), ".mp4"),
    Case(f"smallest {MIN_SIZE[0]}x{MIN_SIZE[1]}", "make_clip at media.MIN_SIZE, 9 frames", ".mp4",
         lambda p: make_small(p, *MIN_SIZE), ".mp4"),
    Case("too small 8x8", "libx264 8x8, 3 frames: refused", ".mp4", lambda p: make_flat(p, 8, 8, 3), ".mp4",
         expect_exit=(3,)),
    Case("8K 7680x4320", "libx264 7680x4320, 2 frames", ".mp4", lambda p: make_flat(p, 7680, 4320, 2), ".mp4",
         quick=False),
    Case("interlaced TFF (mp4->mp4)", "libx264 interlaced=1:tff=1, 10 frames", ".mp4", make_interlaced, ".mp4"),
    Case("interlaced TFF, --deinterlace", "the same with media.deinterlace (bwdif)", ".mp4", make_interlaced,
         ".mp4", {"media.deinterlace": True}),
    Case("corrupt packets (mp4->mp4)", "30 frames + AAC, video packets 12-14 garbled", ".mp4", make_corrupt,
         ".mp4", expect_exit=(5,)),
    Case("corrupt packets, --strict", "the same with media.strict: exit 3, no output", ".mp4", make_corrupt,
         ".mp4", {"media.strict": True}, expect_exit=(3,)),
    Case("truncated (mkv->mkv)", "40 frames + AAC, cut at 2/3 of the bytes", ".mkv", make_truncated, ".mkv",
         expect_exit=(5,)),
    Case("truncated (mp4->mp4)", "the same as MP4 (moov at the end: unreadable)", ".mp4", make_truncated, ".mp4",
         expect_exit=(3, 5)),
    Case("real: goldeneye-vfr-drop3 (VFR)", f"1280x544 VFR, first {REAL_SECONDS:g} s", ".mp4",
         real_clip("goldeneye-vfr-drop3.mp4"), ".mp4", END, quick=False, real=True),
    Case("real: issue-134-rotate (rotated, audio)", f"1280x544 stored, rotation -90, AAC; {REAL_SECONDS:g} s",
         ".mp4", real_clip("issue-134-rotate.mp4"), ".mp4", END, quick=False, real=True),
    Case("real: issue-195-aspect-ratio (mp4)", f"704x576 SAR 16:11, AAC eng; {REAL_SECONDS:g} s", ".mp4",
         real_clip("issue-195-aspect-ratio.mp4"), ".mp4", END, quick=False, real=True),
    Case("real: issue-195-aspect-ratio (mkv)", "the same into MKV", ".mp4", real_clip("issue-195-aspect-ratio.mp4"),
         ".mkv", END, quick=False, real=True),
]
# fmt: on


# ---------------------------------------------------------------------------------------------------- convert


def convert_record(source: str, output: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Convert ``source`` to ``output`` here; what the conversion said: the exit code the CLI would give, the error
    (class, message), the frames converted, ``notes`` and the losses. JSON-ready (also run in a child process)."""
    record: dict[str, Any] = {"exit": None, "error": None, "frames": None, "notes": [], "losses": None, "cuts": None}
    try:
        result = convert(source, output, PipelineConfig().replace(settings), estimator=Ramp())
    except StereoconvError as exc:
        record["exit"] = exc.exit_code
        record["error"] = {"class": type(exc).__name__, "message": str(exc), "crash": False}
        return record
    except Exception as exc:  # not a StereoconvError: the CLI exits 1 with it, and it is a finding
        record["exit"] = 1
        record["error"] = {"class": type(exc).__name__, "message": str(exc), "crash": True,
                           "traceback": traceback.format_exc(limit=-4)}  # fmt: skip
        return record
    losses = result.losses
    record["exit"] = EXIT_COMPLETED_WITH_LOSSES if losses else 0
    record["frames"], record["notes"], record["cuts"] = result.frames, list(result.notes), list(result.cuts)
    if losses is not None:
        record["losses"] = {**dataclasses.asdict(losses), "summary": losses.summary(), "lines": losses.lines()}
    return record


# ---------------------------------------------------------------------------------------------------- inspect


def stream_tags(stream: av.stream.Stream) -> dict[str, Any]:
    """Codec, language, title and disposition. "und" (undetermined) is no language: FFmpeg's Matroska demuxer
    reports none for it. The title is "title", or "name" where FFmpeg's MP4 demuxer puts a track's title (udta
    name); ``tags``: every metadata entry as read."""
    disposition = [f.name for f in av.stream.Disposition if f.value and stream.disposition & f]
    metadata = dict(stream.metadata)
    language = metadata.get("language")
    return {"codec": stream.codec_context.name, "language": None if language == "und" else language,
            "title": metadata.get("title") or metadata.get("name"), "disposition": disposition,
            "tags": metadata}  # fmt: skip


def inspect(path: Path, start: float = 0.0, end: float | None = None) -> dict[str, Any]:
    """What a media file holds, read with PyAV: container, global title, chapters (those overlapping
    ``[start, end)``, as (title, start s, end s)), audio and subtitle streams (codec, language, title, disposition)
    and the video stream with the timestamps (s) of the frames in ``[start, end)``. Damaged files are read
    tolerantly: undecodable packets are counted and skipped."""
    facts: dict[str, Any] = {"error": None, "container": None, "title": None, "chapters": [], "audio": [],
                             "subtitles": [], "other_streams": [], "video": None}  # fmt: skip
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts
    with container:
        facts["container"] = container.format.name
        facts["title"] = container.metadata.get("title")
        for chapter in container.chapters():
            tb = chapter["time_base"]
            begin, finish = float(chapter["start"] * tb), float(chapter["end"] * tb)
            if finish > start and (end is None or begin < end):
                facts["chapters"].append((chapter["metadata"].get("title"), round(begin, 3), round(finish, 3)))
        facts["audio"] = [stream_tags(s) for s in container.streams.audio]
        facts["subtitles"] = [stream_tags(s) for s in container.streams.subtitles]
        # Data streams etc.: in MP4 output, FFmpeg's QuickTime chapter text track.
        others = [s for s in container.streams if s.type not in ("video", "audio", "subtitle")]
        facts["other_streams"] = [{"type": s.type, "tags": dict(s.metadata)} for s in others]
        if container.streams.video:
            facts["video"] = video_facts(container, container.streams.video[0], start, end)
    for stream, span in zip(facts["audio"], audio_spans(path, start, end), strict=True):
        stream["span"] = span
    return facts


def audio_spans(path: Path, start: float, end: float | None) -> list[list[float] | None]:
    """Per audio stream, the [first, last] seconds its packets starting in ``[start, end)`` cover (None if none)."""
    with av.open(str(path)) as container:
        streams = list(container.streams.audio)
        order = {s.index: i for i, s in enumerate(streams)}
        spans: list[list[float] | None] = [None] * len(streams)
        if not streams:
            return spans
        try:
            for packet in container.demux(*streams):
                if packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                if t < start - 1e-6 or (end is not None and t >= end):
                    continue
                finish = t + float((packet.duration or 0) * packet.time_base)
                i = order[packet.stream.index]
                old = spans[i]
                spans[i] = [round(t, 4), round(finish, 4)] if old is None else [old[0], round(max(old[1], finish), 4)]
        except av.error.FFmpegError:
            pass  # a damaged file: what was read
    return spans


def video_facts(container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: float,
                end: float | None) -> dict[str, Any]:  # fmt: skip
    cc = stream.codec_context
    sar = cc.sample_aspect_ratio or stream.sample_aspect_ratio or Fraction(1)
    facts: dict[str, Any] = {
        "codec": cc.name, "pix_fmt": cc.format.name if cc.format else None, "width": cc.width, "height": cc.height,
        "sar": f"{sar.numerator}:{sar.denominator}", "field_order": int(cc.field_order or 0),
        "stereo_mode": stream.metadata.get("stereo_mode"), "time_base": str(stream.time_base),
        "rotation": None, "colour": None, "hdr10": None, "times": [], "decode_errors": 0, "corrupt_frames": 0,
        "interlaced_frames": 0,
    }  # fmt: skip
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError:
            facts["decode_errors"] += 1
            break
        if end is not None and packet.dts is not None and float(packet.dts * stream.time_base) > end + 2.0:
            break
        try:
            decoded = packet.decode()
        except av.error.FFmpegError:
            facts["decode_errors"] += 1
            continue
        for frame in decoded:
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            if t < start - 1e-6 or (end is not None and t >= end - 1e-6):
                continue
            if facts["colour"] is None:
                facts["pix_fmt"] = frame.format.name
                facts["rotation"] = round(frame.rotation)
                facts["colour"] = [int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc),
                                   int(frame.color_range)]  # fmt: skip
                hdr10 = Hdr10Metadata.from_frame(frame)
                facts["hdr10"] = dataclasses.asdict(hdr10) if hdr10 is not None else None
            facts["times"].append(round(t, 6))
            facts["corrupt_frames"] += int(frame.is_corrupt)
            facts["interlaced_frames"] += int(frame.interlaced_frame)
    facts["times"].sort()
    return facts


# --------------------------------------------------------------------------------------------------- compare


def bits(pix_fmt: str | None) -> int:
    return max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8) if pix_fmt else 0


def upright(video: dict[str, Any]) -> tuple[int, int]:
    w, h = video["width"], video["height"]
    return (h, w) if (video["rotation"] or 0) % 180 else (w, h)


def compare_times(source: list[float], output: list[float], start: float) -> dict[str, Any]:
    """Whether every output frame shows at an input frame's time (output times are shifted back by ``start``)."""
    shifted = [t + start for t in output]
    if not source or not shifted:
        return {"verdict": "none", "max_ms": None}
    if len(source) == len(shifted):
        worst = max(abs(a - b) for a, b in zip(source, shifted, strict=True))
        verdict = "kept" if worst <= 1e-6 else "kept, ms" if worst <= TIME_TOLERANCE else "DIFFER"
        return {"verdict": verdict, "max_ms": round(worst * 1000, 3)}
    grid = np.asarray(source)
    nearest = [float(np.min(np.abs(grid - t))) for t in shifted]
    worst = max(nearest)
    return {"verdict": "subset" if worst <= TIME_TOLERANCE else "DIFFER", "max_ms": round(worst * 1000, 3)}


def is_vfr(times: list[float]) -> bool:
    steps = np.diff(times)
    return len(steps) > 1 and float(steps.max()) > 1.05 * float(steps.min())


def findings(case: Case, record: dict[str, Any]) -> list[str]:
    """What the output lost or changed that "What the output keeps" says it keeps, and an unexpected exit code."""
    found = []
    if record["exit"] not in case.expect_exit:
        found.append(f"exit {record['exit']}, expected {' or '.join(map(str, case.expect_exit))}")
    if record["error"] and record["error"]["crash"]:
        found.append(f"crashed with {record['error']['class']} (not a StereoconvError)")
    source, output = record["input"], record["output"]
    if record["exit"] in (0, 5) and output is None:
        found.append("no output file")
    if output is not None and record["exit"] not in (0, 5):
        found.append("an output file was left by a failed conversion")
    if record["left_files"]:
        found.append(f"files left beside the output: {', '.join(record['left_files'])}")
    if output is None or source["video"] is None or output["video"] is None:
        return found
    settings = case.settings
    if settings.get("output.audio", "copy") != "none":
        a, b = source["audio"], output["audio"]
        if len(b) != len(a):
            found.append(f"audio streams {len(b)} of {len(a)}")
        else:
            for key in ("language", "title", "disposition"):
                if [s[key] for s in a] != [s[key] for s in b]:
                    found.append(f"audio {key} {[s[key] for s in a]} -> {[s[key] for s in b]}")
            shift = settings.get("media.start", 0.0)
            for i, (sa, sb) in enumerate(zip(a, b, strict=True)):
                if sa["span"] is None or sb["span"] is None:
                    continue
                want = [max(sa["span"][0], shift) - shift, sa["span"][1] - shift]
                if abs(sb["span"][0] - want[0]) > 0.1 or abs(sb["span"][1] - want[1]) > 0.1:
                    found.append(f"audio {i} spans {sb['span'][0]:.3f}-{sb['span'][1]:.3f} s, the input's range "
                                 f"{want[0]:.3f}-{want[1]:.3f} s")  # fmt: skip
    if len(output["subtitles"]) < len(source["subtitles"]) and case.out_ext == ".mkv":
        found.append(f"subtitle streams {len(output['subtitles'])} of {len(source['subtitles'])} in MKV")
    if len(output["chapters"]) != len(source["chapters"]):
        found.append(f"chapters {len(output['chapters'])} of {len(source['chapters'])}")
    else:
        for (title_a, a0, a1), (title_b, b0, b1) in zip(source["chapters"], output["chapters"], strict=True):
            shift = settings.get("media.start", 0.0)
            want = (max(a0 - shift, 0.0), a1 - shift if "media.end" not in settings else None)
            if title_a != title_b or abs(b0 - want[0]) > 0.002 or (want[1] is not None and abs(b1 - want[1]) > 0.002):
                found.append(f"chapter {title_a!r} {a0}-{a1} s -> {title_b!r} {b0}-{b1} s")
    if source["title"] and output["title"] != source["title"]:
        found.append(f"title {source['title']!r} -> {output['title']!r}")
    sv, ov = source["video"], output["video"]
    sdr_out = settings.get("output.pix_fmt") == "yuv420p" or settings.get("output.format") == "anaglyph"
    if not sdr_out:
        if bits(ov["pix_fmt"]) < bits(sv["pix_fmt"]):
            found.append(f"bit depth {bits(sv['pix_fmt'])} -> {bits(ov['pix_fmt'])}")
        # What the source tags (not unspecified) must be kept; an RGB source's matrix and range cannot be (the
        # output is YUV, limited range).
        tagged = [i for i in range(3) if sv["colour"] and sv["colour"][i] != 2 and (i or sv["colour"][0] != 0)]
        if sv["colour"] and ov["colour"] and any(sv["colour"][i] != ov["colour"][i] for i in tagged):
            found.append(f"colour tags {colour_text(sv['colour'])} -> {colour_text(ov['colour'])}")
        if sv["hdr10"] and ov["hdr10"] != sv["hdr10"]:
            found.append("HDR10 metadata lost" if not ov["hdr10"] else "HDR10 metadata changed")
    elif ov["colour"] and ov["colour"][2] in HDR_TRC:
        found.append("an SDR output is still tagged HDR")
    if ov["sar"] != sv["sar"] and not ((sv["rotation"] or 0) % 180):
        found.append(f"SAR {sv['sar']} -> {ov['sar']}")
    if ov["rotation"]:
        found.append(f"output carries rotation {ov['rotation']} (frames should be upright)")
    want = packed_size(*upright(sv), settings.get("output.format", "half-sbs"))
    if (ov["width"], ov["height"]) != want:
        found.append(f"size {ov['width']}x{ov['height']}, expected {want[0]}x{want[1]}")
    timing = record["timing"]
    if timing["verdict"] == "DIFFER":
        found.append(f"timestamps differ from the input's (by up to {timing['max_ms']} ms)")
    if record["exit"] == 0 and len(ov["times"]) != len(sv["times"]):
        found.append(f"{len(ov['times'])} frames out of {len(sv['times'])} in, with no loss reported")
    if record["frames"] is not None and record["frames"] != len(ov["times"]):
        found.append(f"result.frames {record['frames']}, the output decodes to {len(ov['times'])}")
    found += misplaced_losses(record, ov["times"])
    return found


def misplaced_losses(record: dict[str, Any], output_times: list[float]) -> list[str]:
    """Gaps in the output's timestamps (a constant-rate source: more than 1.5 frame steps) that no reported loss
    range starts at (within half a step): the losses name the wrong place."""
    losses = record["losses"]
    if not losses or not losses["ranges"] or len(output_times) < 3:
        return []
    times = [t + record["settings"].get("media.start", 0.0) for t in output_times]
    step = float(np.median(np.diff(times)))
    found = []
    for a, b in itertools.pairwise(times):
        if b - a > 1.5 * step and not any(abs(start - (a + step)) <= step / 2 for start, _ in losses["ranges"]):
            ranges = ", ".join(f"{x:.3f}-{y:.3f}" for x, y in losses["ranges"])
            found.append(f"frames {a + step:.3f}-{b - step:.3f} s are missing, the losses say {ranges} s")
    return found


# ------------------------------------------------------------------------------------------------------- run


def run_case(case: Case, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    source, made = case.make(folder / f"in{case.ext}")
    output = folder / f"out{case.out_ext}"
    started = time.perf_counter()
    if case.child:
        record, error = in_child("convert_record", str(source), str(output), case.settings)
        if record is None:
            record = {"exit": None, "error": {"class": "ChildProcess", "message": error, "crash": True},
                      "frames": None, "notes": [], "losses": None, "cuts": None}  # fmt: skip
    else:
        record = convert_record(str(source), str(output), case.settings)
    record["seconds"] = round(time.perf_counter() - started, 2)
    record["left_files"] = sorted(f.name for f in folder.iterdir() if f.name not in (source.name, output.name))
    start, end = case.settings.get("media.start", 0.0), case.settings.get("media.end")
    record = {"kind": case.kind, "source": case.source, "input_file": str(source), "output_ext": case.out_ext,
              "settings": case.settings, "frames_made": made, **record,
              "input": inspect(source, start, end), "output": inspect(output) if output.exists() else None}  # fmt: skip
    source_times = record["input"]["video"]["times"] if record["input"]["video"] else []
    output_times = record["output"]["video"]["times"] if record["output"] and record["output"]["video"] else []
    record["timing"] = compare_times(source_times, output_times, start)
    record["findings"] = findings(case, record)
    return record


# ----------------------------------------------------------------------------------------------------- table


def colour_text(colour: list[int] | None) -> str:
    """matrix/primaries/transfer/range, "-" for unspecified."""
    if not colour:
        return "-"
    names = (MATRICES, PRIMARIES, TRANSFERS, RANGES)
    text = [table.get(code, str(code)) for table, code in zip(names, colour, strict=True)]
    return "/".join("-" if t == "unspec" else t for t in text)


def shorten(text: str, limit: int = 80) -> str:
    text = text.split(";")[0].strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def cells(record: dict[str, Any]) -> list[str]:
    """kind | exit | video out | colour out | audio/subs/chapters | timing | notes, short."""
    error = record["error"]
    exit_text = str(record["exit"]) + (f" {error['class']}" if error else "")
    source, output = record["input"], record["output"]
    sv = source["video"] or {}
    notes = [shorten(n) for n in record["notes"]]
    if record["losses"] and (record["losses"]["frames_lost"] or record["losses"]["frames_damaged"]):
        notes.append(record["losses"]["summary"])
    if error:
        notes.append(shorten(error["message"].replace(record["input_file"], "IN"), 90))
    notes_text = "; ".join(notes) or "-"
    if output is None or output["video"] is None:
        return [record["kind"], exit_text, "no output", "-", "-", "-", notes_text]
    ov = output["video"]
    video = f"{ov['codec']} {ov['pix_fmt']} {ov['width']}x{ov['height']}"
    if ov["sar"] != "1:1" or sv.get("sar", "1:1") != "1:1":
        video += f" SAR {ov['sar']}" + (f" (in {sv['sar']})" if sv.get("sar") != ov["sar"] else "")
    if ov["rotation"] or sv.get("rotation"):
        video += f" rot {ov['rotation']} (in {sv.get('rotation')})"
    colour = colour_text(ov["colour"])
    if sv.get("colour") and sv["colour"] != ov["colour"]:
        colour += f" (in {colour_text(sv['colour'])})"
    if sv.get("hdr10") or ov["hdr10"]:
        if ov["hdr10"] == sv.get("hdr10"):
            colour += ", HDR10 kept"
        elif not ov["hdr10"]:
            colour += ", HDR10 dropped" if ov["colour"] and ov["colour"][2] not in HDR_TRC else ", HDR10 LOST"
        else:
            colour += ", HDR10 CHANGED" if sv.get("hdr10") else ", HDR10 added"
    streams = []
    if source["audio"] or output["audio"]:
        languages = ",".join(s["language"] or "und" for s in output["audio"])
        streams.append(f"audio {len(output['audio'])}/{len(source['audio'])}" + (f" {languages}" if languages else ""))
    if source["subtitles"] or output["subtitles"]:
        streams.append(f"subs {len(output['subtitles'])}/{len(source['subtitles'])}")
    if source["chapters"] or output["chapters"]:
        streams.append(f"ch {len(output['chapters'])}/{len(source['chapters'])}")
    if source["title"] or output["title"]:
        streams.append("title " + ("kept" if output["title"] == source["title"] else f"{output['title']!r}"))
    ranged = "media.start" in record["settings"] or "media.end" in record["settings"]
    frames_in = len(sv["times"]) if ranged or record["frames_made"] is None else record["frames_made"]
    vfr = not sv["decode_errors"] and is_vfr(sv["times"])
    timing = f"{frames_in}->{len(ov['times'])} fr" + (" vfr" if vfr else "")
    verdict, max_ms = record["timing"]["verdict"], record["timing"]["max_ms"]
    timing += {"kept": ", pts kept", "kept, ms": f", pts kept (+-{max_ms} ms)", "subset": ", pts subset",
               "DIFFER": f", pts DIFFER ({max_ms} ms)", "none": ""}[verdict]  # fmt: skip
    return [record["kind"], exit_text, video, colour, "; ".join(streams) or "-", timing, notes_text]


HEADER = ["kind", "exit", "video out", "colour out", "audio/subs/chapters", "timing", "notes"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    made = parser("media_fidelity", __doc__.splitlines()[0])
    made.add_argument("--quick", action="store_true", help="skip the 8K frames and the real clips")
    made.add_argument("--only", default=None, metavar="TEXT", help="run only the kinds whose name contains TEXT")
    made.add_argument("--keep", type=Path, default=None, metavar="DIR",
                      help="make the inputs and outputs in DIR (kept) instead of a temporary folder")  # fmt: skip
    return made.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    files = ("media", "encode", "colour", "engine", "single_pass")
    state = source_state(*(REPO / "stereoconv" / f"{name}.py" for name in files))
    facts = machine_facts({"pyav": av.__version__, "ffmpeg": getattr(av, "ffmpeg_version_info", None)})
    print(facts_line(facts))
    print(source_line(state))
    cases = [c for c in CASES if (c.quick or not args.quick) and (args.only is None or args.only in c.kind)]
    skipped = []
    if not VIDEOS.is_dir() and any(c.real for c in cases):
        skipped = [{"kind": c.kind, "reason": f"{VIDEOS} is absent"} for c in cases if c.real]
        cases = [c for c in cases if not c.real]
        print(f"skipping the real clips: {VIDEOS} is absent")
    records = []
    with tempfile.TemporaryDirectory(prefix="stereoconv-fidelity-") as tmp_name:
        root = args.keep or Path(tmp_name)
        for number, case in enumerate(cases, 1):
            folder = root / f"{number:02d}"
            shutil.rmtree(folder, ignore_errors=True)
            try:
                record = run_case(case, folder)
            except Exception as exc:  # making the input failed: say so, keep the rest
                record = {"kind": case.kind, "source": case.source, "skipped": f"{type(exc).__name__}: {exc}"}
                skipped.append({"kind": case.kind, "reason": record["skipped"]})
                print(f"[{number}/{len(cases)}] {case.kind}: SKIPPED ({record['skipped']})", file=sys.stderr)
                continue
            records.append(record)
            print(f"[{number}/{len(cases)}] {case.kind}: exit {record['exit']}, {record['seconds']} s",
                  file=sys.stderr)  # fmt: skip
    print()
    print(markdown([HEADER, *(cells(r) for r in records)]))
    print()
    found = [(r["kind"], f) for r in records for f in r["findings"]]
    print(f"findings ({len(found)}): what the output lost or changed that README's \"What the output keeps\" says "
          "it keeps, and unexpected exit codes")  # fmt: skip
    for kind, finding in found:
        print(f"- {kind}: {finding}")
    for skip in skipped:
        print(f"- skipped {skip['kind']}: {skip['reason']}")
    finish(args.json, {"machine": facts, "stereoconv": state, "quick": args.quick, "cases": records,
                       "skipped": skipped, "findings": [{"kind": k, "finding": f} for k, f in found]})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
