"""Colour: 10-bit output, colour tags carried, HDR (PQ/HLG) tone-mapped to SDR, encoder and container checks.

Sources are made with libx264 (yuv420p10le for 10-bit), never libx265: its build in PyAV 18's wheel corrupts the heap.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from stereoconv import PipelineConfig, convert
from stereoconv.errors import UsageError
from stereoconv.media import decode, probe, tone_map_to_sdr

W, H = 64, 48


class FlatDepth:
    """A left-to-right depth ramp that also records what the model was given."""

    batch_size = 4

    def __init__(self):
        self.seen = []

    def __call__(self, frames):
        self.seen.extend(f.copy() for f in frames)
        h, w = frames[0].shape[:2]
        return [np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)) for _ in frames]


def make_source(path, y, *, pix_fmt="yuv420p10le", colorspace=1, primaries=1, trc=1, frames=6):
    """A flat grey clip with luma code ``y`` (in ``pix_fmt``'s bit depth, neutral chroma) and the given colour tags."""
    bits = 10 if "10" in pix_fmt else 8
    dtype = np.uint16 if bits == 10 else np.uint8
    plane = np.empty((H * 3 // 2, W), dtype)
    plane[:H], plane[H:] = y, 1 << (bits - 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        cc = stream.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colorspace, 1, primaries, trc
        stream.options = {"qp": "0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(plane, format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def output_video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        frame = next(container.decode(stream))
        tags = (int(cc.colorspace), int(cc.color_primaries), int(cc.color_trc), int(cc.color_range))
        return cc.name, cc.format.name, tags, frame.to_ndarray()


def config(**output):
    return PipelineConfig().replace({f"output.{k}": v for k, v in output.items()})


def test_ten_bit_output_keeps_ten_bits_and_grey_levels(tmp_path):
    # 8-bit grey 128 (limited range: Y = 16 + 128 * 219 / 255 = 125.9) is 10-bit 504: scaled, not truncated.
    src = make_source(tmp_path / "ten.mkv", 504)
    out = tmp_path / "out.mkv"
    convert(src, out, config(pix_fmt="yuv420p10le", crf=0), estimator=FlatDepth())
    _, pix_fmt, _, planes = output_video(out)
    assert pix_fmt == "yuv420p10le"
    luma = planes[:H]
    assert abs(float(np.median(luma)) - 504) <= 4
    assert abs(float(np.median(planes[H:])) - 512) <= 4


def test_source_pix_fmt_follows_the_source_bit_depth(tmp_path):
    ten = make_source(tmp_path / "ten.mkv", 504)
    eight = make_source(tmp_path / "eight.mkv", 126, pix_fmt="yuv420p")
    convert(ten, tmp_path / "a.mkv", config(pix_fmt="source"), estimator=FlatDepth())
    convert(eight, tmp_path / "b.mkv", config(pix_fmt="source"), estimator=FlatDepth())
    assert output_video(tmp_path / "a.mkv")[1] == "yuv420p10le"
    assert output_video(tmp_path / "b.mkv")[1] == "yuv420p"


def test_default_output_stays_eight_bit(tmp_path):
    src = make_source(tmp_path / "ten.mkv", 504)
    convert(src, tmp_path / "out.mkv", PipelineConfig(), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mkv")[1] == "yuv420p"


def test_bt709_sdr_tags_are_carried(tmp_path):
    src = make_source(tmp_path / "sdr.mkv", 126, pix_fmt="yuv420p")
    convert(src, tmp_path / "out.mp4", PipelineConfig(), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mp4")[2] == (1, 1, 1, 1)


def test_bt2020_sdr_tags_are_carried(tmp_path):
    # BT.2020 primaries and matrix, BT.2020 10-bit transfer (14): SDR, so no tone mapping and the tags stay.
    src = make_source(tmp_path / "wcg.mkv", 504, colorspace=9, primaries=9, trc=14)
    assert probe(src).color_trc == 14
    convert(src, tmp_path / "out.mkv", config(pix_fmt="source"), estimator=FlatDepth())
    _, pix_fmt, tags, _ = output_video(tmp_path / "out.mkv")
    assert pix_fmt == "yuv420p10le" and tags == (9, 9, 14, 1)


# PQ code of 100 nits: ((c1 + c2 L^m1) / (1 + c3 L^m1))^m2 with L = 0.01 -> 0.5081; 10-bit limited: 64 + 876 E.
PQ_100_NITS = round(64 + 876 * 0.50808)


def test_pq_source_is_tone_mapped_for_the_model_and_tagged_sdr(tmp_path):
    src = make_source(tmp_path / "pq.mkv", PQ_100_NITS, colorspace=9, primaries=9, trc=16)
    rgb = next(decode(probe(src))).rgb
    grey = float(np.median(rgb))
    assert 110 <= grey <= 180, grey  # a mid SDR grey: not crushed to black nor blown to white
    assert np.ptp(rgb[H // 2, W // 2]) <= 2  # neutral stays neutral through the gamut conversion
    estimator = FlatDepth()
    out = tmp_path / "out.mkv"
    convert(src, out, config(pix_fmt="source"), estimator=estimator)
    assert abs(float(np.median(estimator.seen[0])) - grey) <= 1
    _, pix_fmt, tags, _ = output_video(out)
    assert pix_fmt == "yuv420p10le" and tags == (1, 1, 1, 1)  # SDR BT.709, as documented: no HDR passthrough


def test_tone_map_is_monotonic_and_spans_the_range():
    codes = np.linspace(0, 1, 64, dtype=np.float32)
    for trc in (16, 18):
        rgb = np.repeat(codes[:, None, None], 3, axis=2)
        out = tone_map_to_sdr(rgb, trc, 9)[:, 0, 0].astype(int)
        assert np.all(np.diff(out) >= 0) and out[0] == 0 and out[-1] == 255
    hlg_mid = tone_map_to_sdr(np.full((1, 1, 3), 0.5, np.float32), 18, 9)[0, 0, 0]
    assert 60 <= hlg_mid <= 200


def test_unavailable_encoder_lists_the_available_ones(tmp_path, monkeypatch):
    src = make_source(tmp_path / "sdr.mkv", 126, pix_fmt="yuv420p")
    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx265"})
    with pytest.raises(UsageError, match=r"'libx265' is not available.*available: .*libx264"):
        convert(src, tmp_path / "out.mkv", config(codec="libx265"), estimator=FlatDepth())


def test_ffv1_into_mkv_works_and_is_refused_in_mp4(tmp_path):
    src = make_source(tmp_path / "ten.mkv", 504)
    out = tmp_path / "out.mkv"
    convert(src, out, config(codec="ffv1", pix_fmt="source"), estimator=FlatDepth())
    codec, pix_fmt, _, planes = output_video(out)
    assert (codec, pix_fmt) == ("ffv1", "yuv420p10le")
    assert abs(float(np.median(planes[:H])) - 504) <= 2
    with pytest.raises(UsageError, match=r"ffv1 needs a \.mkv output"):
        convert(src, tmp_path / "out.mp4", config(codec="ffv1"), estimator=FlatDepth())


def test_prores_needs_a_ten_bit_422_format(tmp_path):
    src = make_source(tmp_path / "sdr.mkv", 126, pix_fmt="yuv420p")
    with pytest.raises(UsageError, match=r"prores_ks cannot encode pix_fmt yuv420p; it takes yuv422p10le"):
        convert(src, tmp_path / "out.mov", config(codec="prores_ks"), estimator=FlatDepth())
    convert(src, tmp_path / "out.mov", config(codec="prores_ks", pix_fmt="source"), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mov")[:2] == ("prores", "yuv422p10le")
