"""``splat-render`` / ``python -m splat_render``: argument parsing, progress display, exit codes.

Every user-fixable problem ends as one line on stderr and exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from splat_render.errors import PreviewInputError
from splat_render.sizes import PATH_KINDS, RESOLUTIONS, SCENE_SIZES, parse_resolution

GPU_DEFAULT_RESOLUTION = "1080p"
CPU_DEFAULT_RESOLUTION = "180p"  # the CPU reference renders about 1-2 frames/s there
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splat-render", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    preview = commands.add_parser("preview", help="render the preview MP4 (and stills) of a trained splat")
    preview.add_argument("--config", type=Path, help="splatfacto config.yml (checkpoint beside it)")
    preview.add_argument("--ply", type=Path, help="render this exported splat.ply instead of the checkpoint")
    preview.add_argument("--output", "-o", type=Path, required=True, help="MP4 to write")
    preview.add_argument(
        "--resolution",
        help=f"{', '.join(RESOLUTIONS)} or WxH (default {GPU_DEFAULT_RESOLUTION} on GPU, "
        f"{CPU_DEFAULT_RESOLUTION} on CPU)",
    )
    preview.add_argument(
        "--frames",
        type=int,
        help="frames in the video, 90..300 (default 150; a flythrough takes what its keys need, to 300)",
    )
    preview.add_argument("--fps", type=int, default=30)
    preview.add_argument(
        "--path",
        choices=PATH_KINDS,
        default="auto",
        help="camera path: orbit, dollhouse, flythrough (the capture condensed), capture (the whole walk); "
        "auto takes the one the training views support best (default auto)",
    )
    preview.add_argument(
        "--elevation",
        type=float,
        help="degrees above the horizon, 15..60 (default: the cameras' band for orbit, 45 for dollhouse)",
    )
    preview.add_argument(
        "--arc",
        type=float,
        help="degrees of orbit, 30..360 (default: a loop when the cameras surrounded the content, "
        "else one sweep of what they covered)",
    )
    preview.add_argument(
        "--up", help="the world's up axis: +x, -x, +y, -y, +z or -z (default: header, cameras or geometry)"
    )
    preview.add_argument(
        "--keep-unobserved", action="store_true", help="also draw gaussians no training view saw"
    )
    preview.add_argument("--poster", type=Path, help="also write a JPEG of the frame showing most content")
    preview.add_argument("--contact-sheet", type=Path, help="also write a PNG grid of evenly spaced frames")
    preview.add_argument("--fov", type=float, default=50.0, help="vertical field of view, degrees")
    preview.add_argument("--crf", type=int, default=23, help="x264 constant rate factor (default 23)")
    preview.add_argument("--preset", default="medium", help="x264 preset (default medium)")
    preview.add_argument("--codec", default="libx264", help="FFmpeg H.264 encoder (default libx264)")
    preview.add_argument(
        "--batch-size", type=int, help="cameras per rasterization call (default: from free memory)"
    )
    preview.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    preview.add_argument(
        "--camera-path-out", type=Path, help="also write the nerfstudio camera-path JSON here"
    )
    preview.add_argument(
        "--quality-out", type=Path, help="also write the quality and coverage report (JSON), best-effort"
    )
    preview.add_argument(
        "--coverage-out", type=Path, help="also write the coverage picture (JPEG or PNG), best-effort"
    )
    preview.add_argument("--quiet", action="store_true", help="no progress bar, summary only")
    preview.add_argument(
        "--standby",
        action="store_true",
        help="import, warm the GPU up, then wait for a line on stdin to render (start it with training)",
    )

    export = commands.add_parser(
        "export", help="write splat.ply from a splatfacto checkpoint, as ns-export does"
    )
    export.add_argument(
        "--config", type=Path, required=True, help="splatfacto config.yml (checkpoint beside it)"
    )
    export.add_argument("--output", "-o", type=Path, required=True, help="PLY to write")

    sog = commands.add_parser("sog", help="write PlayCanvas's compressed SOG of a splat PLY")
    sog.add_argument("--ply", type=Path, required=True, help="gaussian-splat PLY to compress")
    sog.add_argument("--output", "-o", type=Path, required=True, help=".sog file to write")
    sog.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu (for the clustering)")

    synthetic = commands.add_parser("synthetic", help="write the bundled synthetic splatfacto run")
    synthetic.add_argument("out_dir", type=Path, help="job root to write refined/... into")
    synthetic.add_argument("--gaussians", type=int, default=50_000)
    synthetic.add_argument("--tilt", type=float, default=0.0, help="tilt of the whole world, degrees")
    synthetic.add_argument("--seed", type=int, default=0)

    bench = commands.add_parser("bench", help="time the preview against the ns-render + ffmpeg baseline")
    bench.add_argument(
        "--scenes", default="1.5M", help=f"synthetic sizes, comma-separated: {', '.join(SCENE_SIZES)}"
    )
    bench.add_argument("--config", type=Path, action="append", help="benchmark this splatfacto run instead")
    bench.add_argument("--resolutions", default="720p,1080p", help="comma-separated, e.g. 360p,720p,1080p")
    bench.add_argument("--frames", default="150,300", help="comma-separated frame counts")
    bench.add_argument(
        "--baseline", default="1080p:300", help="RESOLUTION:FRAMES pairs that also run ns-render (or 'none')"
    )
    bench.add_argument("--device", default="auto")
    bench.add_argument("--results", type=Path, default=Path("results"), help="folder for the JSON report")
    bench.add_argument(
        "--work", type=Path, help="scratch folder for scenes and outputs (default: a temp dir)"
    )
    bench.add_argument("--no-end-to-end", action="store_true", help="skip the fresh-process runs")
    return parser


def run() -> NoReturn:
    """The command's entry point: ``main``, then exit without the interpreter's teardown.

    Every file a command writes is complete and in place when ``main`` returns. What would remain
    is releasing the CUDA context, pinned buffers and thousands of modules: about 2 s after a preview
    on the GPU machine, which the job would wait for.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "preview":
            return run_preview(args, started)
        if args.command == "export":
            return run_export(args)
        if args.command == "sog":
            return run_sog(args)
        if args.command == "synthetic":
            return run_synthetic(args)
        from splat_render.bench import run_bench

        return run_bench(args)
    except PreviewInputError as exc:
        print(f"splat-render: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run_export(args: argparse.Namespace) -> int:
    from splat_render.export import export_splat

    report = export_splat(args.config, args.output)
    print(
        f"wrote {report.output}: {report.written:,} gaussians from {report.checkpoint.name} "
        f"(dropped {report.non_finite:,} with non-finite values, {report.faint:,} fainter than 1/255)"
    )
    return 0


def run_sog(args: argparse.Namespace) -> int:
    from splat_render.sog import write_sog

    report = write_sog(args.ply, args.output, args.device)
    dropped = f"; dropped {report.non_finite:,} with non-finite values" if report.non_finite else ""
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in report.stage_seconds.items())
    print(
        f"wrote {report.output}: {report.gaussians:,} gaussians, SH degree {report.sh_degree}, "
        f"{report.bytes / 1e6:.2f} MB, on {report.device}{dropped}\nstages: {stages}"
    )
    return 0


