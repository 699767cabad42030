"""Render farms: plan -> render chunks -> assemble, checked against a single-pass convert of the same clip."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from synth import SynthClip, make_clip
from test_pipeline import audio_durations

from stereoconv import MediaError, PipelineConfig, UsageError, convert
from stereoconv.cli import main
from stereoconv.farm import (
    assemble,
    check_chunk,
    chunk_paths,
    chunks_for_frames,
    load_job,
    parse_frame_range,
    plan,
    render,
    split_frames,
)

AAC_FRAME = 1024 / 48000  # seconds of one AAC frame at the clip's rate


class KeyedOracle:
    """True depth looked up by the frame's pixels (so any chunk, in any order, gets its frames' depth), varied per
    frame so that the temporal state (normalization, smoothing, convergence) really carries across frames."""

    batch_size = 3

    def __init__(self, clip: SynthClip) -> None:
        ramp = np.linspace(0.0, 1.0, clip.frames[0].shape[1], dtype=np.float32)[None, :]
        self._depth = {
            frame.tobytes(): depth + np.float32(0.6 * np.sin(0.7 * i)) * ramp + np.float32(0.2 * np.cos(0.3 * i))
            for i, (frame, depth) in enumerate(zip(clip.frames, clip.depths, strict=True))
        }
        self.calls = 0

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        return [self._depth[f.tobytes()].copy() for f in frames]


def settings(model: Path, **overrides: object) -> PipelineConfig:
    # Lossless (x264 qp 0, 4:4:4) so decoded frames of both outputs can be compared exactly.
    base = {"depth.model": str(model), "depth.input_size": 56, "output.crf": 0, "output.pix_fmt": "yuv444p",
            "output.preset": "ultrafast"}  # fmt: skip
    return PipelineConfig().replace({**base, **overrides})


def decoded(path: Path) -> tuple[list[np.ndarray], list[int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    return [f for _, f in frames], [p for p, _ in frames]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> SynthClip:
    """Four shots (cuts at 20, 50, 64), 124 frames at 24 fps, with audio: the last shot is 2.5 s long."""
    return make_clip(tmp_path_factory.mktemp("farm") / "long.mp4", (20, 30, 14, 60), audio=True)


def test_split_frames_ends_chunks_on_nearby_cuts_and_splits_long_shots():
    assert split_frames(124, [20, 50, 64], 24) == [(0, 19), (20, 49), (50, 73), (74, 97), (98, 123)]
    assert split_frames(10, [], 24) == [(0, 9)]
    assert split_frames(100, [], 24) == [(0, 23), (24, 47), (48, 71), (72, 99)]  # the rest (28 <= 24 + 6) joins


def test_chunked_render_matches_a_single_pass(long_clip, tiny_model, tmp_path):
    cfg = settings(tiny_model)
    job = plan(long_clip.path, tmp_path / "job.json", cfg, chunk_seconds=1.0, preroll_seconds=0.25)

    assert job.cuts == long_clip.cuts and job.frames == 124 and job.model_fingerprint
    spans = [(c.first_frame, c.last_frame, c.starts_at_cut, c.preroll_frame) for c in job.chunks]
    # Chunks 1 and 2 end on cuts; the 2.5 s last shot is split twice mid-shot, each with 6 frames of pre-roll.
    assert spans == [(0, 19, True, None), (20, 49, True, None), (50, 73, True, None), (74, 97, False, 68),
                     (98, 123, False, 92)]  # fmt: skip
    manifest = json.loads((tmp_path / "job.json").read_text())
    assert manifest["input"]["fingerprint"] == job.input_fingerprint and manifest["settings"] == cfg.to_dict()

    estimator = KeyedOracle(long_clip)
    render(job, job.chunks, estimator=estimator)
    calls = estimator.calls
    assert calls > 0
    for chunk in job.chunks:
        assert check_chunk(job, chunk, job.default_work_dir) is None
        with av.open(str(chunk_paths(job.default_work_dir, chunk.index)[0])) as container:
            assert not container.streams.audio, "chunks carry no audio"

    # Idempotent: a second render finds every chunk done and runs nothing.
    results = render(load_job(job.path), job.chunks, estimator=estimator)
    assert estimator.calls == calls and all(r.skipped for r in results)

    joined = assemble(job, tmp_path / "joined.mkv")
    single = convert(long_clip.path, tmp_path / "single.mkv", cfg, estimator=KeyedOracle(long_clip))
    a, a_pts = decoded(joined)
    b, b_pts = decoded(single.output)
    assert len(a) == len(b) == 124 and a_pts == b_pts
    with av.open(str(joined)) as container:
        assert container.streams.video[0].metadata.get("stereo_mode") == "left_right"

    error = [np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b, strict=True)]
    # Chunks that start on a cut render exactly what the single pass renders.
    assert max(error[:74]) == 0
    # After a mid-shot join the temporal state was rebuilt from 6 frames of pre-roll: close, not identical.
    assert max(error[74:]) < 1.0, f"mean abs error after pre-roll joins: {max(error[74:]):.3f} levels"

    # Audio: copied once, as long as the single pass's, no gap or drift: it ends with the video.
    audio_a, audio_b = audio_durations(joined), audio_durations(single.output)
    assert len(audio_a) == 1 and audio_a == pytest.approx(audio_b, abs=1e-6)
    assert audio_a[0] == pytest.approx(124 / 24, abs=AAC_FRAME)


def test_joins_of_b_frame_chunks_keep_every_frame_and_timestamp_in_mp4(tiny_model, tmp_path):
    # Lossy x264 with B-frames (reordered frames, decode timestamps before display ones), VFR, into MP4.
    clip = make_clip(tmp_path / "vfr.mkv", (10, 40), vfr=True, audio=True)
    cfg = PipelineConfig().replace({"depth.model": str(tiny_model), "output.preset": "veryfast"})
    job = plan(clip.path, tmp_path / "job.json", cfg, chunk_seconds=0.5, preroll_seconds=0.2)
    assert len(job.chunks) >= 3
    render(job, job.chunks, estimator=KeyedOracle(clip))
    joined = assemble(job, tmp_path / "joined.mp4")
    single = convert(clip.path, tmp_path / "single.mp4", cfg, estimator=KeyedOracle(clip))
    a, a_pts = decoded(joined)
    b, b_pts = decoded(single.output)
    assert len(a) == len(b) == 50 and a_pts == b_pts
    assert audio_durations(joined) == pytest.approx(audio_durations(single.output), abs=1e-6)


def test_a_damaged_chunk_is_named_and_rendered_again(two_shot_clip, tiny_model, tmp_path):
    job = plan(two_shot_clip.path, tmp_path / "job.json", settings(tiny_model), chunk_seconds=0.3)
    assert len(job.chunks) >= 3
    render(job, job.chunks, estimator=KeyedOracle(two_shot_clip))
    video, _ = chunk_paths(job.default_work_dir, 1)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # a partial copy

    assert "damaged" in check_chunk(job, job.chunks[1], job.default_work_dir)
    with pytest.raises(MediaError, match=r"chunk 1: chunk_00001.mkv is damaged"):
        assemble(job, tmp_path / "out.mkv")
    assert not (tmp_path / "out.mkv").exists()

    estimator = KeyedOracle(two_shot_clip)
    results = render(job, job.chunks, estimator=estimator)
    assert [r.index for r in results if not r.skipped] == [1] and estimator.calls > 0
    chunk_paths(job.default_work_dir, 2)[0].unlink()
    with pytest.raises(MediaError, match=r"chunk 2: no chunk_00002.mkv"):
        assemble(job, tmp_path / "out.mkv")


def test_a_manifest_for_another_input_is_refused(two_shot_clip, tiny_model, tmp_path):
    source = tmp_path / "in.mp4"
    shutil.copy(two_shot_clip.path, source)
    job = plan(source, tmp_path / "job.json", settings(tiny_model), chunk_seconds=0.5)
    assert load_job(job.path).chunks == job.chunks
    make_clip(source, (12, 10), seed=9)  # the same name, other content
    with pytest.raises(MediaError, match="manifest for another input is refused"):
        load_job(job.path)
    (tmp_path / "other.json").write_text('{"cuts": []}')
    with pytest.raises(UsageError, match="not a stereoconv job manifest"):
        load_job(tmp_path / "other.json")


def test_frame_ranges_select_overlapping_chunks_clamped_to_the_length(two_shot_clip, tiny_model, tmp_path):
    job = plan(two_shot_clip.path, tmp_path / "job.json", settings(tiny_model), chunk_seconds=0.3)
    assert [c.index for c in chunks_for_frames(job, 0, 0)] == [0]
    assert chunks_for_frames(job, 0, 10_000) == job.chunks
    last = job.chunks[-1]
    assert chunks_for_frames(job, last.first_frame, 99_999) == [last]
    assert parse_frame_range(" 5-9 ") == (5, 9) and parse_frame_range("7") == (7, 7)
    for bad in ("9-5", "a-b", "-3"):
        with pytest.raises(UsageError):
            parse_frame_range(bad)
    with pytest.raises(UsageError, match="frames 0-21 only"):
        chunks_for_frames(job, 22, 30)


def test_cli_plan_render_assemble_with_a_real_model(two_shot_clip, tiny_model, tmp_path, capsys):
    job = tmp_path / "job.json"
    assert main(["plan", str(two_shot_clip.path), "--out", str(job), "--chunk-seconds", "0.4", "--model",
                 str(tiny_model), "--set", "depth.input_size=56", "-q"]) == 0  # fmt: skip
    chunks = load_job(job).chunks
    assert main(["render", str(job), "--frames", "12-99999", "--progress", "json", "--progress-every", "5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rendered = [c for c in chunks if c.last_frame >= 12]
    assert {line["chunk"] for line in lines} == {c.index for c in rendered}
    assert lines[-1]["frames_done"] == lines[-1]["frames_total"] == sum(c.frames for c in rendered)
    assert main(["assemble", str(job), str(tmp_path / "out.mkv")]) == 2 + 1  # chunk 0 missing: a media error
    assert "chunk 0: no chunk_00000.mkv" in capsys.readouterr().err
    assert main(["render", str(job), "--chunk", "0", "--progress", "none"]) == 0
    assert main(["assemble", str(job), str(tmp_path / "out.mkv")]) == 0
    frames, _ = decoded(tmp_path / "out.mkv")
    assert len(frames) == len(two_shot_clip.frames)
    assert main(["render", str(job), "--frames", "500-600"]) == 2
