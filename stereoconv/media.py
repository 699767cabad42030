"""Media I/O with PyAV: probing, decoding to upright RGB frames with their timestamps, encoding (labelled with the
stereo layout), audio passthrough and atomic output.

Geometry: frames are delivered upright (rotation metadata applied to the pixels) in storage resolution; the source's
sample (pixel) aspect ratio is carried to the output unchanged, so anamorphic sources stay anamorphic and players show
them at the right shape. Colour: YUV->RGB uses the source's matrix and range (BT.709 assumed for untagged HD, BT.601
for untagged SD), and the output is converted back and tagged with the same matrix and range.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from .config import OutputConfig
from .errors import MediaError, StereoconvError, UsageError

# AVColorSpace (frame/stream tag) -> swscale matrix.
_SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
               7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}  # fmt: skip
_AVCOL_RANGE_MPEG, _AVCOL_RANGE_JPEG = 1, 2
# swscale's default rounding darkens every YUV<->RGB conversion by a level or two; accurate rounding does not.
_SWS_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


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

    @property
    def display_aspect_ratio(self) -> float:
        return self.width * float(self.sample_aspect_ratio) / self.height


@dataclass(frozen=True)
class Frame:
    """One decoded frame: upright RGB pixels and the timestamp it had in the source.

    ``rgb``: uint8 HxWx3. ``index``: 0-based position in decode order within the converted range.
    ``pts`` is in units of ``time_base`` (the source stream's); ``time`` is seconds.
    """

    index: int
    rgb: np.ndarray
    pts: int
    time_base: Fraction

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"Frame.rgb must be uint8 HxWx3, got {self.rgb.dtype} {self.rgb.shape}")

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(f"input not found: {path}")
    if path.is_dir():
        raise MediaError(f"input is a directory, not a video file: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"input is empty (0 bytes): {path}")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"cannot read {path} as a media file (not a video, or damaged or truncated): {_reason(exc)}"
        ) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    return str(exc)


def probe(path: str | Path) -> VideoInfo:
    """Open ``path`` and describe its first video stream; raise MediaError if it is not a readable video."""
    path = Path(path)
    with _open_input(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise MediaError(f"{path} has no video stream (it holds: {', '.join(kinds)})")
        stream = container.streams.video[0]
        cc = stream.codec_context
        if not cc.width or not cc.height:
            raise MediaError(f"{path}: the video stream has no picture size (damaged header?)")
        rotation = _stream_rotation(container, stream)
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
        )  # fmt: skip


def _stream_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Rotation (degrees counter-clockwise, multiple of 90) from the display matrix the decoder attaches."""
    try:
        for frame in container.decode(stream):
            return _quarter_turns(frame.rotation) * 90
    except av.error.FFmpegError as exc:
        raise MediaError(f"{container.name}: cannot decode the first video frame: {_reason(exc)}") from exc
    raise MediaError(f"{container.name}: the video stream holds no decodable frame")


def _quarter_turns(rotation: float) -> int:
    return round(rotation / 90) % 4


def rgb_matrix(colorspace: int, color_range: int, pix_fmt: str, width: int, height: int) -> tuple[Colorspace, int]:
    """The swscale matrix and AVColorRange to convert between YUV and RGB, from a stream's colour tags.

    Untagged streams get what players assume: BT.709 for HD sizes, BT.601 below; limited range unless full range is
    tagged or implied by a ``yuvj`` format.
    """
    matrix = _SWS_MATRIX.get(colorspace)
    if matrix is None:
        hd = max(width, height) >= 1280 or min(width, height) >= 720
        matrix = Colorspace.ITU709 if hd else Colorspace.ITU601
    full = color_range == _AVCOL_RANGE_JPEG or pix_fmt.startswith("yuvj")
    return matrix, _AVCOL_RANGE_JPEG if full else _AVCOL_RANGE_MPEG


def to_rgb(frame: av.VideoFrame, matrix: Colorspace, color_range: int) -> np.ndarray:
    """A decoded frame as uint8 HxWx3 RGB in stored orientation (10-bit sources are rounded to 8 bits)."""
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range=color_range,
                            interpolation=_SWS_FLAGS)  # fmt: skip


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
) -> Iterator[Frame]:
    """Yield the upright RGB frames of ``info.path`` whose timestamps fall in ``[start, end)`` seconds.

    Frames keep the source pts and time base. Without ``losses`` (strict), raises MediaError when a packet cannot be
    decoded or the stream ends well before its declared duration (a truncated file) - never a silent short output.
    With a :class:`DecodeLosses`, packets that cannot be decoded are skipped and the frames lost (there and at a
    truncated end) are recorded in it instead; MediaError is still raised when no frame at all can be decoded.
    """
    matrix, color_range = rgb_matrix(info.colorspace, info.color_range, info.pix_fmt, info.width, info.height)
    count = 0
    last_time: float | None = None
    step = 1.0 / info.fps if info.fps > 0 else 0.0
    failed = 0  # packets failed since the last delivered frame
    failed_from: float | None = None  # time of the first of them, if it had a timestamp
    with _open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        start_pts = round(start / stream.time_base) if start > 0 else None
        if start_pts is not None:
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(start_pts + (stream.start_time or 0), stream=stream, backward=True)
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # the container itself is unreadable from here on
                if losses is None:
                    raise MediaError(f"{info.path}: reading failed {_where(count, last_time)}: {_reason(exc)}") from exc
                break
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                if losses is None:
                    where = _where(count, last_time)
                    raise MediaError(f"{info.path}: decoding failed {where}: {_reason(exc)}") from exc
                losses.packets_failed += 1
                if packet.pts is not None and failed == 0:
                    failed_from = float(packet.pts * stream.time_base)
                failed += 1
                continue
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
                    begin = last_time + step if last_time is not None else max(start, failed_from or start)
                    if failed_from is not None and last_time is not None:
                        begin = max(begin, min(failed_from, t))
                    losses.add(begin, t, max(failed, round((t - begin) * info.fps)) if step else failed)
                failed, failed_from = 0, None
                rgb = to_rgb(frame, matrix, color_range)
                turns = _quarter_turns(frame.rotation)
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
                yield Frame(index=count, rgb=rgb, pts=frame.pts, time_base=stream.time_base)
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


