"""Batch conversion: many inputs (files, folders, optionally recursive, filtered by a glob) into one output folder.

Each input is converted by :func:`stereoconv.api.convert` into the output folder under the name a directory output
gets (:func:`~stereoconv.encode.output_name`: ``<stem>_<layout><ext>``; inputs found under a folder keep their
sub-folders). An output that is already there and readable is skipped, so running the same batch again converts
only what is missing or failed; a failure is reported and the batch goes on to the next input. Per input, the
depth cache folder is shared (it keys its entries by input, :mod:`stereoconv.cache`) and a work directory is a
sub-folder named after the output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .api import convert
from .config import PipelineConfig
from .depth import DepthEstimator, load_estimator
from .encode import LAYOUT_SUFFIX, output_name
from .errors import EXIT_COMPLETED_WITH_LOSSES, MediaError, StereoconvError, UsageError
from .media import probe
from .progress import JsonProgress

EXIT_SOME_FAILED = 7
"""Exit code of a batch in which at least one input failed (the others converted or skipped)."""
# What a folder is searched for when no --glob is given: the extensions of common video files.
VIDEO_PATTERNS = ("*.mp4", "*.mkv", "*.mov", "*.m4v", "*.avi", "*.webm", "*.ts", "*.m2ts", "*.mts", "*.mpg",
                  "*.mpeg", "*.wmv", "*.flv", "*.vob", "*.mxf", "*.y4m")  # fmt: skip


@dataclass(frozen=True)
class BatchItem:
    """What became of one input: ``result`` is "converted", "skipped" (its output was already there), "losses"
    (converted, frames lost to a damaged input) or "failed" (``error`` says why; ``exit_code`` is the code a single
    convert would have exited with). ``fps``: conversion speed in frames per second."""

    input: Path
    output: Path
    result: str
    frames: int | None = None
    fps: float | None = None
    error: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class BatchResult:
    items: list[BatchItem]

    @property
    def failed(self) -> list[BatchItem]:
        return [item for item in self.items if item.result == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every input converted or was skipped; :data:`EXIT_SOME_FAILED` if any failed; else 5 if any lost
        frames to a damaged input."""
        if self.failed:
            return EXIT_SOME_FAILED
        return EXIT_COMPLETED_WITH_LOSSES if any(i.result == "losses" for i in self.items) else 0

    def table(self) -> str:
        """The summary: one row per input (file, frames, fps, result), then the totals."""
        rows = [("file", "frames", "fps", "result")]
        for item in self.items:
            result = item.result if item.error is None else f"failed: {item.error}"
            rows.append((str(item.input), "-" if item.frames is None else str(item.frames),
                         "-" if item.fps is None else f"{item.fps:.2f}", result))  # fmt: skip
        widths = [max(len(row[k]) for row in rows) for k in range(3)]
        lines = [f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}" for row in rows]
        counts = {name: sum(1 for i in self.items if i.result == name) for name in ("converted", "losses", "skipped",
                                                                                     "failed")}  # fmt: skip
        lines.append(", ".join(f"{n} {name}" for name, n in counts.items() if n or name != "losses"))
        return "\n".join(lines)


def is_batch(inputs: Sequence[str | Path]) -> bool:
    """More than one input, or a folder: a batch."""
    return len(inputs) > 1 or any(Path(p).is_dir() for p in inputs)


def find_inputs(
    inputs: Sequence[str | Path], *, recursive: bool = False, pattern: str | None = None
) -> list[tuple[Path, Path]]:
    """The files to convert and the sub-folder (relative) each output goes to: files as given; a folder's files
    matching ``pattern`` (a glob on the file name; default: common video extensions), with ``recursive`` its
    sub-folders' too, sorted. Files named like stereoconv outputs (``*_hsbs.mp4`` ...) are left out, so an output
    folder inside an input folder is not converted again. MediaError when nothing is found."""
    found: list[tuple[Path, Path]] = []
    patterns = (pattern,) if pattern else VIDEO_PATTERNS
    suffixes = tuple(f"_{s}" for s in LAYOUT_SUFFIX.values())
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = path.rglob("*") if recursive else path.iterdir()
            for file in sorted(files):
                if (file.is_file() and any(fnmatch(file.name.lower(), p.lower()) for p in patterns)
                        and not file.stem.endswith(suffixes)):  # fmt: skip
                    found.append((file, file.parent.relative_to(path)))
        else:  # a file, or a missing one: its conversion fails with the reason, and the batch goes on
            found.append((path, Path()))
    if not found:  # an input problem, as a single unreadable input is
        matching = f" matching {pattern!r}" if pattern else ""
        if len(inputs) == 1:
            raise MediaError(f"input {inputs[0]} is a directory with no video files{matching}")
        raise MediaError(f"no video files{matching} in {', '.join(map(str, inputs))}")
    return found


