"""Render farms: plan a conversion as chunks, render chunks independently, assemble them without re-encoding.

``plan`` scans the input once (the pipeline's own cut detector, over the same range ``convert`` would convert) and
writes a job manifest: the input and its fingerprint, the resolved settings, the model and its fingerprint, the
chunks, and what a damaged input lost. Like ``convert``, the scan keeps what decodes: packets that cannot be decoded
(and the end of a truncated file) are skipped, the frames lost recorded in the manifest, and the chunks number and
decode the frames that remain, so ``assemble`` writes what a single pass writes and reports the same losses. With
``media.strict`` any loss fails the plan instead.

Chunks are about ``chunk_seconds`` long and end on a scene cut when one is within ``tolerance`` of that length;
there every temporal state resets, so a chunk that starts on a cut renders exactly what a single pass would. A shot
longer than allowed is split mid-shot: the chunk after the split decodes and smooths up to ``preroll_seconds`` of
the shot before its first frame (the pre-roll) and drops them, so its temporal state has settled by its first frame
(exact again when the pre-roll reaches back to the shot's first frame).

``render`` converts chunks to ``chunk_KKKKK.mkv`` (video only, timestamps those of the single-pass output) beside a
sidecar ``chunk_KKKKK.json`` (frame count, every pts, sha256 of the file, a hash of what determines the pixels): a
chunk with a valid sidecar is skipped, a damaged or stale one is rendered again. Render cuts are the plan's, not
re-detected per chunk, so every chunk sees exactly the cuts a single pass sees.

``assemble`` remuxes the chunks' packets in order into one file (no re-encoding), restores the exact source
timestamps from the sidecars and copies the source's audio once, as ``convert`` does.

Chunk container: Matroska. It stores one timestamp per frame (no decode timestamps, so no negative-dts shift of a
chunk's first frames as NUT and MPEG-TS muxers do; no edit list, as MP4 needs for B-frames), holds any codec, and
FFmpeg's concat demuxer joins it cleanly. Its timestamps are in milliseconds; the sidecar keeps the exact ones.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: chunks are committed unlocked (see _chunk_lock)
    fcntl = None  # type: ignore[assignment]

import av
import av.error

from ._version import __version__
from .config import PipelineConfig, ShotOverrides, shot_configs
from .depth import DepthEstimator, model_fingerprint
from .encode import (
    AudioCopy,
    VideoWriter,
    atomic_output,
    check_output_path,
    check_writable_file,
    conversion_notes,
    format_name,
    output_pix_fmt,
    renders_deep,
    staged_output,
    tag_stereo_layout,
)
from .engine import frame_stream, open_estimator, scan
from .errors import MediaError, StereoconvError, UsageError, storage_error
from .media import DecodeLosses, VideoInfo, probe, subtitle_mode
from .packing import packed_size
from .progress import JsonProgress, expected_frames, progress_bar

JOB_FORMAT = "stereoconv-job"
JOB_VERSION = 1
SIDECAR_VERSION = 1
DEFAULT_CHUNK_SECONDS = 60.0
DEFAULT_PREROLL_SECONDS = 4.0
DEFAULT_TOLERANCE = 0.25
CHUNK_SUFFIX = ".mkv"


@dataclass(frozen=True)
class Chunk:
    """One independently rendered piece of a job.

    Frame numbers are 0-based decode-order indices within the planned range (the input's own when the plan has no
    ``--start``), the numbers farm frame ranges use. ``first_pts``/``last_pts`` are source timestamps (source time
    base). ``preroll_frame``: the first frame decoded and smoothed but not rendered (None: decoding starts at
    ``first_frame``). ``decode_start``/``decode_end``: the seconds to decode, ``[start, end)``; end None: to the end
    of the planned range.
    """

    index: int
    first_frame: int
    last_frame: int
    start_time: float
    end_time: float
    first_pts: int
    last_pts: int
    starts_at_cut: bool
    preroll_frame: int | None
    preroll_time: float | None
    decode_end: float | None

    @property
    def frames(self) -> int:
        return self.last_frame - self.first_frame + 1

    @property
    def decode_first(self) -> int:
        return self.first_frame if self.preroll_frame is None else self.preroll_frame

    @property
    def decode_start(self) -> float:
        return self.start_time if self.preroll_time is None else self.preroll_time

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Job:
    """A job manifest: what to convert, with which settings, in which chunks. ``path``: the manifest file.

    ``frames``, ``cuts`` and the chunks' frame numbers count the frames that decode. ``losses``: the frames the
    plan's scan could not decode from a damaged input (empty when none; with ``media.strict`` a loss fails the plan).
    """

    path: Path
    tool_version: str
    input: Path
    input_fingerprint: str
    settings: dict[str, dict[str, Any]]
    model: str
    model_fingerprint: str | None
    model_note: str | None
    fps: float
    time_base: Fraction
    frames: int
    cuts: list[int]
    chunk_seconds: float
    preroll_seconds: float
    chunks: list[Chunk]
    losses: DecodeLosses = dataclasses.field(default_factory=DecodeLosses)
    # Per-shot settings (--shots): the file's entries as given, and what they resolved to on the plan's cuts.
    shots: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    shot_settings: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def shot_configs(self) -> dict[int, PipelineConfig]:
        """The settings each shot with settings of its own is rendered with."""
        return shot_configs(self.config, self.shot_settings)

    @property
    def config(self) -> PipelineConfig:
        return PipelineConfig.from_dict(self.settings)

    @property
    def default_work_dir(self) -> Path:
        return self.path.parent / f"{self.path.stem}.chunks"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JOB_FORMAT,
            "version": JOB_VERSION,
            "tool_version": self.tool_version,
            "input": {"path": str(self.input), "fingerprint": self.input_fingerprint},
            "model": {"name": self.model, "fingerprint": self.model_fingerprint, "note": self.model_note},
            "settings": self.settings,
            "video": {"fps": self.fps, "time_base": str(self.time_base), "frames": self.frames, "cuts": self.cuts},
            "chunking": {"chunk_seconds": self.chunk_seconds, "preroll_seconds": self.preroll_seconds},
            "chunks": [c.to_dict() for c in self.chunks],
            "losses": self.losses.to_dict(),
            **({"shots": {"entries": self.shots, "settings": {str(k): v for k, v in self.shot_settings.items()}}}
               if self.shots else {}),
        }  # fmt: skip


# ------------------------------------------------------------------------------------------------------- plan


def split_frames(
    frames: int, cuts: Iterable[int], chunk_frames: int, tolerance: float = DEFAULT_TOLERANCE
) -> list[tuple[int, int]]:
    """Cut ``frames`` frames into chunks of about ``chunk_frames``: (first, last) inclusive, in order.

    A chunk ends just before the cut nearest its target end when one is within ``tolerance`` x ``chunk_frames`` of
    it, else at the target (mid-shot). The last chunk takes the rest when that is at most ``1 + tolerance`` chunks.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
    slack = int(tolerance * chunk_frames)
    cut_list = sorted(set(cuts))
    out: list[tuple[int, int]] = []
    start = 0
    while start < frames:
        target = start + chunk_frames
        if frames - start <= chunk_frames + slack:
            end = frames
        else:
            near = [c for c in cut_list if start < c and target - slack <= c <= target + slack]
            end = min(near, key=lambda c: (abs(c - target), c)) if near else target
        out.append((start, end - 1))
        start = end
    return out


