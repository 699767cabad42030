"""Progress for the drivers: a frame counter on stderr and how many frames a range holds (its total).

Below every driver and above the engine, which reports no progress itself: a driver counts the frames it consumes.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from .media import VideoInfo


def expected_frames(info: VideoInfo, start: float, end: float | None) -> int | None:
    """About how many frames ``[start, end)`` seconds of ``info`` hold (None if unknown): a progress bar's total."""
    if info.frames is None or info.duration is None or info.fps <= 0:
        return info.frames
    stop = min(end, info.duration) if end is not None else info.duration
    return max(0, min(info.frames, round((stop - start) * info.fps)))


def progress_bar(total: int | None, enabled: bool, desc: str) -> tqdm:
    """A frame counter on stderr with frames/s and ETA (when ``total`` is known); silent unless ``enabled``."""
    return tqdm(total=total, unit="frame", desc=desc, disable=not enabled, dynamic_ncols=True, smoothing=0.1)


class JsonProgress:
    """Machine-readable progress: one JSON line per event on ``stream`` (default stdout), each with ``event``,
    ``chunk`` (null in a single pass), ``frames_done``, ``frames_total`` (null if unknown), ``fps`` and the event's
    own fields. Events: ``start`` (with ``input`` and ``output``), ``progress`` every ``every`` frames, ``chunk_done``
    and ``skipped`` per farm chunk, ``finish`` (with ``output`` and ``frames``)."""

    def __init__(self, total: int | None = None, every: int = 24, stream: Any = None) -> None:
        self.total, self.every = total, max(1, every)
        self.done = 0
        self._stream = stream
        self._started = time.perf_counter()

    def start(self, total: int | None, **fields: Any) -> None:
        """A new run of ``total`` frames begins (the counters restart)."""
        self.total, self.done, self._started = total, 0, time.perf_counter()
        self.emit(None, "start", **fields)

    def emit(self, chunk: int | None, event: str = "progress", **fields: Any) -> None:
        elapsed = time.perf_counter() - self._started
        line = {"event": event, "chunk": chunk, "frames_done": self.done, "frames_total": self.total,
                "fps": round(self.done / elapsed, 3) if elapsed > 0 else 0.0, **fields}  # fmt: skip
        print(json.dumps(line), file=self._stream or sys.stdout, flush=True)

    def frame(self, chunk: int | None = None) -> None:
        self.done += 1
        if self.done % self.every == 0:
            self.emit(chunk)

    def finish(self, **fields: Any) -> None:
        self.emit(None, "finish", **fields)
