"""stereoconv: convert 2D video to stereoscopic 3D.

    import stereoconv
    config = stereoconv.load_config(preset="film", overrides={"stereo.max_positive_parallax": 2.0})
    stereoconv.convert("movie.mp4", "movie_3d.mp4", config)

Depth maps everywhere in stereoconv are relative inverse depth: larger = nearer.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__ as __version__
from .config import (
    DepthConfig,
    MediaConfig,
    OutputConfig,
    PipelineConfig,
    RuntimeConfig,
    ScenesConfig,
    StereoConfig,
    TemporalConfig,
    load_config,
)
from .errors import ConfigError, MediaError, ModelError, StereoconvError, StorageError, UsageError

__all__ = [
    "ConfigError",
    "ConvertResult",
    "DepthConfig",
    "MediaConfig",
    "MediaError",
    "ModelError",
    "OutputConfig",
    "PipelineConfig",
    "RuntimeConfig",
    "SceneList",
    "ScenesConfig",
    "StereoConfig",
    "StereoconvError",
    "StorageError",
    "TemporalConfig",
    "UsageError",
    "convert",
    "detect_scenes",
    "load_config",
]

_API = {"convert", "detect_scenes", "ConvertResult", "SceneList"}


def __getattr__(name: str) -> Any:
    # The drivers pull in torch and PyAV; load them on first use so `stereoconv presets` and config work stay fast.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'stereoconv' has no attribute {name!r}")
