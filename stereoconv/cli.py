"""Command line: parses arguments, builds a config, calls the API, and turns errors into one line and an exit code.

Exit codes: 0 ok, 1 anything else, 2 usage or config, 3 input media, 4 model load, 5 converted but frames were lost
to a damaged input (``--strict`` makes that exit 3 with no output), 6 stopped by the machine (no space left,
permission denied, read-only file system, a path that vanished, too many open files, I/O error), 7 a batch in which
some input failed, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import (
    DEFAULT_MODEL,
    DEFAULT_PRESET,
    DEFAULT_WARMUP,
    ENCODERS,
    LAYOUTS,
    PIX_FMTS,
    PREVIEW_LAYOUTS,
    ShotOverrides,
    load_config,
    load_shots,
    parse_time,
    parse_value,
    preset_description,
    preset_names,
    to_toml,
)
from .errors import EXIT_COMPLETED_WITH_LOSSES, StereoconvError, StorageError, UsageError, storage_error

if TYPE_CHECKING:
    from .media import DecodeLosses

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it


class Terminated(BaseException):
    """SIGTERM (a render farm or `kill` stopping the job), raised so every cleanup runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every command that resolves settings shares."""
    group = parser.add_argument_group("settings (defaults < preset < --config < flags)")
    group.add_argument("--preset", metavar="NAME", help=f"shipped preset (default: {DEFAULT_PRESET}); "
                       "see `stereoconv presets`")  # fmt: skip
    group.add_argument("--config", metavar="FILE", help="TOML file of settings, laid out like a preset")
    group.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                       help="any setting, e.g. --set stereo.max_positive_parallax=2 (repeatable; "
                       "`stereoconv presets show film` lists them with units)")  # fmt: skip
    group.add_argument("--start", metavar="TIME", help="start of the range to convert: seconds or HH:MM:SS.mmm")
    group.add_argument("--end", metavar="TIME", help="end of the range (exclusive): seconds or HH:MM:SS.mmm")


def _shots_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shots", metavar="FILE", help="per-shot settings: a TOML file of [[shots]] entries, each "
                        "selecting shots by index = N or by start/end times and changing any [temporal] or [stereo] "
                        "setting for them (`stereoconv scenes --json` output is a valid start, as .json)")  # fmt: skip


def _load_shots(args: argparse.Namespace) -> ShotOverrides | None:
    return load_shots(args.shots) if getattr(args, "shots", None) else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereoconv",
        description="Convert 2D video to stereoscopic 3D (monocular depth + DIBR).",
        epilog="exit codes: 0 ok, 1 other error, 2 usage/config, 3 input media, 4 model load, 5 converted but frames "
        "were lost to a damaged input (see convert --strict), 6 stopped by the machine (no space left, permission "
        "denied, read-only, a path vanished, too many open files), 7 a batch in which some input failed, "
        "130 interrupted, 143 terminated",
    )
    parser.add_argument("--version", action="version", version=f"stereoconv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    convert = commands.add_parser(
        "convert", help="convert a video to 3D",
        description="Convert INPUT to a stereo 3D video at OUTPUT (container from its extension: .mp4, .mkv, "
        ".mov). OUTPUT may be an existing directory: the file is then named INPUTNAME_LAYOUT.EXT (LAYOUT: hsbs, "
        "fsbs, htb, ftb, anaglyph; EXT: INPUT's if .mp4, .mkv or .mov, else .mkv). Audio streams are copied. "
        "The output appears only when the conversion has finished.",
    )  # fmt: skip
    convert.add_argument("inputs", metavar="INPUT", nargs="+", help="video file to convert; several, or a folder: "
                         "a batch into the folder OUTPUT (see below)")  # fmt: skip
    convert.add_argument("output", metavar="OUTPUT", help="file to write, or an existing directory to write into")
    batch = convert.add_argument_group(
        "batch", "with several INPUTs or a folder, every file is converted into the folder OUTPUT (created if "
        "absent) under the directory name above, keeping sub-folders; outputs already there are skipped, a failure "
        "is reported and the batch goes on; a table (file, frames, fps, result) ends it, and the exit code is 7 if "
        "any file failed. --work-dir DIR: a sub-folder per file; --depth-cache: shared (keyed by input)",
    )  # fmt: skip
    batch.add_argument("--recursive", "-r", action="store_true", help="also the files in sub-folders of a folder")
    batch.add_argument("--glob", metavar="PATTERN", help="which files of a folder, by name (default: common video "
                       "extensions: *.mp4, *.mkv, *.mov, *.avi, ...)")  # fmt: skip
    convert.add_argument("--model", metavar="ID|DIR", help=f"depth model: Hugging Face id or local directory "
                         f"(default: {DEFAULT_MODEL}; offline, pass a local directory)")  # fmt: skip
    convert.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"),
                         help="where the depth model runs (default: auto = cuda, then mps, then cpu)")  # fmt: skip
    convert.add_argument("--format", choices=LAYOUTS, help="stereo layout (default: half-sbs)")
    convert.add_argument(
        "--depth-cache",
        metavar="DIR",
        help="keep the depth model's output here; a later run of "
        "the same input and model with other settings reads it instead of running the model",
    )
    convert.add_argument(
        "--report",
        metavar="FILE",
        help="per-shot report: parallax percentiles (px and %% of width), "
        "flicker, window violations, holes; FILE.json, or FILE.html with plots (needs "
        "'stereoconv[report]')",
    )
    convert.add_argument("--audio", choices=("copy", "aac", "none"),
                         help="audio streams: copy (default; re-encoded to AAC only where the container cannot hold "
                         "the codec), aac (re-encode all) or none (drop)")  # fmt: skip
    convert.add_argument("--subtitles", choices=("auto", "burn", "keep", "none"),
                         help="text subtitles: burn (drawn into both eyes, just in front of what they cover), keep "
                         "(copied as soft subtitles: a 3D player splits them across the eyes), none (dropped); "
                         "default auto: burn for SBS/TB layouts, keep for anaglyph (output.subtitles; "
                         "output.subtitle_stream chooses the stream)")  # fmt: skip
    convert.add_argument("--codec", choices=ENCODERS, help="video encoder (default: libx264; prores_ks for .mov/.mkv "
                         "and ffv1 for .mkv intermediates; NVENC where the GPU has it) (output.codec)")  # fmt: skip
    convert.add_argument("--pix-fmt", choices=PIX_FMTS, help="output pixel format (default: source: 10-bit for "
                         "sources of more than 8 bits, keeping HDR; an 8-bit format tone-maps HDR to SDR) "
                         "(output.pix_fmt)")  # fmt: skip
    convert.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    convert.add_argument("--progress", choices=("text", "json", "none"), default="text",
                         help="text: a progress bar on stderr; json: JSON lines on stdout instead, as render "
                         "--progress json writes them (start, every --progress-every frames, finish; a batch: one "
                         "run per input, then a summary) (default: text)")  # fmt: skip
    convert.add_argument("--progress-every", metavar="N", type=int, default=24, help="frames between JSON lines")
    convert.add_argument("--strict", action="store_true", help="fail (exit 3, no output) if any frame of a damaged "
                         "input cannot be decoded; by default what decodes is converted, the losses are listed and "
                         "the exit code is 5 (media.strict)")  # fmt: skip
    convert.add_argument("--deinterlace", action="store_true", help="deinterlace an interlaced input (FFmpeg bwdif) "
                         "before depth estimation (media.deinterlace)")  # fmt: skip
    resume = convert.add_argument_group(
        "resumable conversion",
        "with --work-dir, convert plans chunks into DIR, renders them one by one and joins them (as plan, render "
        "and assemble do); run the same command again after a crash or Ctrl-C and the finished chunks are kept",
    )  # fmt: skip
    resume.add_argument("--work-dir", metavar="DIR", help="work directory: empty, absent, or holding this same "
                        "conversion's unfinished work; removed after success")  # fmt: skip
    resume.add_argument("--keep-work-dir", action="store_true", help="keep the work directory after success")
    resume.add_argument("--chunk-seconds", metavar="S", type=float,
                        help="target chunk length; a chunk ends on a scene cut within 25%% of it "
                        "(default: 60)")  # fmt: skip
    resume.add_argument("--backend", choices=("local", "ray"),
                        help="local: render the chunks here, one by one (default); ray: on a Ray cluster (needs "
                        "'stereoconv[ray]')")  # fmt: skip
    resume.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to use (ray://HOST:10001, HOST:6379, "
                        "auto; default: a local Ray for the run)")  # fmt: skip
    _shots_argument(convert)
    _settings_arguments(convert)

    preview = commands.add_parser(
        "preview", help="render one frame as a PNG, through the same stages as convert",
        description="Render the frame of INPUT at TIME through every stage of convert, the temporal state warmed up "
        "on the frames of its shot before it (up to --warmup seconds), and write it as a PNG.",
    )  # fmt: skip
    preview.add_argument("input", metavar="INPUT", help="video file")
    preview.add_argument("--at", metavar="TIME", required=True, help="the frame's time: seconds or HH:MM:SS.mmm")
    preview.add_argument("--out", metavar="FILE.png", required=True, help="PNG file to write")
    preview.add_argument("--layout", choices=PREVIEW_LAYOUTS, default="sbs",
                         help="sbs: both eyes side by side; anaglyph; depth: the smoothed depth map; grid: source, "
                         "depth, anaglyph and half-SBS (default: sbs)")  # fmt: skip
    preview.add_argument("--warmup", metavar="SECONDS", type=float, default=DEFAULT_WARMUP,
                         help=f"seconds of the shot before TIME run to warm the temporal state up "
                         f"(default: {DEFAULT_WARMUP:g})")  # fmt: skip
    preview.add_argument("--model", metavar="ID|DIR", help="depth model (see convert)")
    preview.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), help="where the depth model runs")
    preview.add_argument("--depth-cache", metavar="DIR", help="convert's depth cache: frames in it skip the model")
    _shots_argument(preview)
    _settings_arguments(preview)

    scenes = commands.add_parser("scenes", help="list scene cuts", description="Detect scene cuts in INPUT with "
                                 "the detector convert uses. Cuts are 0-based decode-order indices of the first "
                                 "frame of each new shot.")  # fmt: skip
    scenes.add_argument("input", metavar="INPUT", help="video file to scan")
    scenes.add_argument("--json", action="store_true", help='print {"cuts": [...], "frames": N, "fps": F}')
    scenes.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _settings_arguments(scenes)

    _farm_arguments(commands)

    commands.add_parser("models", help="list the depth model families and recommended checkpoints",
                        description="List the depth model families stereoconv reads (input size, output, how it "
                        "becomes inverse depth), recommended checkpoints with their licence, and the `hf download` "
                        "line for each.")  # fmt: skip

    presets = commands.add_parser(
        "presets",
        help="list presets or show one",
        description="List the shipped presets, or print one's resolved settings as TOML.",
    )
    presets.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    presets.add_argument("name", nargs="?", metavar="NAME", help="preset to show")
    presets.add_argument("--config", metavar="FILE", help="also apply this TOML file (show)")
    presets.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], help="also apply (show)")
    return parser


def _farm_arguments(commands: Any) -> None:
    """plan / render / assemble: a conversion split into chunks for a render farm (see stereoconv.farm)."""
    plan = commands.add_parser(
        "plan", help="plan a render-farm job: chunks on scene cuts, as a JSON manifest",
        description="Scan INPUT for scene cuts and split it into chunks of about --chunk-seconds that end on a cut "
        "where one is near; write the job manifest (input, fingerprint, settings, model, chunks, frames lost to a "
        "damaged input) to --out. Render the chunks with `stereoconv render`, anywhere, in any order; join them "
        "with `stereoconv assemble`.",
    )  # fmt: skip
    plan.add_argument("input", metavar="INPUT", help="video file to convert")
    plan.add_argument("--out", metavar="JOB.json", required=True, help="job manifest to write")
    plan.add_argument(
        "--chunk-seconds",
        metavar="S",
        type=float,
        default=60.0,
        help="target chunk length; a chunk ends on a scene cut within 25%% of it (default: 60)",
    )
    plan.add_argument(
        "--preroll-seconds",
        metavar="S",
        type=float,
        default=4.0,
        help="a chunk that starts mid-shot first decodes and smooths this much of its shot, "
        "unrendered, so its temporal state has settled (default: 4)",
    )
    plan.add_argument("--model", metavar="ID|DIR", help="depth model (see convert)")
    plan.add_argument("--format", choices=LAYOUTS, help="stereo layout (default: half-sbs)")
    plan.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    plan.add_argument("--strict", action="store_true", help="fail (exit 3) if any frame of a damaged input cannot be "
                      "decoded; by default the frames lost are listed, skipped by every chunk, and assemble exits "
                      "5 (media.strict)")  # fmt: skip
    _shots_argument(plan)
    _settings_arguments(plan)

    render = commands.add_parser(
        "render", help="render chunks of a planned job",
        description="Render the chunks of JOB.json named by --chunk or --frames into the work directory (one "
        "video and one .json sidecar per chunk). Chunks already rendered and intact are skipped; damaged or stale "
        "ones are rendered again. Farm frame ranges: --frames <STARTFRAME>-<ENDFRAME> (Deadline), "
        "--frames #FRAME_START#-#FRAME_END# (OpenCue).",
    )  # fmt: skip
    render.add_argument("job", metavar="JOB.json", help="job manifest from `stereoconv plan`")
    which = render.add_mutually_exclusive_group(required=True)
    which.add_argument("--chunk", metavar="K", type=int, action="append", help="chunk index (repeatable)")
    which.add_argument("--frames", metavar="START-END", help="every chunk overlapping these frames (inclusive, "
                       "0-based; clamped to the job's length)")  # fmt: skip
    which.add_argument("--all", action="store_true", help="every chunk")
    render.add_argument("--work-dir", metavar="DIR", help="where chunks go (default: JOB.chunks beside JOB.json)")
    render.add_argument("--model", metavar="ID|DIR", help="load the depth model from here (e.g. a local copy); "
                        "must be the planned model")  # fmt: skip
    render.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), help="where the depth model runs")
    render.add_argument("--depth-cache", metavar="DIR", help="depth cache, as in convert")
    render.add_argument(
        "--progress",
        choices=("text", "json", "none"),
        default="text",
        help="text: a line per chunk on stderr; json: one JSON line on stdout every "
        "--progress-every frames (frames_done, frames_total, fps, chunk) (default: text)",
    )
    render.add_argument("--progress-every", metavar="N", type=int, default=24, help="frames between JSON lines")

    assemble = commands.add_parser(
        "assemble", help="join a job's rendered chunks into the output",
        description="Join the chunks of JOB.json into OUTPUT without re-encoding and copy the input's audio "
        "streams once. Every chunk must be rendered; missing or damaged ones are named. Exits 5 when the plan "
        "found frames lost to a damaged input (listed again here).",
    )  # fmt: skip
    assemble.add_argument("job", metavar="JOB.json", help="job manifest from `stereoconv plan`")
    assemble.add_argument("output", metavar="OUTPUT", help="file to write, or an existing directory (see convert)")
    assemble.add_argument("--work-dir", metavar="DIR", help="where the chunks are (default: JOB.chunks)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted-key settings from the flags, in increasing precedence: --set, then the dedicated flags."""
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: write SECTION.KEY=VALUE, e.g. --set stereo.screen_width=2.5")
        overrides[key.strip()] = parse_value(value.strip())
    dedicated = {
        "depth.model": getattr(args, "model", None),
        "depth.device": getattr(args, "device", None),
        "output.format": getattr(args, "format", None),
        "output.audio": getattr(args, "audio", None),
        "output.subtitles": getattr(args, "subtitles", None),
        "output.codec": getattr(args, "codec", None),
        "output.pix_fmt": getattr(args, "pix_fmt", None),
        "media.start": parse_time(args.start, "--start") if getattr(args, "start", None) else None,
        "media.end": parse_time(args.end, "--end") if getattr(args, "end", None) else None,
        "media.strict": True if getattr(args, "strict", False) else None,
        "media.deinterlace": True if getattr(args, "deinterlace", False) else None,
    }
    overrides.update({k: v for k, v in dedicated.items() if v is not None})
    return overrides