def run_synthetic(args: argparse.Namespace) -> int:
    from splat_render.synthetic import SceneSpec, write_synthetic_run

    if args.gaussians < 100:
        raise PreviewInputError(f"--gaussians must be at least 100, got {args.gaussians}")
    run = write_synthetic_run(
        args.out_dir, SceneSpec(gaussians=args.gaussians, tilt_deg=args.tilt, seed=args.seed)
    )
    print(f"config:     {run.config}\ncheckpoint: {run.checkpoint}\nply:        {run.ply}")
    return 0


def run_preview(args: argparse.Namespace, started: float) -> int:
    """Check every option, then (``--standby``) import and wait for the go-ahead, then render."""
    from rich.console import Console

    from splat_render.encode import EncoderSpec
    from splat_render.orbit import PathSpec
    from splat_render.outputs import check_writable
    from splat_render.ply import parse_axis
    from splat_render.preview import PreviewSpec, preview_outputs, render_preview, report_outputs
    from splat_render.raster import resolve_device

    console = Console(stderr=True)
    device = resolve_device(args.device)
    default = GPU_DEFAULT_RESOLUTION if device.type == "cuda" else CPU_DEFAULT_RESOLUTION
    width, height = parse_resolution(args.resolution or default)
    spec = PreviewSpec(
        path=PathSpec(
            kind=args.path,
            frames=args.frames,
            fps=args.fps,
            arc_deg=args.arc,
            elevation_deg=args.elevation,
            fov_y_deg=args.fov,
            width=width,
            height=height,
        ),
        encoder=EncoderSpec(crf=args.crf, preset=args.preset, fps=args.fps, codec=args.codec),
        device=str(device),
        batch_size=args.batch_size,
        camera_path_out=args.camera_path_out,
        poster=args.poster,
        contact_sheet=args.contact_sheet,
        keep_unobserved=args.keep_unobserved,
        up=None if args.up is None else tuple(parse_axis(args.up)),
        quality_out=args.quality_out,
        coverage_out=args.coverage_out,
    )
    # The run being trained may not have made its folder yet: with --standby that is checked later.
    outputs = [*preview_outputs(args.output, spec), *report_outputs(spec)]
    check_writable(outputs, folders_may_appear=args.standby)
    if args.standby:  # options and outputs are checked: a mistake fails now, not when training has finished
        from splat_render.standby import stand_by

        stand_by(sys.stdin, spec.device, started)
    with frame_progress(console, args.frames, args.quiet) as advance:
        report = render_preview(args.config, args.output, spec, ply=args.ply, on_frames=advance)
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in report.stage_seconds.items())
    analysis = report.analysis
    stills = "".join(f"\n[bold green]wrote[/] {still}" for still in report.stills)
    dropped = f"; dropped {report.non_finite:,} with non-finite values" if report.non_finite else ""
    console.print(
        f"path: {report.path_kind} ({report.path_reason}); up from {analysis.frame.up_source}\n"
        f"drew {report.drawn:,} of {report.gaussians:,} gaussians"
        f"{'' if report.drawn == report.gaussians else ' (the rest: residue outside what was captured)'}"
        f"{dropped}\n"
        f"[bold green]wrote[/] {report.output}: {report.frames} frames {report.width}x{report.height} "
        f"@ {report.fps} fps, {report.bytes / 1e6:.2f} MB, on {report.device}{stills}\n"
        f"stages: {stages}{report_summary(report)}",
        highlight=False,
    )
    print(report.output)
    return 0


