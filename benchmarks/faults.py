"""Faults a long run meets, each run for real against the command line: what it exits with, what it says, what it
leaves, and whether running the same command again completes with the output of an undisturbed run.

Every fault is run on a small synthetic clip (tests/synth.py: shots with hard cuts and an audio track) with the tiny
random-weight depth model, each command in its own process (``python -m stereoconv``), as a user or a farm runs it:

- a full disk under ``convert`` (the output), ``convert --depth-cache`` (the cache), ``convert --work-dir``,
  ``preview``, ``plan``, ``render`` and ``assemble``: a small tmpfs filled up to a few KiB, freed for the rerun;
- a read-only file system under ``render``; permission denied (``render`` into a folder it may not write in);
  too many open files (``convert`` under ``ulimit -n``); a work directory deleted while ``convert --work-dir`` runs;
- SIGKILL during ``assemble``, SIGTERM during ``plan``; a damaged depth cache chunk; a damaged chunk sidecar;
- two ``render`` tasks of the same chunks at once (a farm's requeue) and a second ``convert --work-dir`` on a
  directory in use.

Faults that need root (mounting a small tmpfs, dropping the capability to override permissions) are skipped, each
with its reason, without it.
"Partial left" lists what the fault left beside OUTPUT (or in the folder written to) besides what was there before;
"rerun" runs the same command again once the fault is gone and compares the output with an undisturbed run's
(decoded frames and timestamps, exactly), or says what else it checked.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from _common import REPO, TESTS, facts_line, finish, machine_facts, parser, table

sys.path.insert(0, str(TESTS))
from synth import make_clip, make_tiny_model

SETTINGS = ["--set", "depth.input_size=56", "--set", "output.preset=ultrafast"]
GROUPS = (
    "full_disk",
    "read_only",
    "permission_denied",
    "too_many_open_files",
    "vanished",
    "sigkill_assemble",
    "sigterm_plan",
    "damaged_cache",
    "damaged_sidecar",
    "two_tasks",
    "work_dir_in_use",
)
NOBODY = 65534  # the user nobody: owns the folder root may not write in without its override capability


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser("faults", __doc__.splitlines()[0])
    args.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    args.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups of faults")
    return args.parse_args(argv)


@dataclass
class Run:
    code: int
    lines: list[str]

    @property
    def message(self) -> str:
        """The line that says what happened: the error, else a warning, else the last line."""
        for prefix in ("stereoconv: error:", "stereoconv: warning:"):
            for line in self.lines:
                if line.startswith(prefix):
                    return line
        return self.lines[-1] if self.lines else ""


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "stereoconv", *argv]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "STEREOCONV_DEBUG": ""}


def run(argv: Sequence[str], *, preexec: Callable[[], None] | None = None, timeout: float = 600) -> Run:
    done = subprocess.run(command(*argv), capture_output=True, text=True, env=env(), preexec_fn=preexec,
                          timeout=timeout)  # fmt: skip
    return Run(done.returncode, [x for x in done.stderr.splitlines() if x.strip()])


def start(argv: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command(*argv), stderr=subprocess.PIPE, text=True, env=env())


def finish_run(proc: subprocess.Popen[str]) -> Run:
    _, err = proc.communicate(timeout=600)
    return Run(proc.returncode, [x for x in err.splitlines() if x.strip()])


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 120) -> bool:
    """Poll ``condition`` until true (True) or the process ends or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.002)
    return False


def opened(proc: subprocess.Popen[str], path: Path) -> Callable[[], bool]:
    """Whether ``proc`` has ``path`` open (it is reading the input: past its imports, mid-work)."""

    def check() -> bool:
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{proc.pid}/fd")
            return any(os.readlink(fds / fd) == str(path) for fd in os.listdir(fds))
        return False

    return check


