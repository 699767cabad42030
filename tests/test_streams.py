"""Audio, subtitle streams, chapters and global metadata carried from the input to the output (issue 7)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from synth import OracleEstimator, _write_tone, shot_frames

from stereoconv import PipelineConfig, convert
from stereoconv.cli import main

SUBTITLES = [(100, b"Hello"), (600, b"World")]  # (pts in ms, text)
MS = Fraction(1, 1000)


def make_rich_clip(path: Path) -> list[np.ndarray]:
    """A 1 s MKV: video, two AAC tracks (eng forced-off default / fra forced, with titles), an SRT track,
    two chapters and a global title. Returns the true depth maps."""
    frames, depths = shot_frames(24, 64, 96, seed=3)
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "My Film"
        video = out.add_stream("libx264rgb", rate=24)
        video.width, video.height, video.pix_fmt = 96, 64, "rgb24"
        video.options = {"qp": "0", "preset": "ultrafast"}
        tracks = []
        for lang, title, disposition in (("eng", "English", av.stream.Disposition.default),
                                         ("fra", "Français", av.stream.Disposition.forced)):  # fmt: skip
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "stereo"
            audio.metadata["language"], audio.metadata["title"] = lang, title
            audio.disposition = disposition
            tracks.append(audio)
        # The subrip encoder cannot be opened without a header, so the subtitle stream is a pure mux stream.
        subs = out.add_mux_stream("subrip", time_base=MS)
        subs.metadata["language"] = "eng"
        out.set_chapters(
            [
                {"id": 1, "start": 0, "end": 500, "time_base": MS, "metadata": {"title": "One"}},
                {"id": 2, "start": 500, "end": 1000, "time_base": MS, "metadata": {"title": "Two"}},
            ]
        )
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for pts, text in SUBTITLES:
            packet = av.Packet(text)
            packet.stream, packet.time_base = subs, MS
            packet.pts = packet.dts = pts
            packet.duration = 300
            out.mux(packet)
        for audio in tracks:
            _write_tone(out, audio, 1.0)
    return depths


@pytest.fixture(scope="module")
def rich_clip(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("streams") / "rich.mkv"
    depths = make_rich_clip(path)
    with av.open(str(path)) as c:
        if not c.streams.subtitles or len(c.streams.audio) != 2:
            pytest.skip("this PyAV/FFmpeg cannot write the test clip's subtitle or audio streams")
    return path, depths


def run(clip: tuple[Path, list[np.ndarray]], out: Path, **settings: object):
    """Convert with soft subtitles kept (half-SBS would burn them in by default: see tests/test_subtitles.py)."""
    path, depths = clip
    config = PipelineConfig().replace({"output.subtitles": "keep", **settings})
    return convert(path, out, config, estimator=OracleEstimator(depths))


def test_mkv_keeps_audio_tags_subtitles_chapters_and_title(rich_clip, tmp_path):
    out = tmp_path / "out.mkv"
    result = run(rich_clip, out)
    assert result.notes == []
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "My Film"
        audio = c.streams.audio
        assert [(s.codec_context.name, s.metadata.get("language"), s.metadata.get("title")) for s in audio] == [
            ("aac", "eng", "English"), ("aac", "fra", "Français")]  # fmt: skip
        assert audio[1].disposition & av.stream.Disposition.forced
        assert not audio[0].disposition & av.stream.Disposition.forced
        assert len(c.streams.subtitles) == 1 and c.streams.subtitles[0].metadata.get("language") == "eng"
        chapters = c.chapters()
        assert [ch["metadata"].get("title") for ch in chapters] == ["One", "Two"]
        assert [float(ch["start"] * ch["time_base"]) for ch in chapters] == pytest.approx([0.0, 0.5])
        subs = [(round(float(p.pts * p.time_base) * 1000), bytes(p)) for p in c.demux(c.streams.subtitles[0])
                if p.pts is not None]  # fmt: skip
    assert subs == SUBTITLES


def test_start_shifts_subtitles_and_chapters_and_drops_earlier_ones(rich_clip, tmp_path):
    out = tmp_path / "cut.mkv"
    path, depths = rich_clip
    config = PipelineConfig().replace({"media.start": 0.5, "output.subtitles": "keep"})
    convert(path, out, config, estimator=OracleEstimator(depths[12:]))
    with av.open(str(out)) as c:
        chapters = c.chapters()
        assert [ch["metadata"].get("title") for ch in chapters] == ["Two"]
        assert float(chapters[0]["start"] * chapters[0]["time_base"]) == pytest.approx(0.0)
        subs = [(round(float(p.pts * p.time_base) * 1000), bytes(p)) for p in c.demux(c.streams.subtitles[0])
                if p.pts is not None]  # fmt: skip
    assert subs == [(100, b"World")]


def test_mp4_drops_text_subtitles_with_a_note(rich_clip, tmp_path):
    out = tmp_path / "out.mp4"
    result = run(rich_clip, out)
    with av.open(str(out)) as c:
        assert not c.streams.subtitles
        assert [s.metadata.get("language") for s in c.streams.audio] == ["eng", "fra"]
    assert len(result.notes) == 1
    assert "subtitle stream 3" in result.notes[0] and "srt" in result.notes[0] and "eng" in result.notes[0]


@pytest.mark.parametrize("mode", ["none", "aac"])
def test_audio_none_and_aac(rich_clip, tmp_path, mode):
    out = tmp_path / f"{mode}.mkv"
    run(rich_clip, out, **{"output.audio": mode})
    with av.open(str(out)) as c:
        codecs = [s.codec_context.name for s in c.streams.audio]
        languages = [s.metadata.get("language") for s in c.streams.audio]
        assert len(c.streams.subtitles) == 1
    assert codecs == ([] if mode == "none" else ["aac", "aac"])
    assert languages == ([] if mode == "none" else ["eng", "fra"])


def test_cli_audio_flag_and_notes(rich_clip, tmp_path, monkeypatch, capsys):
    import stereoconv.single_pass as single_pass

    path, depths = rich_clip
    monkeypatch.setattr(single_pass, "open_estimator", lambda *a, **k: (OracleEstimator(depths), None))
    out = tmp_path / "cli.mp4"
    assert main(["convert", str(path), str(out), "--audio", "none", "--subtitles", "keep"]) == 0
    err = capsys.readouterr().err
    assert "subtitle stream 3" in err and "audio stream(s) dropped" in err
    with av.open(str(out)) as c:
        assert not c.streams.audio


def test_mp4_to_mp4_keeps_audio_titles(rich_clip, tmp_path):
    # The MP4 demuxer reports a track's title as "name": it must come back out as the title.
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    run(rich_clip, first)
    run((first, rich_clip[1]), second)
    for path in (first, second):
        with av.open(str(path)) as c:
            assert [s.metadata.get("title", s.metadata.get("name")) for s in c.streams.audio] == ["English", "Français"]
