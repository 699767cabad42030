"""Batch conversion: folders and lists of inputs, skipping what is done, going on past a bad file (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from synth import make_clip

from stereoconv import PipelineConfig
from stereoconv.batch import EXIT_SOME_FAILED, convert_batch, find_inputs
from stereoconv.cli import main
from stereoconv.progress import JsonProgress


class GreyDepth:
    """Depth from each frame's own grey level: deterministic whatever the order of frames or files."""

    batch_size = 4

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [f.mean(axis=2, dtype=np.float32) / 255.0 + 0.1 for f in frames]


@pytest.fixture
def folder(tmp_path) -> Path:
    """a_good.mp4 (8 frames), b_bad.mp4 (not a video), c_good.mkv (6 frames), notes.txt (not matched)."""
    films = tmp_path / "films"
    films.mkdir()
    make_clip(films / "a_good.mp4", (4, 4))
    (films / "b_bad.mp4").write_bytes(b"this is not a video" * 100)
    make_clip(films / "c_good.mkv", (3, 3), seed=7)
    (films / "notes.txt").write_text("not a film")
    return films


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_batch_goes_past_a_bad_file_and_a_rerun_skips_everything(folder, tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    tiny = ["--model", str(tiny_model), "--set", "depth.input_size=56", "--progress", "none"]
    code = main(["convert", str(folder), str(out), *tiny])
    err = capsys.readouterr().err
    assert code == EXIT_SOME_FAILED, err
    assert sorted(p.name for p in out.iterdir()) == ["a_good_hsbs.mp4", "c_good_hsbs.mkv"]
    assert frames_in(out / "a_good_hsbs.mp4") == 8 and frames_in(out / "c_good_hsbs.mkv") == 6
    rows = {line.split()[0]: line for line in err.splitlines() if line.startswith(str(folder))}
    assert set(rows) == {str(folder / n) for n in ("a_good.mp4", "b_bad.mp4", "c_good.mkv")}
    assert rows[str(folder / "a_good.mp4")].split()[1:2] == ["8"] and "converted" in rows[str(folder / "a_good.mp4")]
    assert "failed: cannot read" in rows[str(folder / "b_bad.mp4")]
    assert "2 converted, 0 skipped, 1 failed" in err

    (folder / "b_bad.mp4").unlink()
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code = main(["convert", str(folder), str(out), *tiny])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "0 converted, 2 skipped, 0 failed" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written  # nothing rewritten


def test_list_of_inputs_recursive_folders_and_glob(folder, tmp_path):
    sub = folder / "extras"
    sub.mkdir()
    make_clip(sub / "d.mov", (3,), seed=9)
    (folder / "old_hsbs.mp4").write_bytes(b"")  # named like an output: never an input
    assert [p.name for p, _ in find_inputs([folder])] == ["a_good.mp4", "b_bad.mp4", "c_good.mkv"]
    assert [(p.name, str(s)) for p, s in find_inputs([folder], recursive=True, pattern="*.m?v")] == [
        ("c_good.mkv", "."), ("d.mov", "extras")]  # fmt: skip
    out = tmp_path / "out"
    result = convert_batch([folder / "a_good.mp4", sub / "d.mov"], out, estimator=GreyDepth())
    assert [i.result for i in result.items] == ["converted", "converted"] and result.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_good_hsbs.mp4", "d_hsbs.mov"]
    result = convert_batch([folder], out, recursive=True, pattern="*.m?v", estimator=GreyDepth())
    assert [(i.input.name, i.result) for i in result.items] == [("c_good.mkv", "converted"), ("d.mov", "converted")]
    assert (out / "extras" / "d_hsbs.mov").is_file()  # sub-folders kept


def test_batch_json_progress_and_a_work_dir_per_file(folder, tmp_path, capsys):
    (folder / "b_bad.mp4").unlink()
    out, work = tmp_path / "out", tmp_path / "work"
    config = PipelineConfig().replace({"output.format": "half-tb"})
    progress = JsonProgress(None, 4)
    result = convert_batch([folder], out, config, work_dir=work, json_progress=progress, estimator=GreyDepth(),
                           keep_work_dir=True)  # fmt: skip
    assert result.exit_code == 0
    assert sorted(p.name for p in work.iterdir()) == ["a_good_htb", "c_good_htb"]  # one work directory per file
    assert all((work / name / "job.json").is_file() for name in ("a_good_htb", "c_good_htb"))
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 2 and kinds.count("finish") == 2 and kinds[-1] == "batch"
    assert [f["result"] for f in events[-1]["files"]] == ["converted", "converted"]
    again = convert_batch([folder], out, config, work_dir=work, json_progress=progress, estimator=GreyDepth())
    assert [i.result for i in again.items] == ["skipped", "skipped"]
    assert [e["event"] for e in map(json.loads, capsys.readouterr().out.splitlines())] == ["skipped", "skipped",
                                                                                          "batch"]  # fmt: skip


def test_batch_refuses_what_belongs_to_one_film(folder, tmp_path, capsys):
    code = main(["convert", str(folder), str(tmp_path / "out"), "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--report belongs to one film" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_model_is_loaded_once_per_batch_and_not_for_a_rerun_that_skips_all(folder, tmp_path, monkeypatch):
    import stereoconv.batch as batch

    loads: list[object] = []
    monkeypatch.setattr(batch, "load_estimator", lambda config: loads.append(config) or GreyDepth())
    first = convert_batch([folder], tmp_path / "out")
    assert [i.result for i in first.items] == ["converted", "failed", "converted"] and len(loads) == 1
    again = convert_batch([folder], tmp_path / "out")
    assert [i.result for i in again.items] == ["skipped", "failed", "skipped"] and len(loads) == 1
