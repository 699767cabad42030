"""The benchmarks' one harness: where things are, the command line, timing, the machine's facts, stereoconv's source
state, tables and JSON. A script holds only its measurement and its tables' rows.

The scripts import it as ``_common``: running ``python benchmarks/X.py`` puts benchmarks/ first on ``sys.path``, and
each script adds its own folder where it is loaded some other way (by file path, as tests/test_dibr_torch.py does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # ../shared/data, next to the repository
RESULTS = REPO / "benchmarks" / "results"  # git-ignored
TESTS = REPO / "tests"  # the scripts make their inputs with the tests' own helpers (synth, depth_zoo...)

T = TypeVar("T")


def parser(script: str, description: str, **options: Any) -> argparse.ArgumentParser:
    """The script's argument parser with ``--json`` (see :func:`add_json_option`); ``options`` go to ArgumentParser
    (by default defaults are shown in --help)."""
    options.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
    made = argparse.ArgumentParser(description=description, **options)
    add_json_option(made, script)
    return made


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the seconds it took (wall clock)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def best_time(fn: Callable[[], T], repeat: int) -> tuple[T, float]:
    """``fn()`` (from the last run) and the fewest seconds any of ``repeat`` runs took."""
    best = math.inf
    for _ in range(repeat):
        result, seconds = timed(fn)
        best = min(best, seconds)
    return result, best


def failer(script: str) -> Callable[[str], NoReturn]:
    """A ``fail(message)`` for ``script``: exit with one line on stderr (``script: message``) and status 2."""

    def fail(message: str) -> NoReturn:
        print(f"{script}: {message}", file=sys.stderr)
        sys.exit(2)

    return fail


def add_json_option(parser: argparse.ArgumentParser, script: str) -> None:
    """``--json PATH``, by default ``RESULTS / f"{script}.json"`` (the default shown in --help with any formatter)."""
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / f"{script}.json",
        help="where to write the results as JSON (default: %(default)s)",
    )


def machine_facts(runtime: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Platform, processor and Python, then ``runtime`` (e.g. torch and its device), the CPU counts (all, and usable
    by this process), numpy's and OpenCV's versions, then ``extra``: the facts a script's numbers depend on."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        **(runtime or {}),
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpus,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        **extra,
    }


def facts_line(facts: Mapping[str, Any]) -> str:
    """``machine: KEY VALUE, ...``: a report's first line."""
    return "machine: " + ", ".join(f"{k} {v}" for k, v in facts.items())


def file_hash(path: Path) -> str:
    """The first 16 hex digits of the sha256 of ``path``'s bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def source_state(*paths: Path) -> dict[str, Any]:
    """The commit, and the source files the measured code is in, as they are now (they may differ from the commit's).

    ``commit``: REPO's short HEAD (None where git cannot tell); ``files``: per file name, its path and ``sha256`` (see
    :func:`file_hash`); ``modified``: whether any of them differs from the commit (None where git cannot tell, e.g.
    stereoconv is imported from outside REPO).
    """
    state: dict[str, Any] = {
        "commit": None,
        "files": {path.name: {"path": str(path), "sha256": file_hash(path)} for path in paths},
        "modified": None,
    }
    git = ["git", "-C", str(REPO)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", *map(str, paths)], capture_output=True, text=True)
    except OSError:
        return state
    state["commit"] = head.stdout.strip() or None
    state["modified"] = bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    return state


def source_line(state: Mapping[str, Any]) -> str:
    """``stereoconv: commit C, NAME sha256 H, ...`` and whether they were modified, for a report's head."""
    hashes = "".join(f", {name} sha256 {file['sha256']}" for name, file in state["files"].items())
    modified = " (modified since the commit)" if state["modified"] else ""
    return f"stereoconv: commit {state['commit']}{hashes}{modified}"


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (an empty mask's NaN, identical images' inf) as None, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    """``report`` as strict JSON (non-finite floats as null, see :func:`finite`), indented, into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def finish(path: Path, report: Mapping[str, Any], label: str = "results") -> None:
    """Write ``report`` as JSON to ``path`` (:func:`write_json`) and say where: a report's last line."""
    write_json(path, report)
    print(f"{label}: {path}")


def markdown(rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, the first row the header, columns padded to their widest cell."""
    widths = [max(3, *(len(row[i]) for row in rows)) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.replace("|", "/").ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def table(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Plain-text table, columns padded to their widest cell; ``right`` marks the right-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
