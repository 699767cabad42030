"""Colour: the YUV<->RGB matrices a stream's tags call for, exact 10/12-bit conversions both ways, HDR transfers
(tone mapping to SDR for the depth model) and HDR10 static metadata. Used by :mod:`stereoconv.media` to read and by
:mod:`stereoconv.encode` to write; no I/O here.

Two views of each frame: the model's (uint8 SDR RGB, HDR tone-mapped) and, for sources of more than 8 bits written
at more than 8 bits, the picture the output is rendered from (uint16 RGB in the source's own primaries and transfer,
see :func:`deep_yuv_to_rgb`), so 10-bit and HDR sources keep their colour and precision.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import Colorspace, Interpolation

# AVColorSpace (frame/stream tag) -> swscale matrix.
_SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
               7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}  # fmt: skip
AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 1, 2
# swscale's default rounding darkens every YUV<->RGB conversion by a level or two; accurate rounding does not.
SWS_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


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


# ------------------------------------------------------------------------------------ 10/12-bit YUV <-> RGB

# Luma coefficients (Kr, Kb) of each swscale matrix.
_KR_KB = {Colorspace.ITU709: (0.2126, 0.0722), Colorspace.ITU601: (0.299, 0.114), Colorspace.FCC: (0.30, 0.11),
          Colorspace.SMPTE240M: (0.212, 0.087), Colorspace.BT2020: (0.2627, 0.0593)}  # fmt: skip
# Planar high-bit-depth YUV formats converted here: (bits, log2 horizontal, log2 vertical chroma subsampling).
DEEP_YUV = {"yuv420p10le": (10, 1, 1), "yuv422p10le": (10, 1, 0), "yuv444p10le": (10, 0, 0),
            "yuv420p12le": (12, 1, 1), "yuv422p12le": (12, 1, 0), "yuv444p12le": (12, 0, 0)}  # fmt: skip


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    """A 16-bit plane of ``frame`` as a writable uint16 view (line padding cut off)."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint16).reshape(-1, plane.line_size // 2)[:height, :width]


def _levels(bits: int, color_range: int) -> tuple[float, float, float]:
    """(luma black, luma span, chroma span) in code values: limited range 16/219/224 scaled to ``bits``."""
    if color_range == AVCOL_RANGE_JPEG:
        full = float((1 << bits) - 1)
        return 0.0, full, full
    scale = float(1 << (bits - 8))
    return 16 * scale, 219 * scale, 224 * scale


def _yuv_matrix(matrix: Colorspace, bits: int, color_range: int) -> np.ndarray:
    """3x4 affine map from non-linear RGB in [0, 1] to (Y, Cb, Cr) code values at ``bits`` in ``color_range``."""
    kr, kb = _KR_KB[matrix]
    kg = 1.0 - kr - kb
    black, luma, chroma = _levels(bits, color_range)
    mid = float(1 << (bits - 1))
    m = np.array([[kr, kg, kb], [-kr, -kg, 1.0 - kb], [1.0 - kr, -kg, -kb]], np.float64)
    m[1] /= 2 * (1 - kb)
    m[2] /= 2 * (1 - kr)
    scale = np.array([luma, chroma, chroma])[:, None]
    return np.hstack([m * scale, np.array([[black], [mid], [mid]])])


def deep_yuv_to_rgb(frame: av.VideoFrame, matrix: Colorspace, color_range: int) -> np.ndarray | None:
    """A planar 10/12-bit YUV frame (:data:`DEEP_YUV`) as float32 HxWx3 RGB in [0, 1], still in the source's
    transfer and primaries (non-linear), or None for other formats and matrices.

    Done here rather than by swscale, whose high-bit-depth to RGB conversion is off by up to two 8-bit levels
    (10-bit limited-range 504, an 8-bit 128, comes out as 126; white 940 as 253). Chroma is upsampled by repetition.
    """
    layout = DEEP_YUV.get(frame.format.name)
    if layout is None or matrix not in _KR_KB:
        return None
    bits, sx, sy = layout
    w, h = frame.width, frame.height
    planes = []
    for i in range(3):
        pw, ph = (-(-w >> sx), -(-h >> sy)) if i else (w, h)
        a = _plane(frame, i, pw, ph).astype(np.float32)
        if i and (sx or sy):
            a = cv2.resize(a, (pw << sx, ph << sy), interpolation=cv2.INTER_NEAREST)[:h, :w]
        planes.append(a)
    forward = _yuv_matrix(matrix, bits, color_range)
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 0.0, 1.0]]))[:3]
    rgb = cv2.transform(cv2.merge(planes), inverse.astype(np.float32))
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def rgb_to_deep_yuv(rgb: np.ndarray, pix_fmt: str, matrix: Colorspace, color_range: int) -> av.VideoFrame:
    """The inverse of :func:`deep_yuv_to_rgb`: uint8 or uint16 HxWx3 RGB (full scale of its dtype) as a new frame of
    ``pix_fmt`` (one of :data:`DEEP_YUV`), chroma subsampled by averaging each 2x2 (or 2x1) block.

    Exact where swscale is not: its RGB48 -> 10-bit YUV puts white at 943 instead of 940 (limited range). ``rgb``'s
    width and height must be even where ``pix_fmt`` subsamples.
    """
    bits, sx, sy = DEEP_YUV[pix_fmt]
    if matrix not in _KR_KB:
        raise ValueError(f"no luma coefficients for matrix {matrix!r}")
    h, w = rgb.shape[:2]
    if w % (1 << sx) or h % (1 << sy):
        raise ValueError(f"{pix_fmt} needs an even size, got {w}x{h}")
    forward = _yuv_matrix(matrix, bits, color_range)
    forward[:, :3] /= float(np.iinfo(rgb.dtype).max)
    yuv = cv2.transform(rgb.astype(np.float32), forward.astype(np.float32))
    top = (1 << bits) - 1
    frame = av.VideoFrame(w, h, pix_fmt)
    _plane(frame, 0, w, h)[:] = np.clip(np.rint(yuv[..., 0]), 0, top)
    chroma = yuv[..., 1:]
    if sx or sy:  # INTER_AREA at an integer factor: the exact mean of each block
        chroma = cv2.resize(chroma, (w >> sx, h >> sy), interpolation=cv2.INTER_AREA)
    for i in (1, 2):
        _plane(frame, i, w >> sx, h >> sy)[:] = np.clip(np.rint(chroma[..., i - 1]), 0, top)
    return frame


