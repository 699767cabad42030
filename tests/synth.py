"""Synthetic media with known depth and known cuts, a tiny random-weight Depth Anything model, and an oracle
depth estimator, for tests and benchmarks.

Every clip is a sequence of shots joined by hard cuts. A shot is a textured far background plane with a textured near
square moving across it; both textures are random noise with a different seed and tint per shot, so every cut is an
unmistakable content change. Depth is relative inverse depth (larger = nearer): background ``FAR``, square ``NEAR``.
Video is encoded losslessly (libx264rgb, qp 0) so decoded pixels equal the generated ones exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FAR, NEAR = 1.0, 3.0
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_MODEL_CONFIG = SHARED_DATA / "models" / "depth-anything-v2-small-config"


@dataclass
class SynthClip:
    """A generated clip: where it is, what it shows, and the truth about it."""

    path: Path
    frames: list[np.ndarray]  # uint8 HxWx3 RGB, as encoded
    depths: list[np.ndarray]  # float32 HxW relative inverse depth, larger = nearer
    cuts: list[int]  # first frame of each new shot
    pts: list[int]
    time_base: Fraction
    audio_seconds: float | None = None

    @property
    def times(self) -> list[float]:
        return [float(p * self.time_base) for p in self.pts]


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Blocky random RGB texture (uint8 HxWx3): strong, unique content for every seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    tint = rng.integers(0, 256, size=3)
    tex = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :width]
    return ((tex.astype(np.uint16) + tint) // 2).astype(np.uint8)


def shot_frames(
    n: int, height: int, width: int, seed: int, *, speed: int = 2
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One shot: ``n`` frames of a near textured square moving right by ``speed`` px/frame over a far background."""
    background = texture(height, width, seed)
    side = max(4, min(height, width) // 3)
    patch = texture(side, side, seed + 1000)
    frames, depths = [], []
    y0 = (height - side) // 2
    for i in range(n):
        x0 = (width // 6 + i * speed) % max(1, width - side)
        frame = background.copy()
        frame[y0 : y0 + side, x0 : x0 + side] = patch
        depth = np.full((height, width), FAR, np.float32)
        depth[y0 : y0 + side, x0 : x0 + side] = NEAR
        frames.append(frame)
        depths.append(depth)
    return frames, depths


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: Fraction = Fraction(24),
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    audio_seconds: float | None = None,
    codec: str = "libx264rgb",
    subtitles: Sequence[tuple[float, float, str]] = (),
) -> tuple[list[int], Fraction]:
    """Encode RGB frames (losslessly with the default codec) and, if ``audio_seconds``, a 440 Hz AAC tone.
    ``subtitles``: SRT cues ``(start s, end s, text)`` in a subrip stream (needs a .mkv ``path``).

    Without ``pts`` frames are 1/fps apart. Returns (pts, time_base) as written.
    """
    if pts is None:
        pts, time_base = list(range(len(frames))), 1 / fps
    elif time_base is None:
        raise ValueError("pts need a time_base")
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        video.time_base = video.codec_context.time_base = time_base  # else pts snap to the 1/fps grid
        video.options = {"qp": "0", "preset": "ultrafast"} if codec.startswith("libx264") else {}
        audio = None
        if audio_seconds:
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "stereo"
        ms = Fraction(1, 1000)
        # The subrip encoder cannot be opened without a header, so the stream is a pure mux stream of packets.
        subs = out.add_mux_stream("subrip", time_base=ms) if subtitles else None
        for frame_rgb, p in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
            frame.pts, frame.time_base = int(p), time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            _write_tone(out, audio, audio_seconds)
        for begin, end, text in subtitles:
            packet = av.Packet(text.encode())
            packet.stream, packet.time_base = subs, ms
            packet.pts = packet.dts = round(begin * 1000)
            packet.duration = round((end - begin) * 1000)
            out.mux(packet)
    return [int(p) for p in pts], time_base


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    total = int(seconds * rate)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
    for start in range(0, total, chunk):
        block = np.ascontiguousarray(np.stack([tone[start : start + chunk]] * 2))
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def make_clip(
    path: Path,
    shot_lengths: Sequence[int] = (12, 10),
    *,
    height: int = 64,
    width: int = 96,
    fps: Fraction = Fraction(24),
    audio: bool = False,
    vfr: bool = False,
    seed: int = 1,
) -> SynthClip:
    """Shots of known depth joined by hard cuts. ``vfr``: irregular frame durations off the 1/fps grid."""
    frames: list[np.ndarray] = []
    depths: list[np.ndarray] = []
    cuts: list[int] = []
    for k, n in enumerate(shot_lengths):
        if k:
            cuts.append(len(frames))
        f, d = shot_frames(n, height, width, seed + 17 * k)
        frames += f
        depths += d
    pts, time_base = None, None
    if vfr:  # durations of 1, 1.5 and 0.7 frames: off any constant-rate grid
        steps = [(1000, 1500, 700)[i % 3] for i in range(len(frames))]
        time_base = 1 / (fps * 1000)
        pts = [int(x) for x in np.cumsum([0, *steps[:-1]])]
    audio_seconds = len(frames) / float(fps) if audio else None
    pts, time_base = write_video(path, frames, fps=fps, pts=pts, time_base=time_base, audio_seconds=audio_seconds)
    return SynthClip(path, frames, depths, cuts, pts, time_base, audio_seconds)


class OracleEstimator:
    """A :class:`~stereoconv.depth.DepthEstimator` that returns the true depth maps, in call order."""

    def __init__(self, depths: Sequence[np.ndarray], batch_size: int = 3) -> None:
        self._depths = list(depths)
        self._next = 0
        self.batch_size = batch_size
        self.calls = 0

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        out = self._depths[self._next : self._next + len(frames)]
        if len(out) != len(frames):
            raise AssertionError("oracle asked for more frames than the clip has")
        for frame, depth in zip(frames, out, strict=True):
            assert frame.shape[:2] == depth.shape, "oracle depth and frame sizes differ"
        self._next += len(frames)
        return [d.copy() for d in out]


def make_tiny_model(directory: Path, *, real_config: bool = False, seed: int = 0) -> Path:
    """Save a random-weight Depth Anything model and its preprocessor config to ``directory``.

    Tiny by default (~110 k parameters, fast on CPU); ``real_config`` builds the exact architecture of
    Depth-Anything-V2-Small from ../shared/data (~25 M parameters) for speed and memory measurements.
    """
    import torch
    from transformers import AutoConfig, DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    directory.mkdir(parents=True, exist_ok=True)
    if real_config:
        config = AutoConfig.from_pretrained(REAL_MODEL_CONFIG)
        processor = json.loads((REAL_MODEL_CONFIG / "preprocessor_config.json").read_text())
    else:
        backbone = Dinov2Config(
            hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, patch_size=14, image_size=56,
            out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
        )  # fmt: skip
        config = DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[16, 16, 16, 16],
            fusion_hidden_size=16, head_hidden_size=8, patch_size=14,
        )  # fmt: skip
        processor = {  # the DPT image-processor settings Depth Anything uses
            "image_processor_type": "DPTImageProcessor", "do_resize": True, "size": {"height": 518, "width": 518},
            "keep_aspect_ratio": True, "ensure_multiple_of": 14, "resample": 3, "do_rescale": True,
            "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225], "do_pad": False,
        }  # fmt: skip
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return directory
