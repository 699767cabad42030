"""Settings: one frozen dataclass per stage, a :class:`PipelineConfig` holding them, TOML presets and precedence.

Every setting is declared once, with its default, unit, allowed range or choices and help text, in the field
metadata below. That one table drives validation (``__post_init__``), TOML loading, ``presets show`` and the CLI.

Precedence, lowest first: dataclass defaults < preset (``presets/NAME.toml``) < ``--config FILE`` < CLI flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DEFAULT_PRESET = "film"
DEPTH_OUTPUTS = ("auto", "inverse", "metric")  # depth.output; see stereoconv.models
PREVIEW_LAYOUTS = ("sbs", "anaglyph", "depth", "grid")  # what `stereoconv preview` draws; see stereoconv.preview
DEFAULT_WARMUP = 4.0  # seconds of the shot a preview runs before its frame; see stereoconv.preview
LAYOUTS = ("half-sbs", "full-sbs", "half-tb", "full-tb", "anaglyph")
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip


def setting(
    default: Any,
    help: str,
    *,
    unit: str = "",
    range: tuple[float, float] | None = None,
    choices: tuple[str, ...] | None = None,
    kind: type | None = None,
) -> Any:
    """Declare one setting: its default and what a valid value is.

    A None default makes the setting optional (unset); ``kind`` then names the type of a set value.
    """
    meta = {
        "help": help,
        "unit": unit,
        "range": range,
        "choices": choices,
        "kind": kind or type(default),
        "optional": default is None,
    }
    return field(default=default, metadata=meta)


def _validate(section: str, name: str, value: Any, meta: Mapping[str, Any]) -> Any:
    """Return ``value`` checked (and int->float widened) against a field's metadata, or raise ConfigError."""
    key = f"{section}.{name}"
    kind = meta["kind"]
    if value is None:
        if meta["optional"]:
            return None
        raise ConfigError(f"{key} must be set (a {kind.__name__})")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (kind is bool and not isinstance(value, bool)) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key} = {value!r} is not a {kind.__name__}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key} = {value!r} is not a {kind.__name__}")
    if meta["range"] is not None:
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            unit = f" {meta['unit']}" if meta["unit"] else ""
            raise ConfigError(f"{key} = {value!r} is out of range: allowed {lo}..{hi}{unit}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{key} = {value!r} is not allowed: choose one of {', '.join(meta['choices'])}")
    return value


