"""Checkpoint (or PLY) → analysis → camera path → batched rasterization → in-memory H.264, in one call.

Rendering, colour conversion and the device→host copy run in a producer thread while the
encoder consumes finished frames, so on a GPU the render hides behind x264. Only the MP4 (and,
when asked, the camera-path JSON) touches the disk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras

from splat_render.analysis import SceneAnalysis, analyze_scene
from splat_render.encode import EncoderSpec, encode_frames
from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians
from splat_render.model import BACKGROUNDS
from splat_render.orbit import CameraPath, PathSpec, write_camera_path
from splat_render.outputs import check_writable, published_together
from splat_render.paths import PathScore, choose_path, poster_frame
from splat_render.quality import Evaluation, start_evaluation
from splat_render.raster import RenderSettings, render_frames, resolve_device
from splat_render.report import ReportInputs, write_report
from splat_render.sheet import (
    SHEET_WIDTH,
    contact_sheet,
    image_format,
    sheet_indices,
    write_image,
    yuv420_to_rgb,
)
from splat_render.views import pinhole_cameras
from splat_render.yuv import rgb_to_yuv420

QUEUE_DEPTH = 3  # finished batches waiting for the encoder
SHEET_TILES = 12


@dataclass(frozen=True)
class PreviewSpec:
    path: PathSpec = field(default_factory=PathSpec)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    device: str | None = None  # None: CUDA when available
    batch_size: int | None = None  # None: sized from free GPU memory
    camera_path_out: Path | None = None
    poster: Path | None = None  # JPEG of the frame that shows most of the content
    contact_sheet: Path | None = None  # PNG grid of evenly spaced frames
    keep_unobserved: bool = False  # draw the gaussians no training view saw
    up: tuple[float, float, float] | None = None  # known up direction; None: the PLY's header, or estimated
    quality_out: Path | None = None  # the quality and coverage report (JSON), best-effort
    coverage_out: Path | None = None  # the poster's frame with thinly seen content tinted, best-effort

    def __post_init__(self) -> None:
        for still in (self.poster, self.contact_sheet, self.coverage_out):
            if still is not None:
                image_format(still)


@dataclass(frozen=True)
class Scene:
    """What rendering needs, wherever it came from."""

    gaussians: Gaussians
    settings: RenderSettings
    cameras: Cameras | None  # the training cameras, if known
    up: np.ndarray | None = None  # up as the input declares it (a PLY header), if it does
    non_finite: int = 0  # gaussians of the input left out for a NaN or infinite value
    step: int | None = None  # the checkpoint's training step, with a config
    dataparser: Any = None  # the run's dataparser config, with a config (the quality report reads it)


@dataclass(frozen=True)
class Plan:
    """What the preview will show: the analysis, the path, the gaussians drawn, the poster frame, and
    how well the training views support the path (None without cameras)."""

    analysis: SceneAnalysis
    path: CameraPath
    drawn: Gaussians
    poster_index: int
    score: PathScore | None = None


@dataclass(frozen=True)
class PreviewReport:
    output: Path
    frames: int
    width: int
    height: int
    fps: int
    bytes: int
    device: str
    gaussians: int  # in the model
    non_finite: int  # left out of it for a NaN or infinite value
    drawn: int  # of them drawn in the preview
    path_kind: str
    path_reason: str
    analysis: SceneAnalysis
    stills: tuple[Path, ...]  # poster and contact sheet written beside the video
    stage_seconds: dict[str, float]
    report: dict[str, Any] | None = None  # the quality report written, if asked for and made
    report_note: str | None = None  # why the report asked for was not written


def load_scene(config: Path | None, ply: Path | None, device: torch.device) -> Scene:
    """Gaussians from the checkpoint, or from an exported PLY; settings and cameras from the config."""
    if config is None and ply is None:
        raise PreviewInputError(
            "give --config (a splatfacto config.yml) and/or --ply (an exported splat.ply)"
        )
    up = None  # with a config the training cameras know up better than a PLY's blanket header
    step = dataparser = None
    if config is not None:
        from splat_render.model import load_splatfacto

        # With --ply the checkpoint supplies only settings and cameras: keep its copy off the GPU.
        loaded = load_splatfacto(config, device if ply is None else torch.device("cpu"))
        settings = RenderSettings(loaded.background.to(device), loaded.rasterize_mode)
        cameras, step, dataparser = loaded.cameras, loaded.step, loaded.dataparser
    else:
        # A bare PLY gets splatfacto's default eval background.
        settings, cameras = RenderSettings(torch.tensor(BACKGROUNDS["random"], device=device)), None
    if ply is not None:
        from splat_render.ply import read_gaussians, vertical_axis

        gaussians, source = read_gaussians(ply), ply
        if config is None:
            up = vertical_axis(ply)
    else:
        gaussians, source = loaded.gaussians, loaded.checkpoint
    from splat_render.export import exported_rows

    # What the export writes: no rows the rasterizer cannot draw (non-finite) or skips (faint).
    rows = exported_rows(gaussians, source)
    kept = gaussians.select(rows.kept).to(device)
    return Scene(kept, settings, cameras, up, rows.non_finite, step, dataparser)


def plan_preview(scene: Scene, spec: PreviewSpec) -> Plan:
    """Analyse what the capture saw, choose and fit the path, pick the poster frame."""
    up = np.asarray(spec.up) if spec.up is not None else scene.up
    analysis = analyze_scene(scene.gaussians, scene.cameras, up=up)
    planned = choose_path(analysis, scene.gaussians, spec.path, spec.keep_unobserved)
    drawn = scene.gaussians
    if not planned.shown.all():
        drawn = scene.gaussians.select(torch.as_tensor(planned.shown, device=scene.gaussians.device))
    shares = None if planned.score is None else planned.score.frame_shares
    poster = poster_frame(planned.path, planned.points, analysis.camera_c2w, shares)
    return Plan(analysis, planned.path, drawn, poster, planned.score)


def render_preview(
    config: Path | None,
    output: Path,
    spec: PreviewSpec = PreviewSpec(),
    ply: Path | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> PreviewReport:
    """Render the preview of a trained splat into ``output`` (an MP4) and the files ``spec`` asks for,
    all published together once complete, or none of them."""
    started = time.perf_counter()
    output = Path(output)
    outputs = preview_outputs(output, spec)
    check_writable([*outputs, *report_outputs(spec)])  # fail now, before minutes of rendering
    device = resolve_device(spec.device)
    scene = load_scene(config, ply, device)
    with start_evaluation(scene.dataparser if spec.quality_out else None, device) as evaluation:
        return render_loaded(scene, output, outputs, spec, evaluation, on_frames, started)


def render_loaded(
    scene: Scene,
    output: Path,
    outputs: list[Path],
    spec: PreviewSpec,
    evaluation: Evaluation | None,
    on_frames: Callable[[int], None] | None,
    started: float,
) -> PreviewReport:
    """Plan, render and publish the preview of a loaded scene, then, best-effort, its report."""
    device = scene.gaussians.device
    loaded = time.perf_counter()
    plan = plan_preview(scene, spec)
    path = plan.path
    planned = time.perf_counter()

    sheet = sheet_indices(path.frames, SHEET_TILES) if spec.contact_sheet else []
    wanted = set(sheet) | ({plan.poster_index} if spec.poster else set())
    kept: dict[int, np.ndarray] = {}
    batches = counted(
        stream_yuv_frames(plan.drawn, scene.settings, path, device, spec.batch_size), on_frames, wanted, kept
    )
    with published_together(outputs) as temps:
        if spec.camera_path_out is not None:
            write_camera_path(path, temps[spec.camera_path_out])
        result = encode_frames(batches, temps[output], path.width, path.height, spec.encoder)
        stills = write_stills(kept, plan.poster_index, sheet, spec, temps)
    finished = time.perf_counter()
    report, note = best_effort_report(scene, plan, spec, evaluation)
    reported = time.perf_counter()
    return PreviewReport(
        output=output,
        frames=result.frames,
        width=path.width,
        height=path.height,
        fps=path.fps,
        bytes=result.bytes,
        device=str(device),
        gaussians=len(scene.gaussians),
        non_finite=scene.non_finite,
        drawn=len(plan.drawn),
        path_kind=path.kind,
        path_reason=path.reason,
        analysis=plan.analysis,
        stills=stills,
        stage_seconds={
            "load": loaded - started,
            "analysis_and_path": planned - loaded,
            "render_and_encode": finished - planned,
            "encode": result.encode_seconds,
            **({"report": reported - finished} if report_outputs(spec) else {}),
            "total": reported - started,
        },
        report=report,
        report_note=note,
    )


def report_outputs(spec: PreviewSpec) -> list[Path]:
    """The report's files: published together after the preview, or not at all."""
    return [Path(path) for path in (spec.quality_out, spec.coverage_out) if path is not None]


