"""``splat-render bench``: where the preview's time goes, and how it compares with ns-render + ffmpeg.

For each scene × resolution × frame count it measures, in this order:
- the direct path's stages one by one (checkpoint load, analysis and camera path, rasterization,
  colour conversion + device→host, encoding from memory = the encode floor) on the preview's own
  frames (the gaussians it draws, its cuts), peak GPU memory;
- the real pipelined render (render + transfer + encode overlapped), in this process;
- end to end: a fresh ``python -m splat_render preview`` process, start to closed MP4, and the
  import time of a fresh process;
- where asked, the baseline of the original feature request, in the same run: ``ns-render
  camera-path`` with our exported camera path writing PNG frames, then those PNGs encoded with
  libx264 at the same settings through PyAV (the FFmpeg libraries; no ffmpeg binary needed), and
  the PSNR of our frames against ns-render's, both drawing every gaussian without cuts (ns-render
  knows no other way).
A table is printed last and everything is written as JSON under the results folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from splat_render.encode import EncoderSpec, encode_frames
from splat_render.orbit import CameraPath, PathSpec, write_camera_path
from splat_render.preview import PreviewSpec, load_scene, plan_preview, render_path, render_preview, to_host
from splat_render.sizes import parse_resolution, scene_size
from splat_render.yuv import rgb_to_yuv420

PSNR_FRAMES = 3  # frames compared with ns-render, spread over the orbit


@dataclass
class RunResult:
    scene: str
    gaussians: int
    resolution: str
    frames: int
    device: str
    stages: dict[str, float] = field(default_factory=dict)
    peak_gpu_gb_above_model: float | None = None
    output_bytes: int = 0
    end_to_end_s: float | None = None
    baseline: dict[str, float] | None = None
    psnr_vs_ns_render_db: float | None = None
    baseline_error: str | None = None


def run_bench(args: argparse.Namespace) -> int:
    from splat_render.raster import resolve_device

    device = resolve_device(args.device)
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    frame_counts = [int(f) for f in args.frames.split(",") if f.strip()]
    baseline_runs = (
        set() if args.baseline == "none" else {tuple(p.split(":")) for p in args.baseline.split(",")}
    )
    work = Path(args.work or tempfile.mkdtemp(prefix="splat-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    import_s = None if args.no_end_to_end else measure_import_time()
    results: list[RunResult] = []
    out = args.results / f"bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    for name, config in bench_scenes(args, work):
        for resolution in resolutions:
            width, height = parse_resolution(resolution)
            for frames in frame_counts:
                log(f"{name} {resolution} {frames} frames on {device}")
                result = bench_one(name, config, width, height, resolution, frames, device, work)
                results.append(result)
                if not args.no_end_to_end:
                    measure_fresh_process(result, config, resolution, frames, device, work)
                if (resolution, str(frames)) in baseline_runs and device.type == "cuda":
                    try:
                        measure_baseline(result, config, width, height, frames, device, work)
                    except Exception as exc:  # recorded, and the other runs go on
                        result.baseline_error = str(exc)
                        log(f"baseline failed: {exc}")
                write_report(out, device, results, import_s)
    report = write_report(out, device, results, import_s)
    print(format_table(results, report["device"], import_s))
    print(f"\nreport: {out}")
    return 1 if any(r.baseline_error for r in results) else 0


def write_report(out: Path, device: torch.device, results: list[RunResult], import_s: float | None) -> dict:
    """The JSON report, rewritten after every run so an interrupted bench keeps what it measured."""
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(device),
        "cpu_cores": os.cpu_count(),
        "command": " ".join(["splat-render", *sys.argv[1:]]),
        "versions": versions(),
        "fresh_process_import_s": import_s,
        "runs": [asdict(r) for r in results],
    }
    out.write_text(json.dumps(report, indent=2))
    return report


def bench_scenes(args: argparse.Namespace, work: Path):
    if args.config:
        for config in args.config:
            yield config.parent.name, config
        return
    from splat_render.synthetic import SceneSpec, write_synthetic_run

    for name in (s.strip() for s in args.scenes.split(",")):
        gaussians = scene_size(name)
        root = work / f"scene-{name}"
        config = root / "refined/splatter/splatfacto/config.yml"
        if not config.exists():
            log(f"writing synthetic scene {name}")
            write_synthetic_run(root, SceneSpec(gaussians=gaussians))
        yield name, config


def bench_path(scene, spec: PathSpec, device: torch.device) -> CameraPath:
    """The preview's orbit (analysis included), drawn in full and without cuts, as ns-render draws it."""
    return replace(plan_preview(scene, PreviewSpec(path=spec, device=str(device))).path, cuts=None)