class _Section:
    """Mixin: validates every field of a frozen stage config on construction."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _validate(self.section, f.name, getattr(self, f.name), f.metadata)
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Cross-field checks; override where a section needs them."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Any:
        """Build from ``{key: value}``; an unknown key raises ConfigError naming it and the allowed ones."""
        known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown setting {cls.section}.{key}: allowed {', '.join(known)}")
        return cls(**values)


@dataclass(frozen=True)
class MediaConfig(_Section):
    """What part of the input to convert and how to decode it."""

    section: ClassVar[str] = "media"
    start: float = setting(0.0, "start of the range to convert", unit="s", range=(0.0, 1e7))
    end: float | None = setting(None, "end of the range to convert (unset: to the end)", unit="s",
                                range=(0.0, 1e7), kind=float)  # fmt: skip
    decode_threads: int = setting(0, "decoder threads (0: let FFmpeg choose)", range=(0, 64))
    strict: bool = setting(False, "fail on a damaged input (any frame lost: exit 3, no output) instead of converting "
                           "what decodes and exiting 5")  # fmt: skip
    deinterlace: bool = setting(False, "deinterlace every frame (FFmpeg bwdif) before depth estimation; for "
                                "interlaced sources (convert notes when the input is)")  # fmt: skip

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Any:
        """As for every section, and ``start``/``end`` may also be written as ``"HH:MM:SS.mmm"``."""
        values = {k: parse_time(v, f"media.{k}") if k in ("start", "end") and isinstance(v, str) else v
                  for k, v in values.items()}  # fmt: skip
        return super().from_dict(values)

    def _check(self) -> None:
        if self.end is not None and self.end <= self.start:
            raise ConfigError(f"media.end = {self.end} must be after media.start = {self.start}")


@dataclass(frozen=True)
class DepthConfig(_Section):
    """The monocular depth model. Its output is relative inverse depth: larger = nearer."""

    section: ClassVar[str] = "depth"
    model: str = setting(DEFAULT_MODEL, "Hugging Face model id or local model directory")
    device: str = setting("auto", "where the model runs (auto: cuda, then mps, then cpu)",
                          choices=("auto", "cuda", "mps", "cpu"))  # fmt: skip
    input_size: int | None = setting(None, "model input size: the short side for models that keep the frame's "
                                     "aspect, the side for square ones, ignored by fixed-size ones; rounded to the "
                                     "model's multiple (unset: the model's own size, e.g. 518 for Depth Anything; "
                                     "`stereoconv models` lists them)", unit="px", range=(14, 2044),
                                     kind=int)  # fmt: skip
    output: str = setting("auto", "what the model outputs: auto (stereoconv's table of model families), inverse "
                          "(inverse depth, larger = nearer: used as is) or metric (distance in metres or any unit, "
                          "larger = farther: turned into 1/depth); for a metric fine-tune whose config cannot say so",
                          choices=DEPTH_OUTPUTS)  # fmt: skip
    batch_size: int = setting(0, "frames per model call (0: sized to the device: 4 on the CPU; on CUDA as many "
                              "as a quarter of its memory holds, at about 300 MiB a frame at 518 px, 1 to 16; a "
                              "batch the GPU runs out of memory on is split and later ones made smaller)",
                              unit="frames", range=(0, 256))  # fmt: skip
    fp16: bool = setting(True, "half-precision autocast on CUDA (ignored elsewhere)")
    compile: bool = setting(False, "compile the model with torch.compile (slow first batch, faster after; CUDA)")


@dataclass(frozen=True)
class ScenesConfig(_Section):
    """Scene-cut detection on downscaled frames; every temporal state resets at a cut."""

    section: ClassVar[str] = "scenes"
    enabled: bool = setting(True, "detect scene cuts (off: the whole input is one shot)")
    threshold: float = setting(10.0, "smallest content change that can be a cut (mean |HSV difference|)",
                               unit="0-255", range=(0.0, 255.0))  # fmt: skip
    adaptive_ratio: float = setting(3.0, "a cut's change must exceed its neighbours' mean change by this factor",
                                    unit="x", range=(1.0, 100.0))  # fmt: skip
    window: int = setting(2, "neighbouring frames on each side the adaptive threshold looks at", unit="frames",
                          range=(1, 30))  # fmt: skip
    min_scene_len: int = setting(8, "shortest shot; a cut closer than this to the last is ignored", unit="frames",
                                 range=(1, 10000))  # fmt: skip


@dataclass(frozen=True)
class TemporalConfig(_Section):
    """Depth normalization and the bilateral temporal filter."""

    section: ClassVar[str] = "temporal"
    low_percentile: float = setting(2.0, "depth percentile mapped to 0 (farthest)", unit="%", range=(0.0, 49.0))
    high_percentile: float = setting(98.0, "depth percentile mapped to 1 (nearest)", unit="%",
                                     range=(51.0, 100.0))  # fmt: skip
    alignment: float = setting(0.9, "how far each frame's scale and offset are aligned to the running estimate "
                               "(0: each frame normalized on its own)", range=(0.0, 0.99))  # fmt: skip
    strength: float = setting(0.8, "largest weight of the previous estimate in a pixel (0: no smoothing)",
                              range=(0.0, 0.99))  # fmt: skip
    depth_sigma: float = setting(0.1, "depth change at which the previous estimate's weight falls to 61%",
                                 unit="normalized depth", range=(1e-4, 10.0))  # fmt: skip
    color_sigma: float = setting(10.0, "colour change at which the previous estimate's weight falls to 61%",
                                 unit="0-255", range=(0.1, 255.0))  # fmt: skip
    motion_compensation: bool = setting(True, "follow camera and object motion with optical flow (OpenCV DIS, "
                                        "two flows at 320 px wide: about 14 ms per frame) before blending")  # fmt: skip


@dataclass(frozen=True)
class StereoConfig(_Section):
    """The viewing setup the film is made for, its parallax budget, convergence and the floating window.

    Parallax is the on-screen distance ``x_right - x_left`` between a point's two images, in % of the screen width
    (the frame spans the screen): positive (uncrossed) appears behind the screen, negative (crossed) in front of it.
    :mod:`stereoconv.parallax` has the exact mapping from normalized depth.
    """

    section: ClassVar[str] = "stereo"
    screen_width: float = setting(1.2, "width of the screen the film is made for (1.2: a 55-inch TV)", unit="m",
                                  range=(0.05, 100.0))  # fmt: skip
    viewing_distance: float = setting(2.5, "viewer to screen; informational: the budgets are % of the screen width, "
                                      "this only converts parallax to angles (parallax.ParallaxBudget)", unit="m",
                                      range=(0.1, 100.0))  # fmt: skip
    interocular: float = setting(0.063, "distance between the eyes; uncrossed parallax never exceeds it on screen",
                                 unit="m", range=(0.03, 0.1))  # fmt: skip
    max_negative_parallax: float = setting(1.0, "largest crossed parallax (the nearest point, in front of the screen)",
                                           unit="% of screen width", range=(0.0, 10.0))  # fmt: skip
    max_positive_parallax: float = setting(1.5, "largest uncrossed parallax (the farthest point, behind the screen), "
                                           "capped at the interocular distance", unit="% of screen width",
                                           range=(0.0, 10.0))  # fmt: skip
    convergence: str = setting("percentile", "what sits on the screen plane: a percentile of the frame's depth, or "
                               "the subject (median depth of the central quarter)",
                               choices=("percentile", "subject"))  # fmt: skip
    convergence_percentile: float = setting(60.0, "percentile mode: share of the pixels behind the screen plane",
                                            unit="%", range=(0.0, 100.0))  # fmt: skip
    convergence_smoothing: float = setting(0.9, "weight of the previous frames' convergence and floating window "
                                           "(0: each frame on its own)", range=(0.0, 0.99))  # fmt: skip
    floating_window: bool = setting(False, "black out a frame edge in the eye where it cuts off something in front "
                                    "of the screen")  # fmt: skip
    refine_edges: bool = setting(True, "turn the soft depth edges of the model's low resolution back into steps "
                                 "before rendering (no halos or stretching at object edges; slopes are "
                                 "kept)")  # fmt: skip
    edge_split: float = setting(0.2, "where on a soft depth edge the step goes where colour does not tell: 0 at its "
                                "far end, 1 at its near end (below 0.5 the foreground keeps its edge pixels)",
                                range=(0.0, 1.0))  # fmt: skip
    thin_structures: bool = setting(False, "bring back structures thinner than the depth model sees (poles, cables) "
                                    "where their colour stands out; with refine_edges")  # fmt: skip


# Encoders output.codec may name (whether this FFmpeg build has each is checked when the output is opened).
ENCODERS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "prores_ks", "ffv1")
PIX_FMTS = ("yuv420p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le", "source")


@dataclass(frozen=True)
class OutputConfig(_Section):
    """Stereo layout and encoder."""

    section: ClassVar[str] = "output"
    format: str = setting("half-sbs", "stereo layout", choices=LAYOUTS)
    render_size: str = setting("frame", "size the eyes are rendered at: 'frame' (the frame's, then squeezed into a "
                               "half layout) or 'packed' (a half layout's eyes at half the width or height: about "
                               "half the rendering cost, softer: -2.3 dB PSNR against a real right camera)",
                               choices=("frame", "packed"))  # fmt: skip
    codec: str = setting("libx264", "video encoder (FFmpeg name; prores_ks needs .mov/.mkv, ffv1 needs .mkv)",
                         choices=ENCODERS)  # fmt: skip
    crf: int = setting(18, "constant rate factor: lower is better quality and bigger", range=(0, 51))
    preset: str = setting("medium", "encoder speed preset", choices=X264_PRESETS)
    pix_fmt: str = setting("source", "output pixel format; 'source': 10-bit (yuv420p10le; NVENC: p010le) when the "
                           "source has more than 8 bits, keeping its colour and HDR, else yuv420p (prores_ks: "
                           "yuv422p10le); an 8-bit format turns HDR into tone-mapped SDR",
                           choices=PIX_FMTS)  # fmt: skip
    audio: str = setting("copy", "audio streams: copy (re-encoded to AAC only where the container cannot hold "
                         "the codec), aac (re-encode all to AAC) or none (drop)",
                         choices=("copy", "aac", "none"))  # fmt: skip
    subtitles: str = setting("auto", "text subtitles: burn (drawn into both eyes, just in front of what they cover), "
                             "keep (copied as soft subtitles, which a 3D player splits across the eyes), none "
                             "(dropped); auto: burn for side-by-side and top-bottom layouts, else keep",
                             choices=("auto", "burn", "keep", "none"))  # fmt: skip
    subtitle_stream: int | None = setting(None, "the text subtitle stream to burn, counted among the input's text "
                                          "subtitle streams from 0 (unset: the first marked default, else the "
                                          "first)", range=(0, 99), kind=int)  # fmt: skip


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it), what ``[runtime]``'s
    automatic sizes follow."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class RuntimeConfig(_Section):
    """How the stages run: they overlap in threads joined by bounded queues. None of this changes the output."""

    section: ClassVar[str] = "runtime"
    render_workers: int = setting(0, "threads rendering the eyes of different frames at once (0: half the CPU "
                                  "cores, at least 2 and at most 8, when the CPU renders; 2 when the GPU does)",
                                  unit="threads", range=(0, 64))  # fmt: skip
    queue_frames: int = setting(8, "frames each queue between two stages holds at most (memory stays bounded)",
                                unit="frames", range=(1, 256))  # fmt: skip
    renderer: str = setting("auto", "where smoothing, planning and view synthesis run: numpy (on the CPU, compiled "
                            "kernels), torch (as torch ops on the depth model's device, its maps kept there), or auto "
                            "(torch when the model runs on CUDA)",
                            choices=("auto", "numpy", "torch"))  # fmt: skip


SECTIONS: dict[str, type[_Section]] = {
    c.section: c
    for c in (MediaConfig, DepthConfig, ScenesConfig, TemporalConfig, StereoConfig, OutputConfig, RuntimeConfig)
}


@dataclass(frozen=True)
class PipelineConfig:
    """All settings of a conversion; every section is a frozen, validated stage config."""

    media: MediaConfig = field(default_factory=MediaConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    stereo: StereoConfig = field(default_factory=StereoConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineConfig:
        """Build from ``{section: {key: value}}``; unknown sections or keys raise ConfigError."""
        sections = {}
        for name, values in data.items():
            if name not in SECTIONS:
                raise ConfigError(f"unknown section [{name}]: allowed {', '.join(SECTIONS)}")
            if not isinstance(values, Mapping):
                raise ConfigError(f"[{name}] must be a table of settings, got {values!r}")
            sections[name] = SECTIONS[name].from_dict(values)
        return cls(**sections)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def replace(self, overrides: Mapping[str, Any]) -> PipelineConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"stereo.max_negative_parallax": 1.5}``."""
        return PipelineConfig.from_dict(_merge(self.to_dict(), _nest(overrides)))


