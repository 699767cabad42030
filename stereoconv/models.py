"""Depth model families: how each is fed, what it outputs, and the checkpoints people use.

One table, :data:`FAMILIES`, keyed by the ``model_type`` transformers maps to ``AutoModelForDepthEstimation``. For
each family it says how frames are sized for the model (its own fixed size, a square, or the frame's aspect kept and
rounded to a multiple, and what ``depth.input_size`` means for it), what the model outputs (relative inverse depth,
metric depth, or something that is not depth) and so how that becomes stereoconv's relative inverse depth
(**larger = nearer**). :func:`resolve` reads a model's ``config.json`` and ``preprocessor_config.json`` (as dicts)
against the table: the config decides where it says (``depth_estimation_type``, a hybrid or DINOv2 backbone, bins),
the family otherwise; a family the table does not know is used with a note saying what was assumed; a model whose
output is not depth is refused. Odd processor values are handled or refused in one line naming the value.

:data:`CHECKPOINTS` lists recommended published checkpoints with their licence, for ``stereoconv models``.

Nothing here imports torch or transformers: ``stereoconv models`` and the depth cache's fingerprint use it as is.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import DEPTH_OUTPUTS
from .errors import ModelError

OUTPUTS = DEPTH_OUTPUTS
"""``depth.output``: what a model's raw output is. ``auto``: the family table; ``inverse``: inverse depth (larger =
nearer), used as is; ``metric``: distance (metres, or any unit: larger = farther), turned into ``1 / depth``."""

METRIC_FLOOR = 1e-3
"""Metric depth is floored at this (1 mm in metres) before ``1 / depth``: a zero or negative output stays finite."""

Sizing = Literal["aspect", "square", "fixed"]
Output = Literal["inverse", "metric"]

# PIL resample codes (what preprocessor_config.json stores) -> torch interpolate modes.
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "area", 5: "bilinear"}
IMAGENET_DEFAULT = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGENET_STANDARD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Preprocessing:
    """How frames become model input.

    ``fixed``: the model's one input size (height, width), whatever the frame. Otherwise ``input_size`` is the short
    side of the input with ``keep_aspect_ratio`` (None: the frame's own short side), or the side of a square input
    without it; both sides are rounded to a multiple of ``multiple``. ``pad_reflect``: the frame is first padded by
    reflection by ``int(3 * sqrt(side / 2))`` pixels on each side (ZoeDepth's own padding), and :meth:`crop` takes
    the same share off the output.
    """

    input_size: int | None = 518
    keep_aspect_ratio: bool = True
    multiple: int = 14
    resample: str = "bicubic"
    rescale: float = 1 / 255
    mean: tuple[float, float, float] = IMAGENET_DEFAULT[0]
    std: tuple[float, float, float] = IMAGENET_DEFAULT[1]
    fixed: tuple[int, int] | None = None
    pad_reflect: bool = False

    @classmethod
    def from_processor_config(cls, cfg: Mapping[str, Any], input_size: int | None = None) -> Preprocessing:
        """A Depth Anything-style (DPT image processor) reading of ``cfg``; see :func:`resolve` for every family."""
        return resolve({"model_type": "depth_anything"}, cfg, input_size).prep

    def padding(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of reflection padding on each side of a ``height`` x ``width`` frame (0 without it)."""
        if not self.pad_reflect:
            return 0, 0
        return int(math.sqrt(height / 2) * 3), int(math.sqrt(width / 2) * 3)

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """Model input (height, width) for a frame of ``height`` x ``width`` (padding included)."""
        if self.fixed is not None:
            return self.fixed
        pad_h, pad_w = self.padding(height, width)
        height, width = height + 2 * pad_h, width + 2 * pad_w
        side = self.input_size if self.input_size is not None else min(height, width)
        if not self.keep_aspect_ratio:
            return self._round(side), self._round(side)
        scale = side / min(height, width)
        return self._round(height * scale), self._round(width * scale)

    def _round(self, value: float) -> int:
        return max(self.multiple, math.floor(value / self.multiple + 0.5) * self.multiple)

    def describe(self) -> str:
        """e.g. ``"keeps the frame's aspect, short side 518, multiple of 14"``."""
        if self.fixed is not None:
            return f"fixed {self.fixed[0]}x{self.fixed[1]}"
        side = "the frame's own" if self.input_size is None else str(self.input_size)
        pad = ", reflection-padded" if self.pad_reflect else ""
        if self.keep_aspect_ratio:
            return f"keeps the frame's aspect, short side {side}, multiple of {self.multiple}{pad}"
        return f"square, side {side}, multiple of {self.multiple}{pad}"


@dataclass(frozen=True)
class Family:
    """One ``model_type``: how it is fed and what it outputs (see the module docstring)."""

    model_type: str
    name: str
    sizing: Sizing  # aspect: keep the frame's aspect; square; fixed: the model's one size
    output: Output | None  # None: the output is not depth (refused)
    output_text: str  # what the raw output is, in words and units
    input_text: str  # what depth.input_size means for it
    multiple: int  # the model's own granularity (its patch grid): sides are rounded to a multiple of it
    processor: Mapping[str, Any]  # the image-processor class defaults: what a key missing from the config means
    refusal: str | None = None


_DPT_PROCESSOR = {"size": {"height": 384, "width": 384}, "keep_aspect_ratio": False, "ensure_multiple_of": 1,
                  "resample": 3, "image_mean": IMAGENET_STANDARD[0], "image_std": IMAGENET_STANDARD[1]}  # fmt: skip

FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("depth_anything", "Depth Anything V1/V2", "aspect", "inverse",
           "relative inverse depth: used as is; metric depth (m, up to max_depth) when the config says "
           "depth_estimation_type = metric: 1/depth",
           "short side, frame aspect kept, multiple of the patch (14); unset: the processor's 518", 14,
           _DPT_PROCESSOR),
    Family("prompt_depth_anything", "Prompt Depth Anything", "aspect", "metric",
           "metric checkpoints (depth_estimation_type = metric) output depth normalized to a LiDAR prompt's range "
           "(larger = farther); video has no prompt, so it is relative depth: 1/depth; relative checkpoints: used "
           "as is", "short side, frame aspect kept, multiple of the patch (14); unset: the processor's 756", 14,
           _DPT_PROCESSOR),
    Family("dpt", "DPT / MiDaS v3", "square", "inverse",
           "relative inverse depth (MiDaS): used as is; on a DINOv2 backbone (the NYU/KITTI heads) metric depth "
           "(m): 1/depth; a metric fine-tune of another DPT cannot say so in its config: set depth.output = metric",
           "ViT: side of the square input, multiple of 32 (unset: the processor's 384); hybrid (BiT): ignored, it "
           "runs at its fixed image_size (384); DINOv2 backbone: short side, frame aspect kept (unset: the frame's "
           "own)", 32, _DPT_PROCESSOR),
    Family("zoedepth", "ZoeDepth", "aspect", "metric", "metric depth (m), from its metric bins: 1/depth",
           "short side, frame aspect kept, multiple of 32 (unset: the processor's 384); the frame is "
           "reflection-padded first and the padding cropped off the output, as ZoeDepth does", 32,
           {"size": {"height": 384, "width": 512}, "keep_aspect_ratio": True, "ensure_multiple_of": 1 / 32,
            "resample": 2, "do_pad": True, "image_mean": IMAGENET_STANDARD[0], "image_std": IMAGENET_STANDARD[1]}),
    Family("depth_pro", "Depth Pro", "fixed", "inverse",
           "canonical inverse depth (1/m once scaled by the focal length from its field of view, one factor per "
           "frame that normalization removes): used as is",
           "ignored: it runs at its fixed size, patch_size / smallest scaled_images_ratio (1536x1536)", 1,
           {"size": {"height": 1536, "width": 1536}, "keep_aspect_ratio": False, "resample": 2,
            "image_mean": IMAGENET_STANDARD[0], "image_std": IMAGENET_STANDARD[1]}),
    Family("glpn", "GLPN", "aspect", "metric", "metric depth (m, up to max_depth: NYU 10, KITTI 80): 1/depth",
           "short side, frame aspect kept, multiple of 32 (unset: the frame's own size, as its processor does)", 32,
           {"size_divisor": 32, "resample": 2, "do_normalize": False}),
    Family("tipsv2_dpt", "TIPSv2 DPT", "square", "metric", "metric depth (m), from depth bins: 1/depth",
           "side of the square input, multiple of the patch (14); unset: the processor's 448", 14,
           {"size": {"height": 448, "width": 448}, "keep_aspect_ratio": False, "resample": 2,
            "do_normalize": False}),
    Family("chmv2", "CHMv2", "aspect", None, "canopy height (m above ground), not depth: refused", "-", 16,
           {"do_resize": False}, refusal="it predicts canopy height (metres above ground), not depth"),
)}  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`resolve` decided for one model: how to feed it and how its output becomes inverse depth."""

    model_type: str
    family: str
    prep: Preprocessing
    output: Output  # inverse: used as is; metric: 1 / max(depth, METRIC_FLOOR)
    output_text: str  # what the raw output is and why stereoconv thinks so
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One line: family, input sizing, output and its conversion."""
        how = "used as is" if self.output == "inverse" else f"1 / max(depth, {METRIC_FLOOR:g})"
        return f"{self.family} ({self.model_type}): input {self.prep.describe()}; output {self.output_text} -> {how}"


