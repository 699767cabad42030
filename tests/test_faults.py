"""Faults a long run meets: a full disk (and the other faults of the machine) end in one line naming the path, exit 6
and nothing partial at the output; a depth cache that cannot store says so even with --quiet; a work directory that
hit a full disk resumes; two tasks on one chunk leave one valid chunk; a work directory in use is refused.

The faults are injected where the bytes are written (an OSError with the errno the kernel gives), so these tests need
no small disk; benchmarks/faults.py runs the same faults on a real full tmpfs where it can.
"""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import av
import av.error
import pytest

import stereoconv.encode as encode
from stereoconv.cache import DepthCache
from stereoconv.cli import main
from stereoconv.errors import EXIT_STORAGE, StorageError, storage_error

TINY = ["--set", "depth.input_size=56", "-q"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


class _FullDisk:
    """An output container that fills the disk after ``room`` packets: PyAV's own error, as FFmpeg raises it."""

    def __init__(self, out: av.container.OutputContainer, room: list[int], err: int) -> None:
        self._out, self._room, self._errno = out, room, err

    def mux(self, packets: object) -> None:
        self._room[0] -= 1
        if self._room[0] < 0:
            raise av.error.OSError(self._errno, errno.errorcode[self._errno], self._out.name)
        self._out.mux(packets)

    def __getattr__(self, name: str) -> object:
        return getattr(self._out, name)


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, packets: int, err: int = errno.ENOSPC) -> list[int]:
    """Every VideoWriter (outputs and farm chunks) shares ``packets`` of room; then its muxer fails with ``err``."""
    room = [packets]
    real_init = encode.VideoWriter.__init__

    def init(self: encode.VideoWriter, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)
        self._out = _FullDisk(self._out, room, err)  # type: ignore[assignment]

    monkeypatch.setattr(encode.VideoWriter, "__init__", init)
    return room


def test_storage_error_maps_the_errnos_of_the_machine_and_nothing_else():
    for err in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.EMFILE,
                errno.ENFILE, errno.EIO):  # fmt: skip
        fault = storage_error(OSError(err, "x", "/some/where/out.mp4"))
        assert isinstance(fault, StorageError) and isinstance(fault, OSError)
        assert fault.exit_code == EXIT_STORAGE == 6 and fault.errno == err
        assert "/some/where/out.mp4" in str(fault) and ";" in str(fault)  # names the path, then what to do
    assert storage_error(OSError(errno.EINVAL, "Invalid argument")) is None
    assert storage_error(ValueError("x")) is None
    # PyAV's errors are OSErrors with the errno too; a path given names what the user knows, not a temporary file
    pyav = av.error.OSError(errno.ENOSPC, "No space left on device", "/d/.out.1234.partial.mp4")
    assert "/d/out.mp4" in str(storage_error(pyav, "/d/out.mp4"))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EMFILE])
