"""Errors raised by stereoconv.

Every error a user can cause is a :class:`StereoconvError`; the CLI prints its message as one line and exits with
its ``exit_code``. Third-party errors are wrapped at the stage boundary (``raise MediaError(...) from exc``) so the
cause stays available to Python callers. The machine's faults (a full disk, a denied permission...) are wrapped as
:class:`StorageError` by :func:`storage_error`, wherever they are met.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_COMPLETED_WITH_LOSSES = 5
"""Exit code of a conversion that finished but lost frames to a damaged input (see ``media.strict``)."""

EXIT_STORAGE = 6
"""Exit code of a run stopped by the machine it runs on (:class:`StorageError`): a full disk, a denied permission..."""


class StereoconvError(Exception):
    """Base class of every error stereoconv raises on purpose. Exit code 1."""

    exit_code = 1


class UsageError(StereoconvError, ValueError):
    """A bad command line or output location. Exit code 2."""

    exit_code = 2


class ConfigError(StereoconvError, ValueError):
    """A bad setting: unknown key, out-of-range value, unreadable preset or config file. Exit code 2."""

    exit_code = 2


class MediaError(StereoconvError):
    """The input cannot be read as a video: missing, empty, not media, no video stream, damaged (with
    ``media.strict``, any frame lost to damage). Exit code 3."""

    exit_code = 3


class ModelError(StereoconvError):
    """The depth model cannot be loaded or run. Exit code 4."""

    exit_code = 4


class StorageError(StereoconvError, OSError):
    """The machine, not the input or the settings, stopped the run: no space left on a device, a quota reached,
    permission denied, a read-only file system, a file or folder that vanished while in use, too many open files, an
    I/O error. The message names the path and what to do. Exit code 6.

    Also an :class:`OSError` (``errno`` is the cause's), so Python callers that caught the raw error still do.
    ``path``: the file or folder concerned (None when the cause names none).
    """

    exit_code = EXIT_STORAGE

    def __init__(self, message: str, *, errno: int | None = None, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.errno = errno  # set after: OSError(errno, ...) would reformat the message
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# errno -> (what happened, what to do). Faults of the environment a user fixes there, not in stereoconv's arguments.
_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space (or write elsewhere) and run the command again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or write elsewhere) and run the command again"),
    errno.EACCES: ("permission denied", "check the permissions of the file and its folder"),
    errno.EPERM: ("operation not permitted", "check the permissions of the file and its folder"),
    errno.EROFS: ("read-only file system", "write to a writable location"),
    errno.ENOENT: (
        "no such file or directory (it vanished while in use?)",
        "check that it was not deleted or its disk unmounted, and run the command again",
    ),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n`) and run the command again"),
    errno.ENFILE: ("too many open files in the system", "close other programs and run the command again"),
    errno.EIO: ("input/output error", "check the disk or network share, and run the command again"),
    errno.ESTALE: ("stale file handle (a network share changed under the run)", "run the command again"),
}


def storage_error(exc: BaseException, path: str | Path | None = None) -> StorageError | None:
    """A :class:`StorageError` for ``exc`` when it is an environment fault (an :class:`OSError`, PyAV's included,
    whose errno is one of a full disk, a quota, a denied permission, a read-only file system, a vanished path, too
    many open files, an I/O error), else None. ``path``: the file to name (default: the one the error names; a
    caller that knows better, e.g. the output rather than its temporary file, passes it).
    Wrap with ``raise storage_error(exc, path) from exc`` so the cause stays available."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in _FAULTS:
        return None
    what, todo = _FAULTS[exc.errno]
    named = path if path is not None else exc.filename
    if isinstance(named, bytes):
        named = os.fsdecode(named)
    where = f": {named}" if named is not None else ""
    return StorageError(f"{what}{where}; {todo}", errno=exc.errno, path=named)