def bench_one(name, config, width, height, resolution, frames, device, work) -> RunResult:
    """Stage by stage, then the real overlapped pipeline, all in this (warm) process."""
    orbit = PathSpec(kind="orbit", frames=frames, width=width, height=height)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    stages: dict[str, float] = {}

    t = time.perf_counter()
    scene = load_scene(config, None, device)
    stages["checkpoint_load"] = time.perf_counter() - t
    t = time.perf_counter()
    plan = plan_preview(scene, PreviewSpec(path=orbit, device=str(device)))
    sync()
    stages["analysis_and_camera_path"] = time.perf_counter() - t

    def preview_frames():  # what the preview draws: its gaussians, its cuts
        return render_path(plan.drawn, scene.settings, plan.path, device)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        model_bytes = torch.cuda.memory_allocated(device)
    sync()
    t = time.perf_counter()
    for batch in preview_frames():
        del batch
    sync()
    stages["rasterize"] = time.perf_counter() - t
    peak = None
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - model_bytes) / 2**30

    yuv_batches = []
    for batch in preview_frames():
        yuv_batches.append(rgb_to_yuv420(batch))
    sync()
    # The pipeline's own transfer: reused pinned buffers (allocated before timing, as the pipeline
    # allocates them once). Keeping each frame for the encode floor is a further copy, not timed.
    pool: list = [None, None]
    to_host(yuv_batches[0], pool, 0)
    to_host(yuv_batches[0], pool, 1)
    host, transfer = [], 0.0
    for i, b in enumerate(yuv_batches):
        t = time.perf_counter()
        arr = to_host(b, pool, i % 2)
        transfer += time.perf_counter() - t
        host.append(arr.copy())
    stages["device_to_host"] = transfer
    del yuv_batches, pool

    floor_out = work / f"floor-{name}-{resolution}-{frames}.mp4"
    t = time.perf_counter()
    floor = encode_frames(iter(host), floor_out, width, height, EncoderSpec())
    stages["encode_floor"] = time.perf_counter() - t
    del host

    out = work / f"ours-{name}-{resolution}-{frames}.mp4"
    spec = PreviewSpec(path=orbit, device=str(device))
    t = time.perf_counter()
    report = render_preview(config, out, spec)
    stages["pipelined_total"] = time.perf_counter() - t
    stages["pipelined_render_transfer_encode"] = report.stage_seconds["render_and_encode"]
    if floor.frames != frames:
        raise RuntimeError(f"encode floor wrote {floor.frames} frames, expected {frames}")
    return RunResult(
        scene=name,
        gaussians=len(scene.gaussians),
        resolution=resolution,
        frames=frames,
        device=str(device),
        stages={k: round(v, 4) for k, v in stages.items()},
        peak_gpu_gb_above_model=None if peak is None else round(peak, 3),
        output_bytes=report.bytes,
    )


def measure_import_time() -> float:
    """Seconds a fresh Python process spends importing what a preview needs (the lean path)."""
    t = time.perf_counter()
    run_checked([sys.executable, "-W", "ignore", "-c", IMPORTS_OF_A_PREVIEW])
    return round(time.perf_counter() - t, 3)


def measure_fresh_process(result: RunResult, config, resolution, frames, device, work) -> None:
    """Process start → MP4 closed, as the pipeline runs it."""
    out = work / f"e2e-{result.scene}-{resolution}-{frames}.mp4"
    command = [
        sys.executable,
        "-m",
        "splat_render",
        "preview",
        "--config",
        str(config),
        "--output",
        str(out),
        "--resolution",
        resolution,
        "--frames",
        str(frames),
        "--device",
        str(device),
        "--quiet",
    ]
    t = time.perf_counter()
    run_checked(command)
    result.end_to_end_s = round(time.perf_counter() - t, 3)


IMPORTS_OF_A_PREVIEW = (
    "import splat_render.cli, splat_render.preview, splat_render.model as m, gsplat\nm.import_eval_setup()"
)


