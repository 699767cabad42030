"""Damaged inputs through the resumable and render-farm paths (convert --work-dir; plan, render, assemble): what
decodes is converted, the losses are the single pass's (recorded in the plan), exit 5; --strict fails the plan, exit 3.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from synth import make_clip
from test_damaged import PixelDepth, garble_packets

from stereoconv import MediaError, PipelineConfig, UsageError, convert
from stereoconv.cli import main
from stereoconv.farm import load_job, plan, render_chunk

# One decoding thread: with frame threads the decoder reports a bad packet a few packets late, which moves the start
# of a loss range by as many frames (to 1.750 s here with 3 threads); the tests on the command line name exact times.
TINY = ["--set", "depth.input_size=56", "--set", "media.decode_threads=1", "-q"]
GARBLED = range(40, 45)  # the packets (frames) garbled: 1.667 s to 1.833 s; the next frame kept is at 1.875 s
LOST = "stereoconv: warning: lost about 5 frames between 1.667 s and 1.875 s"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """124 frames at 24 fps (cuts at 20, 50, 64) with audio, MP4, frames 40-44 garbled: (path, every source time)."""
    clip = make_clip(tmp_path_factory.mktemp("damaged") / "in.mp4", (20, 30, 14, 60), audio=True)
    garble_packets(clip.path, GARBLED.start, len(GARBLED))
    return clip.path, clip.times


def settings(**overrides: object) -> PipelineConfig:
    # Lossless (x264 qp 0, 4:4:4) so the frames of two outputs can be compared exactly.
    base = {"depth.input_size": 56, "output.crf": 0, "output.pix_fmt": "yuv444p", "output.preset": "ultrafast"}
    return PipelineConfig().replace({**base, **overrides})


def decoded(path: Path) -> tuple[list[np.ndarray], list[int]]:
    with av.open(str(path)) as container:
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return [f for _, f in frames], [p for p, _ in frames]


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_work_dir_convert_keeps_what_decodes_with_the_single_pass_losses(damaged, tmp_path):
    source, times = damaged
    cfg = settings()
    single = convert(source, tmp_path / "single.mkv", cfg, estimator=PixelDepth())
    work = tmp_path / "work"
    farm = convert(source, tmp_path / "farm.mkv", cfg, estimator=PixelDepth(), work_dir=work, chunk_seconds=0.5,
                   keep_work_dir=True)  # fmt: skip

    # Every frame but the garbled ones, at their source timestamps, as the single pass writes them.
    assert single.frames == farm.frames == len(times) - len(GARBLED) and farm.cuts == single.cuts
    a, a_pts = decoded(farm.output)
    b, b_pts = decoded(single.output)
    assert len(a) == farm.frames and a_pts == b_pts
    kept = {round(float(p) / 1000 * 24) for p in a_pts}  # Matroska stores milliseconds
    assert sorted(set(range(len(times))) - kept) == list(GARBLED)
    job = load_job(work / "job.json")
    for chunk in job.chunks:
        error = [np.abs(x.astype(int) - y.astype(int)).mean() for x, y in
                 zip(a[chunk.first_frame : chunk.last_frame + 1], b[chunk.first_frame : chunk.last_frame + 1],
                     strict=True)]  # fmt: skip
        # A chunk starting on a cut renders what the single pass renders; after a mid-shot join, close to it.
        assert max(error) == 0 if chunk.starts_at_cut else max(error) < 1.0, (chunk.index, max(error))

    # The losses: the single pass's, in one plausible range between the frames kept on either side of the gap.
    assert farm.losses is not None and farm.losses.frames_lost == len(GARBLED)
    assert farm.losses.to_dict() == single.losses.to_dict()
    assert farm.losses.lines() == single.losses.lines() and farm.losses.packets_failed == len(GARBLED)
    ((start, end),) = farm.losses.ranges  # default decode threads: the start may be a few frames late (see TINY)
    assert times[GARBLED.start - 1] < start <= end == pytest.approx(times[GARBLED.stop])

    # Run again, the work directory holding everything: nothing rendered, the same losses rebuilt from the plan.
    estimator = PixelDepth()
    again = convert(source, tmp_path / "again.mkv", cfg, estimator=estimator, work_dir=work, chunk_seconds=0.5)
    assert again.work.startswith(f"resumed: {len(job.chunks)} of {len(job.chunks)} chunks already done")
    assert again.losses.to_dict() == single.losses.to_dict() and not work.exists()


def test_truncated_input_with_a_work_dir_converts_what_the_single_pass_converts(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", (30, 30), audio=True)
    data = clip.path.read_bytes()
    clip.path.write_bytes(data[: len(data) // 2])
    single = convert(clip.path, tmp_path / "single.mkv", settings(), estimator=PixelDepth())
    farm = convert(clip.path, tmp_path / "farm.mkv", settings(), estimator=PixelDepth(), work_dir=tmp_path / "w",
                   chunk_seconds=0.5)  # fmt: skip
    assert 0 < farm.frames == single.frames < 60 and farm.losses
    assert abs(farm.frames + farm.losses.frames_lost - 60) <= 2
    assert farm.losses.to_dict() == single.losses.to_dict()
    a, a_pts = decoded(farm.output)
    b, b_pts = decoded(single.output)
    assert a_pts == b_pts and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_cli_convert_with_a_work_dir_exits_5_as_the_single_pass_and_3_when_strict(damaged, tiny_model, tmp_path,
                                                                                     capsys):  # fmt: skip
    source, _ = damaged
    model = ["--model", str(tiny_model), *TINY]
    assert main(["convert", str(source), str(tmp_path / "single.mkv"), *model]) == 5
    single = stderr_lines(capsys)
    work = tmp_path / "work"
    assert main(["convert", str(source), str(tmp_path / "farm.mkv"), *model, "--work-dir", str(work),
                 "--chunk-seconds", "0.5"]) == 5  # fmt: skip
    farm = stderr_lines(capsys)
    assert farm == [line.replace("single.mkv", "farm.mkv") for line in single]
    assert farm[0] == LOST
    assert farm[-1].startswith("stereoconv: completed with losses: about 5 frames lost in 1 ranges (the input is "
                               "damaged; --strict makes this an error); wrote ")  # fmt: skip
    assert len(farm) == 2 and not work.exists()
    assert len(decoded(tmp_path / "farm.mkv")[0]) == 119

    strict = tmp_path / "strict"
    strict.mkdir()
    code = main(["convert", str(source), str(strict / "out.mkv"), *model, "--work-dir", str(strict / "work"),
                 "--strict"])  # fmt: skip
    lines = stderr_lines(capsys)
    assert code == 3 and len(lines) == 1, lines
    assert lines[0].startswith(f"stereoconv: error: {source}: decoding failed after frame "), lines[0]
    assert list(strict.iterdir()) == [], "no output, no work directory"


def test_plan_render_assemble_record_the_losses_and_assemble_exits_5(damaged, tiny_model, tmp_path, capsys):
    source, _ = damaged
    job = tmp_path / "job.json"
    assert main(["plan", str(source), "--out", str(job), "--chunk-seconds", "0.5", "--model", str(tiny_model),
                 *TINY]) == 0  # fmt: skip
    planned = stderr_lines(capsys)
    assert planned[0] == LOST
    assert planned[-1] == (f"stereoconv: planned with losses: about 5 frames lost in 1 ranges (the input is "
                           f"damaged; --strict makes this an error); wrote {job}; assemble will exit 5")  # fmt: skip
    manifest = json.loads(job.read_text())
    assert manifest["video"]["frames"] == 119
    assert manifest["losses"] == {"frames_lost": 5, "ranges": [[40 / 24, 45 / 24]], "counts": [5],
                                  "packets_failed": 5, "frames_damaged": 0}  # fmt: skip

    assert main(["render", str(job), "--all", "--progress", "none"]) == 0
    capsys.readouterr()
    out = tmp_path / "out.mkv"
    assert main(["assemble", str(job), str(out)]) == 5
    assembled = stderr_lines(capsys)
    assert assembled == [planned[0], "stereoconv: completed with losses: about 5 frames lost in 1 ranges (the input "
                         f"is damaged; --strict makes this an error); wrote {out}"]  # fmt: skip
    frames, _ = decoded(out)
    assert len(frames) == 119

    assert main(["plan", str(source), "--out", str(tmp_path / "strict.json"), "--model", str(tiny_model), *TINY,
                 "--strict"]) == 3  # fmt: skip
    lines = stderr_lines(capsys)
    assert len(lines) == 1 and "decoding failed after frame" in lines[0] and not (tmp_path / "strict.json").exists()


def test_the_manifest_keeps_the_losses_and_old_or_damaged_ones_are_handled(damaged, tmp_path):
    source, _ = damaged
    job = plan(source, tmp_path / "job.json", settings(), chunk_seconds=0.5)
    assert job.losses.frames_lost == 5
    assert load_job(job.path).losses.to_dict() == job.losses.to_dict()

    data = json.loads(job.path.read_text())
    del data["losses"]  # a manifest from before losses were recorded (planning was strict then): none
    job.path.write_text(json.dumps(data))
    old = load_job(job.path)
    assert not old.losses and old.losses.ranges == [] and old.losses.frames_damaged == 0

    data["losses"] = {"frames_lost": 5, "ranges": [[1.0, 2.0]], "counts": []}
    job.path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="damaged job manifest"):
        load_job(job.path)


def test_a_chunk_that_decodes_otherwise_than_planned_is_a_clear_error(damaged, tmp_path):
    source, _ = damaged
    job = plan(source, tmp_path / "job.json", settings(), chunk_seconds=0.5)
    chunk = next(c for c in job.chunks if c.first_frame <= GARBLED.start <= c.last_frame + 1)
    # As if this decode of the damaged file gave another frame first than the plan's scan did.
    moved = dataclasses.replace(chunk, first_pts=chunk.first_pts + 1)
    with pytest.raises(MediaError, match=rf"^chunk {chunk.index}: .*the input is damaged and decodes otherwise .*"
                       r"single pass"):  # fmt: skip
        render_chunk(job, moved, tmp_path, PixelDepth())
    assert not any(p.suffix in (".mkv", ".json") and p.name.startswith("chunk_") for p in tmp_path.iterdir())
    shutil.rmtree(tmp_path / "job.chunks", ignore_errors=True)
