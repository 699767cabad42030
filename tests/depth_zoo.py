"""Tiny random-weight models of every depth family transformers maps to ``AutoModelForDepthEstimation``.

Each maker saves a model with ``save_pretrained`` and writes the ``preprocessor_config.json`` the published
checkpoints of its family carry (sizes, multiples, means), so ``from_pretrained(dir)`` and stereoconv's reading of
the processor config run as they do on the real checkpoints. Hidden sizes are 16-32 and layers 1-4: each model
loads and runs on a 96x64 frame in well under a second on a CPU.

Used by tests/test_model_families.py and benchmarks/model_matrix.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
HALF = [0.5, 0.5, 0.5]


@dataclass(frozen=True)
class Sample:
    """One model to build: its family (``model_type``), a label for tables, what the published checkpoint is."""

    name: str
    model_type: str
    like: str  # the published checkpoint whose configs this mimics
    build: Callable[[], tuple[Any, Mapping[str, Any]]]  # -> (model, preprocessor config)
    units: str  # what its predicted_depth is, read from transformers' code: "inverse" (larger = nearer) or "metric"
    expect_input: str | None = None  # the model input (h x w) stereoconv should use for a 64x96 frame, unset
    expect_refused: str | None = None  # the reason stereoconv refuses it, if it does

    def save(self, directory: Path, seed: int = 0) -> Path:
        """Build with ``seed`` and save the model and its preprocessor config to ``directory``."""
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        model, processor = self.build()
        model.eval().save_pretrained(directory)
        (directory / "preprocessor_config.json").write_text(json.dumps(dict(processor), indent=2))
        return directory


def _dinov2(**kw: Any) -> Any:
    from transformers import Dinov2Config

    args = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, patch_size=14, image_size=56,
                out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)  # fmt: skip
    return Dinov2Config(**{**args, **kw})


def _depth_anything(metric: bool = False) -> tuple[Any, Mapping[str, Any]]:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    config = DepthAnythingConfig(
        backbone_config=_dinov2(), reassemble_hidden_size=32, neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16, head_hidden_size=8, patch_size=14,
        **({"depth_estimation_type": "metric", "max_depth": 20} if metric else {}),
    )  # fmt: skip
    processor = {"image_processor_type": "DPTImageProcessor", "do_resize": True, "size": {"height": 518, "width": 518},
                 "keep_aspect_ratio": True, "ensure_multiple_of": 14, "resample": 3, "do_rescale": True,
                 "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": IMAGENET_MEAN,
                 "image_std": IMAGENET_STD, "do_pad": False}  # fmt: skip
    return DepthAnythingForDepthEstimation(config), processor


def _prompt_depth_anything() -> tuple[Any, Mapping[str, Any]]:
    from transformers import PromptDepthAnythingConfig, PromptDepthAnythingForDepthEstimation

    config = PromptDepthAnythingConfig(
        backbone_config=_dinov2(apply_layernorm=True), reassemble_hidden_size=32, neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16, head_hidden_size=8, patch_size=14, depth_estimation_type="metric", max_depth=None,
    )  # fmt: skip
    processor = {"image_processor_type": "PromptDepthAnythingImageProcessor", "do_resize": True, "size": 756,
                 "ensure_multiple_of": 14, "keep_aspect_ratio": True, "do_rescale": True, "do_normalize": True,
                 "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD}  # fmt: skip
    return PromptDepthAnythingForDepthEstimation(config), processor


def _dpt_vit() -> tuple[Any, Mapping[str, Any]]:  # Intel/dpt-large: MiDaS v3 on a ViT
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                       image_size=64, patch_size=16, backbone_out_indices=[0, 1, 2, 3],
                       neck_hidden_sizes=[16, 16, 16, 16], fusion_hidden_size=16)  # fmt: skip
    processor = {"feature_extractor_type": "DPTFeatureExtractor", "do_resize": True, "size": 384, "resample": 2,
                 "do_normalize": True, "image_mean": HALF, "image_std": HALF}  # fmt: skip
    return DPTForDepthEstimation(config), processor


def _dpt_hybrid() -> tuple[Any, Mapping[str, Any]]:  # Intel/dpt-hybrid-midas: ViT on a BiT backbone, fixed size
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

    backbone = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[32, 32, 64],
                         embedding_size=32, out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True,
                         num_groups=8)  # fmt: skip
    config = DPTConfig(is_hybrid=True, backbone_config=backbone, hidden_size=32, num_hidden_layers=4,
                       num_attention_heads=2, intermediate_size=64, image_size=64, patch_size=16,
                       backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[32, 32, 16, 16], fusion_hidden_size=16,
                       backbone_featmap_shape=[1, 64, 4, 4], reassemble_factors=[1, 1, 1, 0.5])  # fmt: skip
    processor = {"feature_extractor_type": "DPTFeatureExtractor", "do_resize": True, "size": 384, "resample": 2,
                 "do_normalize": True, "image_mean": HALF, "image_std": HALF}  # fmt: skip
    return DPTForDepthEstimation(config), processor


def _dpt_dinov2() -> tuple[Any, Mapping[str, Any]]:  # facebook/dpt-dinov2-small-nyu: metric, unresized, padded to 14
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(backbone_config=_dinov2(apply_layernorm=False), neck_hidden_sizes=[16, 16, 16, 16],
                       use_bias_in_fusion_residual=False, add_projection=True)  # fmt: skip
    processor = {"image_processor_type": "DPTImageProcessor", "do_resize": False, "do_rescale": False, "do_pad": True,
                 "size_divisor": 14, "do_normalize": True, "image_mean": [123.675, 116.28, 103.53],
                 "image_std": [58.395, 57.12, 57.375]}  # fmt: skip
    return DPTForDepthEstimation(config), processor


def _zoedepth(multiple: float = 32) -> tuple[Any, Mapping[str, Any]]:  # Intel/zoedepth-nyu (one bin configuration)
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation

    backbone = BeitConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=64, use_relative_position_bias=True, reshape_hidden_states=False,
                          out_features=["stage1", "stage2", "stage3", "stage4"])  # fmt: skip
    bins = [{"n_bins": 8, "min_depth": 1e-3, "max_depth": 10.0, "name": "nyu"}]
    config = ZoeDepthConfig(backbone_config=backbone, neck_hidden_sizes=[16, 16, 16, 16], fusion_hidden_size=16,
                            bottleneck_features=16, num_relative_features=8, bin_embedding_dim=8,
                            num_attractors=[2, 2, 2, 1], bin_configurations=bins, num_patch_transformer_layers=4,
                            patch_transformer_hidden_size=16, patch_transformer_intermediate_size=32,
                            patch_transformer_num_attention_heads=2)  # fmt: skip
    processor = {"image_processor_type": "ZoeDepthImageProcessor", "do_pad": True, "do_rescale": True,
                 "do_normalize": True, "image_mean": HALF, "image_std": HALF, "do_resize": True,
                 "size": {"height": 384, "width": 512}, "resample": 2, "keep_aspect_ratio": True,
                 "ensure_multiple_of": multiple}  # fmt: skip
    return ZoeDepthForDepthEstimation(config), processor


def _depth_pro() -> tuple[Any, Mapping[str, Any]]:  # apple/DepthPro-hf: fixed 1536x1536 (here 128x128)
    from transformers import DepthProConfig, DepthProForDepthEstimation

    sub = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
           "mlp_ratio": 2, "patch_size": 16, "image_size": 32}  # fmt: skip
    config = DepthProConfig(patch_size=32, fusion_hidden_size=16, intermediate_hook_ids=[1, 0],
                            intermediate_feature_dims=[16, 16], scaled_images_feature_dims=[16, 16, 16],
                            image_model_config=dict(sub), patch_model_config=dict(sub), fov_model_config=dict(sub),
                            use_fov_model=True)  # fmt: skip
    processor = {"image_processor_type": "DepthProImageProcessor", "do_resize": True,
                 "size": {"height": 128, "width": 128}, "resample": 2, "do_rescale": True, "do_normalize": True,
                 "image_mean": HALF, "image_std": HALF}  # fmt: skip
    return DepthProForDepthEstimation(config), processor


def _glpn() -> tuple[Any, Mapping[str, Any]]:  # vinvino02/glpn-nyu: metric, the frame's own size floored to 32
    from transformers import GLPNConfig, GLPNForDepthEstimation

    config = GLPNConfig(hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 2],
                        decoder_hidden_size=16, max_depth=10)  # fmt: skip
    processor = {"image_processor_type": "GLPNImageProcessor", "do_resize": True, "do_rescale": True,
                 "size_divisor": 32, "resample": 2}  # fmt: skip
    return GLPNForDepthEstimation(config), processor


def _tipsv2_dpt() -> tuple[Any, Mapping[str, Any]]:  # google/tipsv2-*-dpt: metric (metres), 448x448, no normalize
    from transformers import Tipsv2DptConfig, Tipsv2DptForDepthEstimation

    backbone = {"model_type": "tipsv2_vision_model", "hidden_size": 32, "num_hidden_layers": 4,
                "num_attention_heads": 2, "intermediate_size": 64, "patch_size": 14, "image_size": 56,
                "out_indices": [1, 2, 3, 4], "apply_layernorm": True, "reshape_hidden_states": False}  # fmt: skip
    config = Tipsv2DptConfig(backbone_config=backbone, neck_hidden_sizes=[16, 16, 16, 16], fusion_hidden_size=16,
                             num_depth_bins=8)  # fmt: skip
    processor = {"image_processor_type": "Tipsv2DptImageProcessor", "do_resize": True,
                 "size": {"height": 448, "width": 448}, "resample": 2, "do_rescale": True,
                 "do_normalize": False}  # fmt: skip
    return Tipsv2DptForDepthEstimation(config), processor


def _chmv2() -> tuple[Any, Mapping[str, Any]]:  # facebook/dinov3-vitl16-chmv2-dpt-head: canopy height
    from transformers import CHMv2Config, CHMv2ForDepthEstimation

    backbone = {"model_type": "dinov3_vit", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                "num_hidden_layers": 4, "patch_size": 16, "image_size": 64, "num_register_tokens": 4,
                "out_indices": [1, 2, 3, 4], "reshape_hidden_states": True, "apply_layernorm": True,
                "return_class_token": True}  # fmt: skip
    config = CHMv2Config(backbone_config=backbone, post_process_channels=[16, 16, 16, 16], fusion_hidden_size=16,
                         head_hidden_size=8, number_output_channels=8)  # fmt: skip
    processor = {"image_processor_type": "CHMv2ImageProcessor", "do_resize": False,
                 "size": {"height": 384, "width": 384}, "image_mean": [0.420, 0.411, 0.296],
                 "image_std": [0.213, 0.156, 0.143], "do_pad": True,
                 "ensure_multiple_of": 16, "keep_aspect_ratio": True}  # fmt: skip
    return CHMv2ForDepthEstimation(config), processor


SAMPLES: tuple[Sample, ...] = (
    Sample("Depth Anything V2 (relative)", "depth_anything", "depth-anything/Depth-Anything-V2-Small-hf",
           _depth_anything, "inverse", "518x784"),
    Sample("Depth Anything V2 (metric)", "depth_anything", "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
           lambda: _depth_anything(metric=True), "metric", "518x784"),
    Sample("Prompt Depth Anything", "prompt_depth_anything", "depth-anything/prompt-depth-anything-vits-hf",
           _prompt_depth_anything, "metric", "756x1134"),
    Sample("DPT (MiDaS v3, ViT)", "dpt", "Intel/dpt-large", _dpt_vit, "inverse", "384x384"),
    Sample("DPT-hybrid (MiDaS v3)", "dpt", "Intel/dpt-hybrid-midas", _dpt_hybrid, "inverse", "64x64"),
    Sample("DPT on DINOv2 (metric)", "dpt", "facebook/dpt-dinov2-small-nyu", _dpt_dinov2, "metric", "70x98"),
    Sample("ZoeDepth", "zoedepth", "Intel/zoedepth-nyu", _zoedepth, "metric", "384x544"),
    Sample("ZoeDepth, multiple 1/32", "zoedepth", "ZoeDepthImageProcessor() class default",
           lambda: _zoedepth(multiple=1 / 32), "metric", "384x544"),
    Sample("Depth Pro", "depth_pro", "apple/DepthPro-hf", _depth_pro, "inverse", "128x128"),
    Sample("GLPN", "glpn", "vinvino02/glpn-nyu", _glpn, "metric", "64x96"),
    Sample("TIPSv2 DPT", "tipsv2_dpt", "google/tipsv2-b14-dpt", _tipsv2_dpt, "metric", "448x448"),
    Sample("CHMv2 (canopy height)", "chmv2", "facebook/dinov3-vitl16-chmv2-dpt-head", _chmv2, "metric",
           expect_refused="canopy height"),
)  # fmt: skip


def installed_model_types() -> list[str]:
    """The ``model_type`` names the installed transformers maps to ``AutoModelForDepthEstimation``."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

    return list(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)