def _scan(info: VideoInfo, config: PipelineConfig, progress: bool) -> tuple[list[int], list[int], DecodeLosses]:
    """Source pts of every frame in the configured range, the cuts (with the detector ``convert`` uses) and what
    could not be decoded; decoded as ``convert`` does: tolerantly, or strictly (MediaError) with ``media.strict``."""
    media = config.media
    pts: list[int] = []
    cuts: list[int] = []
    losses = None if media.strict else DecodeLosses()
    total = expected_frames(info, media.start, media.end)
    with (
        scan(info, config, start=media.start, end=media.end, losses=losses) as decided,
        progress_bar(total, progress, "planning") as bar,
    ):
        for frame, is_cut in decided:
            pts.append(frame.pts)
            if is_cut:
                cuts.append(frame.index)
            bar.update()
    return pts, cuts, losses if losses is not None else DecodeLosses()


def plan(
    input: str | Path,
    job_path: str | Path,
    config: PipelineConfig | None = None,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    preroll_seconds: float = DEFAULT_PREROLL_SECONDS,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = False,
    shots: ShotOverrides | None = None,
) -> Job:
    """Scan ``input`` for cuts, split it into chunks and write the job manifest to ``job_path`` (JSON, atomically).
    ``shots``: per-shot settings, resolved on the cuts found and recorded in the manifest for every render.

    ``chunk_seconds``: target chunk length (s); a chunk ends on a cut within ``tolerance`` x that of its target.
    ``preroll_seconds``: how much of its shot a chunk that starts mid-shot decodes and smooths first.
    A damaged input: unless ``config.media.strict`` (then MediaError, naming where), what decodes is planned and the
    frames lost are recorded in ``Job.losses``.
    """
    config = config or PipelineConfig()
    if not chunk_seconds > 0:
        raise UsageError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    if preroll_seconds < 0:
        raise UsageError(f"--preroll-seconds must be 0 or more, got {preroll_seconds}")
    job_file = check_writable_file(job_path, "job manifest", (".json",))
    info = probe(input)
    output_pix_fmt(config.output, info, Path("chunk" + CHUNK_SUFFIX))  # encoder and pix_fmt: fail now, not on a node
    fingerprint = fingerprint_input(info.path)
    model_fp, note = None, None
    try:
        model_fp = model_fingerprint(config.depth.model, config.depth.input_size, config.depth.output)
    except StereoconvError as exc:
        note = f"model fingerprint unavailable when planned ({exc}); chunks are keyed by the model name"
    pts, cuts, losses = _scan(info, config, progress)
    fps = info.fps if info.fps > 0 else 25.0
    tb = info.time_base

    def seconds(index: int) -> float:
        return float(pts[index] * tb)

    chunks = []
    shot_starts = [0, *cuts]
    for k, (first, last) in enumerate(split_frames(len(pts), cuts, max(1, round(chunk_seconds * fps)), tolerance)):
        at_cut = first == 0 or first in cuts
        preroll = None
        if not at_cut and preroll_seconds > 0:
            shot_start = max(s for s in shot_starts if s <= first)
            preroll = max(shot_start, first - round(preroll_seconds * fps))
        decode_end = seconds(last + 1) if last + 1 < len(pts) else config.media.end
        chunks.append(Chunk(
            index=k, first_frame=first, last_frame=last, start_time=seconds(first),
            end_time=seconds(last + 1) if last + 1 < len(pts) else seconds(last) + 1 / fps,
            first_pts=pts[first], last_pts=pts[last], starts_at_cut=at_cut, preroll_frame=preroll,
            preroll_time=None if preroll is None else seconds(preroll), decode_end=decode_end,
        ))  # fmt: skip
    job = Job(
        path=job_file, tool_version=__version__, input=info.path.resolve(), input_fingerprint=fingerprint,
        settings=config.to_dict(), model=config.depth.model, model_fingerprint=model_fp, model_note=note,
        fps=info.fps, time_base=tb, frames=len(pts), cuts=cuts, chunk_seconds=chunk_seconds,
        preroll_seconds=preroll_seconds, chunks=chunks, losses=losses,
    )  # fmt: skip
    if shots is not None:
        starts = [seconds(0) if pts else config.media.start, *(seconds(c) for c in cuts)]
        end = seconds(len(pts) - 1) + 1 / fps if pts else None
        resolved = shots.resolve(bounds=list(zip(starts, [*starts[1:], end], strict=True)))
        job = dataclasses.replace(job, shots=shots.to_dict()["shots"], shot_settings=resolved)
    _write_json_atomic(job_file, job.to_dict())
    return job