def resolve(
    model_config: Mapping[str, Any],
    processor_config: Mapping[str, Any],
    input_size: int | None = None,
    output: str = "auto",
    *,
    name: str = "the model",
) -> ModelSpec:
    """Decide how to feed a model and read its output, from its configs and the family table.

    ``model_config``: the model's ``config.json`` as a dict (``model_type``, sub-configs as dicts; keys may be missing:
    they then take their transformers defaults). ``processor_config``: its ``preprocessor_config.json``.
    ``input_size``: ``depth.input_size`` (None: the model's own size). ``output``: ``depth.output``. ``name``: the
    model as the user named it, for messages. Raises ModelError (one line naming the value) for a model whose output
    is not depth or an unusable processor value.
    """
    if output not in OUTPUTS:
        raise ModelError(f"depth.output = {output!r} is not one of {', '.join(OUTPUTS)}")
    model_type = str(model_config.get("model_type") or "")
    family = FAMILIES.get(model_type)
    notes: list[str] = []
    if family is not None and family.refusal is not None:
        raise ModelError(f"{name} is a {family.name} model ({model_type}): {family.refusal}; "
                         "stereoconv needs a depth model (`stereoconv models` lists them)")  # fmt: skip
    if family is None:
        family = Family(model_type or "unknown", model_type or "unknown family", "aspect", "inverse",
                        "assumed relative inverse depth", "short side, frame aspect kept", 1,
                        _DPT_PROCESSOR)  # fmt: skip
        notes.append(f"model type {model_type or '(none)'!r} of {name} is not in stereoconv's table of depth "
                     "families: assumed its output is relative inverse depth (larger = nearer) and sized it as its "
                     "preprocessor_config.json says (DPT-processor defaults where it is silent); if it predicts "
                     "distance set depth.output = metric")  # fmt: skip
    given = {k: v for k, v in processor_config.items() if v is not None}
    prep = _preprocessing(family, model_config, {**family.processor, **given}, given, input_size, notes, name)
    kind, text = _output_kind(family, model_config)
    if output != "auto":
        text = f"{'inverse depth' if output == 'inverse' else 'metric depth'} (depth.output = {output})"
        kind = output  # type: ignore[assignment]
    return ModelSpec(model_type or "unknown", family.name, prep, kind, text, tuple(notes))


