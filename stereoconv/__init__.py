"""stereoconv: convert 2D video to stereoscopic 3D.

    import stereoconv
    config = stereoconv.load_config(preset="film", overrides={"stereo.max_positive_parallax": 2.0})
    stereoconv.convert("movie.mp4", "movie_3d.mp4", config)

Depth maps everywhere in stereoconv are relative inverse depth: larger = nearer.
"""

from __future__ import annotations

from typing import Any

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
from .errors import ConfigError, MediaError, ModelError, StereoconvError, UsageError

__version__ = "0.1.0"

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
    "TemporalConfig",
    "UsageError",
    "convert",
    "detect_scenes",
    "load_config",
]

_PIPELINE = {"convert", "detect_scenes", "ConvertResult", "SceneList"}


def __getattr__(name: str) -> Any:
    # The pipeline pulls in torch and PyAV; load it on first use so `stereoconv presets` and config work stay fast.
    if name in _PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'stereoconv' has no attribute {name!r}")
