"""The COLMAP model's binaries, walked without taking any count in them at its word.

nerfstudio's readers (ns-process-data's too) build a format string and a read as long as each count
says before reading a byte of it, so a file of a few dozen bytes whose image claims billions of 2D
points takes tens of gigabytes of memory. Here every count is held against the bytes its file has
left, every camera must be of a model nerfstudio reads and no larger than a frame may be, and every
pose and point must be finite, before any reader is given the file. A file that fails is a one-line
``CorruptModel``.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from math import isfinite
from pathlib import Path

from nerfstudio.data.utils.colmap_parsing_utils import CAMERA_MODEL_IDS

from pipeline.frames import MAX_FRAME_PIXELS

COUNT = struct.Struct("<Q")
IMAGE_HEAD = struct.Struct("<idddddddi")  # image id, rotation quaternion, translation, camera id
CAMERA_HEAD = struct.Struct("<iiQQ")  # camera id, model id, width, height
POINT_HEAD = struct.Struct("<QdddBBBd")  # point id, position, colour, reprojection error
POINT_2D_BYTES = 24  # x, y, 3D point id
TRACK_ELEMENT_BYTES = 8  # image id, 2D point index
PARAM_BYTES = 8
NAME_MAX_BYTES = 1024
"""An image name is a frame's file name; one this long is no name."""


class CorruptModel(ValueError):
    """A COLMAP binary that does not hold what its counts say."""


class _Walk:
    """A cursor over one file's bytes that refuses to step past their end."""

    def __init__(self, data: bytes | mmap.mmap):
        self._data = data
        self._at = 0

    @property
    def left(self) -> int:
        return len(self._data) - self._at

    def unpack(self, layout: struct.Struct, what: str) -> tuple:
        self._need(layout.size, what)
        values = layout.unpack_from(self._data, self._at)
        self._at += layout.size
        return values

    def count(self, entry_bytes: int, what: str) -> int:
        """A count of entries at least entry_bytes long each, which must fit in the bytes left."""
        (count,) = self.unpack(COUNT, f"the count of {what}")
        if count * entry_bytes > self.left:
            raise CorruptModel(
                f"it claims {count} {what} ({count * entry_bytes} bytes or more), but only {self.left} "
                "bytes are left"
            )
        return count

    def skip_list(self, entry_bytes: int, what: str) -> None:
        """Step over a counted list of fixed-size entries, which must fit in the bytes left."""
        length = entry_bytes * self.count(entry_bytes, what)
        self._at += length

    def skip(self, length: int, what: str) -> None:
        self._need(length, what)
        self._at += length

    def name(self, what: str) -> str:
        end = self._data.find(b"\0", self._at, self._at + NAME_MAX_BYTES + 1)
        if end < 0:
            raise CorruptModel(f"{what} has no end within {NAME_MAX_BYTES} bytes")
        raw, self._at = self._data[self._at : end], end + 1
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise CorruptModel(f"{what} is not UTF-8") from None

    def _need(self, length: int, what: str) -> None:
        if length > self.left:
            raise CorruptModel(f"it ends within {what} ({self.left} of {length} bytes left)")


@contextmanager
def _walk(path: Path) -> Iterator[_Walk]:
    """The file's bytes mapped, not read: the walk touches the few it unpacks."""
    with path.open("rb") as file:
        if path.stat().st_size == 0:
            yield _Walk(b"")
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield _Walk(data)


def image_names(path: Path) -> list[str]:
    """The name of every image of an ``images.bin``, in file order; every image has a usable pose."""
    names = []
    with _walk(path) as walk:
        for index in range(walk.count(IMAGE_HEAD.size + 1 + COUNT.size, "images")):
            image_id, *pose, _ = walk.unpack(IMAGE_HEAD, f"image {index + 1}")
            _check_pose(image_id, pose)
            names.append(walk.name(f"image {index + 1}'s name"))
            walk.skip_list(POINT_2D_BYTES, f"2D points of image {index + 1}")
    return names


def _check_pose(image_id: int, pose: Sequence[float]) -> None:
    """A rotation quaternion and a translation nerfstudio can make a camera of: all finite (a NaN or
    infinity makes the camera's renders NaN, and through their gradients every gaussian it sees), and a
    quaternion that is not zero (nerfstudio does not normalise it: zero reads as no turn at all)."""
    if not all(map(isfinite, pose)):
        raise CorruptModel(f"image {image_id}'s pose is not finite")
    if not any(pose[:4]):
        raise CorruptModel(f"image {image_id}'s rotation quaternion is zero")


def check_cameras(path: Path) -> None:
    """Every camera of a ``cameras.bin`` is of a model nerfstudio reads, at most a frame's size, and
    has that model's parameters."""
    with _walk(path) as walk:
        for index in range(walk.count(CAMERA_HEAD.size, "cameras")):
            camera_id, model_id, width, height = walk.unpack(CAMERA_HEAD, f"camera {index + 1}")
            model = CAMERA_MODEL_IDS.get(model_id)
            if model is None:
                raise CorruptModel(f"camera {camera_id} has model id {model_id}, no COLMAP camera model")
            if not 0 < width * height <= MAX_FRAME_PIXELS:
                raise CorruptModel(
                    f"camera {camera_id} is {width}x{height} pixels; frames are 1 to "
                    f"{MAX_FRAME_PIXELS} pixels (8K UHD)"
                )
            walk.skip(PARAM_BYTES * model.num_params, f"the parameters of camera {camera_id}")


def check_points(path: Path) -> None:
    """Every point of a ``points3D.bin`` has a finite position and the track its count says.

    splatfacto starts a gaussian at every point and sizes it by its neighbours' distances, which
    scikit-learn refuses to measure for a NaN or infinite position: training would fail to start."""
    with _walk(path) as walk:
        for index in range(walk.count(POINT_HEAD.size + COUNT.size, "points")):
            point_id, x, y, z, _, _, _, _ = walk.unpack(POINT_HEAD, f"point {index + 1}")
            if not (isfinite(x) and isfinite(y) and isfinite(z)):
                raise CorruptModel(f"point {point_id}'s position is not finite")
            walk.skip_list(TRACK_ELEMENT_BYTES, f"track elements of point {index + 1}")
