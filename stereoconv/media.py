"""Reading media with PyAV: probing, decoding to upright RGB frames with their timestamps (the model's 8-bit SDR view,
and the source-colour picture of deep sources; see :mod:`stereoconv.colour`), and accounting for what a damaged file
loses. Writing is :mod:`stereoconv.encode`.

Geometry: frames are delivered upright (rotation metadata applied to the pixels) in storage resolution; the source's
sample (pixel) aspect ratio is carried to the output unchanged, so anamorphic sources stay anamorphic and players show
them at the right shape. Colour: YUV->RGB uses the source's matrix and range (BT.709 assumed for untagged HD, BT.601
for untagged SD), and the output is converted back and tagged with the same matrix and range.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.video.reformatter import Colorspace

from .colour import SWS_FLAGS, Hdr10Metadata, deep_yuv_to_rgb, is_hdr, rgb_matrix, tone_map_to_sdr
from .config import OutputConfig
from .errors import MediaError, storage_error

# Errors opening an input that say nothing about the file (a missing or unreadable input stays a MediaError, exit 3).
_MACHINE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EIO, errno.ESTALE})


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input's video stream (and its audio streams).

    ``width``/``height`` are of the upright frames the decoder delivers (after rotation), in storage pixels.
    """

    path: Path
    width: int
    height: int
    rotation: int  # degrees counter-clockwise applied to the stored picture to show it upright
    sample_aspect_ratio: Fraction  # of the upright frames; 1 = square pixels
    fps: float  # average frame rate (VFR sources: the mean)
    time_base: Fraction
    frames: int | None  # frame count if the container says, else estimated from duration; None if unknown
    duration: float | None  # seconds of video, if known
    codec: str
    pix_fmt: str
    bit_depth: int
    colorspace: int  # AVColorSpace tag as stored (2 = unspecified)
    color_range: int  # AVColorRange tag as stored (0 = unspecified)
    color_primaries: int
    color_trc: int
    audio_streams: int
    interlaced: bool = False  # the stream is coded as fields (field order, or the first frame's interlaced flag)
    field_order: str = "progressive"  # "top field first", "bottom field first", or "progressive"
    hdr10: Hdr10Metadata | None = None  # HDR10 static metadata of the first frame, if any
    constant_rate: bool = False  # the stream's average frame rate is its base rate: timestamps should not jump
    # Text subtitle streams (SRT, ASS, ...): (container stream index, codec, marked default), in file order.
    text_subtitles: tuple[tuple[int, str, bool], ...] = ()

    @property
    def display_aspect_ratio(self) -> float:
        return self.width * float(self.sample_aspect_ratio) / self.height


@dataclass(frozen=True)
class Frame:
    """One decoded frame: upright RGB pixels and the timestamp it had in the source.

    ``rgb``: uint8 HxWx3, SDR (HDR tone-mapped): what the model, the cut detector and the smoother see, and what the
    output is rendered from unless there is a ``picture``. ``picture``: uint16 HxWx3 RGB at full 16-bit scale in the
    source's own primaries and transfer (PQ stays PQ), for a source of more than 8 bits decoded with ``deep=True``;
    the output is rendered from it then. ``index``: 0-based position in decode order within the converted range.
    ``pts`` is in units of ``time_base`` (the source stream's); ``time`` is seconds.
    """

    index: int
    rgb: np.ndarray
    pts: int
    time_base: Fraction
    picture: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"Frame.rgb must be uint8 HxWx3, got {self.rgb.dtype} {self.rgb.shape}")
        if self.picture is not None and (self.picture.dtype != np.uint16 or self.picture.shape != self.rgb.shape):
            raise ValueError(f"Frame.picture must be uint16 {self.rgb.shape}, got {self.picture.dtype} "
                             f"{self.picture.shape}")  # fmt: skip

    @property
    def source(self) -> np.ndarray:
        """What the output is rendered from: ``picture`` if there is one, else ``rgb``."""
        return self.picture if self.picture is not None else self.rgb

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