def _output_kind(family: Family, cfg: Mapping[str, Any]) -> tuple[Output, str]:
    """The family's output kind, refined by what the config says."""
    kind = family.output or "inverse"
    if family.model_type in ("depth_anything", "prompt_depth_anything"):
        estimation = cfg.get("depth_estimation_type") or "relative"
        if estimation == "metric":
            max_depth = cfg.get("max_depth")
            unit = f"m, up to {max_depth:g}" if isinstance(max_depth, numbers.Real) else "0-1, relative"
            if family.model_type == "depth_anything":
                return "metric", f"metric depth ({unit}; config depth_estimation_type = metric)"
            return "metric", ("depth normalized to a prompt's range, larger = farther (config depth_estimation_type = "
                              "metric; no prompt depth is given, so it is relative depth)")  # fmt: skip
        return "inverse", "relative inverse depth (config depth_estimation_type = relative)"
    if family.model_type == "dpt":
        backbone = cfg.get("backbone_config") or {}
        if not cfg.get("is_hybrid") and isinstance(backbone, Mapping) and backbone.get("model_type") == "dinov2":
            return "metric", "metric depth (m; DPT head on a DINOv2 backbone: the NYU/KITTI metric heads)"
        return "inverse", "relative inverse depth (MiDaS DPT)"
    if family.model_type == "zoedepth":
        bins = cfg.get("bin_configurations") or [{"name": "nyu", "max_depth": 10.0}]
        ranges = ", ".join(f"{b.get('name', '?')} up to {b.get('max_depth', '?')} m" for b in bins)
        return "metric", f"metric depth (m; metric bins: {ranges})"
    if family.model_type == "glpn":
        return "metric", f"metric depth (m, up to max_depth {cfg.get('max_depth', 10)})"
    if family.model_type == "tipsv2_dpt":
        return "metric", f"metric depth (m, depth bins up to max_depth {cfg.get('max_depth', 10.0)})"
    if family.model_type == "depth_pro":
        return "inverse", "canonical inverse depth (metric once scaled by the focal length; one factor per frame)"
    return kind, family.output_text