# ------------------------------------------------------------------------------------------------------ output


# File-name suffix of each layout, for outputs named after their input.
LAYOUT_SUFFIX = {"half-sbs": "hsbs", "full-sbs": "fsbs", "half-tb": "htb", "full-tb": "ftb", "anaglyph": "anaglyph"}
_KEPT_EXTENSIONS = (".mp4", ".mkv", ".mov")


def output_name(input_path: str | Path, layout: str) -> str:
    """The file name an output gets when OUTPUT is a directory: ``<input stem>_<suffix><ext>``.

    ``suffix`` names the layout (:data:`LAYOUT_SUFFIX`: hsbs, fsbs, htb, ftb, anaglyph); ``ext`` is the input's if it
    is .mp4, .mkv or .mov, else .mkv (it holds any codec and carries the stereo-mode tag).
    """
    source = Path(input_path)
    ext = source.suffix if source.suffix.lower() in _KEPT_EXTENSIONS else ".mkv"
    return f"{source.stem}_{LAYOUT_SUFFIX[layout]}{ext}"


def check_output_path(output: str | Path, input_path: str | Path | None = None, layout: str | None = None) -> Path:
    """The file to write for OUTPUT; fail early (UsageError) if it cannot be written: before any decoding or model
    loading.

    An existing directory as OUTPUT means the file :func:`output_name` names inside it (this needs ``input_path``
    and ``layout``; without them a directory is refused).
    """
    out = Path(output)
    if out.is_dir():
        if input_path is None or layout is None:
            raise UsageError(f"output is a directory, not a file name: {out}")
        out = out / output_name(input_path, layout)
        if out.is_dir():
            raise UsageError(f"output {out} is a directory, not a file name")
    if input_path is not None and out.exists() and out.resolve() == Path(input_path).resolve():
        raise UsageError(f"output would overwrite the input: {out}")
    if not out.suffix:
        raise UsageError(f"output needs a file extension that names its container (.mp4, .mkv, .mov): {out}")
    try:
        av.format.ContainerFormat(format_name(out), "w")
    except (ValueError, av.error.FFmpegError) as exc:
        raise UsageError(f"unknown output container {out.suffix!r}: use .mp4, .mkv or .mov") from exc
    return check_writable_file(out)