def _nest(dotted: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        if not name:
            raise ConfigError(f"setting {key!r} must be written section.key, e.g. stereo.screen_width")
        nested.setdefault(section, {})[name] = value
    return nested


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


_TIME = re.compile(r"^(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d*)?)$")


def parse_time(text: str | float, what: str = "time") -> float:
    """Seconds from ``"12.5"``, ``"01:02"`` (MM:SS), ``"01:02:03.250"`` (HH:MM:SS.mmm) or a number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    m = _TIME.match(str(text).strip())
    if not m:
        raise ConfigError(f"{what} = {text!r} is not a time: use seconds (12.5) or HH:MM:SS.mmm (00:01:02.500)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    if (m.group(2) and seconds >= 60) or (m.group(1) and minutes >= 60):
        raise ConfigError(f"{what} = {text!r} is not a time: minutes and seconds must be below 60")
    return hours * 3600 + minutes * 60 + seconds


# ---------------------------------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    root = resources.files("stereoconv.presets")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from exc


def read_preset(name: str) -> dict[str, Any]:
    """The raw TOML table of a shipped preset (``description`` included)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(preset_names())}")
    text = resources.files("stereoconv.presets").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return _read_toml(text, f"preset {name}")


def preset_description(name: str) -> str:
    return str(read_preset(name).get("description", ""))


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> PipelineConfig:
    """Resolve settings: defaults < preset < config file < overrides (dotted keys, e.g. ``"depth.model"``).

    ``preset`` None means the config file's ``preset = "..."`` key if it has one, else ``film``.
    """
    file_data: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
        file_data = _read_toml(text, f"config file {path}")
    file_preset = file_data.pop("preset", None)
    file_data.pop("description", None)
    name = preset or file_preset or DEFAULT_PRESET
    preset_data = read_preset(str(name))
    preset_data.pop("description", None)
    merged = _merge(_merge(preset_data, file_data), _nest(overrides or {}))
    return PipelineConfig.from_dict(merged)


