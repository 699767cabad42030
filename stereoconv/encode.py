"""Writing media with PyAV: output paths checked before any work, atomic output, the encoder (labelled with the
stereo layout), and the source's audio, subtitles, chapters and metadata carried alongside. Reading is
:mod:`stereoconv.media`.

Geometry and colour follow the source: its sample aspect ratio is kept, and frames are converted back to YUV with the
matrix they were decoded with (see :func:`stereoconv.colour.rgb_matrix`) and tagged with the source's colour. A source
of more than 8 bits written at more than 8 bits (:func:`renders_deep`) keeps everything: bit depth, primaries,
transfer (HDR stays HDR) and HDR10 metadata where the encoder can write it. Otherwise an HDR source is written as the
tone-mapped SDR BT.709 picture the model saw, and a note says so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from fractions import Fraction
from glob import escape as glob_escape
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: temporary files of killed runs are not swept
    fcntl = None  # type: ignore[assignment]

import av
import av.error
import numpy as np
from av.video.reformatter import Colorspace

from .colour import AVCOL_RANGE_MPEG, DEEP_YUV, SWS_FLAGS, is_hdr, rgb_matrix, rgb_to_deep_yuv
from .config import ENCODERS, PIX_FMTS, OutputConfig, PipelineConfig
from .errors import StereoconvError, UsageError, storage_error
from .media import VideoInfo, ffmpeg_reason, open_input, subtitle_mode

# File-name suffix of each layout, for outputs named after their input.
LAYOUT_SUFFIX = {"half-sbs": "hsbs", "full-sbs": "fsbs", "half-tb": "htb", "full-tb": "ftb", "anaglyph": "anaglyph"}
_KEPT_EXTENSIONS = (".mp4", ".mkv", ".mov")
OUTPUT_EXTENSIONS = _KEPT_EXTENSIONS  # the containers an output may be: what the CLI help promises


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
    if out.suffix.lower() not in OUTPUT_EXTENSIONS:
        # FFmpeg has muxers for more (.avi, .webm, .ts, ...), but not all of them take what is written here: AVI
        # cannot hold these timestamps and its header would claim a frame count of its own.
        raise UsageError(f"unsupported output container {out.suffix!r}: use .mp4, .mkv or .mov")
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
def staged_output(output: Path, what: str = "output directory") -> Iterator[Path]:
    """Yield a new, empty temporary file beside ``output`` (:func:`new_partial`: hidden, unique, ``.partial`` in its
    name, swept by a later write of ``output`` if this process is killed), removed on leaving unless the block renamed
    it into place. OSErrors of the machine (a full disk, a vanished folder...) become a StorageError naming ``output``
    rather than the temporary file; a folder that cannot take the file at all is a UsageError naming it as ``what``."""
    directory = output.parent if str(output.parent) else Path(".")
    try:
        tmp, held = new_partial(output)
    except OSError as exc:
        raise storage_error(exc, output) or UsageError(f"cannot write to {what} {directory}: "
                                                       f"{exc.strerror or exc}") from exc  # fmt: skip
    try:
        try:
            yield tmp
        except OSError as exc:  # one line naming the output, not its temporary file
            named = exc.filename is None or os.fsdecode(exc.filename) == str(tmp)
            fault = storage_error(exc, output if named else None)
            if fault is None:
                raise
            raise fault from exc
    finally:
        with contextlib.suppress(OSError):  # its folder may be gone: the error above says so
            tmp.unlink(missing_ok=True)
        os.close(held)


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it to ``output`` only if the block succeeds.

    On any exception, KeyboardInterrupt included, the temporary file is removed and ``output`` is untouched. The
    temporary file is created (empty) with mode 0666 less the umask, the permissions any new file gets: not 0600 as
    with ``mkstemp``, so a farm's other users can read the result. Its name keeps ``output``'s extension, so writers
    that choose the format by extension (FFmpeg, OpenCV) still can. Errors as for :func:`staged_output`.
    """
    with staged_output(output) as tmp:
        yield tmp
        os.replace(tmp, output)


