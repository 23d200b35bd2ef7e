"""``preview --standby``: import now, render when the run is finished.

A fresh preview process spends most of its time importing torch, torchvision, PyAV and nerfstudio
(10–14 s on the GPU machine; loading, rendering and encoding 300 1080p frames take 2–3 s), and none
of that needs the checkpoint. So the pipeline starts the renderer as training starts: it imports
what the preview of a checkpoint will use, then waits for one line on its stdin, sent when training
has finished. The end of its stdin instead means the pipeline is gone (failed, cancelled or killed):
the renderer then exits without rendering.

Standby touches neither the GPU nor gsplat's compiled extension: no CUDA context is taken from the
training that runs meanwhile, and gsplat's first-use build, which training may be running at that
moment, is left alone.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import TextIO

from splat_render.errors import PreviewInputError

ANNOUNCEMENT = "standing by"  # begins the stderr line that says the imports are done

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


def stand_by(stdin: TextIO = sys.stdin) -> None:
    """Import, say so on stderr, then block until a line arrives on ``stdin``.

    Raises PreviewInputError when the input ends first: nobody is waiting for the preview any more.
    """
    started = time.perf_counter()
    import_render_path()
    seconds = time.perf_counter() - started
    print(
        f"{ANNOUNCEMENT}: imports took {seconds:.1f} s; rendering when the run is finished", file=sys.stderr
    )
    if not stdin.readline():
        raise PreviewInputError("the input ended before the run was finished: nothing rendered")