def open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(f"input not found: {path}")
    if path.is_dir():
        raise MediaError(f"input is a directory, not a video file: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"input is empty (0 bytes): {path}")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:  # the machine's fault, not the file's
            raise storage_error(exc, path) from exc  # the input it was opening (not a module PyAV was importing)
        raise MediaError(
            f"cannot read {path} as a media file (not a video, or damaged or truncated): {ffmpeg_reason(exc)}"
        ) from exc


def ffmpeg_reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    return str(exc)


def probe(path: str | Path) -> VideoInfo:
    """Open ``path`` and describe its first video stream; raise MediaError if it is not a readable video."""
    path = Path(path)
    with open_input(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise MediaError(f"{path} has no video stream (it holds: {', '.join(kinds)})")
        stream = container.streams.video[0]
        cc = stream.codec_context
        if not cc.width or not cc.height:
            raise MediaError(f"{path}: the video stream has no picture size (damaged header?)")
        if cc.width < MIN_SIZE[0] or cc.height < MIN_SIZE[1]:
            raise MediaError(f"{path}: the video is {cc.width}x{cc.height}, too small to convert "
                             f"(the smallest is {MIN_SIZE[0]}x{MIN_SIZE[1]})")  # fmt: skip
        first = _first_frame(container, stream)
        rotation = _quarter_turns(first.rotation) * 90
        field_order = _FIELD_ORDERS.get(int(cc.field_order or 0))
        if field_order in (None, "progressive") and first.interlaced_frame:  # unknown or mislabelled: the frame says
            field_order = "top field first" if getattr(first, "top_field_first", True) else "bottom field first"
        field_order = field_order or "progressive"
        width, height = cc.width, cc.height
        sar = stream.sample_aspect_ratio or Fraction(1)
        if rotation % 180:
            width, height, sar = height, width, 1 / sar
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frames = stream.frames or (round(duration * fps) if duration and fps else None)
        fmt = av.VideoFormat(cc.format.name) if cc.format else None
        bit_depth = max((c.bits for c in fmt.components), default=8) if fmt else 8
        return VideoInfo(
            path=path, width=width, height=height, rotation=rotation, sample_aspect_ratio=Fraction(sar),
            fps=fps, time_base=stream.time_base or Fraction(1, 90000), frames=frames, duration=duration,
            codec=cc.name, pix_fmt=cc.format.name if cc.format else "unknown", bit_depth=bit_depth,
            colorspace=int(cc.colorspace), color_range=int(cc.color_range),
            color_primaries=int(cc.color_primaries), color_trc=int(cc.color_trc),
            audio_streams=len(container.streams.audio),
            interlaced=field_order != "progressive", field_order=field_order, hdr10=Hdr10Metadata.from_frame(first),
            constant_rate=bool(stream.average_rate) and stream.average_rate == stream.base_rate,
            text_subtitles=tuple((s.index, s.codec_context.name, bool(s.disposition & av.stream.Disposition.default))
                                 for s in container.streams.subtitles
                                 if s.codec_context.name in TEXT_SUBTITLE_CODECS),
        )  # fmt: skip


# Subtitle codecs whose cues are text (drawn by stereoconv.subtitles), not pictures (DVD/Blu-ray bitmaps).
TEXT_SUBTITLE_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
# Layouts a player cannot draw soft subtitles on correctly: it draws them once over the packed frame, across both eyes.
_PACKED_LAYOUTS = ("half-sbs", "full-sbs", "half-tb", "full-tb")


def subtitle_mode(output: OutputConfig, info: VideoInfo) -> str:
    """What becomes of ``info``'s subtitles for ``output.subtitles``: "burn" (a text stream drawn into both eyes,
    see :mod:`stereoconv.subtitles`), "keep" (every stream copied as soft subtitles) or "none". "auto" burns for a
    side-by-side or top-bottom layout when there is a text stream, and keeps otherwise."""
    mode = output.subtitles
    if mode == "auto":
        return "burn" if info.text_subtitles and output.format in _PACKED_LAYOUTS else "keep"
    return mode


MIN_SIZE = (16, 16)  # smallest frame (width, height) converted: below it depth, DIBR and packing are meaningless
# AVFieldOrder -> description; AV_FIELD_UNKNOWN (0) is absent: decided from the first frame instead.
_FIELD_ORDERS = {1: "progressive", 2: "top field first", 3: "bottom field first", 4: "top field first",
                 5: "bottom field first"}  # fmt: skip


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame:
    """The first decodable frame (its display matrix gives the rotation, its flags the interlacing)."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise MediaError(f"{container.name}: cannot decode the first video frame: {ffmpeg_reason(exc)}") from exc
    raise MediaError(f"{container.name}: the video stream holds no decodable frame")


def _quarter_turns(rotation: float) -> int:
    return round(rotation / 90) % 4


def to_rgb(frame: av.VideoFrame, matrix: Colorspace, color_range: int) -> np.ndarray:
    """A decoded frame as uint8 HxWx3 RGB in stored orientation (10-bit sources are rounded to 8 bits).

    HDR frames (PQ or HLG transfer, see :func:`~stereoconv.colour.is_hdr`) are tone-mapped to SDR BT.709 by
    :func:`~stereoconv.colour.tone_map_to_sdr`, so the depth model sees a normal picture.
    """
    return to_pictures(frame, matrix, color_range, deep=False)[0]


def to_pictures(
    frame: av.VideoFrame, matrix: Colorspace, color_range: int, deep: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rgb, picture)`` of a decoded frame in stored orientation: what :class:`Frame` holds. ``picture`` (uint16
    RGB in the source's colour) only if ``deep`` and the frame has more than 8 bits; else None."""
    wide = frame.format.components[0].bits > 8
    deep_rgb = deep_yuv_to_rgb(frame, matrix, color_range)
    if deep_rgb is None and (is_hdr(frame.color_trc) or (deep and wide)):
        rgb48 = frame.to_ndarray(format="rgb48le", src_colorspace=matrix, src_color_range=color_range,
                                 interpolation=SWS_FLAGS)  # fmt: skip
        deep_rgb = rgb48.astype(np.float32) / 65535.0
    if deep_rgb is None:
        rgb = frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range=color_range,
                               interpolation=SWS_FLAGS)  # fmt: skip
        return rgb, None
    if is_hdr(frame.color_trc):
        rgb = tone_map_to_sdr(deep_rgb, frame.color_trc, frame.color_primaries)
    else:
        rgb = np.clip(np.rint(deep_rgb * 255.0), 0, 255).astype(np.uint8)
    picture = np.rint(deep_rgb * 65535.0).astype(np.uint16) if deep and wide else None
    return rgb, picture


@dataclass
class DecodeLosses:
    """What a tolerant :func:`decode` could not deliver, filled in as it goes.

    ``frames_lost``: about how many frames were lost (unreadable packets, or a stream ending before its declared
    duration); ``ranges``: where, as ``(start, end)`` seconds; ``packets_failed``: packets the decoder rejected;
    ``counts``: frames lost in each range; ``frames_damaged``: frames delivered but flagged corrupt by the decoder
    (error-concealed pictures; informational: they are not counted as lost and do not fail a strict decode).
    """

    frames_lost: int = 0
    ranges: list[tuple[float, float]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # frames lost in each range
    packets_failed: int = 0
    frames_damaged: int = 0

    def __bool__(self) -> bool:
        return self.frames_lost > 0

    def add(self, start: float, end: float, frames: int) -> None:
        frames = max(frames, 1)
        self.frames_lost += frames
        self.ranges.append((start, max(end, start)))
        self.counts.append(frames)

    def lines(self) -> list[str]:
        """One line per loss range, then one for the damaged frames if any."""
        pairs = zip(self.ranges, self.counts, strict=True)
        out = [f"lost about {n} frames between {a:.3f} s and {b:.3f} s" for (a, b), n in pairs]
        if self.frames_damaged:
            out.append(f"{self.frames_damaged} frames were decoded with errors (kept, possibly with artefacts)")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``frames_lost``, ``ranges`` (``[[start, end], ...]``, seconds), ``counts`` (frames lost in each
        range), ``packets_failed``, ``frames_damaged``."""
        return {
            "frames_lost": self.frames_lost,
            "ranges": [[float(start), float(end)] for start, end in self.ranges],
            "counts": [int(n) for n in self.counts],
            "packets_failed": self.packets_failed,
            "frames_damaged": self.frames_damaged,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DecodeLosses:
        """What :meth:`to_dict` wrote (None: no losses). Raises ValueError or TypeError for data that is not such an
        object."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TypeError(f"losses must be an object, got {type(data).__name__}")
        ranges = [(float(start), float(end)) for start, end in data.get("ranges", [])]
        counts = [int(n) for n in data.get("counts", [])]
        if len(ranges) != len(counts):
            raise ValueError(f"losses: {len(ranges)} ranges but {len(counts)} counts")
        losses = cls(frames_lost=int(data.get("frames_lost", sum(counts))), ranges=ranges, counts=counts,
                     packets_failed=int(data.get("packets_failed", 0)),
                     frames_damaged=int(data.get("frames_damaged", 0)))  # fmt: skip
        if losses.frames_lost != sum(counts):
            raise ValueError(f"losses: frames_lost {losses.frames_lost} is not the sum of its ranges' counts {counts}")
        if min(losses.packets_failed, losses.frames_damaged, *counts) < 0:
            raise ValueError("losses: a count is negative")
        return losses

    def summary(self) -> str:
        parts = [f"about {self.frames_lost} frames lost in {len(self.ranges)} ranges"] if self.frames_lost else []
        if self.frames_damaged:
            parts.append(f"{self.frames_damaged} damaged frames kept")
        return ", ".join(parts) or "no frames lost"


def decode(
    info: VideoInfo,
    start: float = 0.0,
    end: float | None = None,
    threads: int = 0,
    losses: DecodeLosses | None = None,
    deinterlace: bool = False,
    deep: bool = False,
) -> Iterator[Frame]:
    """Yield the upright RGB frames of ``info.path`` whose timestamps fall in ``[start, end)`` seconds.

    Frames keep the source pts and time base. Without ``losses`` (strict), raises MediaError when a packet cannot be
    decoded or the stream ends well before its declared duration (a truncated file) - never a silent short output.
    With a :class:`DecodeLosses`, packets that cannot be decoded are skipped and the frames lost (there and at a
    truncated end) are recorded in it instead; MediaError is still raised when no frame at all can be decoded.
    ``deinterlace``: run every frame through FFmpeg's ``bwdif`` (one frame out per frame in, timestamps kept).
    ``deep``: frames of a source of more than 8 bits also carry ``picture``, the source-colour 16-bit view.
    """
    matrix, color_range = rgb_matrix(info.colorspace, info.color_range, info.pix_fmt, info.width, info.height)
    count = 0
    last_time: float | None = None
    step = 1.0 / info.fps if info.fps > 0 else 0.0
    failed = 0  # packets failed since the last delivered frame
    failed_from: float | None = None  # time of the first of them, if it had a timestamp
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        start_pts = round(start / stream.time_base) if start > 0 else None
        if start_pts is not None:
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(start_pts + (stream.start_time or 0), stream=stream, backward=True)
        packets = container.demux(stream)
        fields = _Deinterlacer(stream) if deinterlace else None
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # the container itself is unreadable from here on
                if losses is None:
                    raise MediaError(
                        f"{info.path}: reading failed {_where(count, last_time)}: {ffmpeg_reason(exc)}"
                    ) from exc
                break
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                if losses is None:
                    where = _where(count, last_time)
                    raise MediaError(f"{info.path}: decoding failed {where}: {ffmpeg_reason(exc)}") from exc
                losses.packets_failed += 1
                if packet.pts is not None and failed == 0:
                    failed_from = float(packet.pts * stream.time_base)
                failed += 1
                continue
            if fields is not None:
                decoded = fields.filter(decoded, final=packet.size == 0)
            for frame in decoded:
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                if t < start - 1e-6:
                    failed, failed_from = 0, None  # before the range: not a loss of the conversion
                    continue
                if end is not None and t >= end - 1e-6:
                    failed = 0
                    break
                if frame.is_corrupt and losses is not None:
                    losses.frames_damaged += 1
                if failed and losses is not None:
                    # From the frame after the last one delivered: with frame threading the decoder reports a bad
                    # packet a few packets after it, so the failed packet's own time starts the loss too late.
                    begin = last_time + step if last_time is not None else max(start, failed_from or start)
                    losses.add(begin, t, max(failed, round((t - begin) * info.fps)) if step else failed)
                elif info.constant_rate and last_time is not None and t - last_time > 2.5 * step > 0:
                    # No packet failed, yet the timestamps jump: the demuxer skipped damaged data (a broken
                    # Matroska cluster) without a word. Variable-rate streams may jump by design: not checked.
                    missing = round((t - last_time) * info.fps) - 1
                    if losses is None:
                        raise MediaError(f"{info.path}: about {missing} frames missing between "
                                         f"{last_time + step:.3f} s and {t:.3f} s (the timestamps jump): the file is "
                                         "damaged")  # fmt: skip
                    losses.add(last_time + step, t, missing)
                failed, failed_from = 0, None
                rgb, picture = to_pictures(frame, matrix, color_range, deep)
                turns = _quarter_turns(frame.rotation)
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
                    picture = None if picture is None else np.ascontiguousarray(np.rot90(picture, k=turns))
                yield Frame(index=count, rgb=rgb, pts=frame.pts, time_base=stream.time_base, picture=picture)
                count += 1
                last_time = t
            else:
                continue
            break
    if count == 0:
        raise MediaError(f"{info.path}: no video frame could be decoded in the requested range")
    tail = _check_complete(info, end, last_time, strict=losses is None)
    if losses is not None and last_time is not None:
        if tail is not None:
            losses.add(last_time + step, tail, max(failed, round((tail - last_time) * info.fps) - 1))
        elif failed:
            losses.add(last_time + step, last_time + step * failed, failed)


class _Deinterlacer:
    """FFmpeg's ``bwdif`` through a PyAV filter graph: one frame out per frame in, each with its input's pts.

    The filter looks one frame ahead, so output lags input by a frame until ``final`` flushes it.
    """

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self._stream = stream
        self._graph: av.filter.Graph | None = None
        self._pts: list[int | None] = []

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                  time_base=self._stream.time_base)  # fmt: skip
        chain = [source, graph.add("bwdif", "mode=send_frame:parity=auto:deint=all"), graph.add("buffersink")]
        chain[0].link_to(chain[1])
        chain[1].link_to(chain[2])
        graph.configure()
        return graph

    def filter(self, frames: list[av.VideoFrame], final: bool = False) -> list[av.VideoFrame]:
        out: list[av.VideoFrame] = []
        try:
            for frame in frames:
                if self._graph is None:
                    self._graph = self._build(frame)
                self._pts.append(frame.pts)
                self._graph.vpush(frame)
                out += self._pull()
            if final and self._graph is not None:
                self._graph.vpush(None)
                out += self._pull()
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(f"deinterlacing failed (bwdif): {ffmpeg_reason(exc)}") from exc
        for frame in out:
            frame.pts, frame.time_base = self._pts.pop(0), self._stream.time_base
        return out

    def _pull(self) -> list[av.VideoFrame]:
        assert self._graph is not None
        pulled = []
        while True:
            try:
                pulled.append(self._graph.vpull())
            except (av.error.BlockingIOError, av.error.EOFError):
                return pulled


def _where(count: int, last_time: float | None) -> str:
    return f"after frame {count} ({last_time:.3f} s)" if last_time is not None else "at the first frame"


def _check_complete(info: VideoInfo, end: float | None, last_time: float | None, strict: bool = True) -> float | None:
    """Whether decoding stopped clearly before the end the container declares (a truncated file).

    Strict: raise MediaError if so. Otherwise return the time the stream should have reached (None if complete).
    """
    if info.duration is None or last_time is None or info.fps <= 0:
        return None
    declared_end = min(info.duration, end if end is not None else info.duration)
    expected_last = declared_end - 1.0 / info.fps
    slack = max(3.0 / info.fps, 0.25)  # a few frames: declared durations are approximate
    if last_time < expected_last - slack:
        if strict:
            raise MediaError(
                f"{info.path}: the video stream ends at {last_time:.2f} s but the file declares "
                f"{info.duration:.2f} s: the file is truncated or damaged"
            )
        return declared_end
    return None