def fingerprint_input(path: Path) -> str:
    from .cache import input_fingerprint

    return input_fingerprint(path)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def load_job(path: str | Path, *, check_input: bool = True) -> Job:
    """Read and validate a job manifest. UsageError if it is not one (or of another version); MediaError if the
    input is missing or is not the file planned (its fingerprint differs): a manifest for another input is refused.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"job manifest not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read job manifest {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != JOB_FORMAT:
        raise UsageError(f"{path} is not a stereoconv job manifest (make one with `stereoconv plan`)")
    if data.get("version") != JOB_VERSION:
        raise UsageError(f"{path}: job manifest version {data.get('version')!r} is not supported (this stereoconv "
                         f"reads version {JOB_VERSION}); plan the job again")  # fmt: skip
    try:
        source, model, video, chunking = data["input"], data["model"], data["video"], data["chunking"]
        chunks = [Chunk(**c) for c in data["chunks"]]
        job = Job(
            path=path, tool_version=str(data["tool_version"]), input=Path(source["path"]),
            input_fingerprint=str(source["fingerprint"]), settings=data["settings"], model=str(model["name"]),
            model_fingerprint=model["fingerprint"], model_note=model.get("note"), fps=float(video["fps"]),
            time_base=Fraction(video["time_base"]), frames=int(video["frames"]), cuts=list(video["cuts"]),
            chunk_seconds=float(chunking["chunk_seconds"]), preroll_seconds=float(chunking["preroll_seconds"]),
            # None in manifests from before losses were recorded: planning decoded strictly then, so none were
            chunks=chunks, losses=DecodeLosses.from_dict(data.get("losses")),
            shots=list(data.get("shots", {}).get("entries", [])),
            shot_settings={int(k): dict(v) for k, v in data.get("shots", {}).get("settings", {}).items()},
        )  # fmt: skip
        job.shot_configs()  # validates the per-shot settings
        job.config  # noqa: B018 - validates the settings
    except StereoconvError as exc:
        raise UsageError(f"{path}: invalid settings in the job manifest: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: damaged job manifest ({type(exc).__name__}: {exc})") from exc
    expected = 0
    for k, chunk in enumerate(chunks):
        if chunk.index != k or chunk.first_frame != expected or chunk.last_frame < chunk.first_frame:
            raise UsageError(f"{path}: damaged job manifest: chunk {k} does not follow the chunk before it")
        expected = chunk.last_frame + 1
    if expected != job.frames:
        raise UsageError(f"{path}: damaged job manifest: the chunks cover {expected} of {job.frames} frames")
    if check_input:
        if not job.input.is_file():
            raise MediaError(f"the job's input is not there: {job.input} (planned in {path})")
        if fingerprint_input(job.input) != job.input_fingerprint:
            raise MediaError(f"{job.input} is not the file this job was planned for (its content differs): a "
                             f"manifest for another input is refused; plan the job again")  # fmt: skip
    return job


# ----------------------------------------------------------------------------------------------------- render


def parse_frame_range(text: str) -> tuple[int, int]:
    """``START-END`` (inclusive frame numbers, as farms pass them) or a single ``FRAME``."""
    start, sep, end = text.strip().partition("-")
    try:
        first = int(start)
        last = int(end) if sep else first
    except ValueError as exc:
        raise UsageError(f"--frames {text!r}: write START-END, e.g. --frames 0-1439") from exc
    if first < 0 or last < first:
        raise UsageError(f"--frames {text!r}: need 0 <= START <= END")
    return first, last


def chunks_for_frames(job: Job, first: int, last: int) -> list[Chunk]:
    """Every chunk overlapping frames ``first..last`` (inclusive), the range clamped to the job's frames."""
    if first >= job.frames:
        raise UsageError(f"--frames {first}-{last}: the job has frames 0-{job.frames - 1} only")
    last = min(last, job.frames - 1)
    return [c for c in job.chunks if c.first_frame <= last and c.last_frame >= first]