def best_effort_report(
    scene: Scene, plan: Plan, spec: PreviewSpec, evaluation: Evaluation | None
) -> tuple[dict[str, Any] | None, str | None]:
    """Write the quality report asked for; a failure is a note, never a lost preview."""
    if not report_outputs(spec):
        return None, None
    inputs = ReportInputs(
        scene.gaussians,
        plan.drawn,
        scene.settings,
        scene.step,
        scene.non_finite,
        plan.analysis,
        plan.path,
        plan.poster_index,
    )
    try:
        return write_report(inputs, evaluation, spec.quality_out, spec.coverage_out), None
    except Exception as exc:  # best-effort: the preview is published already
        return None, f"quality report skipped: {type(exc).__name__}: {exc}".splitlines()[0]


def preview_outputs(output: Path, spec: PreviewSpec) -> list[Path]:
    """Every file a preview writes, in the order they are published: the video last."""
    asked = (spec.camera_path_out, spec.poster, spec.contact_sheet, output)
    return [Path(path) for path in asked if path is not None]


def write_stills(
    kept: dict[int, np.ndarray],
    poster_index: int,
    sheet: list[int],
    spec: PreviewSpec,
    into: Mapping[Path, Path],
) -> tuple[Path, ...]:
    """The poster and the contact sheet, from the frames kept on their way to the encoder, each
    written where ``into`` maps its path (a temporary name until the preview is published)."""
    written = []
    if spec.poster is not None:
        write_image(yuv420_to_rgb(kept[poster_index]), into[spec.poster])
        written.append(spec.poster)
    if spec.contact_sheet is not None:
        frames = [yuv420_to_rgb(kept[i]) for i in sheet]
        write_image(contact_sheet(np.stack(frames)), into[spec.contact_sheet], max_width=SHEET_WIDTH)
        written.append(spec.contact_sheet)
    return tuple(written)