def _cmd_convert(args: argparse.Namespace) -> int:
    from .api import convert
    from .batch import is_batch
    from .progress import JsonProgress

    config = load_config(args.preset, args.config, _overrides(args))
    shots = _load_shots(args)
    json_progress = JsonProgress(None, args.progress_every, sys.stdout) if args.progress == "json" else None
    bar = not args.quiet and args.progress == "text"
    if is_batch(args.inputs):
        return _convert_batch(args, config, json_progress, bar)
    if args.recursive or args.glob:
        raise UsageError("--recursive and --glob choose files in a folder: give a folder as INPUT")
    args.input = args.inputs[0]
    if args.work_dir is None:
        given = [flag for flag, value in (("--chunk-seconds", args.chunk_seconds), ("--backend", args.backend),
                 ("--ray-address", args.ray_address), ("--keep-work-dir", args.keep_work_dir)) if value]  # fmt: skip
        if given:
            raise UsageError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --work-dir")
        result = convert(args.input, args.output, config, depth_cache=args.depth_cache, report=args.report,
                         progress=bar, shots=shots, json_progress=json_progress)  # fmt: skip
    else:
        try:
            result = convert(args.input, args.output, config, depth_cache=args.depth_cache, report=args.report,
                             progress=bar, work_dir=args.work_dir, keep_work_dir=args.keep_work_dir,
                             chunk_seconds=args.chunk_seconds or 60.0, backend=args.backend or "local",
                             ray_address=args.ray_address, shots=shots, json_progress=json_progress)  # fmt: skip
        except (KeyboardInterrupt, Terminated, StorageError):
            if os.path.isfile(os.path.join(args.work_dir, "job.json")):
                print(f"stereoconv: finished chunks are kept in {args.work_dir}: run the same command again to "
                      "resume", file=sys.stderr)  # fmt: skip
            raise
    for warning in result.warnings:  # even with --quiet: a farm's log must show why the next run is slow
        print(f"stereoconv: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        for note in result.notes:
            print(f"stereoconv: {note}", file=sys.stderr)
        if result.depth_cache:
            print(result.depth_cache, file=sys.stderr)
        if result.work:
            print(result.work, file=sys.stderr)
        for line in _shot_lines(result.shot_settings):
            print(line, file=sys.stderr)
        print(f"wrote {result.output}: {result.frames} frames, {_count(len(result.cuts), 'cut')}, "
              f"{result.seconds:.1f} s ({result.fps:.2f} frames/s)", file=sys.stderr)  # fmt: skip
    losses = getattr(result, "losses", None)
    if losses:
        _print_losses(losses, f"completed with losses: {losses.summary()}", f"wrote {result.output}")
        return EXIT_COMPLETED_WITH_LOSSES
    return 0


def _convert_batch(args: argparse.Namespace, config: Any, json_progress: Any, bar: bool) -> int:
    from .batch import convert_batch

    given = [flag for flag, value in (("--shots", args.shots), ("--report", args.report)) if value]
    if given:
        raise UsageError(f"{' and '.join(given)} belong{'s' if len(given) == 1 else ''} to one film: convert its "
                         "files one by one")  # fmt: skip
    if args.work_dir is None:
        given = [flag for flag, value in (("--chunk-seconds", args.chunk_seconds), ("--backend", args.backend),
                 ("--ray-address", args.ray_address), ("--keep-work-dir", args.keep_work_dir)) if value]  # fmt: skip
        if given:
            raise UsageError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --work-dir")
    resumable = {} if args.work_dir is None else {
        "keep_work_dir": args.keep_work_dir, "chunk_seconds": args.chunk_seconds or 60.0,
        "backend": args.backend or "local", "ray_address": args.ray_address}  # fmt: skip
    log = None if args.quiet else (lambda line: print(f"stereoconv: {line}", file=sys.stderr))
    result = convert_batch(args.inputs, args.output, config, recursive=args.recursive, pattern=args.glob,
                           depth_cache=args.depth_cache, work_dir=args.work_dir, progress=bar,
                           json_progress=json_progress, log=log, **resumable)  # fmt: skip
    if not args.quiet or result.failed:
        print(result.table(), file=sys.stderr)
    return result.exit_code


def _shot_lines(settings: dict[int, dict[str, Any]]) -> list[str]:
    """One line per shot with settings of its own, e.g. ``shot 3: stereo.max_negative_parallax=0.5``."""
    return [f"shot {k}: " + ", ".join(f"{key}={value}" for key, value in sorted(v.items()))
            for k, v in sorted(settings.items())]  # fmt: skip


def _count(n: int, noun: str) -> str:
    """``1 cut``, ``2 cuts``, ``0 cuts``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_losses(losses: DecodeLosses, outcome: str, then: str) -> None:
    """The frames a damaged input lost, one warning line per range, then ``outcome`` and ``then`` on one line.
    Printed even with --quiet: the exit code alone does not say where."""
    for line in losses.lines():
        print(f"stereoconv: warning: {line}", file=sys.stderr)
    print(f"stereoconv: {outcome} (the input is damaged; --strict makes this an error); {then}", file=sys.stderr)


def _cmd_scenes(args: argparse.Namespace) -> int:
    from .api import detect_scenes

    config = load_config(args.preset, args.config, _overrides(args))
    scenes = detect_scenes(args.input, config, progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps(scenes.to_dict()))
    else:
        print(f"{scenes.frames} frames at {scenes.fps:.3f} fps, {_count(len(scenes.cuts), 'cut')}")
        for cut in scenes.cuts:
            print(f"cut at frame {cut} ({cut / scenes.fps:.3f} s)" if scenes.fps else f"cut at frame {cut}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.name:
            raise UsageError(f"unexpected {args.name!r}: did you mean `stereoconv presets show {args.name}`?")
        for name in preset_names():
            default = " (default)" if name == DEFAULT_PRESET else ""
            print(f"{name:<14}{preset_description(name)}{default}")
        return 0
    if not args.name:
        raise UsageError("presets show needs a NAME: " + ", ".join(preset_names()))
    print(to_toml(load_config(args.name, args.config, _overrides(args))), end="")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import installed_families, models_table

    print(models_table(installed_families()))
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from .preview import preview

    config = load_config(args.preset, args.config, _overrides(args))
    written = preview(args.input, parse_time(args.at, "--at"), args.out, config, layout=args.layout,
                      warmup_seconds=args.warmup, depth_cache=args.depth_cache, shots=_load_shots(args))  # fmt: skip
    print(f"wrote {written}", file=sys.stderr)
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .farm import plan

    config = load_config(args.preset, args.config, _overrides(args))
    job = plan(args.input, args.out, config, chunk_seconds=args.chunk_seconds, preroll_seconds=args.preroll_seconds,
               progress=not args.quiet, shots=_load_shots(args))  # fmt: skip
    if not args.quiet:
        mid = sum(1 for c in job.chunks if not c.starts_at_cut)
        print(f"wrote {job.path}: {job.frames} frames, {_count(len(job.cuts), 'cut')}, "
              f"{_count(len(job.chunks), 'chunk')} ({mid} starting mid-shot)", file=sys.stderr)  # fmt: skip
        if job.model_note:
            print(f"note: {job.model_note}", file=sys.stderr)
        for line in _shot_lines(job.shot_settings):
            print(line, file=sys.stderr)
    if job.losses:  # the chunks skip them; assemble reports them again and exits 5
        _print_losses(job.losses, f"planned with losses: {job.losses.summary()}",
                      f"wrote {job.path}; assemble will exit {EXIT_COMPLETED_WITH_LOSSES}")  # fmt: skip
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .farm import chunks_for_frames, load_job, parse_frame_range, render
    from .progress import JsonProgress

    job = load_job(args.job)
    if args.device:
        job = dataclasses.replace(job, settings=job.config.replace({"depth.device": args.device}).to_dict())
    if args.all:
        chunks = job.chunks
    elif args.frames is not None:
        chunks = chunks_for_frames(job, *parse_frame_range(args.frames))
    else:
        bad = [k for k in args.chunk if not 0 <= k < len(job.chunks)]
        if bad:
            raise UsageError(f"--chunk {bad[0]}: the job has chunks 0-{len(job.chunks) - 1}")
        chunks = [job.chunks[k] for k in dict.fromkeys(args.chunk)]
    total = sum(c.frames for c in chunks)
    progress = JsonProgress(total, args.progress_every, sys.stdout) if args.progress == "json" else None
    log = (lambda line: print(line, file=sys.stderr)) if args.progress == "text" else None
    warnings: list[str] = []
    render(job, chunks, args.work_dir, model=args.model, depth_cache=args.depth_cache, progress=progress, log=log,
           warnings=warnings)  # fmt: skip
    for warning in warnings:  # even without --progress text: why the next run is slow
        print(f"stereoconv: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_assemble(args: argparse.Namespace) -> int:
    from .farm import assemble, load_job

    job = load_job(args.job)
    notes: list[str] = []
    written = assemble(job, args.output, args.work_dir, notes=notes)
    for note in notes:
        print(f"stereoconv: {note}", file=sys.stderr)
    if job.losses:  # found when planned: the output has every frame that decodes, as convert's would
        _print_losses(job.losses, f"completed with losses: {job.losses.summary()}", f"wrote {written}")
        return EXIT_COMPLETED_WITH_LOSSES
    print(f"wrote {written}", file=sys.stderr)
    return 0


COMMANDS = {"convert": _cmd_convert, "preview": _cmd_preview, "scenes": _cmd_scenes, "presets": _cmd_presets,
            "models": _cmd_models, "plan": _cmd_plan, "render": _cmd_render, "assemble": _cmd_assemble}  # fmt: skip


def _storage_fault(exc: BaseException) -> StorageError | None:
    """The environment fault (full disk, permission denied...) behind ``exc`` or its causes, if there is one."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        fault = storage_error(cause)
        if fault is not None:
            return fault
        cause = cause.__cause__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stereoconv`` command. Returns the exit code."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except StereoconvError as exc:
        fault = _storage_fault(exc) if type(exc) is StereoconvError else None  # "writing failed" over a full disk
        print(f"stereoconv: error: {fault or exc}", file=sys.stderr)
        return (fault or exc).exit_code
    except KeyboardInterrupt:
        print("stereoconv: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("stereoconv: terminated; no output was written", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        if os.environ.get("STEREOCONV_DEBUG"):
            raise
        fault = _storage_fault(exc)
        if fault is not None:  # the user's full disk, not our internal error
            print(f"stereoconv: error: {fault}", file=sys.stderr)
            return fault.exit_code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"stereoconv: internal error: {type(exc).__name__}: {first} "
              "(set STEREOCONV_DEBUG=1 for the traceback)", file=sys.stderr)  # fmt: skip
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