def _complete(path: Path) -> bool:
    """Whether ``path`` is a finished output: outputs appear only when complete, so one that exists and reads as a
    video with frames is done."""
    if not path.is_file():
        return False
    try:
        info = probe(path)
    except MediaError:
        return False
    return bool(info.frames)


def convert_batch(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    config: PipelineConfig | None = None,
    *,
    recursive: bool = False,
    pattern: str | None = None,
    depth_cache: str | Path | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
    json_progress: JsonProgress | None = None,
    log: Callable[[str], None] | None = None,
    **convert_options: object,
) -> BatchResult:
    """Convert every input (see :func:`find_inputs`) into ``output_dir`` (created if absent; its parent must exist):
    skipping those whose output is already there, going on past failures. ``work_dir``: a resumable conversion per
    input in ``work_dir/<output stem>``. ``json_progress``: each conversion's lines, plus a ``skipped`` or ``failed``
    line per input and a ``batch`` line at the end. ``log``: a line per input as it is done. Other keyword
    arguments go to :func:`~stereoconv.api.convert`. A :class:`~stereoconv.errors.UsageError` about the batch itself
    (no inputs, an output folder that cannot be made, two inputs with one output name) is raised before any work."""
    config = config or PipelineConfig()
    found = find_inputs(inputs, recursive=recursive, pattern=pattern)
    out_root = Path(output_dir)
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"a batch writes into a folder: {out_root} is a file")
    planned: dict[Path, Path] = {}
    for path, sub in found:
        target = out_root / sub / output_name(path, config.output.format)
        if target in planned:
            raise UsageError(f"{path} and {planned[target]} would both be written to {target}: rename one")
        planned[target] = path
    try:
        out_root.mkdir(exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {out_root}: {exc.strerror or exc}") from exc
    items: list[BatchItem] = []
    local = convert_options.get("backend", "local") == "local"
    if depth_cache is None and local and "estimator" not in convert_options:
        # One model for the whole batch, loaded when the first input needs it (a rerun that skips all loads none).
        convert_options = {**convert_options, "estimator": _SharedEstimator(config)}
    for target, path in planned.items():
        item = _one(path, target, config, depth_cache, work_dir, progress, json_progress, convert_options)
        items.append(item)
        if json_progress is not None and item.result in ("skipped", "failed"):
            json_progress.emit(None, item.result, input=str(path), output=str(target), error=item.error,
                               exit_code=item.exit_code)  # fmt: skip
        if log is not None:
            log(f"{path}: {item.result if item.error is None else 'failed: ' + item.error}")
    result = BatchResult(items)
    if json_progress is not None:
        json_progress.emit(None, "batch", files=[_row(i) for i in items], exit_code=result.exit_code)
    return result


class _SharedEstimator:
    """The configured depth model, loaded on its first use and then reused for every input of the batch."""

    def __init__(self, config: PipelineConfig) -> None:
        self._config = config
        self._estimator: DepthEstimator | None = None

    def get(self) -> DepthEstimator:
        if self._estimator is None:
            self._estimator = load_estimator(self._config.depth)
        return self._estimator


def _one(
    path: Path,
    target: Path,
    config: PipelineConfig,
    depth_cache: str | Path | None,
    work_dir: str | Path | None,
    progress: bool,
    json_progress: JsonProgress | None,
    options: dict[str, object],
) -> BatchItem:
    if _complete(target):
        return BatchItem(path, target, "skipped")
    started = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = None if work_dir is None else Path(work_dir) / target.stem
        shared = options.get("estimator")
        if isinstance(shared, _SharedEstimator):
            probe(path)  # an unreadable input fails here, before the model is loaded for it
            options = {**options, "estimator": shared.get()}
        result = convert(path, target, config, depth_cache=depth_cache, progress=progress, work_dir=work,
                         json_progress=json_progress, **options)  # type: ignore[arg-type]  # fmt: skip
    except StereoconvError as exc:
        return BatchItem(path, target, "failed", error=str(exc), exit_code=exc.exit_code,
                         fps=None, frames=None)  # fmt: skip
    except Exception as exc:  # a bug or an unforeseen fault in one file must not stop the others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return BatchItem(path, target, "failed", error=f"internal error: {type(exc).__name__}: {first}", exit_code=1)
    seconds = time.perf_counter() - started
    return BatchItem(path, result.output, "losses" if result.losses else "converted", result.frames,
                     result.frames / seconds if seconds > 0 else None)  # fmt: skip


def _row(item: BatchItem) -> dict[str, object]:
    return {"input": str(item.input), "output": str(item.output), "result": item.result, "frames": item.frames,
            "fps": None if item.fps is None else round(item.fps, 3), "error": item.error}  # fmt: skip