def fingerprint(path: Path) -> str | None:
    """sha256 of every decoded video frame and its timestamp (None if the file is missing or unreadable)."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                digest.update(f"{frame.pts * stream.time_base}".encode())
                digest.update(frame.to_ndarray(format="rgb24").tobytes())
    except (av.error.FFmpegError, OSError):
        return None
    return digest.hexdigest()


def left_beside(folder: Path, before: set[str]) -> str:
    """What a fault left in ``folder`` that was not there before (names), or "none"."""
    if not folder.is_dir():
        return "none (folder gone)"
    new = sorted(p.name for p in folder.iterdir() if p.name not in before)
    return ", ".join(new) if new else "none"


class SmallDisk:
    """A tmpfs at ``path``, filled up to ``free_kib`` of free space by a filler file; :meth:`free` removes it."""

    def __init__(self, path: Path, free_kib: int, size_kib: int = 4096) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0777", "tmpfs", str(path)],
                       check=True, capture_output=True)  # fmt: skip
        self.filler = path / ".filler"
        stat = os.statvfs(path)
        room = stat.f_bavail * stat.f_frsize - free_kib * 1024
        with open(self.filler, "wb") as fh:
            fh.write(b"\0" * max(0, room))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, option: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{option}", str(self.path)], check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def tmpfs_possible(scratch: Path) -> str | None:
    """None if a small tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "needs root (a small tmpfs)"
    probe = scratch / "probe-mount"
    probe.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    if done.returncode != 0:
        return f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
    subprocess.run(["umount", str(probe)], capture_output=True)
    return None


