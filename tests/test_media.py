"""Media: rotation, aspect, colour, bit depth, timestamps, atomic output."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import shared_video

from stereoconv import PipelineConfig, convert
from stereoconv.colour import rgb_matrix
from stereoconv.encode import atomic_output
from stereoconv.media import decode, probe, to_rgb


class FlatDepth:
    """A depth estimator with a left-to-right ramp: enough to exercise the pipeline on any clip."""

    batch_size = 4

    def __call__(self, frames):
        h, w = frames[0].shape[:2]
        return [np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)) for _ in frames]


def test_rotation_metadata_is_applied_to_the_pixels():
    path = shared_video("issue-134-rotate.mp4")
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (544, 1280, 270)
    upright = next(decode(info)).rgb
    matrix, colour_range = rgb_matrix(info.colorspace, info.color_range, info.pix_fmt, info.width, info.height)
    with av.open(str(path)) as container:
        stored = to_rgb(next(container.decode(video=0)), matrix, colour_range)
    assert stored.shape == (544, 1280, 3) and upright.shape == (1280, 544, 3)
    # -90 in the display matrix: shown turned 90 degrees clockwise, as ffmpeg's autorotate does.
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))


def test_anamorphic_aspect_is_kept_in_the_output(tmp_path):
    path = shared_video("issue-195-aspect-ratio.mp4")
    out = tmp_path / "out.mp4"
    convert(path, out, PipelineConfig().replace({"media.end": 0.4}), estimator=FlatDepth())
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (704, 576)
        assert stream.sample_aspect_ratio == Fraction(16, 11)
        assert len(container.streams.audio) == 1


def test_real_vfr_clip_keeps_its_timestamps(tmp_path):
    path = shared_video("goldeneye-vfr-drop3.mp4")
    out = tmp_path / "out.mkv"
    convert(path, out, PipelineConfig().replace({"media.end": 1.5}), estimator=FlatDepth())
    source = [f.time for f in decode(probe(path), end=1.5)]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    assert len(set(np.round(np.diff(source), 4))) > 1, "the source should be VFR"
    assert times == pytest.approx(source, abs=1e-3)


def test_ten_bit_input_decodes_to_rgb(tmp_path):
    path = tmp_path / "ten.mkv"
    frames = [np.full((32, 48, 3), v, np.uint8) for v in (40, 120, 200)]
    try:
        with av.open(str(path), "w") as out:
            # libx264 high10; not libx265, whose build in PyAV 18.1's wheel corrupts the heap on encode
            stream = out.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p10le"
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p10le")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    except av.error.FFmpegError as exc:
        pytest.skip(f"no 10-bit encoder in this FFmpeg build: {exc}")
    info = probe(path)
    assert info.bit_depth == 10
    decoded = [f.rgb for f in decode(info)]
    assert len(decoded) == 3
    for got, want in zip(decoded, frames, strict=True):
        assert got.dtype == np.uint8 and abs(int(got.mean()) - int(want.mean())) <= 3


def test_untagged_hd_uses_bt709_and_output_is_tagged(tmp_path):
    # An HD-sized grey-green frame: decoding it with the wrong matrix shifts the colour noticeably.
    colour = np.array([60, 160, 90], np.uint8)
    path = tmp_path / "hd.mp4"
    with av.open(str(path), "w") as out:  # BT.709 YUV, as HD sources are, but with no colour tags
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.tile(colour, (720, 1280, 1)), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range=1)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = probe(path)
    rgb = next(decode(info)).rgb
    assert np.abs(rgb.reshape(-1, 3).mean(0) - colour).max() < 3
    out = tmp_path / "out.mp4"
    flat = {"stereo.max_negative_parallax": 0.0, "stereo.max_positive_parallax": 0.0}
    convert(path, out, PipelineConfig().replace(flat), estimator=FlatDepth())
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert int(container.streams.video[0].codec_context.colorspace) == 1  # BT.709
        got = frame.to_ndarray(format="rgb24", src_colorspace="itu709").reshape(-1, 3).mean(0)
    assert np.abs(got - colour).max() < 6  # two 8-bit YUV round trips; the BT.601 matrix would be off by ~15


def test_atomic_output_only_renames_on_success(tmp_path):
    target = tmp_path / "final.mp4"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and [p.name for p in tmp_path.iterdir()] == ["final.mp4"]


def test_outputs_get_the_permissions_of_any_new_file(tmp_path):
    # mkstemp would make them 0600: unreadable to a render farm's other users.
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.mp4") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == 0o644
