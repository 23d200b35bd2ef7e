"""A bundled, deterministic splatfacto run that looks like an indoor scan.

It stands in for a trained job everywhere a real one is too big to ship: the demo, the tests, the
benchmark. The scene is a textured room (checkered floor, striped partial walls, noisy coloured
objects) made of flat surface gaussians with SH degree 3, seen by training cameras walking a loop
at eye height, plus a few faint floaters far outside, optionally tilted as a whole. The files are
written in the exact layout the pipeline produces, through nerfstudio's own config and pipeline
classes, so the loader meets the real thing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splat_render.gaussians import SH_C0, Gaussians, num_sh_rest
from splat_render.ply import write_gaussians

DATA_DIR = Path("refined/nerfstudio-data")
RUN_DIR = Path("refined/splatter/splatfacto")
PLY_PATH = Path("refined/splatter/splat.ply")

# Distinct object colours the tests look for in rendered frames.
OBJECT_COLORS = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.12, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.85),
    "yellow": (0.92, 0.80, 0.10),
}
ROOM_SIZE = (6.0, 5.0, 2.6)  # x, y extent of the floor and wall height, metres; z is up
EYE_HEIGHT = 1.6


@dataclass(frozen=True)
class SceneSpec:
    gaussians: int = 50_000
    tilt_deg: float = 0.0  # rotation of the whole world about the x axis
    seed: int = 0
    floaters: int = 8
    cameras: int = 48
    image_size: tuple[int, int] = (640, 480)


@dataclass(frozen=True)
class SyntheticScene:
    gaussians: Gaussians
    camera_c2w: np.ndarray  # [M,3,4] OpenGL
    up: np.ndarray  # (3,) true up of the (possibly tilted) world
    focal: float
    image_size: tuple[int, int]
    floater_count: int  # the last floater_count gaussians are the floaters


@dataclass(frozen=True)
class SyntheticRun:
    job_root: Path
    config: Path
    checkpoint: Path
    ply: Path
    transforms: Path
    scene: SyntheticScene | None  # None for a run written from other gaussians


def make_scene(spec: SceneSpec = SceneSpec()) -> SyntheticScene:
    """Build the scene's gaussians and training cameras (pure; deterministic for a seed)."""
    rng = np.random.default_rng(spec.seed)
    surface_count = max(spec.gaussians - spec.floaters, 64)
    points, normals, colors, spacing = sample_surfaces(_room_surfaces(rng), surface_count)
    quats, log_scales, opacity = flat_splats(rng, normals, spacing)
    floater_pts = _floaters(rng, spec.floaters)
    k = num_sh_rest(3)
    all_points = np.concatenate([points, floater_pts])
    all_colors = np.concatenate([colors, rng.uniform(0.6, 1.0, (spec.floaters, 3))])
    all_quats = np.concatenate([quats, unit(rng.normal(size=(spec.floaters, 4)))])
    all_scales = np.concatenate([log_scales, np.full((spec.floaters, 3), math.log(0.4))])
    all_opacity = np.concatenate([opacity, np.full(spec.floaters, -2.2)])  # ~0.10 opacity
    sh_rest = rng.normal(0, 0.03, (len(all_points), k, 3))

    tilt = _rotation_x(math.radians(spec.tilt_deg))
    c2w = _camera_loop(spec.cameras)
    c2w = np.concatenate([tilt @ c2w[:, :, :3], (tilt @ c2w[:, :, 3:])], axis=2)
    gaussians = Gaussians(
        means=f32(all_points @ tilt.T),
        quats=f32(quat_multiply(quat_from_matrix(tilt), all_quats)),
        log_scales=f32(all_scales),
        opacity_logits=f32(all_opacity),
        sh_dc=f32((all_colors - 0.5) / SH_C0),
        sh_rest=f32(sh_rest),
    )
    width, height = spec.image_size
    return SyntheticScene(
        gaussians=gaussians,
        camera_c2w=c2w,
        up=tilt @ np.array([0.0, 0.0, 1.0]),
        focal=0.8 * width,
        image_size=spec.image_size,
        floater_count=spec.floaters,
    )


