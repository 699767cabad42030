"""Monocular depth: the :class:`DepthEstimator` protocol and the Hugging Face transformers backend.

Convention, everywhere in stereoconv: depth maps are *relative inverse depth* (disparity-like), float32 HxW,
**larger = nearer**. Models that predict metric depth (larger = farther) are inverted on output.

How each model family is fed and what its output means is decided by :func:`stereoconv.models.resolve` from the
model's ``config.json`` and ``preprocessor_config.json`` (size, keep_aspect_ratio, ensure_multiple_of, resample,
rescale, mean/std, padding) and ``depth.input_size`` / ``depth.output``. Preprocessing then runs as torch ops on the
model's device; transformers' image-processor classes are not used (they need torchvision and PIL at run time, and
run on the CPU).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from .config import DepthConfig
from .errors import ModelError
from .models import METRIC_FLOOR, ModelSpec, Preprocessing, resolve

__all__ = ["DepthEstimator", "Preprocessing", "TransformersDepthEstimator", "auto_batch_size", "load_estimator",
           "model_fingerprint", "preprocess", "select_device", "to_working", "to_working_tensor", "upsample_depth",
           "working_shape"]  # fmt: skip


@runtime_checkable
class DepthEstimator(Protocol):
    """Turns a batch of RGB frames into relative inverse depth maps.

    ``__call__`` takes a sequence of uint8 HxWx3 RGB frames of one size and returns as many float32 maps,
    **larger = nearer**, of that size or coarser with the frame's aspect (the working resolution: the pipeline
    smooths and plans on the maps' own grid and brings them to the frame's size only to render). Calls come in
    decode order. ``batch_size`` is how many frames the caller should pass per call.
    """

    batch_size: int

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def preprocess(frames: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB on any device -> normalized float32 (B, 3, h, w) model input on the same device.

    ``(h, w)`` is ``prep.input_shape(H, W)``; with ``prep.pad_reflect`` the frame is reflection-padded before the
    resize (:meth:`~stereoconv.models.Preprocessing.padding`), and :func:`crop_padding` undoes it on the output.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 (B, H, W, 3) frames, got {frames.dtype} {tuple(frames.shape)}")
    x = frames.permute(0, 3, 1, 2).float()
    h, w = prep.input_shape(x.shape[2], x.shape[3])
    pad_h, pad_w = prep.padding(x.shape[2], x.shape[3])
    if pad_h or pad_w:
        x = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    if (h, w) != tuple(x.shape[2:]):
        antialias = prep.resample in ("bilinear", "bicubic")
        x = F.interpolate(x, size=(h, w), mode=prep.resample, antialias=antialias,
                          **({} if prep.resample in ("nearest", "area") else {"align_corners": False}))  # fmt: skip
        x = x.clamp(0.0, 255.0)  # bicubic overshoots; PIL clamps too
    mean = torch.tensor(prep.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=x.device).view(1, 3, 1, 1)
    return (x * prep.rescale - mean) / std


def crop_padding(raw: torch.Tensor, prep: Preprocessing, height: int, width: int) -> torch.Tensor:
    """Take the share of reflection padding (see :func:`preprocess`) off raw output (B, h, w) of a frame of
    ``height`` x ``width``; unchanged without padding."""
    pad_h, pad_w = prep.padding(height, width)
    if not (pad_h or pad_w):
        return raw
    rows = round(raw.shape[1] * pad_h / (height + 2 * pad_h))
    cols = round(raw.shape[2] * pad_w / (width + 2 * pad_w))
    return raw[:, rows : raw.shape[1] - rows, cols : raw.shape[2] - cols]


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is not present raises ModelError."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but no CUDA GPU is available: use --device cpu or auto")
    if name == "mps" and not has_mps:
        raise ModelError("device 'mps' was asked for but Apple MPS is not available: use --device cpu or auto")
    return torch.device(name)


# The largest activations of one frame of Depth Anything V2 Small at its 518 x 924 input, measured as the peak memory
# its forward pass adds (float32, on the CPU; half of it in fp16): about 300 MiB, growing with the input's pixels.
_FRAME_BYTES = 300 << 20
_FRAME_PIXELS = 518 * 924
_MAX_AUTO_BATCH = 16


def auto_batch_size(device: torch.device, input_shape: tuple[int, int] = (518, 924)) -> int:
    """``depth.batch_size = 0``: frames per model call on ``device`` for inputs of ``input_shape`` (h, w). 4 on the CPU
    and MPS (a larger batch gains nothing there); on CUDA as many frames as a quarter of the device's memory holds at
    :data:`_FRAME_BYTES` a frame (scaled with the input's pixels), 1 to 16. Larger models need more a frame: a batch
    that runs out of memory is split (:meth:`TransformersDepthEstimator.predict`)."""
    if device.type != "cuda":
        return 4
    total = torch.cuda.get_device_properties(device).total_memory
    frame = _FRAME_BYTES * max(1.0, input_shape[0] * input_shape[1] / _FRAME_PIXELS)
    return max(1, min(_MAX_AUTO_BATCH, int(total / 4 // frame)))


def upsample_depth(raw: torch.Tensor, height: int, width: int) -> list[np.ndarray]:
    """Raw model output -> depth maps at the frame size.

    ``raw``: (B, h, w) float tensor on any device (float16 is computed in float32), at model resolution, relative
    inverse depth (larger = nearer). Returns B float32 HxW numpy arrays (``height`` x ``width``), bilinearly resized
    (half-pixel centres, ``align_corners=False``) on ``raw``'s device. Needs no model: cached raw outputs come back
    through this same function, so they match fresh ones up to the cache's float16 rounding.
    """
    if raw.ndim != 3:
        raise ValueError(f"expected raw depth of shape (B, h, w), got {tuple(raw.shape)}")
    if not raw.shape[0]:
        return []
    return list(_resized(raw, height, width).cpu().numpy())


def _resized(raw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h, w) raw depth -> float32 (B, ``height``, ``width``) on its device, bilinear with half-pixel centres."""
    depth = raw.float().unsqueeze(1)
    if tuple(depth.shape[2:]) != (height, width):
        depth = F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)
    return depth[:, 0]


