"""Reading media with PyAV: probing, decoding to upright RGB frames with their timestamps, colour conversion (tone
mapping HDR for the model), and accounting for what a damaged file loses. Writing is :mod:`stereoconv.encode`.

Geometry: frames are delivered upright (rotation metadata applied to the pixels) in storage resolution; the source's
sample (pixel) aspect ratio is carried to the output unchanged, so anamorphic sources stay anamorphic and players show
them at the right shape. Colour: YUV->RGB uses the source's matrix and range (BT.709 assumed for untagged HD, BT.601
for untagged SD), and the output is converted back and tagged with the same matrix and range.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from .errors import MediaError

# AVColorSpace (frame/stream tag) -> swscale matrix.
_SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
               7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}  # fmt: skip
AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 1, 2
# swscale's default rounding darkens every YUV<->RGB conversion by a level or two; accurate rounding does not.
SWS_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


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
            interlaced=field_order != "progressive", field_order=field_order,
        )  # fmt: skip


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


def rgb_matrix(colorspace: int, color_range: int, pix_fmt: str, width: int, height: int) -> tuple[Colorspace, int]:
    """The swscale matrix and AVColorRange to convert between YUV and RGB, from a stream's colour tags.

    Untagged streams get what players assume: BT.709 for HD sizes, BT.601 below; limited range unless full range is
    tagged or implied by a ``yuvj`` format.
    """
    matrix = _SWS_MATRIX.get(colorspace)
    if matrix is None:
        hd = max(width, height) >= 1280 or min(width, height) >= 720
        matrix = Colorspace.ITU709 if hd else Colorspace.ITU601
    full = color_range == AVCOL_RANGE_JPEG or pix_fmt.startswith("yuvj")
    return matrix, AVCOL_RANGE_JPEG if full else AVCOL_RANGE_MPEG


def to_rgb(frame: av.VideoFrame, matrix: Colorspace, color_range: int) -> np.ndarray:
    """A decoded frame as uint8 HxWx3 RGB in stored orientation (10-bit sources are rounded to 8 bits).

    HDR frames (PQ or HLG transfer, see :func:`is_hdr`) are tone-mapped to SDR BT.709 by :func:`tone_map_to_sdr`:
    the depth model sees a normal picture, and the output is rendered from these SDR frames (tagged BT.709 SDR).
    """
    deep = _deep_yuv_to_rgb(frame, matrix, color_range)
    if deep is not None and is_hdr(frame.color_trc):
        return tone_map_to_sdr(deep, frame.color_trc, frame.color_primaries)
    if deep is not None:
        return np.clip(np.rint(deep * 255.0), 0, 255).astype(np.uint8)
    if is_hdr(frame.color_trc):
        rgb = frame.to_ndarray(format="rgb48le", src_colorspace=matrix, src_color_range=color_range,
                               interpolation=SWS_FLAGS)  # fmt: skip
        return tone_map_to_sdr(rgb.astype(np.float32) / 65535.0, frame.color_trc, frame.color_primaries)
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range=color_range,
                            interpolation=SWS_FLAGS)  # fmt: skip


# Luma coefficients (Kr, Kb) of each swscale matrix.
_KR_KB = {Colorspace.ITU709: (0.2126, 0.0722), Colorspace.ITU601: (0.299, 0.114), Colorspace.FCC: (0.30, 0.11),
          Colorspace.SMPTE240M: (0.212, 0.087), Colorspace.BT2020: (0.2627, 0.0593)}  # fmt: skip
_DEEP_YUV = {"yuv420p10le": (10, 1, 1), "yuv422p10le": (10, 1, 0), "yuv444p10le": (10, 0, 0),
             "yuv420p12le": (12, 1, 1), "yuv422p12le": (12, 1, 0), "yuv444p12le": (12, 0, 0)}  # fmt: skip


def _deep_yuv_to_rgb(frame: av.VideoFrame, matrix: Colorspace, color_range: int) -> np.ndarray | None:
    """A planar 10/12-bit YUV frame as float32 HxWx3 RGB in [0, 1] (non-linear), or None for other formats.

    Done here rather than by swscale, whose high-bit-depth to RGB conversion is off by up to two 8-bit levels
    (10-bit limited-range 504, an 8-bit 128, comes out as 126; white 940 as 253). Chroma is upsampled by repetition.
    """
    layout = _DEEP_YUV.get(frame.format.name)
    if layout is None or matrix not in _KR_KB:
        return None
    bits, sx, sy = layout
    w, h = frame.width, frame.height
    planes = []
    for i, plane in enumerate(frame.planes):
        pw, ph = (-(-w >> sx), -(-h >> sy)) if i else (w, h)
        a = np.frombuffer(plane, np.uint16).reshape(-1, plane.line_size // 2)[:ph, :pw].astype(np.float32)
        if i:
            a = np.repeat(np.repeat(a, 1 << sy, axis=0), 1 << sx, axis=1)[:h, :w]
        planes.append(a)
    scale = float(1 << (bits - 8))
    if color_range == AVCOL_RANGE_JPEG:
        full = float((1 << bits) - 1)
        y, cb, cr = planes[0] / full, (planes[1] - 128 * scale) / full, (planes[2] - 128 * scale) / full
    else:
        y = (planes[0] - 16 * scale) / (219 * scale)
        cb, cr = (planes[1] - 128 * scale) / (224 * scale), (planes[2] - 128 * scale) / (224 * scale)
    kr, kb = _KR_KB[matrix]
    kg = 1.0 - kr - kb
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


# AVColorTransferCharacteristic values of the HDR transfers.
_TRC_PQ, _TRC_HLG = 16, 18  # SMPTE ST 2084, ARIB STD-B67
_PRIMARIES_BT2020 = 9
# Linear-light BT.2020 RGB -> BT.709 RGB (ITU-R BT.2087).
_BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]],
                            dtype=np.float32)  # fmt: skip
_SDR_WHITE_NITS = 203.0  # HDR reference white (ITU-R BT.2408): becomes SDR's linear 1.0 before the curve
_HDR_PEAK_NITS = 1000.0  # brightest level kept: brighter highlights clip to SDR white
_HLG_PEAK_NITS = 1000.0  # nominal display peak for HLG's OOTF


def is_hdr(color_trc: int) -> bool:
    """Whether an AVColorTransferCharacteristic tag is an HDR transfer (PQ or HLG)."""
    return int(color_trc) in (_TRC_PQ, _TRC_HLG)


def tone_map_to_sdr(rgb: np.ndarray, color_trc: int, color_primaries: int) -> np.ndarray:
    """HDR non-linear RGB (float HxWx3 in [0, 1], PQ or HLG coded) -> uint8 SDR RGB, BT.709 primaries and OETF.

    Simple and global: to display light in nits (PQ EOTF; HLG inverse OETF with its OOTF for a 1000-nit display),
    BT.2020 -> BT.709 gamut in linear light, reference white (203 nits) to 1.0, an extended Reinhard curve on
    luminance (1000 nits and above become white, hue kept), then the BT.709 OETF. A PQ 100-nit grey becomes about
    146 of 255. Not a grading-quality tone map: it is what the depth model and the SDR output are made from.
    """
    e = np.clip(rgb.astype(np.float32, copy=False), 0.0, 1.0)
    if int(color_trc) == _TRC_PQ:
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        p = e ** (1.0 / m2)
        nits = 10000.0 * (np.maximum(p - c1, 0.0) / (c2 - c3 * p)) ** (1.0 / m1)
    else:  # HLG
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        scene = np.where(e <= 0.5, e * e / 3.0, (np.exp((e - c) / a) + b) / 12.0)
        ys = scene @ np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)
        nits = _HLG_PEAK_NITS * scene * (np.maximum(ys, 1e-6) ** 0.2)[..., None]
    if int(color_primaries) == _PRIMARIES_BT2020:
        nits = np.maximum(nits @ _BT2020_TO_BT709.T, 0.0)
    x = nits / _SDR_WHITE_NITS
    lum = x @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    white = _HDR_PEAK_NITS / _SDR_WHITE_NITS
    mapped = lum * (1.0 + lum / (white * white)) / (1.0 + lum)
    linear = np.clip(x * (mapped / np.maximum(lum, 1e-6))[..., None], 0.0, 1.0)
    v = np.where(linear < 0.018, 4.5 * linear, 1.099 * linear**0.45 - 0.099)
    return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)


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
    deinterlace: bool = False,
) -> Iterator[Frame]:
    """Yield the upright RGB frames of ``info.path`` whose timestamps fall in ``[start, end)`` seconds.

    Frames keep the source pts and time base. Without ``losses`` (strict), raises MediaError when a packet cannot be
    decoded or the stream ends well before its declared duration (a truncated file) - never a silent short output.
    With a :class:`DecodeLosses`, packets that cannot be decoded are skipped and the frames lost (there and at a
    truncated end) are recorded in it instead; MediaError is still raised when no frame at all can be decoded.
    ``deinterlace``: run every frame through FFmpeg's ``bwdif`` (one frame out per frame in, timestamps kept).
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
