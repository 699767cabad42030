"""Resumable local runs: ``convert --work-dir DIR`` as plan, render and assemble (:mod:`stereoconv.farm`) in one
process, or with the chunks on Ray workers (:mod:`stereoconv.ray_backend`).

The plan and the finished chunks stay in DIR while the run goes on, so running the same command again after a crash,
Ctrl-C or SIGKILL renders only the chunks not yet finished. A work directory holding the plan of another input, other
settings, another model or chunk length is refused, never mixed in.

A damaged input converts as in the single pass: what decodes is converted (the plan records the frames lost, and the
result carries them, from the plan, however many runs it took), or with ``media.strict`` the plan fails and nothing
is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: work directories are not locked
    fcntl = None  # type: ignore[assignment]

from .config import PipelineConfig, ShotOverrides
from .depth import DepthEstimator, model_fingerprint
from .encode import check_output_path, output_pix_fmt
from .engine import open_estimator
from .errors import StereoconvError, UsageError, storage_error
from .farm import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_PREROLL_SECONDS,
    ChunkResult,
    Job,
    assemble,
    fingerprint_input,
    job_with_config,
    load_job,
    pending_chunks,
    plan,
    render_chunk,
    settings_differ,
)
from .media import VideoInfo, probe
from .progress import JsonProgress, progress_bar
from .single_pass import ConvertResult

WORK_MANIFEST = "job.json"
WORK_LOCK = ".stereoconv.lock"
BACKENDS = ("local", "ray")
RAY_MISSING = "the ray backend needs `pip install 'stereoconv[ray]'`"


def _ray_run_chunks() -> Callable[..., list[ChunkResult]]:
    """The Ray backend's ``run_chunks``; UsageError (how to install it) when it or Ray is missing."""
    try:
        import ray  # noqa: F401 - fail here, before the plan's scan, not after it

        from .ray_backend import run_chunks
    except ModuleNotFoundError as exc:
        if exc.name == "ray" or (exc.name or "").startswith(("ray.", "stereoconv.ray_backend")):
            raise UsageError(RAY_MISSING) from exc
        raise
    return run_chunks


def _is_partial(name: str) -> bool:
    """A temporary file atomic_output left behind when the process was killed (never a finished file), or the lock
    of a conversion that ended."""
    return name == WORK_LOCK or (name.startswith(".") and ".partial" in name)


@contextlib.contextmanager
def _work_dir_lock(work: Path) -> Iterator[None]:
    """Hold ``work`` for this conversion: ``flock`` on ``work/.stereoconv.lock`` (created, with ``work``, if absent),
    released when the block ends or the process dies, however it dies. A second conversion on the same directory is
    refused (UsageError), not mixed in. Where the file system has no locks, it goes on unlocked. If the block leaves
    no plan in ``work``, the lock file (and ``work``, if this created it and it is empty) is removed again."""
    created = not work.exists()
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, work) or UsageError(f"cannot create work directory {work}: "
                                                     f"{exc.strerror or exc}") from exc  # fmt: skip
    path = work / WORK_LOCK
    made_lock = not path.exists()
    fd = None
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise storage_error(exc, path) or UsageError(f"cannot write to work directory {work}: "
                                                         f"{exc.strerror or exc}") from exc  # fmt: skip
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise UsageError(f"work directory {work} is in use by another conversion (a second `convert "
                                 "--work-dir` on it would mix their chunks); wait for it to end or use another "
                                 "directory") from exc  # fmt: skip
            except OSError:
                pass  # no locks on this file system: unlocked
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                # No plan in it (refused, or planning failed): leave the directory as it was found.
                if made_lock and work.is_dir() and not (work / WORK_MANIFEST).exists():
                    path.unlink()
                    if created:
                        work.rmdir()
            os.close(fd)