def missing_reason(sample: Sample) -> str | None:
    """Why ``sample`` cannot be built with the installed transformers (its family is not there), or None."""
    if sample.model_type not in installed_model_types():
        import transformers

        return f"transformers {transformers.__version__} has no {sample.model_type} depth model"
    return None


@dataclass
class MatrixRow:
    """One sample through stereoconv: what it ran at, how its output was read, orientation and exit code."""

    name: str
    model_type: str
    input_size: str  # model input for a 64x96 frame, and how it was sized
    output: str  # inverse / metric (as stereoconv read it) or refused
    orientation: str  # "right nearer", "WRONG" or "-" (refused)
    exit: int
    message: str = ""  # the error line, or notes

    def cells(self) -> list[str]:
        return [self.name, self.model_type, self.input_size, self.output, self.orientation, str(self.exit)]


MATRIX_HEADER = ["family (sample)", "model_type", "input size used (64x96 frame)", "output", "orientation", "exit"]


def known_map(shape: tuple[int, ...], units: str, dtype: Any = None) -> Any:
    """A predicted_depth of ``shape`` (B, h, w): one half 1, the other 10, in ``units``, the right half nearer."""
    import torch

    near, far = (10.0, 1.0) if units == "inverse" else (1.0, 10.0)
    out = torch.full(shape, far, dtype=dtype or torch.float32)
    out[..., shape[-1] // 2 :] = near
    return out


def orientation(estimator: Any, units: str, height: int = 64, width: int = 96) -> tuple[float, float]:
    """Mean depth of the left and right halves of one frame when the model's output is :func:`known_map`.

    The map replaces the model's predicted_depth (a forward hook, at the model's own output size), so it goes
    through stereoconv's real post-processing: padding crop, metric inversion, resize to the frame.
    """
    import numpy as np

    def hook(module: Any, args: Any, output: Any) -> Any:
        output.predicted_depth = known_map(tuple(output.predicted_depth.shape), units, output.predicted_depth.dtype)
        return output

    handle = estimator.model.register_forward_hook(hook)
    try:
        frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        depth = estimator([frame])[0]
    finally:
        handle.remove()
    margin = width // 8  # bilinear resizing blends the two halves near the middle
    return float(depth[:, : width // 2 - margin].mean()), float(depth[:, width // 2 + margin :].mean())


def make_matrix_clip(path: Path) -> Path:
    """The short clip every sample converts: 2 frames of 96x64 (tests/synth.py)."""
    from synth import make_clip

    return make_clip(path, (2,), height=64, width=96).path


def run_sample(sample: Sample, directory: Path, clip: Path, seed: int = 0) -> MatrixRow:
    """Build and save ``sample`` in ``directory``, load it as stereoconv does, check its orientation, and convert
    ``clip`` with it through the command line with default settings (so at the model's own input size)."""
    import contextlib
    import io

    from stereoconv.cli import main
    from stereoconv.config import DepthConfig
    from stereoconv.depth import load_estimator
    from stereoconv.errors import ModelError

    model_dir = sample.save(directory / "model", seed=seed)
    size, output, orient, notes = "-", "refused", "-", []
    try:
        estimator = load_estimator(DepthConfig(model=str(model_dir), device="cpu"))
    except ModelError:
        estimator = None
    if estimator is not None:
        h, w = estimator.prep.input_shape(64, 96)
        size = f"{h}x{w} ({estimator.prep.describe()})"
        output = estimator.spec.output
        left, right = orientation(estimator, sample.units)
        orient = "right nearer" if right > left else f"WRONG (left {left:.3g}, right {right:.3g})"
        notes = [f"note: {n}" for n in estimator.notes]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["convert", str(clip), str(directory / "out.mkv"), "--model", str(model_dir), "--device", "cpu",
                     "--set", "output.preset=ultrafast", "-q"])  # fmt: skip
    lines = notes + [line for line in err.getvalue().splitlines() if line.strip()]
    return MatrixRow(sample.name, sample.model_type, size, output, orient, code, " | ".join(lines))
