"""Names used on the command line: video resolutions, synthetic scene sizes, camera paths.

A leaf module (no torch, no numpy) so that the CLI and the benchmarks share it without importing
each other.
"""

from __future__ import annotations

import re
from typing import Literal

from splat_render.errors import PreviewInputError

PathKind = Literal["auto", "orbit", "dollhouse", "flythrough", "capture"]
PATH_KINDS: tuple[PathKind, ...] = ("auto", "orbit", "dollhouse", "flythrough", "capture")

RESOLUTIONS = {
    "180p": (320, 180),
    "360p": (640, 360),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
}
SCENE_SIZES = {"50k": 50_000, "0.15M": 150_000, "0.5M": 500_000, "1.5M": 1_500_000, "3M": 3_000_000}


def parse_resolution(text: str) -> tuple[int, int]:
    if text in RESOLUTIONS:
        return RESOLUTIONS[text]
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise PreviewInputError(f"resolution '{text}' is not one of {', '.join(RESOLUTIONS)} or WIDTHxHEIGHT")
    return int(match.group(1)), int(match.group(2))


def scene_size(name: str) -> int:
    """Gaussians in the synthetic scene of a named size, or of that many (a plain number)."""
    if name.isdigit():
        return int(name)
    if name not in SCENE_SIZES:
        raise PreviewInputError(f"unknown scene '{name}': choose from {', '.join(SCENE_SIZES)} or a number")
    return SCENE_SIZES[name]
