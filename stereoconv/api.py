"""The public entry points above the drivers: ``convert`` chooses the resumable run (:mod:`stereoconv.resume`) or
the single pass (:mod:`stereoconv.single_pass`); the single pass never imports the farm."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import single_pass
from .config import PipelineConfig, ShotOverrides
from .errors import UsageError
from .progress import JsonProgress
from .single_pass import ConvertResult, SceneList, detect_scenes

if TYPE_CHECKING:
    from .depth import DepthEstimator
    from .engine import StereoFrame

__all__ = ["ConvertResult", "SceneList", "convert", "detect_scenes"]


def convert(
    input: str | Path,
    output: str | Path,
    config: PipelineConfig | None = None,
    *,
    estimator: DepthEstimator | None = None,
    depth_cache: str | Path | None = None,
    report: str | Path | None = None,
    progress: bool = False,
    on_frame: Callable[[StereoFrame], None] | None = None,
    work_dir: str | Path | None = None,
    chunk_seconds: float = 60.0,
    backend: Literal["local", "ray"] = "local",
    ray_address: str | None = None,
    keep_work_dir: bool = False,
    shots: ShotOverrides | None = None,
    json_progress: JsonProgress | None = None,
) -> ConvertResult:
    """Convert ``input`` to a stereo 3D video at ``output``.

    ``output``: a file name, or an existing directory to write ``<input stem>_<layout suffix><ext>`` into (see
    :func:`~stereoconv.encode.output_name`); ``ConvertResult.output`` is the file written. ``config``: all settings
    (default: the built-in defaults). ``estimator``: a depth estimator to use instead of loading
    ``config.depth.model``. ``depth_cache``: a directory keeping the model's raw output per frame, keyed by the
    input and the model: a later run with other settings reads it instead of running (or even loading) the model.
    ``report``: write a per-shot report (parallax percentiles, flicker, window violations, holes; see
    :mod:`stereoconv.report`) here, as JSON or, for a .html name, a page with plots; only if the conversion succeeds.
    ``progress``: show a progress bar on stderr. ``on_frame``: called with each :class:`StereoFrame` once it is
    encoded (reports, progress hooks; an exception raised there aborts). The output file appears only when the
    conversion succeeded; on any failure or interruption nothing is left at the output path.

    ``work_dir``: convert resumably, as a render farm does (:mod:`stereoconv.farm`): plan chunks of about
    ``chunk_seconds`` into ``work_dir``, render those not yet rendered, assemble them into ``output``. Run again
    after a crash or Ctrl-C with the same arguments, it keeps the chunks already rendered; a work directory holding
    another conversion's plan (other input, settings, model or ``chunk_seconds``) or other files is refused. It is
    removed after success unless ``keep_work_dir``. ``backend``: "local" renders the chunks here, one after the
    other, with the model loaded once; "ray" on a Ray cluster (``ray_address``; needs ``stereoconv[ray]``).
    ``report`` and ``on_frame`` need the single pass (no ``work_dir``). The output is the farm's: where a long shot
    is split, the chunk after the split starts from a few seconds of pre-roll rather than the whole shot, so its
    first frames can differ slightly from the single pass's.
    ``shots``: per-shot settings (:func:`~stereoconv.config.load_shots`): the shots they select are converted with
    their ``[temporal]`` and ``[stereo]`` settings changed, the others exactly as without; recorded in the report and
    in a work directory's plan. ``json_progress``: machine-readable progress lines (start, every N frames, finish).
    Raises :class:`~stereoconv.errors.StereoconvError` subclasses for user-facing problems.
    """
    config = config or PipelineConfig()
    if work_dir is not None:
        if report is not None or on_frame is not None:
            raise UsageError("a report (--report) needs the single pass: convert without --work-dir")
        from .resume import convert_in_work_dir

        return convert_in_work_dir(input, output, config, work_dir, chunk_seconds=chunk_seconds, backend=backend,
                                   ray_address=ray_address, keep_work_dir=keep_work_dir, estimator=estimator,
                                   depth_cache=depth_cache, progress=progress, shots=shots,
                                   json_progress=json_progress)  # fmt: skip
    if backend != "local" or ray_address is not None or keep_work_dir:
        raise UsageError("--backend, --ray-address and --keep-work-dir need --work-dir")
    return single_pass.convert(input, output, config, estimator=estimator, depth_cache=depth_cache, report=report,
                               progress=progress, on_frame=on_frame, shots=shots,
                               json_progress=json_progress)  # fmt: skip