class Faults:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.rows: list[dict[str, Any]] = []
        self.skip_root = tmpfs_possible(scratch)
        self.clip = make_clip(scratch / "clip.mp4", (40, 30, 50, 40, 32), height=64, width=96, audio=True).path
        self.model = make_tiny_model(scratch / "model")
        self.m = ["--model", str(self.model), *SETTINGS]
        base = scratch / "baseline"
        base.mkdir()
        self.base = base
        # Undisturbed runs of each command: what every rerun must reproduce.
        for argv in (
            ["convert", str(self.clip), str(base / "single.mkv"), *self.m, "-q"],
            ["convert", str(self.clip), str(base / "cached.mkv"), "--depth-cache", str(base / "cache"), *self.m,
             "-q"],
            ["convert", str(self.clip), str(base / "resumable.mkv"), "--work-dir", str(base / "work"),
             "--chunk-seconds", "1", *self.m, "-q"],
            ["plan", str(self.clip), "--out", str(base / "job.json"), "--chunk-seconds", "1", *self.m, "-q"],
            ["render", str(base / "job.json"), "--all"],
            ["assemble", str(base / "job.json"), str(base / "farm.mkv")],
            ["preview", str(self.clip), "--at", "3", "--out", str(base / "preview.png"), *self.m[:2],
             "--set", "depth.input_size=56"],
        ):  # fmt: skip
            done = run(argv)
            if done.code != 0:
                raise SystemExit(f"faults: the undisturbed `{' '.join(argv[:1])}` failed: {done.message}")
        self.expected = {name: fingerprint(base / name) for name in ("single.mkv", "cached.mkv", "resumable.mkv",
                                                                     "farm.mkv")}  # fmt: skip

    # ----------------------------------------------------------------------------------------------- helpers

    def add(self, fault: str, cmd: str, result: Run | str, partial: str = "-", rerun: str = "-") -> None:
        if isinstance(result, str):  # skipped
            row = {"fault": fault, "command": cmd, "exit": "-", "message": f"skipped: {result}", "partial": "-",
                   "rerun": "-"}  # fmt: skip
        else:
            row = {"fault": fault, "command": cmd, "exit": str(result.code), "message": result.message,
                   "partial": partial, "rerun": rerun}  # fmt: skip
        self.rows.append(row)
        print(f"  {fault} | {cmd} | {row['exit']} | {row['message']}", flush=True)

    def same(self, path: Path, expected: str, again: Run) -> str:
        if again.code != 0:
            return f"FAILED (exit {again.code}: {again.message})"
        return "completes, same output" if fingerprint(path) == self.expected[expected] else "completes, OTHER output"

    def plan_into(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        job = folder / "job.json"
        shutil.copy(self.base / "job.json", job)  # the same plan (the input is found by its absolute path)
        return job

    @contextlib.contextmanager
    def disk(self, name: str, free_kib: int) -> Iterator[SmallDisk]:
        small = SmallDisk(self.scratch / name, free_kib)
        try:
            yield small
        finally:
            small.close()

    # ----------------------------------------------------------------------------------------------- faults

    def full_disk(self) -> None:
        rows = [("no space: output", "convert"), ("no space: depth cache", "convert --depth-cache"),
                ("no space: work dir", "convert --work-dir"), ("no space: PNG", "preview"), ("no space: job", "plan"),
                ("no space: chunks", "render"), ("no space: output", "assemble")]  # fmt: skip
        if self.skip_root:
            for fault, cmd in rows:
                self.add(fault, cmd, self.skip_root)
            return
        with self.disk("full-convert", 16) as disk:
            out = disk.path / "out.mkv"
            argv = ["convert", str(self.clip), str(out), *self.m, "-q"]
            failed = run(argv)
            partial = left_beside(disk.path, {".filler"})
            disk.free()
            self.add(rows[0][0], rows[0][1], failed, partial, self.same(out, "single.mkv", run(argv)))
        with self.disk("full-cache", 16) as disk:
            out = self.scratch / "full-cache-out.mkv"
            argv = ["convert", str(self.clip), str(out), "--depth-cache", str(disk.path / "cache"), *self.m, "-q"]
            warned = run(argv)
            note = "output written" if fingerprint(out) == self.expected["cached.mkv"] else "output DIFFERS"
            out.unlink(missing_ok=True)
            disk.free()
            again = run(argv)
            stored = sum(1 for _ in (disk.path / "cache").glob("*/*.depth"))
            rerun = self.same(out, "cached.mkv", again) + f"; the cache now holds {stored} chunk file(s)"
            if again.lines:
                rerun += f" ({again.message})"
            self.add(rows[1][0], rows[1][1], warned, f"{note}; cache: meta.json only", rerun)
        with self.disk("full-work", 112) as disk:
            out = self.scratch / "full-work-out.mkv"
            argv = ["convert", str(self.clip), str(out), "--work-dir", str(disk.path / "work"), "--chunk-seconds",
                    "1", *self.m, "-q"]  # fmt: skip
            failed = run(argv)
            chunks = disk.path / "work" / "job.chunks"
            kept = len(list(chunks.glob("chunk_*.json")))
            partial = left_beside(chunks, {p.name for p in chunks.glob("chunk_*")} | {
                p.name for p in chunks.glob(".chunk_*.lock")}) if chunks.is_dir() else "none"  # fmt: skip
            disk.free()
            again = run([*argv[:-1]])  # not quiet: it says what it resumed
            resumed = next((x for x in again.lines if "resumed:" in x), "")
            rerun = self.same(out, "resumable.mkv", again) + f"; {kept} finished chunk(s) kept"
            rerun += f" ({resumed.split('(')[0].strip()})" if resumed else " (NOT resumed)"
            self.add(rows[2][0], rows[2][1], failed, partial, rerun)
        with self.disk("full-preview", 0) as disk:
            png = disk.path / "frame.png"
            argv = ["preview", str(self.clip), "--at", "3", "--out", str(png), *self.m[:2], "--set",
                    "depth.input_size=56"]  # fmt: skip
            failed = run(argv)
            partial = left_beside(disk.path, {".filler"})
            disk.free()
            again = run(argv)
            same = png.read_bytes() == (self.base / "preview.png").read_bytes() if png.is_file() else False
            rerun = "completes, same PNG" if again.code == 0 and same else f"FAILED ({again.message})"
            self.add(rows[3][0], rows[3][1], failed, partial, rerun)
        with self.disk("full-plan", 0) as disk:
            job = disk.path / "job.json"
            argv = ["plan", str(self.clip), "--out", str(job), "--chunk-seconds", "1", *self.m, "-q"]
            failed = run(argv)
            partial = left_beside(disk.path, {".filler"})
            disk.free()
            again = run(argv)
            same = again.code == 0 and _chunks(job) == _chunks(self.base / "job.json")
            self.add(rows[4][0], rows[4][1], failed, partial, "completes, same plan" if same else "FAILED")
        with self.disk("full-render", 96) as disk:
            job = self.plan_into(self.scratch / "full-render")
            work = disk.path / "chunks"
            argv = ["render", str(job), "--all", "--work-dir", str(work)]
            failed = run(argv)
            kept = len(list(work.glob("chunk_*.json")))
            partial = left_beside(work, {p.name for p in work.glob("chunk_*")} | {
                p.name for p in work.glob(".chunk_*.lock")}) if work.is_dir() else "none"  # fmt: skip
            disk.free()
            again = run(argv)
            out = self.scratch / "full-render.mkv"
            assembled = run(["assemble", str(job), str(out), "--work-dir", str(work)])
            rerun = self.same(out, "farm.mkv", assembled) if again.code == 0 else f"FAILED ({again.message})"
            self.add(rows[5][0], rows[5][1], failed, partial, f"{rerun}; {kept} finished chunk(s) kept")
        with self.disk("full-assemble", 8) as disk:
            out = disk.path / "out.mkv"
            argv = ["assemble", str(self.base / "job.json"), str(out)]
            failed = run(argv)
            partial = left_beside(disk.path, {".filler"})
            disk.free()
            self.add(rows[6][0], rows[6][1], failed, partial, self.same(out, "farm.mkv", run(argv)))

    def read_only(self) -> None:
        if self.skip_root:
            self.add("read-only file system", "render", self.skip_root)
            return
        with self.disk("readonly", 2048) as disk:
            job = self.plan_into(self.scratch / "readonly")
            work = disk.path / "chunks"
            work.mkdir()
            disk.remount("ro")
            argv = ["render", str(job), "--all", "--work-dir", str(work)]
            failed = run(argv)
            partial = left_beside(work, set())
            disk.remount("rw")
            again = run(argv)
            out = self.scratch / "readonly.mkv"
            assembled = run(["assemble", str(job), str(out), "--work-dir", str(work)])
            rerun = self.same(out, "farm.mkv", assembled) if again.code == 0 else f"FAILED ({again.message})"
            self.add("read-only file system", "render", failed, partial, rerun + " (remounted read-write)")

    def permission_denied(self) -> None:
        if os.geteuid() != 0:
            self.add("permission denied", "render", "needs root (to drop the capability that overrides permissions)")
            return
        job = self.plan_into(self.scratch / "denied")
        work = self.scratch / "denied" / "chunks"
        work.mkdir(mode=0o755)
        os.chown(work, NOBODY, NOBODY)  # nobody's: root without CAP_DAC_OVERRIDE may not write in it
        argv = ["render", str(job), "--all", "--work-dir", str(work)]
        failed = run(argv, preexec=_without_permission_override)
        partial = left_beside(work, set())
        again = run(argv)  # as root with every capability, who may
        out = self.scratch / "denied.mkv"
        assembled = run(["assemble", str(job), str(out), "--work-dir", str(work)])
        rerun = self.same(out, "farm.mkv", assembled) if again.code == 0 else f"FAILED ({again.message})"
        self.add("permission denied", "render (no write permission)", failed, partial, rerun + " (with permission)")

    def too_many_open_files(self) -> None:
        import resource

        if not hasattr(resource, "prlimit"):
            self.add("too many open files", "convert", "needs Linux (prlimit)")
            return
        folder = self.scratch / "nofile"
        folder.mkdir()
        out = folder / "out.mkv"
        argv = ["convert", str(self.clip), str(out), *self.m, "-q"]
        proc = start(argv)
        limit = "?"
        if wait_for(opened(proc, self.clip), proc, timeout=300):
            # Its limit lowered to the descriptors it holds once it has the input open: its next open fails, as
            # in a process that has run out of them.
            with contextlib.suppress(OSError, ValueError):
                held = max(int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd"))
                limit = str(held + 1)
                resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (held + 1, held + 1))
        failed = finish_run(proc)
        partial = left_beside(folder, set())
        out.unlink(missing_ok=True)  # had it converted anyway, the rerun must still make it
        self.add("too many open files", f"convert (limit {limit} once running)", failed, partial,
                 self.same(out, "single.mkv", run(argv)))  # fmt: skip

    def vanished(self) -> None:
        folder = self.scratch / "vanish"
        folder.mkdir()
        work, out = folder / "work", folder / "out.mkv"
        argv = ["convert", str(self.clip), str(out), "--work-dir", str(work), "--chunk-seconds", "1", *self.m, "-q"]
        proc = start(argv)
        if wait_for(lambda: any((work / "job.chunks").glob("chunk_*.json")), proc):
            shutil.rmtree(work, ignore_errors=True)
        failed = finish_run(proc)
        partial = left_beside(folder, set())
        self.add("work dir deleted mid-run", "convert --work-dir", failed, partial,
                 self.same(out, "resumable.mkv", run(argv)))  # fmt: skip

    def sigkill_assemble(self) -> None:
        folder = self.scratch / "kill"
        folder.mkdir()
        out = folder / "out.mkv"
        argv = ["assemble", str(self.base / "job.json"), str(out)]
        proc = start(argv)
        caught = wait_for(lambda: any(".partial" in p.name for p in folder.iterdir()), proc)
        proc.send_signal(signal.SIGKILL)
        killed = finish_run(proc)
        killed.lines = killed.lines or [f"(killed: no message){'' if caught else ' (finished before the kill)'}"]
        partial = left_beside(folder, set())
        rerun = self.same(out, "farm.mkv", run(argv))
        left = left_beside(folder, {out.name})
        swept = left == "none" and partial != "none"
        rerun += "; the killed run's temporary file swept" if swept else f"; left: {left}"
        self.add("SIGKILL", "assemble", killed, partial, rerun)

    def sigterm_plan(self) -> None:
        folder = self.scratch / "term"
        folder.mkdir()
        job = folder / "job.json"
        argv = ["plan", str(self.clip), "--out", str(job), "--chunk-seconds", "1", *self.m, "-q"]
        proc = start(argv)
        wait_for(opened(proc, self.clip), proc)
        proc.send_signal(signal.SIGTERM)
        stopped = finish_run(proc)
        partial = left_beside(folder, set())
        again = run(argv)
        same = again.code == 0 and _chunks(job) == _chunks(self.base / "job.json")
        self.add("SIGTERM", "plan", stopped, partial, "completes, same plan" if same else f"FAILED ({again.message})")

    def damaged_cache(self) -> None:
        cache = self.scratch / "damaged-cache"
        shutil.copytree(self.base / "cache", cache)
        victim = sorted(cache.glob("*/*.depth"))[1]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        out = self.scratch / "damaged-cache.mkv"
        argv = ["convert", str(self.clip), str(out), "--depth-cache", str(cache), *self.m, "-q"]
        warned = run(argv)
        first = "output written, same" if fingerprint(out) == self.expected["cached.mkv"] else "output DIFFERS"
        out.unlink(missing_ok=True)
        again = run(argv)
        rerun = self.same(out, "cached.mkv", again) + ("" if not again.lines else f" ({again.message})")
        self.add("damaged depth cache chunk", "convert --depth-cache", warned, first, rerun + "; no warning" * (
            not again.lines))  # fmt: skip

    def damaged_sidecar(self) -> None:
        job = self.plan_into(self.scratch / "sidecar")
        work = self.scratch / "sidecar" / "chunks"
        shutil.copytree(self.base / "job.chunks", work)
        (work / "chunk_00001.json").write_text('{"chunk": 1, "frames": 3')  # cut short
        rendered = run(["render", str(job), "--all", "--work-dir", str(work), "--progress", "text"])
        again_lines = [x for x in rendered.lines if x.startswith("chunk ") and "skipped" not in x]
        out = self.scratch / "sidecar.mkv"
        assembled = run(["assemble", str(job), str(out), "--work-dir", str(work)])
        rendered.lines = rendered.lines[-1:] if rendered.code else [f"re-rendered: {'; '.join(again_lines)}"]
        self.add("damaged chunk sidecar", "render", rendered, left_beside(work, {p.name for p in work.iterdir()}),
                 "assemble: " + self.same(out, "farm.mkv", assembled))  # fmt: skip

    def two_tasks(self) -> None:
        job = self.plan_into(self.scratch / "twice")
        work = self.scratch / "twice" / "chunks"
        argv = ["render", str(job), "--all", "--work-dir", str(work)]
        first, second = start(argv), start(argv)
        a, b = finish_run(first), finish_run(second)
        errors = [x for x in (a.message, b.message) if x.startswith("stereoconv:")]
        both = Run(max(a.code, b.code), [f"the two exit {a.code} and {b.code}" + "".join(f"; {x}" for x in errors)])
        stray = [p.name for p in work.iterdir() if ".partial" in p.name]
        out = self.scratch / "twice.mkv"
        assembled = run(["assemble", str(job), str(out), "--work-dir", str(work)])
        self.add("two tasks on the same chunks", "render x2", both, ", ".join(stray) or "none",
                 "assemble: " + self.same(out, "farm.mkv", assembled))  # fmt: skip

    def work_dir_in_use(self) -> None:
        folder = self.scratch / "busy"
        folder.mkdir()
        work = folder / "work"
        first_argv = ["convert", str(self.clip), str(folder / "first.mkv"), "--work-dir", str(work),
                      "--chunk-seconds", "1", *self.m, "-q"]  # fmt: skip
        first = start(first_argv)
        if not wait_for(lambda: (work / "job.json").exists(), first):
            self.add("a second convert on a work dir in use", "convert --work-dir", "the first run ended too soon")
            finish_run(first)
            return
        second = run(["convert", str(self.clip), str(folder / "second.mkv"), "--work-dir", str(work),
                      "--chunk-seconds", "1", *self.m, "-q"])  # fmt: skip
        still = first.poll() is None
        done = finish_run(first)
        partial = "none" if not (folder / "second.mkv").exists() else "second.mkv"
        first_ok = done.code == 0 and fingerprint(folder / "first.mkv") == self.expected["resumable.mkv"]
        again = run(["convert", str(self.clip), str(folder / "second.mkv"), "--work-dir", str(work),
                     "--chunk-seconds", "1", *self.m, "-q"])  # fmt: skip
        rerun = self.same(folder / "second.mkv", "resumable.mkv", again)
        note = f"the first ({'still running' if still else 'had ENDED'}) completes, " + (
            "same output" if first_ok else "OTHER output")  # fmt: skip
        self.add("a second convert on a work dir in use", "convert --work-dir", second, partial, f"{note}; {rerun}")


def _without_permission_override() -> None:
    """Run as root but bound by file permissions: drop CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from the
    bounding set before exec (prctl PR_CAPBSET_DROP), as an ordinary user is."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _chunks(job: Path) -> Any:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(job.read_text())["chunks"]
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(facts_line(machine_facts()))
    scratch = args.workdir or Path(tempfile.mkdtemp(prefix="stereoconv-faults-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        faults = Faults(scratch)
        for name in args.only or GROUPS:
            try:
                getattr(faults, name)()
            except Exception as exc:  # a fault the script itself could not stage: say so in its row, go on
                faults.add(name.replace("_", " "), "-", f"the script failed: {type(exc).__name__}: {exc}")
    finally:
        if not args.keep:
            for mount in sorted(scratch.glob("*"), reverse=True):
                subprocess.run(["umount", "-l", str(mount)], capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)
    keys = ["fault", "command", "exit", "message", "partial", "rerun"]
    header = ["fault", "command", "exit", "message", "anything partial left", "rerun result"]
    print()
    print(table([header, *[[str(r[k]) for k in keys] for r in faults.rows]], [False, False, True, False, False, False]))
    finish(args.json, {"machine": machine_facts(), "rows": faults.rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