def stream_yuv_frames(
    gaussians: Gaussians,
    settings: RenderSettings,
    path: CameraPath,
    device: torch.device,
    batch_size: int | None,
) -> Iterator[np.ndarray]:
    """Yield [B, H*3/2, W] uint8 YUV 4:2:0 batches on the host, produced ahead in a thread."""
    batches = render_path(gaussians, settings, path, device, batch_size)
    handoff: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    # A batch is reused only after QUEUE_DEPTH newer ones were queued and the encoder took the next.
    pinned: list[torch.Tensor | None] = [None] * (QUEUE_DEPTH + 2)

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for index, rgb in enumerate(batches):
                if not offer(to_host(rgb_to_yuv420(rgb), pinned, index % len(pinned))):
                    return
            offer(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(exc)

    worker = threading.Thread(target=produce, name="render", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def to_host(frames: torch.Tensor, pool: list[torch.Tensor | None], slot: int) -> np.ndarray:
    """Copy to host memory; on CUDA through reused pinned buffers, twice as fast as pageable ones."""
    if frames.device.type != "cuda":
        return frames.numpy()
    buffer = pool[slot]
    if buffer is None or buffer.shape != frames.shape:
        buffer = pool[slot] = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    buffer.copy_(frames, non_blocking=True)
    torch.cuda.current_stream(frames.device).synchronize()
    return buffer.numpy()


def counted(
    batches: Iterator[np.ndarray],
    on_frames: Callable[[int], None] | None,
    wanted: set[int] = frozenset(),
    kept: dict[int, np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Pass batches through, reporting how many frames the consumer has taken so far and copying the
    ``wanted`` frames into ``kept`` (batches live in reused buffers)."""
    done = 0
    for batch in batches:
        for index in wanted & set(range(done, done + len(batch))):
            kept[index] = batch[index - done].copy()
        yield batch
        done += len(batch)
        if on_frames is not None:
            on_frames(done)


def render_path(
    gaussians: Gaussians,
    settings: RenderSettings,
    path: CameraPath,
    device: torch.device,
    batch_size: int | None = None,
) -> Iterator[torch.Tensor]:
    """The path's frames, each with its cuts, as [B,H,W,3] RGB batches on ``device``."""
    cuts = None if path.cuts is None else torch.as_tensor(path.cuts, dtype=torch.float32, device=device)
    return render_frames(gaussians, path_cameras(path, device), settings, batch_size, cuts)


def path_cameras(path: CameraPath, device: torch.device) -> Cameras:
    """The path as one batched nerfstudio ``Cameras`` on the render device."""
    c2w = torch.as_tensor(path.c2w, dtype=torch.float32, device=device)
    return pinhole_cameras(c2w, path.focal, path.width, path.height).to(device)
