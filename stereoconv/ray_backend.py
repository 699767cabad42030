"""Render a job's chunks on Ray: one actor per worker holds the depth model, chunks go to whichever is free.

``run_chunks`` connects to a Ray cluster (``address``) or starts a local Ray for the call (and stops it after). It
starts one :class:`ChunkWorker` actor per GPU when the cluster has GPUs (each actor asks for one, so Ray pins it to
its own device), else a couple of CPU actors. An actor loads the model at its first chunk that needs rendering and
keeps it for every chunk after: the model loads once per worker, not once per chunk. Each chunk is rendered by the
farm's own per-chunk function, so a chunk rendered on Ray is the file a local render writes, sidecar included, and
chunks already rendered and intact are skipped (by the driver before any actor starts, and again by the actor).

Shared paths: workers read the input, write ``chunk_KKKKK.mkv``/``.json`` into ``work_dir`` and use ``depth_cache``
and ``model`` by the paths the driver gives. On one machine that is the local file system; on a cluster every one of
them must be the same path on every node (NFS, a parallel file system, a mounted bucket), and stereoconv (with the
same version of its dependencies) must be installed on every node. Worker logs stay on the workers
(``log_to_driver=False`` for a Ray this starts); errors come back to the driver, each naming its chunk.

Ray is optional: ``pip install 'stereoconv[ray]'``. It is imported only when ``run_chunks`` is called.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .config import PipelineConfig
from .depth import DepthEstimator
from .engine import open_estimator
from .errors import StereoconvError, UsageError
from .farm import ChunkResult, Job, check_chunk, job_with_config, render_chunk

# CPU actors when the cluster has no GPU: each decodes, runs the model and encodes with several threads already, so
# more actors than this on one machine mostly fight over the same cores.
DEFAULT_CPU_WORKERS = 2


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError("the ray backend needs `pip install 'stereoconv[ray]'`") from exc
    return ray


class ChunkWorker:
    """What one Ray actor runs: renders chunks of one job into ``work_dir`` with a model it loads once.

    ``settings``: the configuration as :meth:`PipelineConfig.to_dict` (plain data crosses process boundaries
    reliably; rebuilt here with :meth:`PipelineConfig.from_dict`). ``gpu``: the actor holds one GPU (Ray sets
    ``CUDA_VISIBLE_DEVICES`` to it, so an explicit ``cuda:N`` becomes this actor's ``cuda``). ``job``: as
    :func:`~stereoconv.farm.job_with_config` returns it for these settings (the driver checked them).
    """

    def __init__(self, job: Job, work_dir: str, settings: dict[str, Any], depth_cache: str | None, gpu: bool) -> None:
        config = PipelineConfig.from_dict(settings)
        if gpu and config.depth.device.startswith("cuda:"):
            config = config.replace({"depth.device": "cuda"})
        self.config = config
        self.job = dataclasses.replace(job, settings=config.to_dict())
        self.work = Path(work_dir)
        self.depth_cache = depth_cache
        self.estimator: DepthEstimator | None = None
        self._cache: Any = None
        self.loads = 0
        self.rendered: list[int] = []

    def _open(self) -> DepthEstimator:
        if self.estimator is None:
            self.estimator, self._cache = open_estimator(self.job.input, self.config, None, self.depth_cache)
            self.loads += 1
        return self.estimator

    def render(self, index: int) -> ChunkResult:
        """Render chunk ``index`` unless it is already rendered and intact."""
        chunk = self.job.chunks[index]
        if check_chunk(self.job, chunk, self.work) is None:
            return ChunkResult(index, chunk.frames, True, 0.0)
        t0 = time.perf_counter()
        frames = render_chunk(self.job, chunk, self.work, self._open())
        self.rendered.append(index)
        return ChunkResult(index, frames, False, time.perf_counter() - t0)

    def close(self) -> dict[str, Any]:
        """Store what the depth cache still buffers; say where this worker ran and what it did."""
        if self._cache is not None:
            self._cache.close()
        return {"host": socket.gethostname(), "pid": os.getpid(), "model_loads": self.loads,
                "chunks": list(self.rendered)}  # fmt: skip


def run_chunks(
    job: Job,
    chunk_indices: Iterable[int],
    work_dir: str | Path,
    config: PipelineConfig,
    *,
    address: str | None = None,
    depth_cache: str | Path | None = None,
    model: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ChunkResult]:
    """Render chunks ``chunk_indices`` of ``job`` with ``config`` into ``work_dir`` as Ray actors.

    ``address``: a Ray cluster to connect to (``ray://host:10001``, ``host:6379``, ``auto``); None: use the Ray this
    process already started, else start a local one with every CPU (and GPU) of this machine for the call.
    ``depth_cache``, ``model``: as for :func:`stereoconv.farm.render`; like ``work_dir``, paths every node must see.
    ``workers``: how many actors (default: one per GPU of the cluster, else ``DEFAULT_CPU_WORKERS`` CPU ones; never
    more than the chunks to render). ``log``: called with a line per chunk and per worker.

    Returns one :class:`~stereoconv.farm.ChunkResult` per index, in the order given (``skipped``: it was already
    rendered and intact). A chunk that fails raises a StereoconvError (the subclass its cause had, when it was one)
    naming it, after the chunks already running have finished; the rest are not started.
    """
    ray = _import_ray()
    work = Path(work_dir).resolve()
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create work directory {work}: {exc.strerror or exc}") from exc
    if model is not None:
        config = config.replace({"depth.model": model})
    job = job_with_config(job, config)  # refuses settings or a model that would render other pixels than planned
    indices = list(chunk_indices)
    for k in indices:
        if not 0 <= k < len(job.chunks):
            raise UsageError(f"chunk {k}: the job has chunks 0-{len(job.chunks) - 1} only")
    # Only the chunks asked for are checked (each check hashes a chunk file), not all of pending_chunks'.
    pending = {k for k in indices if check_chunk(job, job.chunks[k], work) is not None}
    todo = [k for k in dict.fromkeys(indices) if k in pending]
    results = {k: ChunkResult(k, job.chunks[k].frames, True, 0.0) for k in indices if k not in pending}
    if log:
        for k in sorted(results):
            log(f"chunk {k}: already rendered, skipped")
    if todo:
        with _connected(ray, address):
            results.update(_dispatch(ray, job, todo, work, config, depth_cache, workers, log))
    return [results[k] for k in indices]


class _connected:
    """Connect to Ray for a block: ``address``, else a Ray already started here, else a local one we stop after."""

    def __init__(self, ray: Any, address: str | None) -> None:
        self.ray, self.address, self.started = ray, address, False

    def __enter__(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        try:
            if self.address is not None:
                ray.init(address=self.address, logging_level=logging.WARNING)
            else:
                import torch

                # "local": always a new Ray of this machine's own, never one RAY_ADDRESS points at.
                ray.init(address="local", num_cpus=os.cpu_count() or 1, num_gpus=torch.cuda.device_count(),
                         include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise StereoconvError(f"cannot start or reach {where}: {exc}") from exc
        self.started = True

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.ray.shutdown()


def _dispatch(
    ray: Any,
    job: Job,
    todo: list[int],
    work: Path,
    config: PipelineConfig,
    depth_cache: str | Path | None,
    workers: int | None,
    log: Callable[[str], None] | None,
) -> dict[int, ChunkResult]:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if config.depth.device != "cpu" else 0
    if workers is None:
        workers = gpus if gpus else min(DEFAULT_CPU_WORKERS, max(1, int(resources.get("CPU", 1))))
    workers = max(1, min(workers, len(todo)))
    actor_class = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)(ChunkWorker)
    cache = str(Path(depth_cache).resolve()) if depth_cache is not None else None
    job_ref = ray.put(job)
    actors = [actor_class.remote(job_ref, str(work), config.to_dict(), cache, bool(gpus))
              for _ in range(workers)]  # fmt: skip
    if log:
        log(f"ray: {len(todo)} chunks on {workers} {'GPU' if gpus else 'CPU'} workers")
    pending = deque(todo)
    idle = list(actors)
    running: dict[Any, tuple[int, Any]] = {}
    results: dict[int, ChunkResult] = {}
    failures: list[tuple[int, BaseException]] = []
    try:
        while pending or running:
            while pending and idle and not failures:
                actor = idle.pop()
                k = pending.popleft()
                running[actor.render.remote(k)] = (k, actor)
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                k, actor = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    failures.append((k, exc.cause if isinstance(exc.cause, BaseException) else exc))
                    idle.append(actor)
                except ray.exceptions.RayError as exc:  # the actor or its node died: do not send it more
                    failures.append((k, exc))
                else:
                    results[k] = result
                    idle.append(actor)
                    if log:
                        log(f"chunk {k}: {result.frames} frames in {result.seconds:.1f} s")
        for actor in idle:
            with contextlib.suppress(ray.exceptions.RayError):
                done = ray.get(actor.close.remote())
                loads = done["model_loads"]
                if log:
                    log(f"ray worker {done['host']}:{done['pid']}: chunks {done['chunks']}, model loaded "
                        f"{'once' if loads == 1 else f'{loads} times'}")  # fmt: skip
    finally:
        for actor in actors:
            ray.kill(actor)
    if failures:
        raise _chunk_error(failures, len(todo))
    return results


def _chunk_error(failures: list[tuple[int, BaseException]], total: int) -> StereoconvError:
    """One error naming every failed chunk; of the first cause's StereoconvError subclass when it was one."""
    failures.sort(key=lambda f: f[0])

    def describe(k: int, cause: BaseException) -> str:
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if not isinstance(cause, StereoconvError):
            text = f"{type(cause).__name__}: {text}"
        return text if text.startswith(f"chunk {k}:") else f"chunk {k}: {text}"

    message = "; ".join(describe(k, c) for k, c in failures)
    if len(failures) > 1:
        message = f"{len(failures)} of {total} chunks failed on Ray workers: {message}"
    first = failures[0][1]
    kind = type(first) if isinstance(first, StereoconvError) else StereoconvError
    try:
        error = kind(message)
    except TypeError:  # a subclass with another constructor
        error = StereoconvError(message)
    error.__cause__ = first
    return error