def _preprocessing(
    family: Family,
    cfg: Mapping[str, Any],
    proc: Mapping[str, Any],
    given: Mapping[str, Any],
    input_size: int | None,
    notes: list[str],
    name: str,
) -> Preprocessing:
    """Model input sizing and normalization from the processor values (``given``: those the checkpoint states;
    ``proc``: with its class defaults) and the model config."""
    resample_code = proc.get("resample", 3)
    if not isinstance(resample_code, int) or isinstance(resample_code, bool) or resample_code not in _RESAMPLE:
        raise ModelError(f"{name}: preprocessor_config.json resample = {resample_code!r} is not a PIL resampling "
                         f"filter (0-5)")  # fmt: skip
    do_rescale = proc.get("do_rescale", True)
    rescale = _number(proc.get("rescale_factor", 1 / 255), "rescale_factor", name) if do_rescale else 1.0
    if proc.get("do_normalize", True):
        mean = _triple(proc.get("image_mean", IMAGENET_DEFAULT[0]), "image_mean", name)
        std = _triple(proc.get("image_std", IMAGENET_DEFAULT[1]), "image_std", name)
        if any(s <= 0 for s in std):
            raise ModelError(f"{name}: preprocessor_config.json image_std = {list(std)} must be positive")
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    common = {"resample": _RESAMPLE[resample_code], "rescale": rescale, "mean": mean, "std": std}

    fixed = _fixed_size(family, cfg, name)
    if fixed is not None:
        if input_size is not None and input_size != min(fixed):
            notes.append(f"depth.input_size = {input_size} is ignored: {family.name} runs at its fixed "
                         f"{fixed[0]}x{fixed[1]}")  # fmt: skip
        return Preprocessing(input_size=None, keep_aspect_ratio=False, multiple=1, fixed=fixed, **common)

    own = {k: proc[k] for k in ("ensure_multiple_of", "size_divisor") if k in given}
    multiple = math.lcm(_processor_multiple(own or proc, notes, name), _model_multiple(family, cfg))
    size = None if proc.get("do_resize", True) is False else _short_side(proc.get("size"), name)
    keep_aspect = bool(proc.get("keep_aspect_ratio", True)) or size is None  # unresized: the frame's own aspect
    on_backbone = isinstance(cfg.get("backbone_config"), Mapping)
    if family.sizing == "square" and not (family.model_type == "dpt" and on_backbone):
        keep_aspect = False  # a ViT DPT reassembles its tokens as a square grid; TIPSv2 is trained on squares
    if size is None and not keep_aspect:
        size = _short_side(family.processor.get("size"), name)
    pad = bool(proc.get("do_pad", False)) and family.model_type == "zoedepth"
    return Preprocessing(input_size=input_size or size, keep_aspect_ratio=keep_aspect, multiple=multiple,
                         pad_reflect=pad, **common)  # fmt: skip


