"""Colour: 10-bit output, colour tags carried, HDR kept (or tone-mapped to SDR for the model and 8-bit outputs), HDR10
metadata passed through, encoder and container checks.

Sources are made with libx264 (yuv420p10le for 10-bit). libx265 runs only in a child process (the HEVC test): its build
in PyAV 18's wheel has corrupted the heap here, which in the test process would take the whole run down.
"""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest
from av.video.reformatter import Colorspace

from stereoconv import PipelineConfig, convert
from stereoconv.colour import Hdr10Metadata, deep_yuv_to_rgb, rgb_to_deep_yuv, tone_map_to_sdr
from stereoconv.encode import output_pix_fmt
from stereoconv.errors import UsageError
from stereoconv.media import decode, probe

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


# HDR10 metadata in x264's syntax (P3 mastering display, 1000/0.0001 nits; MaxCLL 1000, MaxFALL 400).
MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
HDR10 = f"mastering-display={MASTERING}:cll=1000,400"


def make_source(path, y, *, pix_fmt="yuv420p10le", colorspace=1, primaries=1, trc=1, frames=6, x264_params=None):
    """A clip with luma ``y`` (a code value in ``pix_fmt``'s bit depth, or an HxW array of them; neutral chroma), the
    given colour tags and, if given, ``x264_params`` (e.g. HDR10 metadata). Lossless."""
    bits = 10 if "10" in pix_fmt else 8
    dtype = np.uint16 if bits == 10 else np.uint8
    plane = np.empty((H * 3 // 2, W), dtype)
    plane[:H], plane[H:] = y, 1 << (bits - 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        cc = stream.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colorspace, 1, primaries, trc
        stream.options = {"qp": "0", **({"x264-params": x264_params} if x264_params else {})}
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


def test_default_output_follows_the_source_bit_depth(tmp_path):
    src = make_source(tmp_path / "ten.mkv", 504)
    convert(src, tmp_path / "out.mkv", PipelineConfig(), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mkv")[1] == "yuv420p10le"


class ConstantDepth(FlatDepth):
    """The same depth everywhere: zero disparity, so each eye is the source itself."""

    def __call__(self, frames):
        super().__call__(frames)
        return [np.full(f.shape[:2], 0.5, np.float32) for f in frames]


def test_ten_bit_levels_survive_rendering_exactly(tmp_path):
    # Every 10-bit luma level from 64 to 64 + W*H - 1 (clipped to 940): rendered through 8 bits, neighbours would
    # merge four to a level. Full SBS with zero disparity leaves each eye the source, so the (lossless) output must
    # equal it.
    luma = np.clip(64 + np.arange(W * H, dtype=np.uint16).reshape(H, W), 64, 940)
    src = make_source(tmp_path / "ramp.mkv", luma)
    out = tmp_path / "out.mkv"
    settings = config(format="full-sbs", codec="ffv1").replace({"stereo.floating_window": False})
    convert(src, out, settings, estimator=ConstantDepth())
    _, pix_fmt, _, planes = output_video(out)
    assert pix_fmt == "yuv420p10le"
    left, right = planes[:H, :W], planes[:H, W:]
    np.testing.assert_array_equal(left, luma)
    np.testing.assert_array_equal(right, luma)


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


def hdr10_of(path):
    with av.open(str(path)) as container:
        return Hdr10Metadata.from_frame(next(container.decode(video=0)))


def test_pq_source_keeps_hdr_and_its_metadata(tmp_path):
    src = make_source(tmp_path / "pq.mkv", PQ_100_NITS, colorspace=9, primaries=9, trc=16, x264_params=HDR10)
    info = probe(src)
    assert info.hdr10 == Hdr10Metadata(
        primaries=((34000, 16000), (13250, 34500), (7500, 3000)),
        white_point=(15635, 16450),
        luminance=(10000000, 1),
        max_cll=1000,
        max_fall=400,
    )
    rgb = next(decode(info)).rgb
    grey = float(np.median(rgb))
    assert 110 <= grey <= 180, grey  # the model's view: a mid SDR grey, not crushed to black nor blown to white
    assert np.ptp(rgb[H // 2, W // 2]) <= 2  # neutral stays neutral through the gamut conversion
    estimator = FlatDepth()
    out = tmp_path / "out.mkv"
    result = convert(src, out, PipelineConfig(), estimator=estimator)
    assert abs(float(np.median(estimator.seen[0])) - grey) <= 1
    _, pix_fmt, tags, planes = output_video(out)
    assert pix_fmt == "yuv420p10le" and tags == (9, 9, 16, 1)  # BT.2020, PQ, limited range: the source's
    assert abs(float(np.median(planes[:H])) - PQ_100_NITS) <= 1  # still the PQ code of 100 nits
    assert hdr10_of(out) == info.hdr10
    assert not result.notes


def test_pq_source_into_eight_bits_is_tone_mapped_sdr_with_a_note(tmp_path):
    src = make_source(tmp_path / "pq.mkv", PQ_100_NITS, colorspace=9, primaries=9, trc=16, x264_params=HDR10)
    out = tmp_path / "out.mkv"
    result = convert(src, out, config(pix_fmt="yuv420p"), estimator=FlatDepth())
    _, pix_fmt, tags, planes = output_video(out)
    assert pix_fmt == "yuv420p" and tags == (1, 1, 1, 1)
    assert 16 + 219 * 110 / 255 <= float(np.median(planes[:H])) <= 16 + 219 * 180 / 255
    assert any("tone-mapped" in note and "8-bit" in note for note in result.notes), result.notes
    assert hdr10_of(out) is None  # SDR: no mastering display to speak of


def test_hdr10_metadata_dropped_with_a_note_where_the_encoder_cannot_write_it(tmp_path):
    src = make_source(tmp_path / "pq.mkv", PQ_100_NITS, colorspace=9, primaries=9, trc=16, x264_params=HDR10)
    result = convert(src, tmp_path / "out.mkv", config(codec="ffv1"), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mkv")[2] == (9, 9, 16, 1)
    assert any("HDR10 static metadata" in note and "ffv1" in note for note in result.notes), result.notes


HEVC_SCRIPT = """
import sys
import av
import numpy as np
from stereoconv import PipelineConfig, convert

src, out = sys.argv[1], sys.argv[2]
with av.open(src, "w") as container:
    stream = container.add_stream("libx265", rate=24)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
    cc = stream.codec_context
    cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 9, 1, 9, 16
    stream.options = {"x265-params": "lossless=1:log-level=error:" + sys.argv[3]}
    for i in range(6):
        plane = np.full((72, 64), 512, np.uint16)
        plane[:48] = int(sys.argv[4])
        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p10le")
        frame.pts = i
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


class Ramp:
    batch_size = 4

    def __call__(self, frames):
        h, w = frames[0].shape[:2]
        return [np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)) for _ in frames]


convert(src, out, PipelineConfig().replace({"output.codec": "libx265"}), estimator=Ramp())
"""


def test_hevc_hdr10_source_to_hevc_keeps_everything(tmp_path):
    # libx265 in a child process (see the module docstring); the parent checks the files it made.
    src, out = tmp_path / "hdr10.mkv", tmp_path / "out.mkv"
    params = f"master-display={MASTERING}:max-cll=1000,400"
    run = subprocess.run([sys.executable, "-c", HEVC_SCRIPT, str(src), str(out), params, str(PQ_100_NITS)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    info = probe(src)
    assert (info.codec, info.pix_fmt, info.color_trc) == ("hevc", "yuv420p10le", 16)
    codec, pix_fmt, tags, planes = output_video(out)
    assert (codec, pix_fmt, tags) == ("hevc", "yuv420p10le", (9, 9, 16, 1))
    assert abs(float(np.median(planes[:H])) - PQ_100_NITS) <= 2
    assert hdr10_of(out) == info.hdr10 is not None


def test_nvenc_takes_ten_bit_as_p010(tmp_path):
    info = probe(make_source(tmp_path / "ten.mkv", 504))
    out = tmp_path / "out.mkv"
    for pix_fmt in ("source", "yuv420p10le"):
        assert output_pix_fmt(config(codec="hevc_nvenc", pix_fmt=pix_fmt).output, info, out) == "p010le"
    with pytest.raises(UsageError, match=r"hevc_nvenc cannot encode pix_fmt yuv422p10le; it takes .*yuv420p10le"):
        output_pix_fmt(config(codec="hevc_nvenc", pix_fmt="yuv422p10le").output, info, out)


@pytest.mark.parametrize("pix_fmt", ["yuv444p10le", "yuv420p10le", "yuv422p12le"])
@pytest.mark.parametrize("matrix", [Colorspace.ITU709, Colorspace.BT2020])
def test_rgb_to_deep_yuv_inverts_deep_yuv_to_rgb(pix_fmt, matrix):
    # Colours constant over each 2x2 block (so chroma subsampling loses nothing) go to YUV and back within half a
    # 10-bit step, where swscale puts white at 943 of 940.
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 65536, (H // 2, W // 2, 3)).astype(np.uint16)
    rgb = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
    frame = rgb_to_deep_yuv(rgb, pix_fmt, matrix, 1)
    assert frame.format.name == pix_fmt
    back = deep_yuv_to_rgb(frame, matrix, 1)
    inside = (rgb > 2000) & (rgb < 63000)  # away from the gamut edges, where YUV clips
    assert np.abs(back * 65535 - rgb)[inside].max() <= 65535 / 876 * 1.5
    white = rgb_to_deep_yuv(np.full((2, 2, 3), 65535, np.uint16), "yuv420p10le", matrix, 1)
    assert int(np.frombuffer(white.planes[0], np.uint16)[0]) == 940


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
        convert(src, tmp_path / "out.mov", config(codec="prores_ks", pix_fmt="yuv420p"), estimator=FlatDepth())
    convert(src, tmp_path / "out.mov", config(codec="prores_ks"), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mov")[:2] == ("prores", "yuv422p10le")


def test_encoder_and_container_are_checked_before_the_model_loads(tmp_path):
    # The configured model is a hub id that cannot load here (offline, or a missing directory): a bad encoder choice
    # must be what is reported, at once, not a model error after (or instead of) loading it.
    src = make_source(tmp_path / "sdr.mkv", 126, pix_fmt="yuv420p")
    settings = config(codec="ffv1").replace({"depth.model": str(tmp_path / "no-such-model")})
    with pytest.raises(UsageError, match=r"ffv1 needs a \.mkv output"):
        convert(src, tmp_path / "out.mp4", settings)
    assert not (tmp_path / "out.mp4").exists()


def test_work_dir_conversion_keeps_hdr_as_the_single_pass_does(tmp_path):
    src = make_source(tmp_path / "pq.mkv", PQ_100_NITS, colorspace=9, primaries=9, trc=16, x264_params=HDR10)
    single, chunked = tmp_path / "single.mkv", tmp_path / "chunked.mkv"
    convert(src, single, PipelineConfig(), estimator=FlatDepth())
    convert(src, chunked, PipelineConfig(), estimator=FlatDepth(), work_dir=tmp_path / "work", chunk_seconds=0.1)
    one, two = output_video(single), output_video(chunked)
    assert two[1:3] == one[1:3] == ("yuv420p10le", (9, 9, 16, 1))
    np.testing.assert_array_equal(two[3], one[3])
    assert hdr10_of(chunked) == hdr10_of(src)
    # What the chunk writers cannot say themselves, assembly does: an 8-bit output is tone-mapped, with the note.
    result = convert(src, tmp_path / "sdr.mkv", config(pix_fmt="yuv420p"), estimator=FlatDepth(),
                     work_dir=tmp_path / "work2")  # fmt: skip
    assert any("tone-mapped" in note for note in result.notes), result.notes


def test_anaglyph_from_a_pq_source_is_eight_bit_sdr(tmp_path):
    src = make_source(tmp_path / "pq.mkv", PQ_100_NITS, colorspace=9, primaries=9, trc=16, x264_params=HDR10)
    result = convert(src, tmp_path / "out.mkv", config(format="anaglyph"), estimator=FlatDepth())
    assert output_video(tmp_path / "out.mkv")[1:3] == ("yuv420p", (1, 1, 1, 1))
    assert any("anaglyph is an SDR format" in note for note in result.notes), result.notes


def test_cli_codec_and_pix_fmt_flags(tmp_path, monkeypatch, capsys):
    import stereoconv.single_pass as single_pass
    from stereoconv.cli import main

    src = make_source(tmp_path / "ten.mkv", 504)
    monkeypatch.setattr(single_pass, "open_estimator", lambda *a, **k: (FlatDepth(), None))
    assert main(["convert", str(src), str(tmp_path / "out.mkv"), "--codec", "ffv1", "--pix-fmt", "yuv420p", "-q"]) == 0
    assert output_video(tmp_path / "out.mkv")[:2] == ("ffv1", "yuv420p")
    capsys.readouterr()
    assert main(["convert", str(src), str(tmp_path / "out.mp4"), "--codec", "ffv1", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ffv1 needs a .mkv output" in err[0]
    assert not (tmp_path / "out.mp4").exists()