def working_shape(height: int, width: int, rows: int, cols: int) -> tuple[int, int]:
    """The (height, width) depth is processed at for a ``height`` x ``width`` frame whose model delivers ``rows`` x
    ``cols`` maps: the frame's aspect (square pixels) at the model's detail, the frame scaled by the larger of the
    two ratios, never beyond the frame itself. Normalization, smoothing and planning run on this grid; the depth meets
    the frame's resolution only where the eyes are rendered (:mod:`stereoconv.refine`). For Depth Anything V2 at its
    518 px, a 1080p frame's depth is 520 x 924, a 4K frame's the same."""
    scale = min(1.0, max(rows / height, cols / width))
    return max(1, min(height, round(height * scale))), max(1, min(width, round(width * scale)))


def to_working_tensor(raw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`to_working` left on ``raw``'s device: float32 (B, h, w) at :func:`working_shape`."""
    return _resized(raw, *working_shape(height, width, raw.shape[1], raw.shape[2]))


def to_working(raw: torch.Tensor, height: int, width: int) -> list[np.ndarray]:
    """Raw model output (B, rows, cols) for ``height`` x ``width`` frames -> float32 maps at :func:`working_shape`
    (:func:`upsample_depth`). Fresh and cached depth both come this way."""
    if raw.ndim != 3:
        raise ValueError(f"expected raw depth of shape (B, h, w), got {tuple(raw.shape)}")
    return upsample_depth(raw, *working_shape(height, width, raw.shape[1], raw.shape[2]))


class TransformersDepthEstimator:
    """A transformers ``AutoModelForDepthEstimation`` model run in batches, with fp16 autocast on CUDA.

    Frames go to the device as uint8 (pinned host memory, non-blocking copy on CUDA), are preprocessed there, and
    the predicted depth is resized with bilinear interpolation to the working resolution (:func:`working_shape`:
    the frame's aspect at about the model's own size, never beyond the frame). Output: relative inverse depth, float32
    maps, larger = nearer. ``__call__`` is :meth:`predict` (the model's own output, at model resolution) then
    :meth:`to_frames` (the resize); the depth cache stores the former and replays the latter.
    ``metric``: the model outputs distance (larger = farther), turned into ``1 / max(depth, METRIC_FLOOR)``.
    ``spec``: what :func:`~stereoconv.models.resolve` decided for the model; ``notes``: what was assumed in doing
    so, for the user.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        prep: Preprocessing,
        *,
        device: torch.device,
        batch_size: int = 4,
        fp16: bool = True,
        metric: bool = False,
        spec: ModelSpec | None = None,
        name: str = "the depth model",
    ) -> None:
        self.model = model.eval().to(device)
        self.prep = prep
        self.device = device
        self.batch_size = batch_size
        self.fp16 = fp16 and device.type == "cuda"
        self.metric = metric
        self.spec = spec
        self.name = name
        self.notes: list[str] = list(spec.notes) if spec is not None else []

    @torch.inference_mode()
    def predict(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 HxWx3 RGB frames of one size -> raw depth, float32 (B, h, w) on the model's device.

        ``h`` x ``w`` is the model's output size: about its input size (:meth:`Preprocessing.input_shape` of the
        frame size), less any padding (:func:`crop_padding`). Relative inverse depth, larger = nearer: the output of
        metric models is inverted here. A model that rejects its input raises ModelError naming the input size.
        """
        if not len(frames):
            return torch.zeros((0, 0, 0), dtype=torch.float32, device=self.device)
        if self.device.type == "cuda":  # straight into pinned memory, for a copy to the device that does not block
            batch = torch.empty((len(frames), *frames[0].shape), dtype=torch.uint8, pin_memory=True)
            for slot, frame in zip(batch, frames, strict=True):
                slot.copy_(torch.from_numpy(frame))
        else:
            batch = torch.from_numpy(np.stack(frames))
        x = preprocess(batch.to(self.device, non_blocking=True), self.prep)
        try:
            with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.fp16):
                predicted = self.model(pixel_values=x).predicted_depth
        except torch.OutOfMemoryError as exc:
            if len(frames) == 1:
                raise ModelError(f"{self.name} ran out of {self.device.type} memory on one {x.shape[2]}x{x.shape[3]} "
                                 "input: set a smaller depth.input_size, or --device cpu") from exc  # fmt: skip
            # Too many frames for the device's memory: halve this batch, and the batches to come.
            del x
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = (len(frames) + 1) // 2
            self.batch_size = max(1, min(self.batch_size, half))
            return torch.cat((self.predict(frames[:half]), self.predict(frames[half:])))
        except (RuntimeError, ValueError, IndexError) as exc:  # the model rejects this input: say which, in one line
            raise ModelError(f"{self.name} failed on a {x.shape[2]}x{x.shape[3]} input "
                             f"({self.prep.describe()}): {_first_line(exc)}") from exc  # fmt: skip
        depth = predicted.float()
        if depth.ndim == 4 and depth.shape[1] == 1:
            depth = depth[:, 0]
        depth = crop_padding(depth, self.prep, batch.shape[1], batch.shape[2])
        if self.metric:  # metric depth (larger = farther) -> inverse depth (larger = nearer)
            depth = 1.0 / depth.clamp_min(METRIC_FLOOR)
        return depth

    @staticmethod
    def to_frames(raw: torch.Tensor, height: int, width: int) -> list[np.ndarray]:
        """Raw output of :meth:`predict` for ``height`` x ``width`` frames -> float32 maps at the working
        resolution (:func:`to_working`)."""
        return to_working(raw, height, width)

    @torch.inference_mode()
    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not len(frames):
            return []
        height, width = frames[0].shape[:2]
        return self.to_frames(self.predict(frames), height, width)

    @torch.inference_mode()
    def device_maps(self, frames: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """What ``__call__`` returns, left on the model's device as float32 tensors: for a pipeline that smooths,
        plans and renders there (the GPU-resident path), so the maps never cross to the host."""
        if not len(frames):
            return []
        height, width = frames[0].shape[:2]
        return list(to_working_tensor(self.predict(frames), height, width))


# ---------------------------------------------------------------------------------------------- model loading


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or Path(name).exists()


def _hub_unreachable_message(name: str) -> str:
    return (
        f"cannot download model {name!r}: the Hugging Face hub is unreachable from this machine. "
        f"On a connected machine run `hf download {name} --local-dir DIR`, "
        f"copy DIR here and pass --model DIR"
    )


def resolve_model_source(name: str) -> tuple[str, bool]:
    """Where ``from_pretrained`` should load ``name`` from: (source, local_files_only).

    A local directory loads as is. A hub id loads from the local cache when it is there; otherwise the hub is
    asked once, quickly, whether it is reachable, so an offline machine fails in one clear line instead of after
    minutes of retries.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path), True
    if _looks_like_path(name):
        raise ModelError(f"model directory not found: {name}")
    import huggingface_hub
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    if isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json"), str):  # a path: it is cached
        return name, True
    try:
        huggingface_hub.HfApi().model_info(name, timeout=10)
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ModelError(f"model {name!r} was not found on the Hugging Face hub (or needs a login)") from exc
    except Exception as exc:  # any network or offline-mode failure
        raise ModelError(_hub_unreachable_message(name)) from exc
    return name, False


def load_estimator(config: DepthConfig) -> TransformersDepthEstimator:
    """Load ``config.model`` (hub id or local directory) and return a ready estimator. Raises ModelError."""
    from transformers import AutoConfig, AutoModelForDepthEstimation
    from transformers.image_processing_base import ImageProcessingMixin
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight-loading step would bury ours

    source, local_only = resolve_model_source(config.model)
    device = select_device(config.device)
    try:
        model_config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ModelError(f"cannot load depth model from {config.model}: {_first_line(exc)}") from exc
    _check_family(config, model_config.to_dict())  # refuse what is not depth before loading its weights
    try:
        model = AutoModelForDepthEstimation.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, IndexError) as exc:
        raise ModelError(f"cannot load depth model from {config.model}: {_first_line(exc)}") from exc
    try:
        processor_cfg, _ = ImageProcessingMixin.get_image_processor_dict(source, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config.model} has no usable preprocessor_config.json: {_first_line(exc)}") from exc
    spec = resolve(model_config.to_dict(), processor_cfg, config.input_size, config.output, name=config.model)
    batch_size = config.batch_size or auto_batch_size(device, spec.prep.input_shape(1080, 1920))
    estimator = TransformersDepthEstimator(model, spec.prep, device=device, batch_size=batch_size,
                                           fp16=config.fp16, metric=spec.output == "metric", spec=spec,
                                           name=config.model)  # fmt: skip
    if config.compile:
        # Compiled lazily, on the first batch; a new input shape (another frame size) compiles again.
        estimator.model = torch.compile(estimator.model)
    return estimator


def _check_family(config: DepthConfig, model_config: Mapping[str, Any]) -> None:
    """Raise ModelError for a model whose output is not depth, naming what it predicts (the table's refusals)."""
    resolve({"model_type": model_config.get("model_type")}, {}, None, config.output, name=config.model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------ model fingerprint

# Bump when preprocess(), predict() or anything else between the frame and the raw output changes its numbers: it
# is part of every model fingerprint, so raw outputs cached by older code are never reused.
RAW_OUTPUT_VERSION = 2
_HASH_BLOCK = 8 << 20


def model_fingerprint(model: str, input_size: int | None = None, output: str = "auto") -> str:
    """A hex digest of everything that determines the raw output of ``model`` fed at ``input_size``, read as
    ``output`` (``depth.input_size`` and ``depth.output``), without loading it.

    ``model``: hub id or local directory, as in :func:`load_estimator` (resolved the same way; a hub id that is not
    cached locally is downloaded, as loading would). It covers: every top-level ``*.json`` of the model (config.json,
    preprocessor_config.json: architecture, metric or relative output, resize multiple, resample, mean/std), what
    :func:`~stereoconv.models.resolve` makes of them with ``input_size`` and ``output`` (the input sizing, padding
    and whether the output is inverted: so a changed setting or family table never reuses stale entries), the
    bytes of the weights (sha256 of the ``*.safetensors`` files, or the ``*.bin`` files when there are none: the ones
    ``from_pretrained`` reads), the installed transformers version and :data:`RAW_OUTPUT_VERSION`.
    The model's name, path and file times are not part of it: a copied or moved model keeps its fingerprint. Weights in
    the Hugging Face cache are not read: their blob's file name already is the sha256 of their content.
    Costs one sha256 pass over the weights otherwise (about 0.5 s per GB). Raises ModelError where loading would
    (a model whose output is not depth included).
    """
    directory = _model_directory(model)
    weights = sorted(p for p in directory.iterdir() if p.suffix == ".safetensors" and p.is_file())
    weights = weights or sorted(p for p in directory.iterdir() if p.suffix == ".bin" and p.is_file())
    spec = model_spec(model, input_size, output)
    if not weights:
        raise ModelError(f"cannot load depth model from {model}: no weights (*.safetensors or *.bin) in {directory}")
    digest = hashlib.sha256()
    digest.update(f"stereoconv raw depth v{RAW_OUTPUT_VERSION}\n".encode())
    digest.update(f"transformers {_package_version('transformers')}\n".encode())
    digest.update(f"{spec.prep!r}\noutput {spec.output}\n".encode())
    try:
        for path in sorted(directory.glob("*.json")):
            digest.update(f"{path.name} {path.stat().st_size}\n".encode())
            digest.update(path.read_bytes())
        for path in weights:
            digest.update(f"{path.name} {path.stat().st_size} {_file_sha256(path)}\n".encode())
    except OSError as exc:
        raise ModelError(f"cannot load depth model from {model}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def model_spec(model: str, input_size: int | None = None, output: str = "auto") -> ModelSpec:
    """What :func:`~stereoconv.models.resolve` makes of ``model``'s config.json and preprocessor_config.json (hub id
    or local directory, found as :func:`model_fingerprint` finds it), without loading the weights."""
    directory = _model_directory(model)
    if not (directory / "config.json").is_file():
        raise ModelError(f"cannot load depth model from {model}: no config.json in {directory}")
    return resolve(_read_json(directory / "config.json", model), _read_json(directory / "preprocessor_config.json",
                   model, missing_ok=True), input_size, output, name=model)  # fmt: skip


def _read_json(path: Path, model: str, missing_ok: bool = False) -> dict[str, Any]:
    if missing_ok and not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load depth model from {model}: {path.name} is not readable JSON") from exc
    if not isinstance(data, dict):
        raise ModelError(f"cannot load depth model from {model}: {path.name} is not a JSON object")
    return data


def _model_directory(model: str) -> Path:
    """The local directory holding ``model``'s files (a hub id: its snapshot in the Hugging Face cache)."""
    source, local_only = resolve_model_source(model)
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    import huggingface_hub

    if not local_only:  # on the hub, not cached yet: fetch what from_pretrained would
        try:
            snapshot = Path(huggingface_hub.snapshot_download(source, allow_patterns=["*.json", "*.safetensors"]))
            if not any(snapshot.glob("*.safetensors")):
                huggingface_hub.snapshot_download(source, allow_patterns=["*.bin"])
        except Exception as exc:  # any network or hub failure
            raise ModelError(_hub_unreachable_message(model)) from exc
    cached = huggingface_hub.try_to_load_from_cache(source, "config.json")
    if not isinstance(cached, str):
        raise ModelError(f"cannot load depth model from {model}: its config.json is not in the Hugging Face cache")
    return Path(cached).parent


def _file_sha256(path: Path) -> str:
    target = path.resolve()
    # Hugging Face cache: snapshots/<rev>/<file> links to blobs/<sha256 of the content> for LFS files (weights).
    if path.is_symlink() and target.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", target.name):
        return target.name
    digest = hashlib.sha256()
    with open(target, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