def measure_baseline(result: RunResult, config, width, height, frames, device, work) -> None:
    """ns-render camera-path → PNG frames → libx264 via PyAV, with our camera path; PSNR vs ours."""
    scene = load_scene(config, None, device)
    path = bench_path(scene, PathSpec(kind="orbit", frames=frames, width=width, height=height), device)
    camera_json = work / f"camera-path-{result.scene}-{width}x{height}-{frames}.json"
    write_camera_path(path, camera_json)
    # No dots in the name: ns-render writes images into output_path's parent / its stem.
    png_dir = work / f"ns-render-{result.scene.replace('.', 'p')}-{width}x{height}-{frames}"
    shutil.rmtree(png_dir, ignore_errors=True)
    env = baseline_environment(work)
    command = [
        "ns-render",
        "camera-path",
        "--load-config",
        str(config.resolve()),
        "--camera-path-filename",
        str(camera_json.resolve()),
        "--output-path",
        str(png_dir.resolve()),
        "--output-format",
        "images",
        "--image-format",
        "png",
    ]
    log("baseline: ns-render camera-path (PNG frames)")
    t = time.perf_counter()
    # Run from the job root: stored relative paths in config.yml resolve from there, as in the pipeline.
    run_checked(command, env=env, cwd=config.parents[3])
    render_s = time.perf_counter() - t
    pngs = sorted(png_dir.glob("*.png"))
    if len(pngs) != frames:
        raise RuntimeError(f"ns-render wrote {len(pngs)} PNG frames to {png_dir}, expected {frames}")
    png_bytes = sum(p.stat().st_size for p in pngs)
    log("baseline: encoding the PNGs with libx264")
    t = time.perf_counter()
    encoded = encode_frames(
        decoded_pngs(pngs),
        work / f"baseline-{result.scene}.mp4",
        width,
        height,
        EncoderSpec(),
        pixel_format="rgb24",
    )
    encode_s = time.perf_counter() - t
    result.baseline = {
        "ns_render_s": round(render_s, 3),
        "png_encode_s": round(encode_s, 3),
        "total_s": round(render_s + encode_s, 3),
        "png_frames": len(pngs),
        "png_megabytes": round(png_bytes / 1e6, 1),
        "mp4_bytes": encoded.bytes,
    }
    result.psnr_vs_ns_render_db = round(psnr_against_pngs(scene, path, pngs, device), 2)


def run_checked(command: list[str], **kwargs) -> None:
    """Run a command; on failure, raise with the last lines it printed."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"{command[0]} {command[1]} failed (exit {done.returncode}):\n{tail}")


def baseline_environment(work: Path) -> dict[str, str]:
    """What ns-render needs on an offline machine: our offline patches at start-up, and an ffmpeg
    on PATH for its installation check (images mode never calls it)."""
    shim = work / "baseline-shim"
    (shim / "bin").mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        "from splat_render.model import offline_nerfstudio\n"
        "OFFLINE = offline_nerfstudio()  # held for the life of the process\n"
        "OFFLINE.__enter__()\n"
    )
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(shim), project, env.get("PYTHONPATH", "")] if p)
    if shutil.which("ffmpeg") is None:
        fake = shim / "bin" / "ffmpeg"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
        env["PATH"] = f"{shim / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def decoded_pngs(pngs: list[Path]):
    from PIL import Image

    for png in pngs:
        yield np.asarray(Image.open(png).convert("RGB"))[None]


def psnr_against_pngs(scene, path, pngs: list[Path], device) -> float:
    from PIL import Image

    picks = np.linspace(0, len(pngs) - 1, PSNR_FRAMES).round().astype(int)
    sub = replace(path, c2w=path.c2w[picks])
    ours = torch.cat(list(render_path(scene.gaussians, scene.settings, sub, device)))
    ours = (ours.cpu().numpy() * 255).round()
    theirs = np.stack([np.asarray(Image.open(pngs[i]).convert("RGB"), dtype=np.float64) for i in picks])
    mse = float(np.mean((ours - theirs) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "gsplat", "nerfstudio", "av")}


def format_table(results: list[RunResult], device: str, import_s: float | None) -> str:
    header = (
        "| scene | res | frames | load s | plan s | raster s | D2H s | encode floor s | pipelined r+t+e s "
        "| /floor | e2e s | baseline s | speed-up | PSNR dB | peak GB | MB |"
    )
    lines = [
        f"device: {device}; a fresh process imports for {fmt(import_s)} s (in e2e)",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for r in results:
        s = r.stages
        ratio = s["pipelined_render_transfer_encode"] / s["encode_floor"]
        base = r.baseline["total_s"] if r.baseline else None
        speedup = f"{base / r.end_to_end_s:.1f}x" if base and r.end_to_end_s else "-"
        cells = [
            r.scene,
            r.resolution,
            r.frames,
            fmt(s["checkpoint_load"]),
            fmt(s["analysis_and_camera_path"]),
            fmt(s["rasterize"]),
            fmt(s["device_to_host"]),
            fmt(s["encode_floor"]),
            fmt(s["pipelined_render_transfer_encode"]),
            fmt(ratio),
            fmt(r.end_to_end_s),
            fmt(base),
            speedup,
            fmt(r.psnr_vs_ns_render_db),
            fmt(r.peak_gpu_gb_above_model),
            f"{r.output_bytes / 1e6:.1f}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