def check_writable_file(path: str | Path, what: str = "output", suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` as a Path if a file can be written there: not a directory, ending in one of ``suffixes`` (any, if
    none), in an existing, writable directory. Else UsageError, naming ``what`` the file is: checked before any
    work, so a long run cannot fail at its very end."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{what} {path}: the file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{what} directory does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} directory is not writable: {parent}")
    return path


def format_name(path: Path) -> str:
    """The FFmpeg muxer for a file name, by extension."""
    ext = path.suffix.lower().lstrip(".")
    return {"mkv": "matroska", "m4v": "mp4", "ts": "mpegts", "webm": "webm"}.get(ext, ext)


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it to ``output`` only if the block succeeds.

    On any exception, KeyboardInterrupt included, the temporary file is removed and ``output`` is untouched. The
    temporary file is created (empty) with mode 0666 less the umask, the permissions any new file gets: not 0600 as
    with ``mkstemp``, so a farm's other users can read the result. Its name keeps ``output``'s extension, so writers
    that choose the format by extension (FFmpeg, OpenCV) still can.
    """
    directory = output.parent if str(output.parent) else Path(".")
    while True:
        tmp = directory / f".{output.stem}.{secrets.token_hex(4)}.partial{output.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot write to output directory {directory}: {exc.strerror or exc}") from exc
    try:
        yield tmp
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


# Matroska StereoMode of each layout, by the names FFmpeg's matroska muxer takes in the video stream's "stereo_mode"
# metadata (documented values: mono, left_right, bottom_top, top_bottom, checkerboard_*, row_interleaved_*,
# col_interleaved_*, anaglyph_cyan_red, right_left, anaglyph_green_magenta, block_*); it writes them as the StereoMode
# element (0x53B8), here 1, 3 and 10. Players that honour it switch to 3D by themselves.
#
# What the tag cannot express is half versus full resolution: it names the arrangement and which eye comes first,
# nothing more. FFmpeg also writes DisplayWidth/DisplayHeight as the display size of ONE view (the packed frame's
# halved along the packing axis), which is the eye's true shape only for full layouts; in half layouts each eye was
# squeezed 2:1 and the file cannot say so, so players rely on the half-SBS/TB convention. FFmpeg-based readers
# multiply the view size back and get the packed frame's own shape; a player with its own Matroska reader that
# ignores StereoMode (mpv's, for one) shows the packed frame at one view's size, squeezed.
#
# FFmpeg computes that view size from the AVStream's sample aspect ratio, which PyAV cannot set (only the encoder's),
# so it assumes square pixels; for a source with non-square pixels an SBS/TB tag would replace the true aspect with a
# wrong one. Those outputs keep their aspect and go without the tag (anaglyph is not packed: its tag changes nothing).
_MATROSKA_STEREO_MODE = {"half-sbs": "left_right", "full-sbs": "left_right", "half-tb": "top_bottom",
                         "full-tb": "top_bottom", "anaglyph": "anaglyph_cyan_red"}  # fmt: skip
_WEBM_STEREO_MODES = ("left_right", "top_bottom")  # WebM allows no anaglyph mode; FFmpeg refuses one there
# MP4/MOV: the container's stereo box (st3d), written by FFmpeg from stereo3d stream side data, cannot be set from
# PyAV (the only stream side data it writes is the display matrix), and FFmpeg's mov muxer writes st3d only with
# -strict unofficial anyway. With libx264 the video stream itself carries the layout instead, in every container: an
# H.264 frame-packing-arrangement SEI (x264's frame-packing: 3 = side by side, 4 = top-bottom; x264 marks the first
# view as the left one), which FFmpeg's decoder exports as stereo3d side data on every frame. H.264 has no anaglyph
# type, and like the Matroska tag the SEI does not say half or full.
_X264_FRAME_PACKING = {"half-sbs": 3, "full-sbs": 3, "half-tb": 4, "full-tb": 4}


def tag_stereo_layout(
    stream: av.video.stream.VideoStream,
    muxer: str,
    config: OutputConfig,
    options: dict[str, str],
    sample_aspect_ratio: Fraction,
) -> None:
    """Label ``stream`` with the stereo layout ``config.format``: the Matroska StereoMode tag in MKV (and in WebM
    where it allows the mode; for SBS/TB only with square pixels, see above), and an H.264 frame-packing SEI through
    the encoder ``options`` when encoding with libx264."""
    mode = _MATROSKA_STEREO_MODE[config.format]
    keeps_aspect = config.format == "anaglyph" or sample_aspect_ratio == 1
    if keeps_aspect and (muxer == "matroska" or (muxer == "webm" and mode in _WEBM_STEREO_MODES)):
        stream.metadata["stereo_mode"] = mode
    if config.codec.startswith("libx264") and config.format in _X264_FRAME_PACKING:
        options["x264-params"] = f"frame-packing={_X264_FRAME_PACKING[config.format]}"


class VideoWriter:
    """Encode RGB frames to ``path`` and copy the source's audio and subtitle streams, chapters and global metadata
    alongside (see :class:`AudioCopy`; ``config.audio`` says what becomes of audio), unless ``video_only``.

    Use as a context manager: the file is finished when the block succeeds and abandoned when it raises.

    Audio and subtitle packets are written in step with the video so the file is interleaved; timestamps of all are
    shifted by ``start``. ``notes``: what could not be carried over, and why (human-readable).
    """

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        size: tuple[int, int],
        config: OutputConfig,
        *,
        start: float = 0.0,
        end: float | None = None,
        video_only: bool = False,
    ) -> None:
        width, height = size
        if width % 2 or height % 2:
            raise ValueError(f"output size must be even for {config.pix_fmt}, got {width}x{height}")
        self._info = info
        self._matrix, _ = rgb_matrix(info.colorspace, info.color_range, info.pix_fmt, info.width, info.height)
        try:
            self._out = av.open(str(path), mode="w", format=format_name(path))
        except (av.error.FFmpegError, OSError) as exc:
            raise StereoconvError(f"cannot create output file {path}: {_reason(exc)}") from exc
        try:
            self._video = self._add_video_stream(width, height, config)
            # A source without audio still gets its subtitles, chapters and metadata copied (audio mode "none");
            # a video-only file (a render-farm chunk, which assembly joins with the source's streams) gets nothing.
            audio = config.audio if info.audio_streams else "none"
            self._audio = None if video_only else AudioCopy(self._out, info.path, start, end, audio=audio)
        except BaseException:
            self._out.close()
            raise
        self._start_pts = round(start / info.time_base)

    @property
    def notes(self) -> list[str]:
        """What of the source could not be carried into the output, and why."""
        return list(self._audio.notes) if self._audio is not None else []

    def _add_video_stream(self, width: int, height: int, config: OutputConfig) -> av.video.stream.VideoStream:
        if config.codec not in av.codecs_available:
            raise UsageError(f"encoder {config.codec!r} is not available in this FFmpeg build")
        rate = Fraction(self._info.fps).limit_denominator(1001 * 1000) if self._info.fps > 0 else Fraction(25)
        stream = self._out.add_stream(config.codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = config.pix_fmt
        # The encoder's time base must be the source's too: left at 1/rate it would snap VFR timestamps to that grid.
        stream.time_base = self._info.time_base
        cc = stream.codec_context
        cc.time_base = self._info.time_base
        cc.sample_aspect_ratio = self._info.sample_aspect_ratio
        cc.colorspace = int(self._matrix) if int(self._matrix) in (1, 5, 6, 7, 9) else 1
        cc.color_range = _AVCOL_RANGE_MPEG
        if self._info.color_primaries != 2:
            cc.color_primaries = self._info.color_primaries
        if self._info.color_trc != 2:
            cc.color_trc = self._info.color_trc
        options = {"crf": str(config.crf), "preset": config.preset} if config.codec.startswith("libx26") else {}
        tag_stereo_layout(stream, self._out.format.name, config, options, self._info.sample_aspect_ratio)
        stream.options = options
        return stream

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one uint8 HxWx3 RGB frame shown at source timestamp ``pts`` (source time base)."""
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format=self._video.pix_fmt,
            dst_colorspace=self._matrix,
            dst_color_range=_AVCOL_RANGE_MPEG,
            interpolation=_SWS_FLAGS,
        )
        frame.pts = pts - self._start_pts
        frame.time_base = self._info.time_base
        self._mux(self._video.encode(frame))
        if self._audio is not None:
            self._audio.write_until(float(frame.pts * self._info.time_base) + 1.0)

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._out.mux(packets)
        except av.error.FFmpegError as exc:
            raise StereoconvError(f"writing the output failed: {_reason(exc)}") from exc

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Finish the file if the block succeeded, else abandon it (the caller's atomic_output removes it)."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        """Flush the encoder and the remaining audio and finish the file."""
        try:
            self._mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.write_until(float("inf"))
                self._audio.close()
        finally:
            self._out.close()

    def abort(self) -> None:
        """Close without finishing; the caller removes the file."""
        with contextlib.suppress(Exception):
            if self._audio is not None:
                self._audio.close()
        with contextlib.suppress(Exception):
            self._out.close()


# Global metadata the muxer writes itself, or that describes the source file rather than its content.
_MUXER_METADATA = ("encoder", "major_brand", "minor_version", "compatible_brands", "duration")


class AudioCopy:
    """What of the source besides its video goes into an output container: every audio stream (``audio``: "copy"
    keeps the codec where the container can hold it, else re-encodes to AAC; "aac" re-encodes every one; "none"
    drops them), every subtitle stream the container can hold (copied; the others are dropped with a note),
    chapters (shifted by ``start``; those outside [start, end) dropped, the others clipped to it) and the global
    metadata (title etc.). Streams keep their language and title tags and their disposition (default, forced, ...).

    ``notes``: human-readable lines saying what was dropped or re-encoded, and why.
    """

    def __init__(
        self,
        out: av.container.OutputContainer,
        source: Path,
        start: float,
        end: float | None,
        *,
        audio: str = "copy",
    ) -> None:
        self._out = out
        self._src = _open_input(source)
        self._start, self._end = start, end
        self._map: dict[int, tuple[av.stream.Stream, bool]] = {}
        self._pending: av.Packet | None = None
        self.notes: list[str] = []
        try:
            self._add_streams(audio)
            self._copy_chapters()
            for key, value in self._src.metadata.items():
                if key.lower() not in _MUXER_METADATA:
                    out.metadata.setdefault(key, value)
        except BaseException:
            self._src.close()
            raise
        copied = [s for s in self._src.streams if s.index in self._map]
        if start > 0 and copied:
            with contextlib.suppress(av.error.FFmpegError):
                self._src.seek(round(start * av.time_base), backward=True)
        self._packets = self._src.demux(*copied) if copied else iter(())

    def _add_streams(self, audio: str) -> None:
        out, muxer = self._out, self._out.format.name
        supported = out.supported_codecs
        for stream in self._src.streams.audio:
            if audio == "none":
                break
            codec = stream.codec_context.name
            copy = audio == "copy" and codec in supported
            if copy:
                ostream = out.add_stream_from_template(stream)
            else:
                ostream = out.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
                ostream.layout = stream.codec_context.layout
                if audio == "copy":
                    self.notes.append(f"{_describe(stream)} re-encoded to AAC: {muxer} cannot hold {codec}")
            self._keep_tags(stream, ostream)
            self._map[stream.index] = (ostream, copy)
        if audio == "none" and self._src.streams.audio:
            self.notes.append(f"{len(self._src.streams.audio)} audio stream(s) dropped (audio = none)")
        for stream in self._src.streams.subtitles:
            codec = stream.codec_context.name
            if codec not in supported:
                self.notes.append(f"{_describe(stream)} dropped: {muxer} cannot hold {codec} subtitles "
                                  "(write .mkv to keep them)")  # fmt: skip
                continue
            try:
                ostream = out.add_stream_from_template(stream)
            except (av.error.FFmpegError, ValueError) as exc:
                self.notes.append(f"{_describe(stream)} dropped: {_reason(exc)}")
                continue
            self._keep_tags(stream, ostream)
            self._map[stream.index] = (ostream, True)

    @staticmethod
    def _keep_tags(stream: av.stream.Stream, ostream: av.stream.Stream) -> None:
        for key in ("language", "title", "handler_name"):
            if key in stream.metadata:
                ostream.metadata[key] = stream.metadata[key]
        ostream.disposition = stream.disposition

    def _copy_chapters(self) -> None:
        chapters = []
        for chapter in self._src.chapters():
            tb = chapter["time_base"]
            begin, finish = float(chapter["start"] * tb), float(chapter["end"] * tb)
            if finish <= self._start or (self._end is not None and begin >= self._end):
                continue
            if self._end is not None:
                finish = min(finish, self._end)
            shift = round(self._start / tb)
            chapters.append({**chapter, "start": max(0, chapter["start"] - shift),
                             "end": round(finish / tb) - shift})  # fmt: skip
        if chapters:
            self._out.set_chapters(chapters)

    def write_until(self, t: float) -> None:
        """Mux the source's audio and subtitles up to ``t`` seconds of output time."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.pts is None:  # the demuxer's end-of-stream flush packets
                continue
            src_t = float(packet.pts * packet.time_base)
            if src_t - self._start > t:
                self._pending = packet
                return
            if src_t < self._start - 1e-6 or (self._end is not None and src_t >= self._end):
                continue
            self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        ostream, copy = self._map[packet.stream.index]
        kind = packet.stream.type
        shift = round(self._start / packet.time_base)
        try:
            if copy:
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = ostream
                self._out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None if frame.pts is None else frame.pts - shift
                    self._out.mux(ostream.encode(frame))
        except av.error.FFmpegError as exc:
            raise StereoconvError(f"writing {kind} stream {packet.stream.index} failed: {_reason(exc)}") from exc

    def close(self) -> None:
        try:
            for ostream, copy in self._map.values():
                if not copy:
                    self._out.mux(ostream.encode(None))
        finally:
            self._src.close()


def _describe(stream: av.stream.Stream) -> str:
    """E.g. 'subtitle stream 3 (subrip, eng, "Commentary")'."""
    details = [stream.codec_context.name, stream.metadata.get("language"), stream.metadata.get("title")]
    details[2] = f'"{details[2]}"' if details[2] else None
    return f"{stream.type} stream {stream.index} ({', '.join(d for d in details if d)})"