def report_summary(report) -> str:
    """The quality report's line for the summary: its headline figures, or why it was skipped."""
    if report.report_note is not None:
        return f"\n[yellow]{report.report_note}[/]"
    if report.report is None:
        return ""
    quality, coverage = report.report["quality"], report.report["coverage"]
    parts = [
        f"{split} PSNR {quality[split]['psnr']:.2f} dB, SSIM {quality[split]['ssim']:.3f} "
        f"({quality[split]['views']} views)"
        for split in ("held_out", "training")
        if quality.get(split)
    ]
    if coverage is not None:
        parts.append(
            f"{coverage['well_seen']:.0%} of the content seen from 3+ directions, "
            f"{coverage['unseen'] + coverage['one_direction']:.0%} from one or none"
        )
    return "\nreport: " + ("; ".join(parts) or quality.get("note", "no figures"))


@contextlib.contextmanager
def frame_progress(console, total: int | None, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with frames/s and ETA; yields the callback that moves it. Without a total
    (the path chooses its length) it counts frames."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if quiet:
        yield lambda done: None
        return
    columns = (
        TextColumn("rendering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("render", total=total, rate="")

        def advance(done: int) -> None:
            progress.update(task, completed=done)
            speed = progress.tasks[task].speed
            progress.update(task, rate=f"{speed:.1f} frames/s" if speed else "")

        yield advance