def test_convert_on_a_failing_disk_is_one_line_exit_6_nothing_left(err, two_shot_clip, tiny_model, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    fill_disk_after(monkeypatch, 5, err)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, lines = run_cli(capsys, "convert", str(two_shot_clip.path), str(out_dir / "out.mp4"),
                          "--model", str(tiny_model), *TINY)  # fmt: skip
    assert code == 6, lines
    assert len(lines) == 1 and lines[0].startswith("stereoconv: error: "), lines
    assert "internal error" not in lines[0]
    assert str(out_dir / "out.mp4") in lines[0]  # the output, not its temporary file
    assert ".partial" not in lines[0]
    assert list(out_dir.iterdir()) == []


def test_a_raw_oserror_anywhere_is_reported_as_the_machines_fault(two_shot_clip, tiny_model, tmp_path, capsys,
                                                                  monkeypatch):  # fmt: skip
    import stereoconv.single_pass as single_pass

    def vanished(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/mnt/gone/x")

    monkeypatch.setattr(single_pass.ShotReport, "for_video", vanished)
    code, lines = run_cli(capsys, "convert", str(two_shot_clip.path), str(tmp_path / "o.mp4"), "--report",
                          str(tmp_path / "r.json"), "--model", str(tiny_model), *TINY)  # fmt: skip
    assert code == 6 and len(lines) == 1 and "/mnt/gone/x" in lines[0] and "internal error" not in lines[0], lines


def test_full_depth_cache_warns_even_with_quiet_and_the_conversion_goes_on(two_shot_clip, tiny_model, tmp_path, capsys,
                                                                           monkeypatch):  # fmt: skip
    real = DepthCache._write_atomic

    def full(self: DepthCache, path: Path, data: bytes) -> None:
        if path.suffix == ".depth":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(self, path, data)

    monkeypatch.setattr(DepthCache, "_write_atomic", full)
    cache = tmp_path / "cache"
    out = tmp_path / "out.mp4"
    report = tmp_path / "report.json"
    code, lines = run_cli(capsys, "convert", str(two_shot_clip.path), str(out), "--depth-cache", str(cache),
                          "--report", str(report), "--model", str(tiny_model), *TINY)  # fmt: skip
    assert code == 0 and out.is_file()
    assert len(lines) == 1 and lines[0].startswith("stereoconv: warning: depth cache "), lines
    assert "No space left on device" in lines[0] and "0 of 22 frames computed were kept" in lines[0]
    assert json.loads(report.read_text())["warnings"] == [lines[0].removeprefix("stereoconv: warning: ")]

    from stereoconv.api import convert
    from stereoconv.config import load_config

    config = load_config(None, None, {"depth.model": str(tiny_model), "depth.input_size": 56})
    result = convert(two_shot_clip.path, tmp_path / "again.mp4", config, depth_cache=cache)
    assert result.warnings == [lines[0].removeprefix("stereoconv: warning: ")]


def test_unreadable_cache_file_is_recomputed_with_a_warning(two_shot_clip, tiny_model, tmp_path):
    from stereoconv.api import convert
    from stereoconv.config import load_config

    config = load_config(None, None, {"depth.model": str(tiny_model), "depth.input_size": 56})
    cache = tmp_path / "cache"
    first = convert(two_shot_clip.path, tmp_path / "a.mp4", config, depth_cache=cache)
    assert first.warnings == []
    damaged = sorted(cache.glob("*/*.depth"))[0]
    damaged.write_bytes(damaged.read_bytes()[:-100])
    second = convert(two_shot_clip.path, tmp_path / "b.mp4", config, depth_cache=cache)
    assert len(second.warnings) == 1 and "1 damaged or unreadable file(s) discarded" in second.warnings[0]
    assert "computed again" in second.warnings[0]


def _work_dir_command(clip: Path, model: Path, output: Path, work: Path) -> list[str]:
    return ["convert", str(clip), str(output), "--model", str(model), "--set", "depth.input_size=56",
            "--work-dir", str(work), "--chunk-seconds", "0.3"]  # fmt: skip


def test_a_work_dir_run_that_hit_a_full_disk_resumes_keeping_its_finished_chunks(two_shot_clip, tiny_model, tmp_path,
                                                                                 capsys, monkeypatch):  # fmt: skip
    from stereoconv.farm import load_job, pending_chunks

    work, out = tmp_path / "work", tmp_path / "out.mkv"
    fill_disk_after(monkeypatch, 12)  # room for a chunk or two of 22 frames in chunks of ~7
    code, lines = run_cli(capsys, *_work_dir_command(two_shot_clip.path, tiny_model, out, work), "-q")
    assert code == 6, lines
    assert lines[-1].startswith("stereoconv: error: no space left on the device: ") and "job.chunks" in lines[-1]
    assert f"finished chunks are kept in {work}" in lines[0] and len(lines) == 2
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    job = load_job(work / "job.json")
    pending = pending_chunks(job, job.default_work_dir)
    assert 0 < len(pending) < len(job.chunks)
    assert not [p for p in job.default_work_dir.iterdir() if ".partial" in p.name]  # no temporary file left

    monkeypatch.undo()  # space freed
    code, lines = run_cli(capsys, *_work_dir_command(two_shot_clip.path, tiny_model, out, work))
    assert code == 0, lines
    assert any(f"resumed: {len(job.chunks) - len(pending)} of {len(job.chunks)} chunks already done" in x
               for x in lines)  # fmt: skip
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(two_shot_clip.frames)
    assert not work.exists()


def test_a_work_dir_in_use_is_refused_in_one_line(two_shot_clip, tiny_model, tmp_path, capsys):
    import fcntl
    import os

    work = tmp_path / "work"
    work.mkdir()
    fd = os.open(work / ".stereoconv.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another conversion holds it
    try:
        code, lines = run_cli(capsys, *_work_dir_command(two_shot_clip.path, tiny_model, tmp_path / "o.mkv", work))
    finally:
        os.close(fd)
    assert code == 2 and len(lines) == 1 and "is in use by another conversion" in lines[0], lines
    assert [p.name for p in work.iterdir()] == [".stereoconv.lock"] and not (tmp_path / "o.mkv").exists()
    code, lines = run_cli(capsys, *_work_dir_command(two_shot_clip.path, tiny_model, tmp_path / "o.mkv", work), "-q")
    assert code == 0, lines  # released (a crash releases it too: the kernel drops the lock with the process)
    assert (tmp_path / "o.mkv").is_file()


class _Flat:
    """A depth estimator of a constant-slope map, ``level`` apart per instance: two tasks render other bytes."""

    batch_size = 4

    def __init__(self, level: float, barrier: threading.Barrier) -> None:
        self.level, self.barrier, self.calls = level, barrier, 0

    def __call__(self, frames):
        import numpy as np

        self.calls += 1
        if self.calls == 1:
            self.barrier.wait(timeout=60)  # both tasks are rendering the chunk at once
        h, w = frames[0].shape[:2]
        ramp = np.linspace(0.0, self.level, w, dtype=np.float32)[None, :].repeat(h, 0)
        return [ramp.copy() for _ in frames]


def test_two_tasks_rendering_one_chunk_leave_one_valid_pair(two_shot_clip, tiny_model, tmp_path):
    import hashlib

    from stereoconv.config import load_config
    from stereoconv.farm import check_chunk, chunk_paths, plan, render_chunk

    config = load_config(None, None, {"depth.model": str(tiny_model), "depth.input_size": 56})
    job = plan(two_shot_clip.path, tmp_path / "job.json", config, chunk_seconds=0.3)
    work = job.default_work_dir
    work.mkdir()
    chunk = job.chunks[1]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def task(level: float) -> None:
        try:
            render_chunk(job, chunk, work, _Flat(level, barrier))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(level,)) for level in (1.0, 3.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    video, sidecar = chunk_paths(work, chunk.index)
    meta = json.loads(sidecar.read_text())
    assert meta["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()  # one task's video beside its own sidecar
    assert check_chunk(job, chunk, work) is None
    assert sorted(p.name for p in work.iterdir() if not p.name.endswith(".lock")) == sorted([video.name, sidecar.name])


def _full_for_partials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing any temporary file (the atomic writes of job manifests, sidecars, PNGs) fails: the disk is full."""
    real_text, real_bytes = Path.write_text, Path.write_bytes

    def check(path: Path) -> None:
        if ".partial" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: (check(self), real_text(self, *a, **k))[1])
    monkeypatch.setattr(Path, "write_bytes", lambda self, *a, **k: (check(self), real_bytes(self, *a, **k))[1])


def test_plan_preview_render_assemble_on_a_full_disk_exit_6_naming_what_they_write(two_shot_clip, tiny_model, tmp_path,
                                                                                   capsys, monkeypatch):  # fmt: skip
    import stereoconv.farm as farm

    clip, model = str(two_shot_clip.path), ["--model", str(tiny_model), "--set", "depth.input_size=56"]
    job = tmp_path / "job.json"
    assert run_cli(capsys, "plan", clip, "--out", str(job), "--chunk-seconds", "0.5", *model, "-q")[0] == 0
    with monkeypatch.context() as patch:
        _full_for_partials(patch)
        other = tmp_path / "other.json"
        code, lines = run_cli(capsys, "plan", clip, "--out", str(other), *model, "-q")
        assert code == 6 and lines == [f"stereoconv: error: no space left on the device: {other}; free some space "
                                       "(or write elsewhere) and run the command again"]  # fmt: skip
        png = tmp_path / "frame.png"
        code, lines = run_cli(capsys, "preview", clip, "--at", "0.5", "--out", str(png), *model)
        assert code == 6 and len(lines) == 1 and str(png) in lines[0] and "no space" in lines[0], lines
        code, lines = run_cli(capsys, "render", str(job), "--all")  # the chunk is written, its sidecar is not
        assert code == 6 and len(lines) == 1 and "chunk_00000.json" in lines[0], lines
        assert not list((tmp_path / "job.chunks").glob("chunk_*"))  # no chunk without its sidecar
    assert run_cli(capsys, "render", str(job), "--all")[0] == 0
    room = fill_disk_after(monkeypatch, 0)  # assemble: the first packet fills the disk
    real_remux = farm._remux

    def remux(job, work, out, *args, **kwargs):  # assemble writes with av.open: give it the full disk too
        return real_remux(job, work, _FullDisk(out, room, errno.ENOSPC), *args, **kwargs)

    monkeypatch.setattr(farm, "_remux", remux)
    out = tmp_path / "out.mkv"
    code, lines = run_cli(capsys, "assemble", str(job), str(out))
    assert code == 6 and len(lines) == 1 and str(out) in lines[0] and ".partial" not in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.chunks", "job.json"]


def test_the_temporary_file_of_a_killed_run_is_swept_by_the_next_write_of_the_same_output(tmp_path):
    import fcntl
    import os

    from stereoconv.encode import atomic_output

    out = tmp_path / "film.mkv"
    killed = tmp_path / ".film.0badc0de.partial.mkv"  # its writer is gone: nobody holds its lock
    killed.write_bytes(b"half a film")
    live = tmp_path / ".film.1234abcd.partial.mkv"  # a writer still at work holds it
    live.write_bytes(b"being written")
    other = tmp_path / ".other.0badc0de.partial.mkv"  # another output's
    other.write_bytes(b"x")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"done")
    finally:
        os.close(fd)
    assert out.read_bytes() == b"done"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, other.name])
