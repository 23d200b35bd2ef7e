"""Checkpoint (or PLY) → framing → orbit → batched rasterization → in-memory H.264, in one call.

Rendering, colour conversion and the device→host copy run in a producer thread while the
encoder consumes finished frames, so on a GPU the render hides behind x264. Only the MP4 (and,
when asked, the camera-path JSON) touches the disk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from splat_render.encode import EncoderSpec, encode_frames
from splat_render.errors import PreviewInputError
from splat_render.framing import SceneFrame, frame_scene
from splat_render.gaussians import Gaussians
from splat_render.model import BACKGROUNDS
from splat_render.orbit import CameraPath, OrbitSpec, orbit_path, write_camera_path
from splat_render.raster import RenderSettings, render_frames, resolve_device
from splat_render.yuv import rgb_to_yuv420

QUEUE_DEPTH = 3  # finished batches waiting for the encoder


@dataclass(frozen=True)
class PreviewSpec:
    orbit: OrbitSpec = field(default_factory=OrbitSpec)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    device: str | None = None  # None: CUDA when available
    batch_size: int | None = None  # None: sized from free GPU memory
    camera_path_out: Path | None = None


@dataclass(frozen=True)
class Scene:
    """What rendering needs, wherever it came from."""

    gaussians: Gaussians
    settings: RenderSettings
    camera_c2w: np.ndarray | None  # [M,3,4] training cameras, if known


@dataclass(frozen=True)
class PreviewReport:
    output: Path
    frames: int
    width: int
    height: int
    fps: int
    bytes: int
    device: str
    gaussians: int
    scene_frame: SceneFrame
    stage_seconds: dict[str, float]


def load_scene(config: Path | None, ply: Path | None, device: torch.device) -> Scene:
    """Gaussians from the checkpoint, or from an exported PLY; settings and cameras from the config."""
    if config is None and ply is None:
        raise PreviewInputError(
            "give --config (a splatfacto config.yml) and/or --ply (an exported splat.ply)"
        )
    if config is not None:
        from splat_render.model import load_splatfacto

        # With --ply the checkpoint supplies only settings and cameras: keep its copy off the GPU.
        loaded = load_splatfacto(config, device if ply is None else torch.device("cpu"))
        settings = RenderSettings(loaded.background, loaded.rasterize_mode)
        cameras = loaded.camera_c2w.cpu().numpy().astype(np.float64)
    else:
        # A bare PLY gets splatfacto's default eval background.
        settings, cameras = RenderSettings(torch.tensor(BACKGROUNDS["random"], device=device)), None
    if ply is not None:
        from splat_render.ply import read_gaussians

        gaussians = read_gaussians(ply).to(device)
    else:
        from splat_render.export import exported_rows

        # What the export writes: no rows the rasterizer cannot draw (non-finite) or skips (faint).
        gaussians = loaded.gaussians.select(exported_rows(loaded.gaussians)[0])
    return Scene(gaussians, settings, cameras)


def plan_path(scene: Scene, orbit: OrbitSpec) -> tuple[SceneFrame, CameraPath]:
    frame = frame_scene(
        scene.gaussians.means.cpu().numpy(), scene.gaussians.opacities().cpu().numpy(), scene.camera_c2w
    )
    return frame, orbit_path(frame, orbit, scene.camera_c2w)


def render_preview(
    config: Path | None,
    output: Path,
    spec: PreviewSpec = PreviewSpec(),
    ply: Path | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> PreviewReport:
    """Render the orbit preview of a trained splat into ``output`` (an MP4, written atomically)."""
    started = time.perf_counter()
    output = Path(output)
    if not output.parent.is_dir():
        raise PreviewInputError(f"output folder does not exist: {output.parent}")
    device = resolve_device(spec.device)
    scene = load_scene(config, ply, device)
    loaded = time.perf_counter()
    frame, path = plan_path(scene, spec.orbit)
    if spec.camera_path_out is not None:
        write_camera_path(path, spec.camera_path_out)
    planned = time.perf_counter()

    batches = counted(stream_yuv_frames(scene, path, device, spec.batch_size), on_frames)
    result = encode_frames(batches, output, path.width, path.height, spec.encoder)
    finished = time.perf_counter()
    return PreviewReport(
        output=result.path,
        frames=result.frames,
        width=path.width,
        height=path.height,
        fps=path.fps,
        bytes=result.bytes,
        device=str(device),
        gaussians=len(scene.gaussians),
        scene_frame=frame,
        stage_seconds={
            "load": loaded - started,
            "camera_path": planned - loaded,
            "render_and_encode": finished - planned,
            "encode": result.encode_seconds,
            "total": finished - started,
        },
    )


def stream_yuv_frames(
    scene: Scene, path: CameraPath, device: torch.device, batch_size: int | None
) -> Iterator[np.ndarray]:
    """Yield [B, H*3/2, W] uint8 YUV 4:2:0 batches on the host, produced ahead in a thread."""
    c2w = torch.as_tensor(path.c2w, dtype=torch.float32, device=device)
    K = torch.as_tensor(path.intrinsics(), dtype=torch.float32, device=device)
    batches = render_frames(scene.gaussians, c2w, K, path.width, path.height, scene.settings, batch_size)
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


def counted(batches: Iterator[np.ndarray], on_frames: Callable[[int], None] | None) -> Iterator[np.ndarray]:
    """Pass batches through, reporting how many frames the consumer has taken so far."""
    done = 0
    for batch in batches:
        yield batch
        done += len(batch)
        if on_frames is not None:
            on_frames(done)
