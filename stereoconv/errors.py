"""Errors raised by stereoconv.

Every error a user can cause is a :class:`StereoconvError`; the CLI prints its message as one line and exits with
its ``exit_code``. Third-party errors are wrapped at the stage boundary (``raise MediaError(...) from exc``) so the
cause stays available to Python callers.
"""

from __future__ import annotations

EXIT_COMPLETED_WITH_LOSSES = 5
"""Exit code of a conversion that finished but lost frames to a damaged input (see ``media.strict``)."""


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
