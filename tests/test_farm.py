"""Render farms: plan -> render chunks -> assemble, checked against a single-pass convert of the same clip."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from synth import SynthClip, make_clip, make_tiny_model
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
    pending_chunks,
    plan,
    render,
    render_chunk,
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
            assert len(container.streams) == 1, "chunks carry only their video: assembly adds the source's streams"

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


# ---------------------------------------------------------------------------------- convert --work-dir (resume)


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        return [(p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.size]


def chunk_files(directory: Path) -> dict[str, tuple[int, int]]:
    """Every finished chunk file (video and sidecar) by name: (inode, mtime in ns), which a re-render changes."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.glob("chunk_*")}


def test_convert_with_a_work_dir_resumes_after_a_kill_and_writes_what_an_uninterrupted_run_writes(
    tiny_model, tmp_path, capsys
):
    clip = make_clip(tmp_path / "shots.mp4", (20, 18, 22, 16, 20), height=112, width=192, audio=True)
    work = tmp_path / "work"

    def command(output: Path, work_dir: Path) -> list[str]:
        return ["convert", str(clip.path), str(output), "--model", str(tiny_model), "--set", "depth.input_size=56",
                "--set", "output.crf=0", "--set", "output.pix_fmt=yuv444p", "--work-dir", str(work_dir),
                "--chunk-seconds", "0.5", "--keep-work-dir"]  # fmt: skip

    chunks_dir = work / "job.chunks"
    proc = subprocess.Popen([sys.executable, "-m", "stereoconv", *command(tmp_path / "out.mkv", work), "-q"],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(chunks_dir.glob("chunk_*.json"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # a sidecar appears (atomically) when its chunk is finished
    proc.send_signal(signal.SIGKILL)  # no cleanup at all: as a crash or a power cut
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the conversion ended before it could be killed: {err}"
    assert not (tmp_path / "out.mkv").exists()
    job = load_job(work / "job.json")
    finished = [k for k in range(len(job.chunks)) if k not in pending_chunks(job, chunks_dir)]
    assert len(job.chunks) >= 6 and 2 <= len(finished) < len(job.chunks)
    before = chunk_files(chunks_dir)

    # The same command again: the finished chunks are kept as they are, the others rendered, the output written.
    assert main(command(tmp_path / "out.mkv", work)) == 0
    err = capsys.readouterr().err
    assert f"resumed: {len(finished)} of {len(job.chunks)} chunks already done" in err
    after = chunk_files(chunks_dir)
    for k in finished:
        for path in chunk_paths(chunks_dir, k):
            assert after[path.name] == before[path.name], f"{path.name} was rendered again"
    assert len(after) == 2 * len(job.chunks) and pending_chunks(job, chunks_dir) == []

    # An uninterrupted run of the same command (without --keep-work-dir: its work directory is removed after).
    other = tmp_path / "other-work"
    assert main([*command(tmp_path / "uninterrupted.mkv", other)[:-1], "-q"]) == 0
    assert not other.exists()
    a, a_pts = decoded(tmp_path / "out.mkv")
    b, b_pts = decoded(tmp_path / "uninterrupted.mkv")
    assert len(a) == len(b) == len(clip.frames) and a_pts == b_pts
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    audio = audio_packets(tmp_path / "out.mkv")
    assert audio and audio == audio_packets(tmp_path / "uninterrupted.mkv")


def test_a_work_dir_of_another_conversion_is_refused(two_shot_clip, tiny_model, tmp_path, capsys):
    cfg = settings(tiny_model)
    work = tmp_path / "work"
    first = convert(two_shot_clip.path, tmp_path / "a.mkv", cfg, estimator=KeyedOracle(two_shot_clip),
                    work_dir=work, chunk_seconds=0.3, keep_work_dir=True)  # fmt: skip
    assert first.frames == 22 and first.cuts == [12]
    assert first.work == f"planned 3 chunks; work directory {work} kept"
    kept = {p.relative_to(work): p.stat().st_mtime_ns for p in work.rglob("*")}

    other_input = make_clip(tmp_path / "other.mp4", (12, 10), seed=5)
    other_model = make_tiny_model(tmp_path / "other-model", seed=1)
    refused = [
        (other_input.path, cfg, 0.3, r"another input \("),
        (two_shot_clip.path, settings(tiny_model, **{"stereo.max_positive_parallax": 2.0}), 0.3,
         r"other settings \(stereo.max_positive_parallax\)"),
        (two_shot_clip.path, settings(tiny_model, **{"media.start": 0.25}), 0.3, r"other settings \(media.start\)"),
        (two_shot_clip.path, settings(other_model), 0.3, r"another model \("),
        (two_shot_clip.path, cfg, 0.5, r"--chunk-seconds 0.3"),
    ]  # fmt: skip
    for source, config, seconds, why in refused:
        with pytest.raises(UsageError, match=why + r".*use another or an empty work directory"):
            convert(source, tmp_path / "b.mkv", config, estimator=KeyedOracle(two_shot_clip), work_dir=work,
                    chunk_seconds=seconds)  # fmt: skip
    assert not (tmp_path / "b.mkv").exists()
    assert {p.relative_to(work): p.stat().st_mtime_ns for p in work.rglob("*")} == kept, "nothing was mixed"

    # Another place for the same model or input, other runtime settings or device: the same conversion, resumed.
    shutil.copytree(tiny_model, tmp_path / "model-copy")
    same = settings(tmp_path / "model-copy", **{"runtime.render_workers": 1, "depth.device": "cpu"})
    estimator = KeyedOracle(two_shot_clip)
    again = convert(two_shot_clip.path, tmp_path / "c.mkv", same, estimator=estimator, work_dir=work,
                    chunk_seconds=0.3)  # fmt: skip
    assert again.work == f"resumed: 3 of 3 chunks already done; work directory {work} removed"
    assert estimator.calls == 0 and not work.exists()
    assert decoded(tmp_path / "c.mkv")[1] == decoded(tmp_path / "a.mkv")[1]

    # A directory holding anything else is not a work directory; on the command line the refusal is one line.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code = main(["convert", str(two_shot_clip.path), str(tmp_path / "d.mkv"), "--model", str(tiny_model),
                 "--work-dir", str(foreign), "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "is not empty and holds no stereoconv plan; use another or an empty work directory" in err[0]
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"] and not (tmp_path / "d.mkv").exists()


def test_work_dir_flags_need_a_work_dir_and_without_one_convert_is_the_single_pass(two_shot_clip, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    assert main(["convert", str(two_shot_clip.path), str(out), "--chunk-seconds", "1", "--backend", "local"]) == 2
    assert "--chunk-seconds, --backend need --work-dir" in capsys.readouterr().err
    with pytest.raises(UsageError, match="need --work-dir"):
        convert(two_shot_clip.path, out, backend="ray")
    with pytest.raises(UsageError, match="report"):
        convert(two_shot_clip.path, out, work_dir=tmp_path / "w", report=tmp_path / "r.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_ray_backend_gets_the_pending_chunks(two_shot_clip, tiny_model, tmp_path, monkeypatch):
    cfg = settings(tiny_model)
    work = tmp_path / "work"
    calls = []

    def run_chunks(job, chunk_indices, work_dir, config, *, address=None, depth_cache=None, model=None, log=None):
        calls.append((list(chunk_indices), work_dir, config, address))
        for k in chunk_indices:
            render_chunk(job, job.chunks[k], work_dir, KeyedOracle(two_shot_clip))

    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    monkeypatch.setitem(sys.modules, "stereoconv.ray_backend", types.SimpleNamespace(run_chunks=run_chunks))
    # Chunk 1 already rendered (by a run before): the backend is given the others only.
    work.mkdir()
    job = plan(two_shot_clip.path, work / "job.json", cfg, chunk_seconds=0.3)
    render(job, [job.chunks[1]], estimator=KeyedOracle(two_shot_clip))
    result = convert(two_shot_clip.path, tmp_path / "out.mkv", cfg, work_dir=work, chunk_seconds=0.3,
                     backend="ray", ray_address="ray://head:10001")  # fmt: skip
    assert calls == [([0, 2], work / "job.chunks", cfg, "ray://head:10001")]
    assert result.work.startswith("resumed: 1 of 3 chunks already done")
    assert len(decoded(result.output)[0]) == 22

    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(UsageError, match=r"^the ray backend needs `pip install 'stereoconv\[ray\]'`$"):
        convert(two_shot_clip.path, tmp_path / "out2.mkv", cfg, work_dir=tmp_path / "w2", backend="ray")
    assert not (tmp_path / "w2").exists()
