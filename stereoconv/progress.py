"""Progress for the drivers: a frame counter on stderr and how many frames a range holds (its total).

Below every driver and above the engine, which reports no progress itself: a driver counts the frames it consumes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