def write_synthetic_run(
    job_root: Path | str, spec: SceneSpec = SceneSpec(), step: int = 2999
) -> SyntheticRun:
    """Write transforms.json, config.yml, a checkpoint and splat.ply under ``job_root``.

    Paths inside config.yml are stored relative to the job root, as ``ns-train`` stores them when
    run from there: the loader has to cope with that.
    """
    scene = make_scene(spec)
    return write_run(job_root, scene.gaussians, scene.camera_c2w, scene.focal, scene.image_size, scene, step)


def write_run(
    job_root: Path | str,
    gaussians: Gaussians,
    camera_c2w: np.ndarray,  # [M,3,4] OpenGL training cameras
    focal: float,
    image_size: tuple[int, int],
    scene: SyntheticScene | None = None,
    step: int = 2999,
) -> SyntheticRun:
    """Write any gaussians and training cameras as a splatfacto run in the pipeline's layout."""
    job_root = Path(job_root)
    transforms = _write_transforms(job_root / DATA_DIR, camera_c2w, focal, image_size)
    config = _write_config(job_root / RUN_DIR)
    checkpoint = _write_checkpoint(job_root, config, gaussians, step)
    ply = job_root / PLY_PATH
    write_gaussians(ply, gaussians)
    return SyntheticRun(job_root, config, checkpoint, ply, transforms, scene)


# --- scene geometry -------------------------------------------------------------------------