def to_toml(config: PipelineConfig) -> str:
    """The resolved settings as TOML, each value commented with its help text and unit."""
    lines: list[str] = []
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        section = getattr(config, name)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            value = getattr(section, f.name)
            unit = f" [{f.metadata['unit']}]" if f.metadata["unit"] else ""
            comment = f"# {f.metadata['help']}{unit}"
            if value is None:
                lines.append(f"# {f.name} =  {comment}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}  {comment}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def parse_value(text: str) -> Any:
    """A CLI value read as TOML (``3``, ``2.5``, ``true``, ``"x"``), falling back to the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# ------------------------------------------------------------------------------------------------ per-shot settings

SHOT_SECTIONS = ("temporal", "stereo")  # what a shot may change: the rest is the same for the whole film
# Keys of `stereoconv scenes --json` that a shots file may hold and that select nothing: the file can start as that.
_SCENE_LIST_KEYS = ("cuts", "frames", "fps")
_SHOT_INFO_KEYS = ("first_frame", "frames")


@dataclass(frozen=True)
class ShotRule:
    """One entry of a shots file: which shots (``index``, 0-based as ``stereoconv scenes`` counts them from the start
    of the converted range; or, without an index, every shot overlapping ``[start, end)`` seconds of the input,
    ``end`` None: to the end) and the dotted ``[temporal]``/``[stereo]`` settings they get."""

    index: int | None
    start: float | None
    end: float | None
    settings: tuple[tuple[str, Any], ...]

    def selects(self, shot: int, begin: float | None, finish: float | None) -> bool:
        """Whether this rule applies to shot ``shot`` spanning ``[begin, finish)`` seconds (None: unknown; a time
        rule then cannot apply, so callers resolve time rules with known cuts)."""
        if self.index is not None:
            return self.index == shot
        if begin is None:
            return False
        lo = self.start if self.start is not None else 0.0
        hi = self.end if self.end is not None else math.inf
        return begin < hi and (finish if finish is not None else math.inf) > lo


@dataclass(frozen=True)
class ShotOverrides:
    """Per-shot settings from a shots file (:func:`load_shots`): later entries win where two set the same key."""

    rules: tuple[ShotRule, ...]
    source: str = ""

    @property
    def needs_times(self) -> bool:
        """Some entry selects shots by time: resolving it needs the cuts and their times beforehand."""
        return any(rule.index is None for rule in self.rules)

    def for_shot(self, shot: int, begin: float | None = None, finish: float | None = None) -> dict[str, Any]:
        """The dotted settings shot ``shot`` (spanning ``[begin, finish)`` s, where known) gets; {} for none."""
        out: dict[str, Any] = {}
        for rule in self.rules:
            if rule.selects(shot, begin, finish):
                out.update(rule.settings)
        return out

    def resolve(self, shots: int | None = None, bounds: list[tuple[float, float | None]] | None = None
                ) -> dict[int, dict[str, Any]]:  # fmt: skip
        """``{shot index: dotted settings}`` for the shots some entry selects. ``bounds``: every shot's
        ``(start, end)`` seconds, in order (end None: the last one's); without it only index entries resolve, for
        indices below ``shots`` if given."""
        if bounds is not None:
            found = {k: self.for_shot(k, begin, finish) for k, (begin, finish) in enumerate(bounds)}
        else:
            indices = {rule.index for rule in self.rules if rule.index is not None}
            found = {k: self.for_shot(k) for k in sorted(indices) if shots is None or k < shots}
        return {k: v for k, v in found.items() if v}

    def to_dict(self) -> dict[str, Any]:
        """As a shots file would hold it (JSON-able): for a job manifest or a report."""
        entries = []
        for rule in self.rules:
            entry: dict[str, Any] = {}
            if rule.index is not None:
                entry["index"] = rule.index
            else:
                entry.update({k: v for k, v in (("start", rule.start), ("end", rule.end)) if v is not None})
            for key, value in rule.settings:
                section, _, name = key.partition(".")
                entry.setdefault(section, {})[name] = value
            entries.append(entry)
        return {"source": self.source, "shots": entries}


def shot_configs(config: PipelineConfig, resolved: Mapping[int, Mapping[str, Any]]) -> dict[int, PipelineConfig]:
    """``config`` with each shot's settings applied: what the engine runs those shots with."""
    return {int(k): config.replace(v) for k, v in resolved.items()}


def parse_shots(data: Mapping[str, Any], where: str = "shots file") -> ShotOverrides:
    """Validate a shots table (``{"shots": [{...}, ...]}``, as TOML ``[[shots]]`` entries or ``stereoconv scenes
    --json`` output) into :class:`ShotOverrides`. Every setting is checked as a preset's is; ConfigError names the
    entry and the key."""
    for key in data:
        if key != "shots" and key not in _SCENE_LIST_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}: a shots file holds [[shots]] entries")
    entries = data.get("shots", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ConfigError(f"{where}: 'shots' must be a list of tables ([[shots]] in TOML)")
    rules = []
    for n, entry in enumerate(entries):
        at = f"{where}: shots entry {n + 1}"
        index, times, settings = None, {}, {}
        for key, value in entry.items():
            if key == "index":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"{at}: index = {value!r} must be a shot number, 0 or more")
                index = value
            elif key in ("start", "end"):
                times[key] = parse_time(value, f"{at}: {key}")
            elif key in SHOT_SECTIONS:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{at}: [{key}] must be a table of settings")
                settings.update({f"{key}.{name}": v for name, v in value.items()})
            elif key in _SHOT_INFO_KEYS:
                continue  # what `scenes --json` says about the shot: informational
            elif key in SECTIONS:
                raise ConfigError(f"{at}: [{key}] cannot change per shot: only {', '.join(SHOT_SECTIONS)} can")
            else:
                raise ConfigError(f"{at}: unknown key {key!r}: allowed index, start, end, "
                                  f"{', '.join(SHOT_SECTIONS)}")  # fmt: skip
        if index is None and not times:
            raise ConfigError(f"{at}: say which shots: index = N, or start/end times")
        if index is None and "start" in times and "end" in times and times["end"] <= times["start"]:
            raise ConfigError(f"{at}: end = {times['end']} must be after start = {times['start']}")
        try:
            PipelineConfig().replace(settings)  # validated as a preset's settings are
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc}") from exc
        # With an index the entry's times (as `scenes --json` writes them) only describe the shot.
        start, end = (None, None) if index is not None else (times.get("start"), times.get("end"))
        rules.append(ShotRule(index, start, end, tuple(settings.items())))
    return ShotOverrides(tuple(rules), where)


def load_shots(path: str | Path) -> ShotOverrides:
    """Read a shots file: TOML (``[[shots]]`` entries), or JSON such as ``stereoconv scenes --json`` writes
    (``.json``). See :func:`parse_shots`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read shots file {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"shots file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"shots file {path} must hold an object with a 'shots' list")
    else:
        data = _read_toml(text, f"shots file {path}")
    return parse_shots(data, f"shots file {path}")
