"""The render stage on a torch device: a planned frame goes up once and comes down packed.

The CPU path renders each eye with the compiled kernel (:func:`~stereoconv.dibr.synthesize_view`) and packs with
OpenCV. On a GPU the same steps run as torch ops where the frame already is: the frame (and, for a deep source, its
8-bit picture, the refinement's guide) is uploaded once from pinned memory, and the plan's disparity on its small
working grid with it; the disparity is brought to the eyes' size and refined there
(:func:`~stereoconv.refine.refine_disparity_torch`), both eyes are rendered
(:func:`~stereoconv.dibr.synthesize_view_torch`), the floating-window bands masked, the eyes squeezed and packed,
and only the packed frame comes back. The rules are those of :func:`~stereoconv.parallax.render_plan` and
:func:`~stereoconv.packing.pack`; the pixels agree with the CPU path's within a few levels (float32 interpolation
instead of OpenCV's fixed point; see :func:`~stereoconv.dibr.synthesize_view_torch`), which the tests pin on CPU
tensors.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import torch
import torch.nn.functional as F

from .dibr import PIXEL_TOP, synthesize_view_torch
from .packing import DUBOIS_LEFT, DUBOIS_RIGHT, TO_LINEAR, Layout, eye_size
from .parallax import StereoPlan
from .refine import refine_disparity_torch

_STREAMS = threading.local()  # each thread's own CUDA stream per device


def own_stream(device: torch.device | None) -> contextlib.AbstractContextManager[object]:
    """Run this thread's device work on a CUDA stream of its own (made once per thread and device); a no-op off CUDA
    (``device`` None: on the host).

    The stages share the device: on one stream, each host sync of a stage (a download, a count, a ranked value)
    would wait for everything the other stages queued before it, the model's next batch included. On its own stream
    a stage waits only for its own work. What crosses to another stage must be complete first (:func:`finish` on the
    stream that made it) and be marked used where it is read (:func:`used_here`)."""
    if device is None or device.type != "cuda":
        return contextlib.nullcontext()
    streams = getattr(_STREAMS, "by_device", None)
    if streams is None:
        streams = _STREAMS.by_device = {}
    stream = streams.get(device)
    if stream is None:
        stream = streams[device] = torch.cuda.Stream(device)
    return torch.cuda.stream(stream)


def used_here(tensor: torch.Tensor) -> torch.Tensor:
    """Mark ``tensor`` (made on another stream) as used by the current CUDA stream, so that its memory is not reused
    before this stream's work on it is done; ``tensor`` itself is returned. A no-op off CUDA."""
    if tensor.device.type == "cuda":
        tensor.record_stream(torch.cuda.current_stream(tensor.device))
    return tensor


def finish(device: torch.device | None) -> None:
    """Wait for the current stream's work on ``device`` (CUDA), so that what it made can go to another stage; a no-op
    elsewhere."""
    if device is not None and device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def upload(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host array on ``device``: through pinned memory without blocking on CUDA, as is elsewhere. A tensor (a plan
    made on the device, :mod:`~stereoconv.device_plan`) is passed through: itself where it already is, else moved."""
    if isinstance(array, torch.Tensor):
        return array.to(device)  # the tensor itself, not a copy, when it is on ``device``
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[H, W, C] pixels (uint8 or uint16) at ``height`` x ``width``: area-averaged when
    shrinking, bilinear when growing (as OpenCV's INTER_AREA and INTER_LINEAR), rounded back to the dtype."""
    if tuple(pixels.shape[:2]) == (height, width):
        return pixels
    shrink = height <= pixels.shape[0] and width <= pixels.shape[1]
    x = pixels.permute(2, 0, 1)[None].to(torch.float32)
    if shrink:
        x = F.interpolate(x, size=(height, width), mode="area")
    else:
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, PIXEL_TOP[pixels.dtype]).to(pixels.dtype)