def _fixed_size(family: Family, cfg: Mapping[str, Any], name: str) -> tuple[int, int] | None:
    """The one input size of models that accept no other (DPT-hybrid, Depth Pro), else None."""
    if family.model_type == "dpt" and cfg.get("is_hybrid"):
        return _pair(cfg.get("image_size", 384), "config image_size", name)
    if family.model_type == "depth_pro":
        patch = _pair(cfg.get("patch_size", 384), "config patch_size", name)
        ratios = cfg.get("scaled_images_ratios") or (0.25, 0.5, 1)
        try:
            smallest = min(float(r) for r in ratios)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{name}: config scaled_images_ratios = {ratios!r} is not a list of numbers") from exc
        if not 0 < smallest <= 1:
            raise ModelError(f"{name}: config scaled_images_ratios = {list(ratios)} must lie in (0, 1]")
        return round(patch[0] / smallest), round(patch[1] / smallest)
    return None


def _model_multiple(family: Family, cfg: Mapping[str, Any]) -> int:
    """The model's own granularity: its patch grid (a DPT ViT's fusion needs two patches)."""
    backbone = cfg.get("backbone_config")
    patch = None
    if isinstance(backbone, Mapping) and isinstance(backbone.get("patch_size"), int):
        patch = backbone["patch_size"]
    elif isinstance(cfg.get("patch_size"), int) and family.model_type != "depth_pro":
        patch = cfg["patch_size"]
    if family.model_type == "dpt" and not isinstance(backbone, Mapping):
        return 2 * (patch or 16)
    if family.model_type in ("zoedepth", "glpn"):
        return 32
    return patch if patch and patch > 0 else family.multiple


def _processor_multiple(proc: Mapping[str, Any], notes: list[str], name: str) -> int:
    """``ensure_multiple_of`` (or ``size_divisor``) as a whole number of pixels.

    transformers rounds to a fractional multiple and truncates, so a value below 1 (ZoeDepth's class default is
    1/32) means no rounding at all; the model's own multiple still applies.
    """
    for key in ("ensure_multiple_of", "size_divisor"):  # the checkpoint's own value first, then the class default
        if proc.get(key) is not None:
            break
    else:
        return 1
    value = proc[key]
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ModelError(f"{name}: preprocessor_config.json {key} = {value!r} is not a positive number of pixels")
    if value < 1:
        notes.append(f"{name}: preprocessor_config.json {key} = {value:g} is below 1 pixel: read as 1 (no rounding, "
                     "as transformers does); the model's own multiple applies")  # fmt: skip
        return 1
    if value != int(value):
        raise ModelError(f"{name}: preprocessor_config.json {key} = {value!r} is not a whole number of pixels")
    return int(value)


def _short_side(size: Any, name: str) -> int | None:
    """The short side a processor ``size`` asks for: {height, width}, {shortest_edge}, or a number."""
    if size is None:
        return None
    if isinstance(size, Mapping):
        sides = [size[k] for k in ("height", "width", "shortest_edge") if size.get(k) is not None]
        if not sides:
            raise ModelError(f"{name}: preprocessor_config.json size = {dict(size)!r} has no height, width or "
                             "shortest_edge")  # fmt: skip
    elif isinstance(size, Sequence) and not isinstance(size, str):
        sides = list(size)
    else:
        sides = [size]
    if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and s >= 1 for s in sides):
        raise ModelError(f"{name}: preprocessor_config.json size = {size!r} is not a size in pixels")
    return int(min(sides))


def _pair(value: Any, what: str, name: str) -> tuple[int, int]:
    pair = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value, value]
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ModelError(f"{name}: {what} = {value!r} is not a size in pixels")
    return int(pair[0]), int(pair[1])


def _number(value: Any, key: str, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ModelError(f"{name}: preprocessor_config.json {key} = {value!r} is not a positive number")
    return float(value)


def _triple(value: Any, key: str, name: str) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, numbers.Real) else value
    if (not isinstance(values, Sequence) or isinstance(values, str) or len(values) != 3
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)):  # fmt: skip
        raise ModelError(f"{name}: preprocessor_config.json {key} = {value!r} is not 3 numbers (R, G, B)")
    return float(values[0]), float(values[1]), float(values[2])


