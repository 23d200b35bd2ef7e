"""Still pictures of a preview for people to look at: the poster (one JPEG) and a contact sheet (PNG grid).

Frames arrive as the encoder takes them (YUV 4:2:0, BT.709 limited range, as ``yuv.py`` makes them) and
are turned back into RGB with swscale through PyAV, the same conversion a player applies. Images are
written with Pillow under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from splat_render.errors import PreviewInputError
from splat_render.outputs import check_writable, published_together

GAP = 4  # pixels of background between and around the sheet's tiles
GAP_GREY = 32
SHEET_WIDTH = 1920  # contact sheets are shrunk to this width at most
JPEG_QUALITY = 90


def yuv420_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """One [H*3/2, W] uint8 yuv420p frame (BT.709 limited) → [H,W,3] uint8 RGB."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(yuv), format="yuv420p")
    rgb = frame.reformat(
        format="rgb24",
        src_colorspace=Colorspace.ITU709,
        src_color_range=ColorRange.MPEG,
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.JPEG,
    )
    return rgb.to_ndarray()


def contact_sheet(frames: np.ndarray, columns: int | None = None) -> np.ndarray:
    """[N,H,W,3] uint8 frames tiled row by row on a dark grey ground, [H',W',3] uint8."""
    count, height, width, _ = frames.shape
    columns = columns or math.ceil(math.sqrt(count * height / width))  # roughly square overall
    rows = math.ceil(count / columns)
    sheet = np.full((GAP + rows * (height + GAP), GAP + columns * (width + GAP), 3), GAP_GREY, np.uint8)
    for index, frame in enumerate(frames):
        top = GAP + (index // columns) * (height + GAP)
        left = GAP + (index % columns) * (width + GAP)
        sheet[top : top + height, left : left + width] = frame
    return sheet


def sheet_indices(frames: int, tiles: int) -> list[int]:
    """Evenly spaced frame indices, first frame included, at most ``tiles`` of them."""
    tiles = min(tiles, frames)
    return sorted({round(i * frames / tiles) for i in range(tiles)})


def image_format(path: Path) -> str:
    """Pillow's format for an image path by its suffix ("PNG" or "JPEG"); a one-line error otherwise."""
    kind = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower())
    if kind is None:
        raise PreviewInputError(f"{path}: image files must end in .png, .jpg or .jpeg")
    return kind


def write_image(image: np.ndarray, path: Path, max_width: int | None = None) -> None:
    """Write [H,W,3] uint8 as PNG or JPEG (by suffix), atomically, shrunk to ``max_width`` if wider."""
    from PIL import Image

    path = Path(path)
    kind = image_format(path)
    check_writable([path])
    picture = Image.fromarray(image)
    if max_width is not None and picture.width > max_width:
        picture = picture.resize(
            (max_width, round(picture.height * max_width / picture.width)), Image.Resampling.LANCZOS
        )
    with published_together([path]) as temps:
        picture.save(temps[path], format=kind, **({"quality": JPEG_QUALITY} if kind == "JPEG" else {}))
