"""Geometry and scan type: interlaced input (detected, reported, deinterlaced) and odd, tiny and huge frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from synth import make_clip, shot_frames

from stereoconv import PipelineConfig, convert
from stereoconv.cli import main
from stereoconv.depth import Preprocessing
from stereoconv.errors import MediaError, StereoconvError
from stereoconv.media import decode, probe


class FlatDepth:
    """A depth estimator with a left-to-right ramp: enough to exercise the pipeline on any clip."""

    batch_size = 4

    def __call__(self, frames):
        h, w = frames[0].shape[:2]
        return [np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)) for _ in frames]


def write_yuv(path: Path, frames: list[np.ndarray], *, interlaced: bool = False) -> Path:
    """Encode with libx264 (yuv420p), as interlaced (top field first, PAFF/MBAFF) when asked."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "crf": "10",
            **({"x264-params": "interlaced=1:tff=1"} if interlaced else {}),
        }
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def interlaced_clip(tmp_path_factory):
    frames, _ = shot_frames(10, 64, 96, seed=3)
    path = write_yuv(tmp_path_factory.mktemp("il") / "interlaced.mp4", frames, interlaced=True)
    with av.open(str(path)) as container:
        if not any(f.interlaced_frame for f in container.decode(video=0)):
            pytest.skip("this libx264 build does not encode interlaced")
    return path


def read_output(path: Path) -> tuple[int, int, int, list[float]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        times = [float(f.pts * stream.time_base) for f in frames]
        return stream.width, stream.height, len(frames), times


def test_interlaced_input_is_detected_and_noted(interlaced_clip, tmp_path):
    info = probe(interlaced_clip)
    assert info.interlaced and info.field_order == "top field first"
    result = convert(interlaced_clip, tmp_path / "out.mp4", PipelineConfig(), estimator=FlatDepth())
    assert "input is interlaced (top field first): use --deinterlace for a cleaner result" in result.notes


def test_progressive_input_is_not_interlaced(tmp_path):
    frames, _ = shot_frames(4, 64, 96, seed=4)
    info = probe(write_yuv(tmp_path / "progressive.mp4", frames))
    assert not info.interlaced and info.field_order == "progressive"
    assert not probe(make_clip(tmp_path / "rgb.mp4", (3,)).path).interlaced
    result = convert(info.path, tmp_path / "out.mp4", PipelineConfig(), estimator=FlatDepth())
    assert not any("interlaced" in note for note in result.notes)


def test_deinterlace_keeps_frame_count_and_timestamps(interlaced_clip, tmp_path):
    info = probe(interlaced_clip)
    plain = list(decode(info))
    fields = list(decode(info, deinterlace=True))
    assert [f.pts for f in fields] == [f.pts for f in plain] and len(fields) == 10
    assert all(f.rgb.shape == (64, 96, 3) for f in fields)
    assert any(not np.array_equal(a.rgb, b.rgb) for a, b in zip(plain, fields, strict=True)), "bwdif changed nothing"
    assert [f.pts for f in decode(info, start=0.1, end=0.3, deinterlace=True)] == [
        f.pts for f in plain if 0.1 - 1e-6 <= f.time < 0.3 - 1e-6
    ]
    out = tmp_path / "deint.mp4"
    cfg = PipelineConfig().replace({"media.deinterlace": True})
    result = convert(interlaced_clip, out, cfg, estimator=FlatDepth())
    assert result.frames == 10 and "input is interlaced (top field first): deinterlaced with bwdif" in result.notes
    assert read_output(out)[3] == pytest.approx([f.time for f in plain], abs=1e-3)


def test_cli_deinterlace_flag():
    from stereoconv.cli import _overrides, build_parser

    args = build_parser().parse_args(["convert", "in.mp4", "out.mp4", "--deinterlace"])
    assert _overrides(args)["media.deinterlace"] is True
    assert "media.deinterlace" not in _overrides(build_parser().parse_args(["convert", "in.mp4", "out.mp4"]))


@pytest.mark.parametrize("size", [(97, 65), (64, 36), (17, 17), (16, 16)])
def test_odd_and_small_frames_convert_with_even_output(size, tmp_path):
    width, height = size
    clip = make_clip(tmp_path / "in.mp4", (5, 4), width=width, height=height)
    for layout in ("half-sbs", "full-tb", "anaglyph"):
        out = tmp_path / f"{layout}.mp4"
        cfg = PipelineConfig().replace({"output.format": layout})
        result = convert(clip.path, out, cfg, estimator=FlatDepth())
        w, h, n, times = read_output(out)
        assert w % 2 == 0 and h % 2 == 0, (layout, w, h)
        assert n == result.frames == 9
        assert times == pytest.approx(clip.times, abs=1e-3)


def test_model_input_is_never_empty():
    for input_size in (14, 56, 518):
        prep = Preprocessing(input_size=input_size)
        for h, w in ((36, 64), (16, 16), (16, 4000), (4320, 7680), (65, 97)):
            mh, mw = prep.input_shape(h, w)
            assert mh >= 14 and mw >= 14 and mh % 14 == 0 and mw % 14 == 0


def test_small_frames_with_a_real_model(tiny_model, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", (4,), width=64, height=36)
    cfg = PipelineConfig().replace({"depth.model": str(tiny_model), "depth.input_size": 56, "depth.device": "cpu"})
    result = convert(clip.path, tmp_path / "out.mp4", cfg)
    assert result.frames == 4 and read_output(tmp_path / "out.mp4")[:3] == (64, 36, 4)


def test_tiny_frames_are_refused_with_one_line(tmp_path, capsys):
    frames = [np.full((8, 8, 3), 100, np.uint8)] * 3
    path = tmp_path / "tiny.mp4"
    write_yuv(path, frames)
    with pytest.raises(MediaError, match=r"8x8, too small to convert \(the smallest is 16x16\)"):
        probe(path)
    out = tmp_path / "out.mp4"
    code = main(["convert", str(path), str(out), "-q"])
    err = capsys.readouterr().err.strip()
    assert code in (2, 3)
    assert len(err.splitlines()) == 1 and "8x8" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


@pytest.mark.slow
def test_8k_frames_convert_or_fail_in_one_line(tmp_path, capsys):
    frames = [np.zeros((4320, 7680, 3), np.uint8) + v for v in (60, 160)]
    path = tmp_path / "8k.mp4"
    write_yuv(path, frames)
    info = probe(path)
    assert (info.width, info.height) == (7680, 4320)
    out = tmp_path / "out.mp4"
    try:
        result = convert(path, out, PipelineConfig(), estimator=FlatDepth())
    except StereoconvError as exc:  # libx264 refusing the size: one clear line, no output
        assert "\n" not in str(exc) and not out.exists()
        pytest.skip(f"libx264 refused 8K (one clear line): {exc}")
    assert result.frames == 2 and read_output(out)[:3] == (7680, 4320, 2)
