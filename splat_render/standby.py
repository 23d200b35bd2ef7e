"""``preview --standby``: import now, warm the GPU up, render when the run is finished.

A fresh preview process spends most of its time importing torch, torchvision, PyAV and nerfstudio
(10–14 s on the GPU machine; loading, rendering and encoding 300 1080p frames take 2–3 s), and none
of that needs the checkpoint. So the pipeline starts the renderer as training starts: it imports
what the preview of a checkpoint will use, then waits for one line on its stdin, sent when training
has finished. The end of its stdin instead means the pipeline is gone (failed, cancelled or killed):
the renderer then exits without rendering.

While it waits, the renderer also does what a fresh process otherwise pays for after the go-ahead:
it takes its CUDA context (about half a GB of the GPU's memory beside training) and, once gsplat's
compiled extension exists, loads it and draws one tiny frame forwards and backwards, so that the
kernels the preview launches are loaded. The extension is never touched while it may still be
building: gsplat's loader deletes an unfinished build directory, and the training that runs
meanwhile may be the one building it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from splat_render.errors import PreviewInputError

ANNOUNCEMENT = "standing by"  # begins the stderr line that says the imports are done
WARM_ANNOUNCEMENT = "warm"  # begins the stderr line that says the GPU is ready to render
EXTENSION_POLL_S = 1.0  # how often the warm-up looks whether training has built gsplat's extension
GSPLAT_EXTENSION = "gsplat_cuda"  # the name gsplat builds its extension under

# What loading a checkpoint and rendering it import, beyond splat_render.preview itself: what
# eval_setup unpickles from config.yml and builds (the splatfacto model, its datamanager, dataparser
# and metrics), and the progress display. Modules that are not installed are skipped.
RENDER_PATH_MODULES = (
    "splat_render.preview",
    "splat_render.export",
    "splat_render.reference",
    "rich.progress",
    "yaml",
    "torchmetrics.image.lpip",
    "nerfstudio.models.splatfacto",
    "nerfstudio.data.datamanagers.full_images_datamanager",
    "nerfstudio.data.dataparsers.nerfstudio_dataparser",
    "sklearn.neighbors",
)


def import_render_path() -> None:
    """Import what a preview of a checkpoint uses, eval_setup included; nothing runs."""
    from splat_render.model import import_eval_setup

    for name in RENDER_PATH_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    import_eval_setup()


def gsplat_extension_built() -> bool:
    """Whether loading gsplat's CUDA extension now only loads it: a compiled wheel, or a finished
    first-use build (its library written, no build holding the lock)."""
    if importlib.util.find_spec("gsplat.csrc") is not None:
        return True
    # Where gsplat's own loader looks (a private torch helper, as gsplat uses it).
    from torch.utils.cpp_extension import _get_build_directory

    build = Path(_get_build_directory(GSPLAT_EXTENSION, verbose=False))
    return (build / f"{GSPLAT_EXTENSION}.so").is_file() and not (build / "lock").exists()


def extension_built_before(go_ahead: threading.Event, poll_s: float = EXTENSION_POLL_S) -> bool:
    """Wait until gsplat's extension is built (True) or the go-ahead comes first (False)."""
    while not gsplat_extension_built():
        if go_ahead.wait(poll_s):
            return False
    return True


def warm_up_gpu(device: str, go_ahead: threading.Event) -> float | None:
    """Take the CUDA context of ``device``, then, once gsplat's extension is built, load it and
    draw one tiny frame (forwards, and backwards as the scene analysis does).

    Returns the seconds it took, or None when there is nothing to warm (no CUDA) or the go-ahead
    came first: the preview then does the rest itself, as a fresh process does.
    """
    import torch

    from splat_render.raster import resolve_device

    started = time.perf_counter()
    target = resolve_device(device)
    if target.type != "cuda":
        return None
    torch.empty(1, device=target)  # creates the context
    if not extension_built_before(go_ahead):
        return None
    draw_tiny_frame(target)
    torch.cuda.synchronize(target)
    return time.perf_counter() - started


def draw_tiny_frame(device) -> None:
    """One gaussian in front of one 16×16 camera, through the preview's own render calls."""
    import torch

    from splat_render.gaussians import Gaussians
    from splat_render.raster import RenderSettings, blending_weights, render_batch
    from splat_render.yuv import rgb_to_yuv420

    def tensor(*values: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)

    gaussian = Gaussians(
        means=tensor(0.0, 0.0, 2.0)[None],
        quats=tensor(1.0, 0.0, 0.0, 0.0)[None],
        log_scales=tensor(-2.0, -2.0, -2.0)[None],
        opacity_logits=tensor(2.0),
        sh_dc=tensor(0.5, 0.5, 0.5)[None],
        sh_rest=torch.zeros(1, 15, 3, device=device),
    )
    viewmats, Ks = torch.eye(4, device=device)[None], tensor(16.0, 0, 8, 0, 16, 8, 0, 0, 1).reshape(1, 3, 3)
    rgb_to_yuv420(render_batch(gaussian, viewmats, Ks, 16, 16, RenderSettings(tensor(0.0, 0.0, 0.0))))
    blending_weights(gaussian, viewmats, Ks, 16, 16)


def stand_by(stdin: TextIO = sys.stdin, device: str = "auto", started: float | None = None) -> None:
    """Import, say so on stderr, warm the GPU up in the background, block until a line arrives on
    ``stdin``, then wait for the warm-up to finish what it started. The imports are timed from
    ``started`` (a ``time.perf_counter()`` reading), by default from now.

    Raises PreviewInputError when the input ends first: nobody is waiting for the preview any more.
    """
    started = time.perf_counter() if started is None else started
    import_render_path()
    seconds = time.perf_counter() - started
    print(
        f"{ANNOUNCEMENT}: imports took {seconds:.1f} s; rendering when the run is finished", file=sys.stderr
    )
    go_ahead = threading.Event()
    warming = threading.Thread(target=announce_warm_up, args=(device, go_ahead), name="warm-up", daemon=True)
    warming.start()
    line = stdin.readline()
    go_ahead.set()
    if not line:
        raise PreviewInputError("the input ended before the run was finished: nothing rendered")
    warming.join()


def announce_warm_up(device: str, go_ahead: threading.Event) -> None:
    """The warm-up, best effort: anything it fails at, the preview meets (and reports) itself."""
    try:
        seconds = warm_up_gpu(device, go_ahead)
    except Exception as exc:  # noqa: BLE001 — reported by the render that follows, if it matters
        print(f"{WARM_ANNOUNCEMENT}-up skipped: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return
    if seconds is not None:
        print(f"{WARM_ANNOUNCEMENT}: CUDA and gsplat's extension loaded in {seconds:.1f} s", file=sys.stderr)