def new_partial(output: Path) -> tuple[Path, int]:
    """A new, empty temporary file beside ``output`` (``.<stem>.<8 hex>.partial<suffix>``, mode 0666 less the
    umask) and a descriptor holding an ``flock`` on it until closed: the mark of a live writer.

    First removes the temporary files of ``output`` no live process holds, those a killed run (SIGKILL, a power
    cut) left: they are swept by the next write of the same output. Raises OSError when it cannot be created."""
    directory = output.parent if str(output.parent) else Path(".")
    with contextlib.suppress(OSError):
        for stale in directory.glob(f".{glob_escape(output.stem)}.*.partial{glob_escape(output.suffix)}"):
            if len(stale.name) == len(output.stem) + len(output.suffix) + 18 and _unheld(stale):
                stale.unlink(missing_ok=True)
    while True:
        tmp = directory / f".{output.stem}.{secrets.token_hex(4)}.partial{output.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without locks: never swept, as before
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return tmp, fd


def _unheld(path: Path) -> bool:
    """Whether no process holds ``path``'s lock (its writer is gone); False where locks are not available."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


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
    # The one video track is the one to play: MKV writes a track's FlagDefault from its disposition, and a stream
    # made from nothing (or from a chunk's template) has none, so players would see "not default".
    stream.disposition = av.stream.Disposition.default
    if config.codec.startswith("libx264") and config.format in _X264_FRAME_PACKING:
        options["x264-params"] = f"frame-packing={_X264_FRAME_PACKING[config.format]}"


# What each encoder's output file may be (by muxer); encoders not listed go in any container FFmpeg allows.
_ENCODER_CONTAINERS = {"prores_ks": ("mov", "matroska"), "ffv1": ("matroska",)}


def output_pix_fmt(config: OutputConfig, info: VideoInfo, path: Path) -> str:
    """The pixel format to encode with: ``config.pix_fmt`` ('source': yuv420p10le, or yuv444p10le for a 4:4:4
    source, when the source has more than 8 bits and the layout is not anaglyph, else yuv420p; prores_ks:
    yuv422p10le; the NVENC encoders take 10-bit 4:2:0 as p010le), after checking that the encoder is available, takes
    that format and suits the container of ``path``; UsageError if not. Called before any work, so a bad choice fails
    at once."""
    codec = config.codec
    if codec not in av.codecs_available:
        have = [c for c in ENCODERS if c in av.codecs_available]
        raise UsageError(f"encoder {codec!r} is not available in this FFmpeg build; available: "
                         f"{', '.join(have) or 'none of ' + ', '.join(ENCODERS)}")  # fmt: skip
    muxer = format_name(path)
    allowed = _ENCODER_CONTAINERS.get(codec)
    if allowed is not None and not any(m in muxer.split(",") for m in allowed):
        exts = " or ".join("." + ("mkv" if m == "matroska" else m) for m in allowed)
        raise UsageError(f"encoder {codec} needs a {exts} output, not {path.suffix or path.name!r}")
    pix_fmt = config.pix_fmt
    if pix_fmt == "source":
        if codec == "prores_ks":
            pix_fmt = "yuv422p10le"
        elif info.bit_depth > 8 and config.format != "anaglyph":  # anaglyph is rendered in 8-bit SDR
            pix_fmt = "yuv444p10le" if info.pix_fmt.startswith(("yuv444", "gbr")) else "yuv420p10le"
        else:
            pix_fmt = "yuv420p"
    if codec.endswith("_nvenc") and pix_fmt == "yuv420p10le":
        pix_fmt = "p010le"  # the same samples, in the semi-planar layout NVENC takes
    supported = {f.name for f in av.Codec(codec, "w").video_formats or ()}
    if supported and pix_fmt not in supported:
        takes = supported | ({"yuv420p10le"} if codec.endswith("_nvenc") and "p010le" in supported else set())
        ok = ", ".join(f for f in PIX_FMTS if f in takes) or "none of " + ", ".join(PIX_FMTS[:-1])
        raise UsageError(f"encoder {codec} cannot encode pix_fmt {pix_fmt}; it takes {ok}")
    return pix_fmt


def renders_deep(config: OutputConfig, info: VideoInfo, path: Path) -> bool:
    """Whether the output is rendered from the source-colour 16-bit pictures (``decode(..., deep=True)``): the
    source has more than 8 bits, the output pix_fmt too, and the layout is not anaglyph (an SDR 8-bit mix)."""
    bits = av.VideoFormat(output_pix_fmt(config, info, path)).components[0].bits
    return info.bit_depth > 8 and bits > 8 and config.format != "anaglyph"


def video_notes(config: OutputConfig, info: VideoInfo, path: Path) -> list[str]:
    """What of the source's video colour the output written to ``path`` cannot keep, and why: HDR tone-mapped to SDR
    (an 8-bit output or anaglyph), HDR10 static metadata the encoder cannot write. Empty if it keeps everything."""
    if not is_hdr(info.color_trc):
        return []
    if not renders_deep(config, info, path):
        bits = output_pix_fmt(config, info, path)
        why = "anaglyph is an SDR format" if config.format == "anaglyph" else f"the output is 8-bit ({bits})"
        return [f"HDR source written as SDR BT.709 (tone-mapped): {why}; use --pix-fmt source for HDR output"]
    if info.hdr10 is not None and info.hdr10.encoder_params(config.codec) is None:
        return [f"HDR10 static metadata ({info.hdr10.describe()}) dropped: {config.codec} cannot take it here "
                "(libx264 and libx265 can)"]  # fmt: skip
    return []


def conversion_notes(info: VideoInfo, config: PipelineConfig, output: Path) -> list[str]:
    """What a conversion of ``info`` to ``output`` changes of the source's picture, and why: colour it cannot keep
    (:func:`video_notes`) and interlacing. The other streams' notes come from the writer."""
    notes = video_notes(config.output, info, output)
    if info.interlaced:
        how = "deinterlaced with bwdif" if config.media.deinterlace else "use --deinterlace for a cleaner result"
        notes.append(f"input is interlaced ({info.field_order}): {how}")
    if subtitle_mode(config.output, info) == "burn" and info.text_subtitles:
        notes.append("text subtitles burned into both eyes, in front of what they cover (--subtitles keep copies "
                     "them as soft subtitles instead)")  # fmt: skip
    return notes


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
            if storage_error(exc) is not None:
                raise  # a full disk...: atomic_output names the output, not its temporary file
            raise StereoconvError(f"cannot create output file {path}: {ffmpeg_reason(exc)}") from exc
        try:
            self._video = self._add_video_stream(width, height, config)
            # A source without audio still gets its subtitles, chapters and metadata copied (audio mode "none");
            # a video-only file (a render-farm chunk, which assembly joins with the source's streams) gets nothing.
            audio = config.audio if info.audio_streams else "none"
            subtitles = subtitle_mode(config, info) == "keep"  # burned ones are in the picture
            self._audio = None if video_only else AudioCopy(self._out, info.path, start, end, audio=audio,
                                                            subtitles=subtitles)  # fmt: skip
        except BaseException:
            self._out.close()
            raise
        self._start_pts = round(start / info.time_base)

    @property
    def notes(self) -> list[str]:
        """What of the source's other streams could not be carried into the output, and why (for the video itself,
        see :func:`video_notes`)."""
        return list(self._audio.notes) if self._audio is not None else []

    def _add_video_stream(self, width: int, height: int, config: OutputConfig) -> av.video.stream.VideoStream:
        info, path = self._info, Path(self._out.name)
        pix_fmt = output_pix_fmt(config, info, path)
        # Frames come as the source-colour 16-bit pictures (renders_deep) or as the model's 8-bit SDR view.
        tone_mapped = is_hdr(info.color_trc) and not renders_deep(config, info, path)
        if tone_mapped:
            self._matrix = Colorspace.ITU709
        # Planar 4:2:0/4:2:2/4:4:4 at 10/12 bits is converted from RGB here (exactly), not by swscale (see
        # rgb_to_deep_yuv); p010le is the same samples repacked.
        self._yuv = "yuv420p10le" if pix_fmt == "p010le" else pix_fmt if pix_fmt in DEEP_YUV else None
        rate = Fraction(self._info.fps).limit_denominator(1001 * 1000) if self._info.fps > 0 else Fraction(25)
        stream = self._out.add_stream(config.codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt
        # The encoder's time base must be the source's too: left at 1/rate it would snap VFR timestamps to that grid.
        stream.time_base = self._info.time_base
        cc = stream.codec_context
        cc.time_base = self._info.time_base
        cc.sample_aspect_ratio = self._info.sample_aspect_ratio
        cc.colorspace = int(self._matrix) if int(self._matrix) in (1, 5, 6, 7, 9) else 1
        cc.color_range = AVCOL_RANGE_MPEG
        if tone_mapped:
            cc.color_primaries, cc.color_trc = 1, 1  # BT.709
        else:
            if info.color_primaries != 2:
                cc.color_primaries = info.color_primaries
            if info.color_trc != 2:
                cc.color_trc = info.color_trc
        options = {"crf": str(config.crf), "preset": config.preset} if config.codec.startswith("libx26") else {}
        if config.codec == "libx265":
            options["x265-params"] = "log-level=error"  # x265 logs every encode's statistics to stderr otherwise
        tag_stereo_layout(stream, self._out.format.name, config, options, info.sample_aspect_ratio)
        if info.hdr10 is not None and not tone_mapped:
            self._add_hdr10(options, config.codec)
        stream.options = options
        return stream

    def _add_hdr10(self, options: dict[str, str], codec: str) -> None:
        """Pass the source's HDR10 static metadata to the encoder, which writes it as SEI in the bitstream (the only
        way from PyAV, which cannot attach side data to frames or streams); :func:`video_notes` says where not."""
        assert self._info.hdr10 is not None
        params = self._info.hdr10.encoder_params(codec)
        if params is None:
            return
        key = "x264-params" if codec == "libx264" else "x265-params"
        options[key] = f"{options[key]}:{params}" if key in options else params

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one HxWx3 RGB frame shown at source timestamp ``pts`` (source time base): uint8, or uint16 (what is
        rendered from a :class:`~stereoconv.media.Frame` ``picture``, in the source's colour: see
        :func:`renders_deep`)."""
        if self._yuv is not None:
            frame = rgb_to_deep_yuv(rgb, self._yuv, self._matrix, AVCOL_RANGE_MPEG)
            if self._yuv != self._video.pix_fmt:
                frame = frame.reformat(format=self._video.pix_fmt)
        else:
            layout = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
            pixels = np.ascontiguousarray(rgb)
            # The conversion reads the array in place (a copy into a frame costs more than the conversion itself);
            # what it makes is the encoder's own frame. Not where nothing would be converted: the encoder would then
            # hold on to the array's memory.
            source = (av.VideoFrame.from_numpy_buffer(pixels, format=layout) if layout != self._video.pix_fmt
                      else av.VideoFrame.from_ndarray(pixels, format=layout))  # fmt: skip
            frame = source.reformat(
                format=self._video.pix_fmt,
                dst_colorspace=self._matrix,
                dst_color_range=AVCOL_RANGE_MPEG,
                interpolation=SWS_FLAGS,
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
            if storage_error(exc) is not None:
                raise  # a full disk...: atomic_output names the output, not its temporary file
            raise StereoconvError(f"writing the output failed: {ffmpeg_reason(exc)}") from exc

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
    drops them), every subtitle stream the container can hold (copied; the others are dropped with a note; none
    with ``subtitles`` False: burned into the picture or dropped, see :func:`~stereoconv.media.subtitle_mode`),
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
        subtitles: bool = True,
    ) -> None:
        self._out = out
        self._src = open_input(source)
        self._start, self._end = start, end
        self._map: dict[int, tuple[av.stream.Stream, bool]] = {}
        self._pending: av.Packet | None = None
        self.notes: list[str] = []
        try:
            self._add_streams(audio, subtitles)
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

    def _add_streams(self, audio: str, subtitles: bool = True) -> None:
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
        for stream in self._src.streams.subtitles if subtitles else ():
            codec = stream.codec_context.name
            if codec not in supported:
                self.notes.append(f"{_describe(stream)} dropped: {muxer} cannot hold {codec} subtitles "
                                  "(write .mkv to keep them)")  # fmt: skip
                continue
            try:
                ostream = out.add_stream_from_template(stream)
            except (av.error.FFmpegError, ValueError) as exc:
                self.notes.append(f"{_describe(stream)} dropped: {ffmpeg_reason(exc)}")
                continue
            self._keep_tags(stream, ostream)
            self._map[stream.index] = (ostream, True)

    @staticmethod
    def _keep_tags(stream: av.stream.Stream, ostream: av.stream.Stream) -> None:
        for key in ("language", "title", "handler_name"):
            if key in stream.metadata:
                ostream.metadata[key] = stream.metadata[key]
        if "title" not in stream.metadata and "name" in stream.metadata:  # MP4/MOV demuxers call the title "name"
            ostream.metadata["title"] = stream.metadata["name"]
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
            if storage_error(exc) is not None:
                raise  # a full disk...: atomic_output names the output, not its temporary file
            raise StereoconvError(f"writing {kind} stream {packet.stream.index} failed: {ffmpeg_reason(exc)}") from exc

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