def chunk_paths(work_dir: Path, index: int) -> tuple[Path, Path]:
    """The chunk's video and its sidecar."""
    stem = f"chunk_{index:05d}"
    return work_dir / f"{stem}{CHUNK_SUFFIX}", work_dir / f"{stem}.json"


def settings_hash(job: Job, chunk: Chunk) -> str:
    """A digest of everything that determines a chunk's pixels and timestamps (not the runtime settings)."""
    settings = {k: v for k, v in job.settings.items() if k != "runtime"}
    # The model counts by its fingerprint where planned (the same weights under another name or path, e.g. render
    # --model with a node's local copy, render the same), else by the name it was planned with.
    settings["depth"] = {k: v for k, v in settings["depth"].items() if k not in ("model", "device")}
    key = {"input": job.input_fingerprint, "model": job.model_fingerprint or job.model, "settings": settings,
           "chunk": chunk.to_dict(), "cuts": job.cuts, "sidecar": SIDECAR_VERSION}  # fmt: skip
    if job.shot_settings:  # only then: chunks of plans made before per-shot settings stay valid
        key["shots"] = {str(k): v for k, v in job.shot_settings.items()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _chunk_lock(work_dir: Path, index: int, *, shared: bool = False) -> Iterator[None]:
    """Hold the chunk's lock (``flock`` on ``.chunk_KKKKK.lock`` in ``work_dir``) while its video and sidecar are
    replaced (exclusive) or read as a pair (``shared``): two farm tasks on one chunk (a requeue while the first
    attempt still runs) then leave one valid pair, never one task's video beside the other's sidecar. Held only for
    the renames or the check, never while rendering. Where locks are not available (a file system without them, a
    directory that cannot be written) it goes on unlocked: the sidecar's sha256 still refuses a mixed pair."""
    fd = None
    try:
        if fcntl is None:
            raise OSError("no file locks here")
        fd = os.open(work_dir / f".chunk_{index:05d}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    except OSError:
        if fd is not None:
            os.close(fd)
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def check_chunk(job: Job, chunk: Chunk, work_dir: Path) -> str | None:
    """None if the chunk is rendered and intact, else why not (missing, damaged, stale)."""
    with _chunk_lock(work_dir, chunk.index, shared=True):
        return _check_chunk(job, chunk, work_dir)


def _check_chunk(job: Job, chunk: Chunk, work_dir: Path) -> str | None:
    video, sidecar = chunk_paths(work_dir, chunk.index)
    if not video.is_file():
        return f"no {video.name}"
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return f"no valid {sidecar.name}"
    if meta.get("settings_hash") != settings_hash(job, chunk):
        return "rendered for other settings or another plan"
    if meta.get("frames") != chunk.frames or len(meta.get("pts", [])) != chunk.frames:
        return f"holds {meta.get('frames')} frames, the plan has {chunk.frames}"
    if meta.get("size") != video.stat().st_size or meta.get("sha256") != _file_sha256(video):
        return f"{video.name} is damaged or incomplete (its sha256 differs from the sidecar's)"
    return None


def _pixel_settings(settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The settings that determine a chunk's pixels and timestamps: all but the runtime ones, the model's name or
    path (its weights count, by fingerprint) and the device. As plain JSON data, so a manifest's compare equal."""
    kept = {k: v for k, v in settings.items() if k != "runtime"}
    kept["depth"] = {k: v for k, v in kept["depth"].items() if k not in ("model", "device")}
    return json.loads(json.dumps(kept, sort_keys=True))


def settings_differ(job: Job, config: PipelineConfig) -> list[str]:
    """Dotted keys whose values in ``config`` would render other pixels than the job's settings."""
    planned, given = _pixel_settings(job.settings), _pixel_settings(config.to_dict())
    return [f"{section}.{key}" for section in sorted(planned.keys() | given.keys())
            for key in sorted(planned.get(section, {}).keys() | given.get(section, {}).keys())
            if planned.get(section, {}).get(key) != given.get(section, {}).get(key)]  # fmt: skip


def job_with_config(job: Job, config: PipelineConfig | None) -> Job:
    """``job`` to be rendered with ``config``: its runtime settings, device and model path (a node's local copy of
    the planned model) may differ from the plan's; anything that would change the pixels may not (UsageError)."""
    if config is None:
        return job
    differ = settings_differ(job, config)
    if differ:
        raise UsageError(f"settings {', '.join(differ)} differ from the job's ({job.path}): plan the job again")
    depth = config.depth
    if (depth.model != job.model and job.model_fingerprint is not None
            and model_fingerprint(depth.model, depth.input_size, depth.output) != job.model_fingerprint):  # fmt: skip
        raise UsageError(f"model {config.depth.model} is not the model the job was planned with ({job.model})")
    return dataclasses.replace(job, settings=config.to_dict())


def pending_chunks(job: Job, work_dir: str | Path, config: PipelineConfig | None = None) -> list[int]:
    """Indices of the chunks of ``job`` not rendered and intact in ``work_dir`` (missing, damaged, partial or stale),
    in order: what is left to render. ``config``: the settings they will be rendered with (default: the job's);
    it may differ from the plan's only where :func:`job_with_config` allows."""
    job = job_with_config(job, config)
    work = Path(work_dir)
    return [c.index for c in job.chunks if check_chunk(job, c, work) is not None]


@dataclass(frozen=True)
class ChunkResult:
    """What rendering one chunk did: ``skipped`` when it was already rendered and intact; ``seconds`` it took."""

    index: int
    frames: int
    skipped: bool
    seconds: float


def render_chunk(
    job: Job,
    chunk: Chunk,
    work_dir: Path,
    estimator: DepthEstimator,
    *,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Render one chunk to its video and sidecar in ``work_dir``. Returns its frames.

    Both are written under temporary names, then renamed into place together under the chunk's lock, the video
    first: a task killed at any point leaves the chunk as it was or rendered, and two tasks rendering the same chunk
    at once (a farm's requeue) leave the pair of the first to finish (the second finds it intact and drops its own).

    Frames from the pre-roll go through cuts, depth, smoothing and planning but are not rendered or encoded. The
    input is decoded as the plan's scan decoded it (skipping what does not decode, unless ``media.strict``), and the
    frames must be the plan's: MediaError if they are not (the input changed, or a damaged file decodes otherwise
    after a seek).
    """
    config = job.config
    info = probe(job.input)  # the chunk is video only (VideoWriter video_only): assemble adds the rest once
    video, sidecar = chunk_paths(work_dir, chunk.index)
    # What this decode loses is not reported: it is the plan's losses in this range, recorded when planned.
    losses = None if config.media.strict else DecodeLosses()
    deep = renders_deep(config.output, info, video)
    size = packed_size(info.width, info.height, config.output.format)
    pts: list[int] = []
    seen = 0
    with staged_output(video, "chunk directory") as tmp:
        with (
            VideoWriter(tmp, info, size, config.output, start=config.media.start, video_only=True) as writer,
            # The plan's cuts, not detected again: every chunk sees exactly the cuts a single pass sees.
            frame_stream(
                info,
                config,
                estimator,
                start=chunk.decode_start,
                end=chunk.decode_end,
                preroll=chunk.first_frame - chunk.decode_first,
                cuts=job.cuts,
                first_index=chunk.decode_first,
                losses=losses,
                deep=deep,
                shots=job.shot_configs(),
                # The shot the chunk's first decoded frame is in: the cuts up to it (cuts are never frame 0).
                first_shot=bisect.bisect_right(job.cuts, chunk.decode_first),
            ) as items,
        ):
            for item in items:
                seen += 1
                if item.packed is None:
                    continue
                writer.write(item.packed, item.frame.pts)
                pts.append(item.frame.pts)
                if on_frame is not None:
                    on_frame(len(pts))
            why = "the input changed or decodes differently here"
            if job.losses:
                why = ("the input is damaged and decodes otherwise from this chunk's start than from the file's; "
                       "convert it in a single pass (`stereoconv convert` without --work-dir)")  # fmt: skip
            if seen != chunk.last_frame - chunk.decode_first + 1 or not pts or pts[0] != chunk.first_pts:
                raise MediaError(f"chunk {chunk.index}: decoded {seen} frames from {chunk.decode_start:.3f} s, the "
                                 f"plan has {chunk.last_frame - chunk.decode_first + 1}: {why}")  # fmt: skip
            if pts[-1] != chunk.last_pts:
                raise MediaError(f"chunk {chunk.index}: last frame at pts {pts[-1]}, the plan has {chunk.last_pts}: "
                                 f"{why}")  # fmt: skip
        start_pts = round(config.media.start / info.time_base)
        meta = {
            "chunk": chunk.index, "frames": len(pts), "first_pts": pts[0], "last_pts": pts[-1],
            "time_base": str(info.time_base), "pts": [p - start_pts for p in pts], "size": tmp.stat().st_size,
            "sha256": _file_sha256(tmp), "settings_hash": settings_hash(job, chunk), "tool_version": __version__,
        }  # fmt: skip
        with staged_output(sidecar, "chunk directory") as tmp_sidecar:
            tmp_sidecar.write_text(json.dumps(meta, indent=2) + "\n")
            with _chunk_lock(work_dir, chunk.index):
                if _check_chunk(job, chunk, work_dir) is None:
                    return len(pts)  # another task finished this chunk first: keep its pair, drop ours
                os.replace(tmp, video)  # the video first: a kill between the two leaves a pair the sha256 refuses
                os.replace(tmp_sidecar, sidecar)
    return len(pts)


def render(
    job: Job,
    chunks: Iterable[Chunk],
    work_dir: str | Path | None = None,
    *,
    estimator: DepthEstimator | None = None,
    model: str | None = None,
    depth_cache: str | Path | None = None,
    progress: JsonProgress | None = None,
    log: Callable[[str], None] | None = None,
    warnings: list[str] | None = None,
) -> list[ChunkResult]:
    """Render ``chunks`` of ``job`` into ``work_dir`` (default: ``<job stem>.chunks`` beside the manifest),
    skipping those already rendered and intact; the model is loaded only if a chunk needs rendering.

    ``model``: load the depth model from here instead (a local copy on a farm node); when the plan recorded the
    model's fingerprint, this one must match it. ``estimator``: use this instead of loading any model (tests).
    ``warnings``: if given, lines the user must hear even when quiet (a depth cache that could not store) are
    appended to it.
    """
    work = Path(work_dir) if work_dir is not None else job.default_work_dir
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create work directory {work}: {exc.strerror or exc}") from exc
    config = job.config
    if model is not None:
        config = config.replace({"depth.model": model})
        planned = job.model_fingerprint
        depth = config.depth
        if (planned is not None and estimator is None
                and model_fingerprint(model, depth.input_size, depth.output) != planned):  # fmt: skip
            raise UsageError(f"--model {model} is not the model the job was planned with ({job.model})")
        job = dataclasses.replace(job, settings=config.to_dict())
    chunks = list(chunks)
    todo = [c for c in chunks if check_chunk(job, c, work) is not None]
    results = []
    cache = None
    started = {c.index for c in todo}
    try:
        for chunk in chunks:
            t0 = time.perf_counter()
            if chunk.index not in started:
                results.append(ChunkResult(chunk.index, chunk.frames, True, 0.0))
                if log:
                    log(f"chunk {chunk.index}: already rendered, skipped")
                if progress is not None:
                    progress.done += chunk.frames
                    progress.emit(chunk.index, "skipped")
                continue
            if estimator is None:
                estimator, cache = open_estimator(job.input, config, None, depth_cache)

            def tick(_: int, k: int = chunk.index) -> None:
                if progress is not None:
                    progress.frame(k)

            n = render_chunk(job, chunk, work, estimator, on_frame=tick)
            results.append(ChunkResult(chunk.index, n, False, time.perf_counter() - t0))
            if progress is not None:
                progress.emit(chunk.index, "chunk_done")
            if log:
                log(f"chunk {chunk.index}: {n} frames in {time.perf_counter() - t0:.1f} s")
    finally:
        if cache is not None:
            cache.close()
            if warnings is not None:
                warnings.extend(cache.stats.warnings())
    return results


# --------------------------------------------------------------------------------------------------- assemble


def assemble(
    job: Job, output: str | Path, work_dir: str | Path | None = None, *, notes: list[str] | None = None
) -> Path:
    """Join the job's chunks into ``output`` without re-encoding, with the source's audio (as ``output.audio`` says),
    subtitles, chapters and metadata carried once, as ``convert`` carries them.

    Every chunk must be rendered and intact; those that are not are named (MediaError). The result has the frames,
    timestamps and audio a single-pass ``convert`` writes; the file appears only when it is complete. ``notes``: if
    given, lines saying what of the source was dropped or re-encoded, and why, are appended to it. The frames a
    damaged input lost are the plan's: ``job.losses``.
    """
    work = Path(work_dir) if work_dir is not None else job.default_work_dir
    config = job.config
    out_path = check_output_path(output, job.input, config.output.format)
    problems = [(c.index, why) for c in job.chunks if (why := check_chunk(job, c, work)) is not None]
    if problems:
        listed = "; ".join(f"chunk {k}: {why}" for k, why in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise MediaError(f"{len(problems)} of {len(job.chunks)} chunks are not rendered or not intact in {work}: "
                         f"{listed}{more}; render them with `stereoconv render {job.path} --chunk K`")  # fmt: skip
    info = probe(job.input)
    media = config.media
    with atomic_output(out_path) as tmp:
        try:
            out = av.open(str(tmp), mode="w", format=format_name(tmp))
        except (av.error.FFmpegError, OSError) as exc:
            if storage_error(exc) is not None:
                raise  # a full disk...: atomic_output names the output, not its temporary file
            raise StereoconvError(f"cannot create output file {out_path}: {exc}") from exc
        try:
            carried = _remux(job, work, out, info, media.start, media.end)
        finally:
            out.close()
    if notes is not None:
        notes.extend(conversion_notes(info, config, out_path) + carried)
    return out_path


def _remux(job: Job, work: Path, out: av.container.OutputContainer, info: VideoInfo, start: float,
           end: float | None) -> list[str]:  # fmt: skip
    """Write the chunks' video and the source's other streams into ``out``; returns the notes of what of the source
    was dropped or re-encoded."""
    config = job.config
    tb = info.time_base
    extradata = None
    stream = None
    audio = None
    last_dts: int | None = None
    try:
        for chunk in job.chunks:
            path, sidecar = chunk_paths(work, chunk.index)
            exact = json.loads(sidecar.read_text())["pts"]
            with av.open(str(path)) as src:
                vin = src.streams.video[0]
                if stream is None:
                    stream = out.add_stream_from_template(vin)
                    stream.time_base = tb
                    tag_stereo_layout(stream, out.format.name, config.output, {}, info.sample_aspect_ratio)
                    # As VideoWriter: a source without audio still gets its subtitles, chapters and metadata.
                    audio = AudioCopy(out, info.path, start, end,
                                      audio=config.output.audio if info.audio_streams else "none",
                                      subtitles=subtitle_mode(config.output, info) == "keep")  # fmt: skip
                    extradata = vin.codec_context.extradata
                elif vin.codec_context.extradata != extradata:
                    raise MediaError(f"chunk {chunk.index} was encoded with other encoder settings than chunk 0 "
                                     "(its H.264 parameter sets differ): render every chunk with the same "
                                     "stereoconv and settings")  # fmt: skip
                packets = [p for p in src.demux(vin) if p.pts is not None]
                for packet, pts, dts in _exact_timestamps(packets, exact, vin.time_base, last_dts, chunk.index):
                    packet.pts, packet.dts = pts, dts
                    if packet.duration:
                        packet.duration = max(1, round(packet.duration * vin.time_base / tb))
                    packet.time_base = tb
                    packet.stream = stream
                    out.mux(packet)
                    last_dts = dts
                    if audio is not None:
                        audio.write_until(float(pts * tb) + 1.0)
        if audio is not None:
            audio.write_until(float("inf"))
    except av.error.FFmpegError as exc:
        if storage_error(exc) is not None:
            raise  # a full disk...: atomic_output names the output, not its temporary file
        raise StereoconvError(f"writing the output failed: {exc}") from exc
    finally:
        if audio is not None:
            audio.close()
    return list(audio.notes) if audio is not None else []


def _exact_timestamps(
    packets: list[av.Packet], exact: list[int], time_base: Fraction, last_dts: int | None, chunk: int
) -> Iterator[tuple[av.Packet, int, int]]:
    """(packet, pts, dts) in the source time base: the chunk's pts as the sidecar recorded them (the container
    rounded them to its own time base), dts from the container's where it has them, else counted back from the
    first frame; kept strictly increasing across chunk joins."""
    if len(packets) != len(exact):
        raise MediaError(f"chunk {chunk}: {len(packets)} frames in the file, {len(exact)} in its sidecar")
    ranked = sorted(range(len(packets)), key=lambda i: packets[i].pts)
    pts_of = {ranked[r]: exact[r] for r in range(len(exact))}
    by_stored = {packets[i].pts: pts_of[i] for i in range(len(packets))}
    step = exact[1] - exact[0] if len(exact) > 1 else 1
    unknown = sum(1 for _ in _leading(p.dts is None for p in packets))
    for i, packet in enumerate(packets):
        pts = pts_of[i]
        dts = by_stored.get(packet.dts) if packet.dts is not None else None
        if dts is None:
            dts = exact[0] - (unknown - i) * step if i < unknown else pts
        if last_dts is not None and dts <= last_dts:
            dts = last_dts + 1
        if dts > pts:
            raise MediaError(f"chunk {chunk}: frame {i}'s decode time falls after its display time at the join")
        last_dts = dts
        yield packet, pts, dts


def _leading(flags: Iterable[bool]) -> Iterator[bool]:
    for flag in flags:
        if not flag:
            return
        yield flag