Sampler = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""m → points [m,3], normals [m,3], colours [m,3] of m samples on one surface."""


def _room_surfaces(rng: np.random.Generator) -> list[tuple[float, Sampler]]:
    """(area, sampler) of the floor, two walls and four objects."""
    sx, sy, sz = ROOM_SIZE
    return [
        (sx * sy, lambda m: _floor(rng, m)),
        (sx * sz, lambda m: _wall(rng, m, axis=1)),
        (sy * sz * 0.6, lambda m: _wall(rng, m, axis=0)),
        *((area, sampler) for area, sampler in _objects(rng)),
    ]


def sample_surfaces(surfaces: list[tuple[float, Sampler]], count: int):
    """About ``count`` points spread over the surfaces by area: points, normals, colours, spacing [m].

    The first surface absorbs the rounding; every surface gets at least 8 points.
    """
    areas = np.array([a for a, _ in surfaces])
    counts = np.maximum((areas / areas.sum() * count).astype(int), 8)
    counts[0] += count - counts.sum()
    parts = [sampler(m) for (_, sampler), m in zip(surfaces, counts, strict=True)]
    points, normals, colors = (np.concatenate(x) for x in zip(*parts, strict=True))
    spacing = np.concatenate([np.full(m, math.sqrt(a / m)) for a, m in zip(areas, counts, strict=True)])
    return points, normals, colors, spacing


def flat_splats(rng: np.random.Generator, normals: np.ndarray, spacing: np.ndarray, spread: float = 1.2):
    """Quaternions, log scales and opacity logits of opaque disks lying in their surface.

    Each disk's radius is ``spread`` times the spacing of its surface's samples, so that the disks
    overlap into a closed surface; the thin axis (2 mm) is the normal.
    """
    n = len(normals)
    quats = quats_from_normals(normals)
    log_scales = np.stack(
        [np.log(spacing * spread), np.log(spacing * spread), np.full(n, math.log(0.002))], axis=1
    ) + rng.normal(0, 0.1, (n, 3))
    opacity = np.full(n, 3.0) + rng.normal(0, 0.3, n)
    return quats, log_scales, opacity


def _floor(rng: np.random.Generator, m: int):
    sx, sy, _ = ROOM_SIZE
    xy = rng.uniform([-sx / 2, -sy / 2], [sx / 2, sy / 2], (m, 2))
    checker = ((np.floor(xy[:, 0] / 0.25) + np.floor(xy[:, 1] / 0.25)) % 2)[:, None]
    colors = np.where(checker > 0, [0.78, 0.74, 0.68], [0.30, 0.26, 0.22]) + rng.normal(0, 0.06, (m, 3))
    points = np.column_stack([xy, np.zeros(m)])
    return points, np.tile([0.0, 0.0, 1.0], (m, 1)), np.clip(colors, 0, 1)


def _wall(rng: np.random.Generator, m: int, axis: int):
    """A partial wall along the far side of x (axis=0) or y (axis=1), with vertical stripes."""
    sx, sy, sz = ROOM_SIZE
    length = sy * 0.6 if axis == 0 else sx
    t = rng.uniform(-length / 2, length / 2, m)
    z = rng.uniform(0, sz, m)
    stripes = (0.5 + 0.5 * np.sin(t * 2 * math.pi / 0.3))[:, None]
    base = np.array([0.55, 0.62, 0.70]) if axis == 0 else np.array([0.72, 0.66, 0.58])
    colors = base * (0.6 + 0.4 * stripes) + rng.normal(0, 0.05, (m, 3))
    if axis == 0:
        points = np.column_stack([np.full(m, sx / 2), t, z])
        normal = [-1.0, 0.0, 0.0]
    else:
        points = np.column_stack([t, np.full(m, sy / 2), z])
        normal = [0.0, -1.0, 0.0]
    return points, np.tile(normal, (m, 1)), np.clip(colors, 0, 1)


def _objects(rng: np.random.Generator):
    """Boxes and a sphere in distinct colours, with noise texture; (area, sampler) pairs."""
    boxes = [
        ("red", (-1.2, -0.8), (0.8, 0.6, 0.9)),
        ("blue", (1.3, 0.9), (0.6, 0.9, 0.5)),
        ("yellow", (0.9, -1.3), (0.5, 0.5, 1.2)),
    ]
    for name, (cx, cy), size in boxes:
        w, d, h = size
        area = 2 * (w * d + w * h + d * h)
        yield (
            area,
            (lambda m, c=(cx, cy, h / 2), s=(w, d, h), n=name: sample_box(rng, m, c, s, OBJECT_COLORS[n])),
        )
    yield (
        4 * math.pi * 0.45**2,
        (lambda m: sample_sphere(rng, m, (-0.6, 1.1, 0.45), 0.45, OBJECT_COLORS["green"])),
    )


def sample_box(rng, m, center, size, color):
    """m points on the faces of an axis-aligned box standing at ``center``, textured in ``color``."""
    half = np.asarray(size) / 2
    face_axis = rng.integers(0, 3, m)
    sign = rng.choice([-1.0, 1.0], m)
    local = rng.uniform(-1, 1, (m, 3)) * half
    local[np.arange(m), face_axis] = sign * half[face_axis]
    normals = np.zeros((m, 3))
    normals[np.arange(m), face_axis] = sign
    return local + center, normals, textured(rng, m, color)


def sample_sphere(rng, m, center, radius, color):
    """m points on a sphere, textured in ``color``."""
    normals = unit(rng.normal(size=(m, 3)))
    return np.asarray(center) + radius * normals, normals, textured(rng, m, color)


def textured(rng, m, color):
    """m colours around ``color``: brightness and per-channel noise, so surfaces read as texture."""
    return np.clip(np.asarray(color) * rng.uniform(0.75, 1.1, (m, 1)) + rng.normal(0, 0.04, (m, 3)), 0, 1)


def _floaters(rng: np.random.Generator, count: int) -> np.ndarray:
    direction = unit(rng.normal(size=(count, 3)) + [0, 0, 0.5])
    return direction * rng.uniform(25, 45, (count, 1))


def _camera_loop(count: int) -> np.ndarray:
    """Training cameras on an ellipse at eye height, looking inward and slightly down (OpenGL)."""
    angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
    positions = np.column_stack([1.9 * np.cos(angles), 1.5 * np.sin(angles), np.full(count, EYE_HEIGHT)])
    target = np.array([0.0, 0.0, 0.8])
    back = unit(positions - target)
    right = unit(np.cross([0.0, 0.0, 1.0], back))
    up = np.cross(back, right)
    return np.stack([right, up, back, positions], axis=2)


# --- rotations ------------------------------------------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    """Vectors scaled to length 1 along the last axis."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def quats_from_normals(normals: np.ndarray) -> np.ndarray:
    """w,x,y,z quaternions turning +z (the disk's thin axis) onto each normal."""
    w = 1.0 + normals[:, 2]
    q = np.column_stack([w, -normals[:, 1], normals[:, 0], np.zeros(len(normals))])
    flipped = w < 1e-6
    q[flipped] = [0.0, 1.0, 0.0, 0.0]
    return unit(q)


