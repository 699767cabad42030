"""The Ray backend: chunks rendered by Ray actors are the chunks a local render writes, and failures name the chunk.

Needs Ray (``pip install 'stereoconv[ray]'``); without it, or when a local Ray does not start in time, the tests that
need one are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_farm import decoded, settings

from stereoconv import MediaError, UsageError
from stereoconv.farm import chunk_paths, plan, render
from stereoconv.ray_backend import run_chunks

RAY_START_SECONDS = 60


@contextlib.contextmanager
def ray_start_limit(*, starting: bool = False) -> Iterator[None]:
    """Skip (rather than hang or fail) when a local Ray does not start within RAY_START_SECONDS. ``starting``: the
    block only starts Ray, so any error in it skips; else only run_chunks' "cannot start" error and the time limit."""

    def too_slow(*_: object) -> None:
        raise TimeoutError(f"a local Ray did not start within {RAY_START_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(RAY_START_SECONDS)
    try:
        yield
    except Exception as exc:
        if not (starting or isinstance(exc, TimeoutError) or "cannot start or reach a local Ray" in str(exc)):
            raise
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        pytest.skip(f"cannot start a local Ray: {type(exc).__name__}: {exc}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_failing_chunk_is_named_and_the_ray_it_started_is_stopped(two_shot_clip, tiny_model, tmp_path):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process: run_chunks would use it rather than start one")
    cfg = settings(tiny_model)
    job = plan(two_shot_clip.path, tmp_path / "job.json", cfg, chunk_seconds=0.25)
    # A plan that does not match the input at chunk 1: the worker's render raises MediaError there.
    chunks = list(job.chunks)
    chunks[1] = dataclasses.replace(chunks[1], last_pts=chunks[1].last_pts + 12345)
    broken = dataclasses.replace(job, chunks=chunks)
    with pytest.raises(MediaError, match=r"^chunk 1: last frame at pts"), ray_start_limit():
        run_chunks(broken, [0, 1, 2], tmp_path / "work", cfg, workers=2)  # starts a local Ray of its own
    assert not ray.is_initialized(), "run_chunks stops the Ray it started, also when a chunk fails"
    with pytest.raises(UsageError, match="chunk 99: the job has chunks"):
        run_chunks(job, [99], tmp_path / "work", cfg)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs for the module (run_chunks uses a Ray already started rather than starting its own)."""
    ray = pytest.importorskip("ray")

    with ray_start_limit(starting=True):
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")  # fmt: skip
    yield ray
    ray.shutdown()


def test_ray_chunks_are_the_local_chunks(local_ray, two_shot_clip, tiny_model, tmp_path):
    cfg = settings(tiny_model)
    job = plan(two_shot_clip.path, tmp_path / "job.json", cfg, chunk_seconds=0.25, preroll_seconds=0.1)
    assert len(job.chunks) >= 4 and any(c.preroll_frame is not None for c in job.chunks)
    indices = [c.index for c in job.chunks]

    lines: list[str] = []
    results = run_chunks(job, indices, tmp_path / "ray", cfg, workers=2, log=lines.append)
    assert [r.index for r in results] == indices and not any(r.skipped for r in results)
    assert [r.frames for r in results] == [c.frames for c in job.chunks]
    # Two actors shared the chunks and each loaded the model once, however many chunks it rendered.
    workers = [line for line in lines if line.startswith("ray worker")]
    assert len(workers) == 2 and all(line.endswith("model loaded once") for line in workers), lines

    render(job, job.chunks, tmp_path / "local")  # the local backend, with the same model (not an oracle)
    for chunk in job.chunks:
        ray_video, ray_sidecar = chunk_paths(tmp_path / "ray", chunk.index)
        local_video, local_sidecar = chunk_paths(tmp_path / "local", chunk.index)
        a, a_pts = decoded(ray_video)
        b, b_pts = decoded(local_video)
        assert len(a) == chunk.frames and a_pts == b_pts
        assert all((x == y).all() for x, y in zip(a, b, strict=True)), f"chunk {chunk.index} differs"
        meta_a, meta_b = json.loads(ray_sidecar.read_text()), json.loads(local_sidecar.read_text())
        assert meta_a["pts"] == meta_b["pts"] and meta_a["settings_hash"] == meta_b["settings_hash"]

    # Idempotent: everything is rendered, so nothing is dispatched.
    lines.clear()
    again = run_chunks(job, indices, tmp_path / "ray", cfg, log=lines.append)
    assert all(r.skipped for r in again) and not any(line.startswith("ray") for line in lines)


def test_without_ray_the_backend_says_how_to_get_it(two_shot_clip, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    job = plan(two_shot_clip.path, tmp_path / "job.json", settings(tiny_model), chunk_seconds=0.5)
    with pytest.raises(UsageError, match=r"pip install 'stereoconv\[ray\]'"):
        run_chunks(job, [0], Path(tmp_path / "work"), job.config)