def _plan_mismatch(
    job: Job, input: Path, config: PipelineConfig, chunk_seconds: float, shots: ShotOverrides | None = None
) -> str | None:
    """Why the plan in a work directory is not the one this conversion would make, or None if it is."""
    if fingerprint_input(input) != job.input_fingerprint:
        return f"another input ({job.input})"
    if job.shots != (shots.to_dict()["shots"] if shots is not None else []):
        return "other per-shot settings (--shots)"
    differ = settings_differ(job, config)
    if differ:
        return f"other settings ({', '.join(differ)})"
    if job.model_fingerprint is not None:
        try:
            depth = config.depth
            same_model = model_fingerprint(depth.model, depth.input_size, depth.output) == job.model_fingerprint
        except StereoconvError:
            same_model = False
    else:
        same_model = config.depth.model == job.model
    if not same_model:
        return f"another model ({job.model})"
    if job.chunk_seconds != chunk_seconds:
        return f"--chunk-seconds {job.chunk_seconds:g}"
    if job.preroll_seconds != DEFAULT_PREROLL_SECONDS:
        return f"--preroll-seconds {job.preroll_seconds:g}"
    return None


def _work_dir_job(
    info: VideoInfo,
    config: PipelineConfig,
    work: Path,
    chunk_seconds: float,
    progress: bool,
    shots: ShotOverrides | None = None,
) -> tuple[Job, bool]:
    """The job of ``work``: its plan when that is this conversion's (True), else a new plan if ``work`` is empty or
    absent (False). A work directory holding anything else is refused: chunks of two conversions never mix."""
    manifest = work / WORK_MANIFEST
    other = "use another or an empty work directory"
    if manifest.is_file():
        try:
            job = load_job(manifest, check_input=False)
        except UsageError as exc:
            raise UsageError(f"work directory {work} holds no usable plan ({exc}); {other}") from exc
        why = _plan_mismatch(job, info.path, config, chunk_seconds, shots)
        if why is not None:
            raise UsageError(f"work directory {work} holds the plan of a conversion with {why}; {other}")
        return dataclasses.replace(job, input=info.path.resolve()), True
    if work.exists() and not work.is_dir():
        raise UsageError(f"--work-dir {work} is not a directory")
    if work.is_dir() and any(not _is_partial(p.name) for p in work.iterdir()):
        raise UsageError(f"work directory {work} is not empty and holds no stereoconv plan; {other}")
    # Planning that fails (a damaged input with media.strict, Ctrl-C, a full disk) leaves nothing behind: the plan
    # is written atomically, and _work_dir_lock removes the directory it created.
    return plan(info.path, manifest, config, chunk_seconds=chunk_seconds, progress=progress, shots=shots), False


def _remove_work_dir(work: Path, job: Job) -> None:
    """Remove what a conversion put in ``work`` (its plan, its chunks, temporary files a kill left), then ``work``
    itself if that leaves it empty."""
    import shutil

    shutil.rmtree(job.default_work_dir, ignore_errors=True)
    for path in work.iterdir():
        if path.name == WORK_MANIFEST or _is_partial(path.name):  # the lock too: still held until the process ends
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        work.rmdir()


def convert_in_work_dir(
    input: str | Path,
    output: str | Path,
    config: PipelineConfig,
    work_dir: str | Path,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    backend: str = "local",
    ray_address: str | None = None,
    keep_work_dir: bool = False,
    estimator: DepthEstimator | None = None,
    depth_cache: str | Path | None = None,
    progress: bool = False,
    shots: ShotOverrides | None = None,
    json_progress: JsonProgress | None = None,
) -> ConvertResult:
    """``convert`` as plan -> render -> assemble in ``work_dir``, resumable: see :func:`stereoconv.api.convert`.

    The plan goes to ``work_dir/job.json`` and the chunks to ``work_dir/job.chunks/`` (so ``stereoconv render`` and
    ``assemble`` work on it too). A plan already there is reused when it is for the same input (by content), the
    same settings (all but runtime and device), the same model (by fingerprint) and ``chunk_seconds``; chunks already
    rendered and intact are kept. A work directory holding anything else is refused (UsageError). ``backend``:
    "local" renders the chunks in order here with one estimator, loaded once; "ray" hands them to
    :func:`stereoconv.ray_backend.run_chunks` (``ray_address``: the cluster). The output is assembled atomically;
    then ``work_dir`` is removed unless ``keep_work_dir``. ``progress``: a bar and status lines on stderr.

    A damaged input: unless ``config.media.strict`` (then MediaError from the plan, nothing written), what decodes
    is converted and ``ConvertResult.losses`` holds the frames lost, as the plan recorded them; ``notes`` says what
    of the source was dropped or re-encoded, as the single pass does.
    """
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if ray_address is not None and backend != "ray":
        raise UsageError("a Ray address needs the ray backend (--backend ray)")
    if not chunk_seconds > 0:
        raise UsageError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    run_chunks = _ray_run_chunks() if backend == "ray" else None
    if run_chunks is not None and estimator is not None:
        raise UsageError("the ray backend loads the configured model on its workers: it cannot use a given estimator")
    started = time.perf_counter()
    info = probe(input)
    out_path = check_output_path(output, input, config.output.format)
    output_pix_fmt(config.output, info, out_path)  # encoder, pix_fmt and container checked before any work
    work = Path(work_dir)
    if work.exists() and not work.is_dir():
        raise UsageError(f"--work-dir {work} is not a directory")
    with _work_dir_lock(work):
        return _convert_locked(info, out_path, config, work, started, chunk_seconds, run_chunks, ray_address,
                               keep_work_dir, estimator, depth_cache, progress, shots, json_progress)  # fmt: skip


