from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synth import SHARED_DATA, make_clip, make_tiny_model

VIDEOS = SHARED_DATA / "videos" / "pyscenedetect"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Depth Anything saved with save_pretrained: exercises the real from_pretrained(dir) path."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-depth-anything"))


@pytest.fixture(scope="session")
def two_shot_clip(tmp_path_factory: pytest.TempPathFactory):
    """Two shots (12 + 10 frames, cut at 12), 96x64, 24 fps, lossless, with an AAC track."""
    return make_clip(tmp_path_factory.mktemp("clip") / "two_shots.mp4", (12, 10), audio=True)


def shared_video(name: str) -> Path:
    """A real clip from ../shared/data; the test is skipped when the folder is absent."""
    path = VIDEOS / name
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    return path