def quat_from_matrix(r: np.ndarray) -> np.ndarray:
    """The w,x,y,z quaternion of a rotation matrix that is not a half turn."""
    w = math.sqrt(max(1.0 + np.trace(r), 1e-12)) / 2
    return np.array(
        [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
    )


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a ⊗ b of one quaternion ``a`` (4,) with many ``b`` [N,4]."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b.T
    return np.column_stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def f32(a: np.ndarray) -> torch.Tensor:
    """A contiguous float32 CPU tensor of an array."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# --- files ----------------------------------------------------------------------------------


def _write_transforms(
    data_dir: Path, camera_c2w: np.ndarray, focal: float, image_size: tuple[int, int]
) -> Path:
    width, height = image_size
    frames = []
    for i, c2w in enumerate(camera_c2w):
        matrix = np.vstack([c2w, [0, 0, 0, 1]])
        frames.append({"file_path": f"images/frame_{i + 1:05d}.jpg", "transform_matrix": matrix.tolist()})
    data = {
        "camera_model": "OPENCV",
        "w": width,
        "h": height,
        "fl_x": focal,
        "fl_y": focal,
        "cx": width / 2,
        "cy": height / 2,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": frames,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "transforms.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def _write_config(run_dir: Path) -> Path:
    """config.yml from nerfstudio's own splatfacto TrainerConfig, with the pipeline's flags."""
    import copy

    import yaml
    from nerfstudio.configs.method_configs import method_configs

    config = copy.deepcopy(method_configs["splatfacto"])
    config.output_dir = Path("refined/splatter")
    config.experiment_name = ""
    config.timestamp = ""
    config.data = DATA_DIR
    config.pipeline.datamanager.data = DATA_DIR
    parser = config.pipeline.datamanager.dataparser
    parser.data = DATA_DIR
    parser.center_method = "none"
    parser.orientation_method = "none"
    parser.auto_scale_poses = False
    config.viewer.quit_on_train_completion = True
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yml"
    path.write_text(yaml.dump(config), "utf8")
    return path


def _write_checkpoint(job_root: Path, config_path: Path, gaussians: Gaussians, step: int) -> Path:
    """A checkpoint as nerfstudio's trainer saves it, with the pipeline state of this scene."""
    import yaml

    from splat_render.model import offline_nerfstudio

    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    config.pipeline.datamanager.data = job_root / DATA_DIR
    config.pipeline.datamanager.dataparser.data = job_root / DATA_DIR
    config.pipeline.datamanager.dataparser.load_3D_points = False
    with offline_nerfstudio():
        pipeline = config.pipeline.setup(device="cpu", test_mode="inference")
    state = pipeline.state_dict()
    prefix = "_model.gauss_params."
    for name, value in {
        "means": gaussians.means,
        "quats": gaussians.quats,
        "scales": gaussians.log_scales,
        "opacities": gaussians.opacity_logits[:, None],
        "features_dc": gaussians.sh_dc,
        "features_rest": gaussians.sh_rest,
    }.items():
        state[prefix + name] = value.clone()
    checkpoint_dir = config_path.parent / "nerfstudio_models"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / f"step-{step:09d}.ckpt"
    # Trainer checkpoints also carry optimizer and scheduler state; scheduler state pickles numpy
    # scalars, which is what torch >= 2.6's weights_only loading refuses.
    torch.save(
        {
            "step": step,
            "pipeline": state,
            "optimizers": {},
            "schedulers": {"means": {"base_lrs": [np.float64(1.6e-4)], "last_epoch": np.int64(step)}},
            "scalers": {},
        },
        path,
    )
    return path