def eye_disparity_torch(plan: StereoPlan, guide: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:meth:`StereoPlan.eye_disparity` on ``guide``'s device: ``guide`` is the uint8 frame at ``height`` x ``width``
    (it is read only when the plan refines edges)."""
    disparity = upload(plan.disparity, guide.device)
    frame_width = plan.frame[1] if plan.frame is not None else plan.disparity.shape[1]
    if tuple(disparity.shape) != (height, width):
        disparity = F.interpolate(disparity[None, None], size=(height, width), mode="bilinear", align_corners=False)[
            0, 0
        ]
    if width != frame_width:
        disparity = disparity * (width / frame_width)
    if plan.edges is None:
        return disparity
    edges = plan.edges
    return refine_disparity_torch(guide, disparity, scale=edges.scale(height, width), split=edges.split,
                                  thin=edges.thin)  # fmt: skip


def render_plan_torch(
    source: torch.Tensor, plan: StereoPlan, size: tuple[int, int] | None = None, guide: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~stereoconv.parallax.render_plan` on ``source``'s device: both eyes ([h, w, C], the dtype of
    ``source``: uint8, or uint16 from a deep source) at ``size`` = (height, width) (None: the
    frame's), the window bands masked. ``guide``: the uint8 frame the edges are refined against (None: ``source``)."""
    height, width = source.shape[:2]
    eye_height, eye_width = size if size is not None else (height, width)
    guide = source if guide is None else guide
    resized = _resize(source, eye_height, eye_width)
    guide = resized if guide is source else _resize(guide, eye_height, eye_width)
    disparity = eye_disparity_torch(plan, guide, eye_height, eye_width)
    if not bool(disparity.any()):  # flat: both eyes see the source
        left, right = resized.clone(), resized.clone()
    else:
        left = synthesize_view_torch(resized, disparity, +1)
        right = synthesize_view_torch(resized, disparity, -1)
    frame_width = plan.frame[1] if plan.frame is not None else width
    # Halves round up, as render_views rounds them.
    band_left, band_right = (min(eye_width, math.floor(b * eye_width / frame_width + 0.5)) for b in plan.window)
    if band_left > 0:
        left[:, :band_left] = 0
    if band_right > 0:
        right[:, eye_width - band_right :] = 0
    return left, right


def _srgb(linear: torch.Tensor) -> torch.Tensor:
    x = linear.clamp(0.0, 1.0)
    encoded = torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.pow(1 / 2.4) - 0.055)
    return (encoded * 255.0).round().to(torch.uint8)


def pack_torch(left: torch.Tensor, right: torch.Tensor, layout: Layout, frame: tuple[int, int]) -> torch.Tensor:
    """:func:`~stereoconv.packing.pack` on the eyes' device, for a source of ``frame`` = (width, height)."""
    eye_width, eye_height = eye_size(*frame, layout)
    left, right = _resize(left, eye_height, eye_width), _resize(right, eye_height, eye_width)
    if layout.endswith("sbs"):
        return torch.cat((left, right), dim=1)
    if layout.endswith("tb"):
        return torch.cat((left, right), dim=0)
    if layout == "anaglyph":
        table = torch.as_tensor(TO_LINEAR, device=left.device)
        matrices = torch.as_tensor(np.stack((DUBOIS_LEFT, DUBOIS_RIGHT)), device=left.device)
        linear = table[left.long()] @ matrices[0].T + table[right.long()] @ matrices[1].T
        return _srgb(linear)
    raise ValueError(f"unknown layout {layout!r}: choose one of half-sbs, full-sbs, half-tb, full-tb, anaglyph")


def _pixels(source: np.ndarray, rgb: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``source`` and the uint8 ``rgb`` guide on ``device``, each uploaded once (one tensor for an 8-bit source)."""
    pixels = upload(source, device)
    return pixels, upload(rgb, device) if source.dtype == np.uint16 else pixels


def render_eyes(
    source: np.ndarray, rgb: np.ndarray, plan: StereoPlan, device: torch.device, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both eyes rendered on ``device`` and brought back (for a frame something is drawn into on the host, such as
    a subtitle cue), at ``size`` = (height, width) (None: the frame's)."""
    pixels, guide = _pixels(source, rgb, device)
    left, right = render_plan_torch(pixels, plan, size, guide)
    return left.cpu().numpy(), right.cpu().numpy()


def render_packed(
    source: np.ndarray,
    rgb: np.ndarray,
    plan: StereoPlan,
    layout: Layout,
    device: torch.device,
    packed_size: bool = False,
) -> np.ndarray:
    """One planned frame rendered and packed on ``device``; the packed frame comes back (numpy, the dtype of
    ``source``). ``source``: what the output is rendered from (uint8, or uint16 from a deep source); ``rgb``: the
    uint8 frame (the refinement's guide; the same array as ``source`` for an 8-bit source). ``packed_size``: a half
    layout's eyes rendered at their packed size (``output.render_size``)."""
    height, width = rgb.shape[:2]
    pixels, guide = _pixels(source, rgb, device)
    size = None
    if packed_size:
        eye_width, eye_height = eye_size(width, height, layout)
        size = (eye_height, eye_width)
    left, right = render_plan_torch(pixels, plan, size, guide)
    return pack_torch(left, right, layout, (width, height)).cpu().numpy()