# --------------------------------------------------------------------------------------------------------- HDR

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
    146 of 255. Not a grading-quality tone map: it is what the depth model sees (and an SDR output is made from).
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


@dataclass(frozen=True)
class Hdr10Metadata:
    """HDR10 static metadata (SMPTE ST 2086 mastering display, CTA-861.3 content light level) in the units the
    x264/x265 options take: chromaticities in 0.00002, luminance in 0.0001 cd/m2; ``max_cll``/``max_fall`` in
    cd/m2. ``primaries``: ((Rx, Ry), (Gx, Gy), (Bx, By)); None where the source had no such part.
    """

    primaries: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None
    white_point: tuple[int, int] | None = None
    luminance: tuple[int, int] | None = None  # (max, min)
    max_cll: int | None = None
    max_fall: int | None = None

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> Hdr10Metadata | None:
        """What ``frame``'s side data holds (decoders attach both from the bitstream's SEI or the container)."""
        side = frame.side_data
        mastering = side.get(SideDataType.MASTERING_DISPLAY_METADATA)
        light = side.get(SideDataType.CONTENT_LIGHT_LEVEL)
        fields: dict[str, object] = {}
        if mastering is not None and len(bytes(mastering)) >= 88:
            # AVMasteringDisplayMetadata: 3 primaries (R, G, B) and the white point as AVRational x, y; min and max
            # luminance as AVRational; then has_primaries, has_luminance.
            v = struct.unpack_from("<20i2i", bytes(mastering))

            def unit(i: int, scale: int) -> int:
                return round(v[i] / v[i + 1] * scale) if v[i + 1] else 0

            if v[20]:
                fields["primaries"] = tuple((unit(4 * c, 50000), unit(4 * c + 2, 50000)) for c in range(3))
                fields["white_point"] = (unit(12, 50000), unit(14, 50000))
            if v[21]:
                fields["luminance"] = (unit(18, 10000), unit(16, 10000))
        if light is not None and len(bytes(light)) >= 8:
            fields["max_cll"], fields["max_fall"] = struct.unpack_from("<2I", bytes(light))
        return cls(**fields) if fields else None  # type: ignore[arg-type]

    def encoder_params(self, codec: str) -> str | None:
        """The ``x264-params``/``x265-params`` value that writes this metadata, or None for other encoders."""
        names = {"libx264": ("mastering-display", "cll"), "libx265": ("master-display", "max-cll")}.get(codec)
        if names is None:
            return None
        parts = []
        if self.primaries and self.white_point and self.luminance:
            (rx, ry), (gx, gy), (bx, by) = self.primaries
            wx, wy = self.white_point
            hi, lo = self.luminance
            parts.append(f"{names[0]}=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({hi},{lo})")
        if self.max_cll is not None and self.max_fall is not None:
            parts.append(f"{names[1]}={self.max_cll},{self.max_fall}")
        return ":".join(parts) or None

    def describe(self) -> str:
        """E.g. 'mastering display 1000/0.0050 cd/m2, MaxCLL 1000, MaxFALL 400'."""
        parts = []
        if self.luminance:
            parts.append(f"mastering display {self.luminance[0] / 10000:g}/{self.luminance[1] / 10000:g} cd/m2")
        if self.max_cll is not None:
            parts.append(f"MaxCLL {self.max_cll}, MaxFALL {self.max_fall}")
        return ", ".join(parts) or "HDR10 metadata"