def _convert_locked(
    info: VideoInfo,
    out_path: Path,
    config: PipelineConfig,
    work: Path,
    started: float,
    chunk_seconds: float,
    run_chunks: Callable[..., list[ChunkResult]] | None,
    ray_address: str | None,
    keep_work_dir: bool,
    estimator: DepthEstimator | None,
    depth_cache: str | Path | None,
    progress: bool,
    shots: ShotOverrides | None,
    json_progress: JsonProgress | None,
) -> ConvertResult:
    """The rest of :func:`convert_in_work_dir`, with ``work`` held by this conversion."""
    say = _status_line if progress else (lambda line: None)
    job, reused = _work_dir_job(info, config, work, chunk_seconds, progress, shots)
    chunks = job.default_work_dir
    try:
        chunks.mkdir(exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, chunks) or UsageError(f"cannot create {chunks}: {exc.strerror or exc}") from exc
    pending = pending_chunks(job, chunks, config)
    done = len(job.chunks) - len(pending)
    if reused:
        note = f"resumed: {done} of {len(job.chunks)} chunks already done"
    else:
        note = f"planned {len(job.chunks)} chunks"
    say(f"{note} (work directory {work})")
    if json_progress is not None:
        json_progress.start(job.frames, input=str(info.path), output=str(out_path))
        json_progress.done = sum(c.frames for c in job.chunks if c.index not in pending)
    cache = None
    try:
        if run_chunks is not None:
            if pending:
                run_chunks(job, pending, chunks, config, address=ray_address, depth_cache=depth_cache, log=say)
        elif pending:
            estimator, cache = open_estimator(job.input, config, estimator, depth_cache)
            rendering = job_with_config(job, config)
            todo = sum(rendering.chunks[k].frames for k in pending)
            with progress_bar(todo, progress, "converting") as bar:
                for k in pending:

                    def tick(_: int, k: int = k) -> None:
                        bar.update()
                        if json_progress is not None:
                            json_progress.frame(k)

                    render_chunk(rendering, rendering.chunks[k], chunks, estimator, on_frame=tick)
                    if json_progress is not None:
                        json_progress.emit(k, "chunk_done")
    finally:
        if cache is not None:
            cache.close()
    notes: list[str] = []
    assemble(job, out_path, chunks, notes=notes)
    if keep_work_dir:
        note += f"; work directory {work} kept"
    else:
        _remove_work_dir(work, job)
        note += f"; work directory {work} removed"
    summary = cache.stats.summary() if cache is not None else None
    warnings = cache.stats.warnings() if cache is not None else []
    losses = None if config.media.strict else job.losses  # as the single pass: None when strict (nothing was lost)
    if json_progress is not None:
        json_progress.finish(output=str(out_path), frames=job.frames, cuts=len(job.cuts))
    return ConvertResult(out_path, job.frames, list(job.cuts), time.perf_counter() - started, summary, note,
                         losses=losses, notes=notes, warnings=warnings, shot_settings=job.shot_settings)  # fmt: skip


def _status_line(line: str) -> None:
    """A status line on stderr that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