# ------------------------------------------------------------------------------------------ recommended models


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint people use, as ``stereoconv models`` lists it."""

    repo: str
    family: str  # model_type
    licence: str
    input: str  # the input size it runs at with depth.input_size unset
    scale: Literal["relative", "metric"]
    note: str = ""

    def download_command(self, directory: str | None = None) -> str:
        """The ``hf download`` line that fetches it for an offline machine."""
        return f"hf download {self.repo} --local-dir {directory or local_dir_name(self.repo)}"


def local_dir_name(repo: str) -> str:
    """A local directory name for a hub id: its last part (``Intel/dpt-large`` -> ``dpt-large``)."""
    return repo.rsplit("/", 1)[-1]


CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("depth-anything/Depth-Anything-V2-Small-hf", "depth_anything", "Apache-2.0", "518 short side",
               "relative", "the default"),
    Checkpoint("depth-anything/Depth-Anything-V2-Base-hf", "depth_anything", "CC-BY-NC-4.0", "518 short side",
               "relative", "non-commercial"),
    Checkpoint("depth-anything/Depth-Anything-V2-Large-hf", "depth_anything", "CC-BY-NC-4.0", "518 short side",
               "relative", "non-commercial"),
    Checkpoint("LiheYoung/depth-anything-small-hf", "depth_anything", "Apache-2.0", "518 short side", "relative",
               "Depth Anything V1"),
    Checkpoint("Intel/dpt-large", "dpt", "Apache-2.0", "384x384", "relative", "MiDaS v3 DPT-Large"),
    Checkpoint("Intel/dpt-hybrid-midas", "dpt", "Apache-2.0", "384x384 fixed", "relative", "MiDaS v3 DPT-Hybrid"),
    Checkpoint("Intel/zoedepth-nyu", "zoedepth", "MIT", "384 short side", "metric", "indoor"),
    Checkpoint("Intel/zoedepth-kitti", "zoedepth", "MIT", "384 short side", "metric", "outdoor"),
    Checkpoint("Intel/zoedepth-nyu-kitti", "zoedepth", "MIT", "384 short side", "metric", "indoor and outdoor"),
    Checkpoint("apple/DepthPro-hf", "depth_pro", "apple-amlr", "1536x1536 fixed", "metric",
               "Apple ML research licence: research use only"),
    Checkpoint("depth-anything/prompt-depth-anything-vits-hf", "prompt_depth_anything", "Apache-2.0",
               "756 short side", "metric", "no LiDAR prompt in video: relative depth"),
)  # fmt: skip
"""Licences as the model cards state them; read the card before a commercial use."""


def installed_families() -> list[str] | None:
    """The ``model_type`` names the installed transformers maps to ``AutoModelForDepthEstimation`` (None: no
    transformers)."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES
    except ImportError:
        return None
    return list(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)


def models_table(installed: Sequence[str] | None = None) -> str:
    """The text ``stereoconv models`` prints: the families (those ``installed`` marked) and :data:`CHECKPOINTS`.

    ``installed``: the ``model_type`` names the installed transformers maps to ``AutoModelForDepthEstimation``
    (None: not checked).
    """
    lines = ["Depth model families (transformers AutoModelForDepthEstimation), as stereoconv feeds and reads them:"]
    for fam in FAMILIES.values():
        if fam.refusal is not None:
            works = "refused: not depth"
        elif installed is None or fam.model_type in installed:
            works = "works"
        else:
            works = "not in the installed transformers"
        lines += ["", f"{fam.model_type} ({fam.name}): {works}"]
        lines += _wrap(f"input:  {fam.input_text}", 116, "  ", "          ")
        lines += _wrap(f"output: {fam.output_text}", 116, "  ", "          ")
    for model_type in installed or ():
        if model_type not in FAMILIES:
            lines += ["", f"{model_type}: not in stereoconv's table: loaded with a note, its output assumed relative "
                      "inverse depth, sized as its processor config says"]  # fmt: skip
    lines += ["", "Recommended checkpoints (licence as the model card states it: read it before commercial use):", ""]
    rows = [("model", "family", "licence", "input", "depth", "note")]
    rows += [(c.repo, c.family, c.licence, c.input, c.scale, c.note) for c in CHECKPOINTS]
    lines += _format(rows)
    lines += ["", "Offline machines: on a connected machine run (huggingface_hub's `hf` command), copy the directory "
              "over and pass it: --model DIR", ""]  # fmt: skip
    lines += [f"  {c.download_command()}" for c in CHECKPOINTS]
    lines += ["", "Metric depth becomes relative inverse depth as 1/depth (larger = nearer). A checkpoint whose config "
              "cannot say it predicts metric depth (a metric DPT fine-tune): --set depth.output=metric."]  # fmt: skip
    return "\n".join(lines)


def _format(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest)
