"""Scenes built like real captures, with the truth a judge of rendered frames needs.

Each builder returns a ``Capture``: splatfacto-like gaussians (flat textured disks, SH degree 3 with
small view-dependent noise), the training cameras that filmed them, which gaussians are the subject
(what a preview must show, in distinct saturated colours) and which are residue (what no training
camera saw: a sky shell behind closed walls, never-observed noise from a random initialisation).
Everything else (floor, walls, a base patch) is context: observed, but not what a judge looks for.

Residue is drawn from its own palette, far from the subject colours and from the context, so that a
judge can tell on pixels alone whether residue covers the frame (``scenes.judge``).
All builders are pure and deterministic for a seed; the scenes are z-up like nerfstudio's training frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splat_render.gaussians import SH_C0, Gaussians, concatenate, num_sh_rest
from splat_render.orbit import look_at
from splat_render.ply import write_gaussians
from splat_render.synthetic import (
    EYE_HEIGHT,
    OBJECT_COLORS,
    ROOM_SIZE,
    Sampler,
    f32,
    flat_splats,
    quat_from_matrix,
    quat_multiply,
    sample_box,
    sample_sphere,
    sample_surfaces,
    unit,
)

Color = tuple[float, float, float]

Z_UP = np.array([0.0, 0.0, 1.0])
# The INRIA / COLMAP world of a z-up training frame: ns-process-data maps COLMAP (x, y, z) to (x, z, −y),
# so this is its inverse, (x, y, z) → (x, −z, y); up becomes −y.
COLMAP_FROM_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

SKY_COLORS: dict[str, Color] = {  # a gradient from haze at the horizon (and below) to blue at the zenith
    "haze": (0.70, 0.85, 0.95),
    "sky": (0.50, 0.72, 0.93),
    "zenith": (0.30, 0.60, 0.90),
}
# Never-observed gaussians of a random initialisation: random colours between magenta and violet. One
# family of hues, so that overlapping noise blends into a colour of the family again.
NOISE_COLORS: dict[str, Color] = {
    "magenta": (0.85, 0.15, 0.80),
    "purple": (0.65, 0.20, 0.88),
    "violet": (0.45, 0.25, 0.95),
}
SH_NOISE = 0.03  # standard deviation of the higher-order SH coefficients


@dataclass(frozen=True)
class Capture:
    """A scene and the cameras that filmed it, with the truth about what they saw.

    camera_c2w [M,3,4] OpenGL camera-to-world (x right, y up, looking down −z); pinhole cameras of
    ``width``×``height`` pixels with focal length ``focal`` pixels and the principal point at the centre.
    ``subject`` and ``residue`` are boolean masks over the gaussians.
    """

    gaussians: Gaussians
    camera_c2w: np.ndarray
    width: int
    height: int
    focal: float
    up: np.ndarray  # (3,) unit vector, the true up of the world
    subject_colors: dict[str, Color]
    residue_colors: dict[str, Color]
    subject: np.ndarray
    residue: np.ndarray

    def intrinsics(self) -> np.ndarray:
        """The shared 3×3 camera matrix."""
        return np.array([[self.focal, 0, self.width / 2], [0, self.focal, self.height / 2], [0, 0, 1]])


# --- the scenes -----------------------------------------------------------------------------

# Furniture of the closed room: colour name → (centre x, y on the floor; width, depth, height), metres.
FURNITURE = {
    "red": ((-1.7, 1.55), (1.2, 0.8, 0.75)),  # table
    "green": ((-2.35, -1.3), (0.5, 0.5, 0.9)),  # chair
    "blue": ((2.2, 2.15), (0.8, 0.5, 1.8)),  # cabinet
    "yellow": ((1.5, -1.9), (0.9, 0.6, 0.5)),  # chest
}
WALK_RADII = (1.5, 1.1)  # the walk's ellipse in the room, well clear of the furniture
SEAM = 0.15  # metres each room surface reaches past the room's edges


def closed_room(
    gaussians: int = 300_000,
    cameras: int = 48,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 0,
    sky_share: float = 0.1,
) -> Capture:
    """A closed 6×5×2.6 m room walked from inside, with a sky shell around it that no camera sees.

    Four striped walls (one with a door), a checkered floor and a panelled ceiling enclose four boxes
    of furniture size (the subject). A phone-like walk at eye height loops through the room looking
    ahead and out towards the walls, a little down, with a hand's sway and roll.
    """
    rng = np.random.default_rng(seed)
    sky_count = round(gaussians * sky_share)
    room_surfaces, furniture = _room_shell(rng), _furniture(rng)
    room_area = sum(area for area, _ in room_surfaces)
    furniture_area = sum(area for area, _ in furniture)
    furniture_count = round((gaussians - sky_count) * furniture_area / (room_area + furniture_area))
    parts = [
        _surface_part(rng, furniture, furniture_count),
        _surface_part(rng, room_surfaces, gaussians - sky_count - furniture_count),
        sky_shell(rng, sky_count, center=(0.0, 0.0, ROOM_SIZE[2] / 2), radius=12.0),
    ]
    width, height = image_size
    return Capture(
        gaussians=concatenate(parts),
        camera_c2w=room_walk(np.arange(cameras) / cameras, seed=seed),
        width=width,
        height=height,
        focal=0.8 * width,
        up=Z_UP,
        subject_colors={name: OBJECT_COLORS[name] for name in FURNITURE},
        residue_colors=SKY_COLORS,
        **_masks([len(p) for p in parts], subject_part=0, residue_part=2),
    )


def room_walk(along: np.ndarray, seed: int = 0) -> np.ndarray:
    """The closed room's walk (see ``handheld_walk``): looking ahead and out, about 13° down."""
    return handheld_walk(along, seed=seed, radii=WALK_RADII, gaze_deg=110.0, look_height=1.3)


# The object of ``object_capture``: boxes stacked a little off-centre, a ball on top; about 1.1 m tall.
STACK = (
    ("red", (0.0, 0.0, 0.175), (0.6, 0.6, 0.35)),
    ("green", (0.04, -0.03, 0.5), (0.45, 0.45, 0.3)),
    ("blue", (-0.03, 0.02, 0.76), (0.3, 0.3, 0.22)),
)
BALL = ("yellow", (0.0, 0.0, 0.97), 0.1)
BASE_SIZE = 1.0  # the side of the square patch the object stands on
OBJECT_SIZE = 1.1
OBJECT_CENTER = np.array([0.0, 0.0, 0.5])


def object_capture(
    gaussians: int = 300_000,
    cameras: int = 48,
    arc_deg: float = 360.0,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 0,
    residue_share: float = 0.4,
    ring_radius: float = 1.8,
) -> Capture:
    """A 1.1 m object on a small checkered base, filmed from outside, wrapped in never-observed noise.

    The cameras stand on a ring (or an arc of ``arc_deg`` degrees, centred on −y) at three heights,
    looking at the object. The residue stands for what splatfacto keeps of a random initialisation
    where no camera looked: gaussians spread through a cube ten times the object's size, minus every
    one that any training view could show. With no backdrop behind the object, anything inside a
    view's frustum would have been seen (or trained away), so the test ignores occlusion and depth:
    whatever remains lies outside every training frustum.
    """
    rng = np.random.default_rng(seed)
    width, height = image_size
    focal = 0.8 * width
    c2w = _ring_cameras(rng, cameras, arc_deg, ring_radius)
    residue_count = round(gaussians * residue_share)
    stack = [
        (2 * (w * d + w * h + d * h), _box_sampler(rng, name, c, (w, d, h))) for name, c, (w, d, h) in STACK
    ]
    name, center, radius = BALL
    ball = (4 * math.pi * radius**2, lambda m: sample_sphere(rng, m, center, radius, OBJECT_COLORS[name]))
    subject_area = sum(area for area, _ in stack) + ball[0]
    base = _panel_sampler(
        rng, (-BASE_SIZE / 2, -BASE_SIZE / 2, 0.0), (BASE_SIZE, 0, 0), (0, BASE_SIZE, 0), _checker(0.125)
    )
    subject_count = round((gaussians - residue_count) * subject_area / (subject_area + BASE_SIZE**2))
    parts = [
        _surface_part(rng, [*stack, ball], subject_count),
        _surface_part(rng, [(BASE_SIZE**2, base)], gaussians - residue_count - subject_count),
        _unseen_noise(rng, residue_count, c2w, width, height, focal),
    ]
    return Capture(
        gaussians=concatenate(parts),
        camera_c2w=c2w,
        width=width,
        height=height,
        focal=focal,
        up=Z_UP,
        subject_colors={name: OBJECT_COLORS[name] for name in ("red", "green", "blue", "yellow")},
        residue_colors=NOISE_COLORS,
        **_masks([len(p) for p in parts], subject_part=0, residue_part=2),
    )


def turned(capture: Capture, rotation: np.ndarray) -> Capture:
    """The same capture with the whole world rotated (3×3, det +1): gaussians, cameras and up.

    Higher-order SH coefficients are not rotated: they are small noise here.
    """
    g = capture.gaussians
    means = g.means.double().numpy() @ rotation.T
    quats = quat_multiply(quat_from_matrix(rotation), g.quats.double().numpy())
    c2w = np.einsum("ij,njk->nik", rotation, capture.camera_c2w)
    rotated = Gaussians(f32(means), f32(quats), g.log_scales, g.opacity_logits, g.sh_dc, g.sh_rest)
    return Capture(
        gaussians=rotated,
        camera_c2w=c2w,
        width=capture.width,
        height=capture.height,
        focal=capture.focal,
        up=rotation @ capture.up,
        subject_colors=capture.subject_colors,
        residue_colors=capture.residue_colors,
        subject=capture.subject,
        residue=capture.residue,
    )


def inria_ply(path: Path | str, capture: Capture) -> Capture:
    """Write the capture as 3DGS tools other than nerfstudio do: COLMAP world (up is −y), no header comment.

    Returns the capture as written (its gaussians, cameras and up in the file's frame).
    """
    colmap = turned(capture, COLMAP_FROM_Z_UP)
    write_gaussians(path, colmap.gaussians, comments=())
    return colmap


# --- parts shared with other scenes ----------------------------------------------------------


def sky_shell(
    rng: np.random.Generator, count: int, center: tuple[float, float, float], radius: float
) -> Gaussians:
    """Opaque flat gaussians on a sphere, haze at and below the horizon shading to blue at the zenith."""
    normals = unit(rng.normal(size=(count, 3)))
    haze, zenith = np.array(SKY_COLORS["haze"]), np.array(SKY_COLORS["zenith"])
    height = np.clip(normals[:, 2:3], 0.0, 1.0)
    colors = (haze + (zenith - haze) * height) * rng.uniform(0.97, 1.03, (count, 1))
    spacing = np.full(count, math.sqrt(4 * math.pi * radius**2 / max(count, 1)))
    quats, log_scales, opacity = flat_splats(rng, normals, spacing, spread=1.5)
    return _splats(rng, np.asarray(center) + radius * normals, quats, log_scales, opacity, colors)


def handheld_walk(
    along: np.ndarray,
    seed: int = 0,
    radii: tuple[float, float] = (1.9, 1.5),
    gaze_deg: float = 0.0,
    look_height: float = 0.8,
) -> np.ndarray:
    """OpenGL cameras [N,3,4] at the places ``along`` [N] (fractions of the loop) of a hand-held walk.

    The walk goes once around an ellipse at eye height, anticlockwise seen from above.

    Each camera looks at a point at ``look_height``: the ellipse's centre for ``gaze_deg`` 0, that point
    turned about the camera by ``gaze_deg`` towards the walking direction otherwise (90: straight ahead,
    more: ahead and outwards). Position, gaze and roll sway as a smooth function of the place along
    the loop, so views at any places lie on the same path (held-out views between filmed frames).
    """
    rng = np.random.default_rng(seed)
    harmonics = np.array([3.0, 7.0, 13.0])
    offsets = rng.uniform(0, 2 * math.pi, (4, 3, 3))  # position, gaze, roll × axis × harmonic

    def sway(t: np.ndarray, which: int, amplitude: float) -> np.ndarray:
        waves = np.sin(t[:, None, None] * harmonics + offsets[which])  # [n, axis, harmonic]
        return amplitude * waves.mean(axis=2)

    t = 2 * math.pi * np.asarray(along, dtype=np.float64)
    loop = np.column_stack([radii[0] * np.cos(t), radii[1] * np.sin(t), np.full(len(t), EYE_HEIGHT)])
    # Walking anticlockwise (seen from above), turning towards the walk is turning clockwise.
    turn = _rotation_z(-math.radians(gaze_deg))
    targets = loop + (np.array([0.0, 0.0, look_height]) - loop) @ turn.T + sway(t, 1, 0.25)
    c2w = look_at(loop + sway(t, 0, 0.06), targets, Z_UP)
    return _rolled(c2w, sway(t, 2, math.radians(4))[:, 0])


# --- geometry -------------------------------------------------------------------------------


def _room_shell(rng: np.random.Generator) -> list[tuple[float, Sampler]]:
    """(area, sampler) of the floor, the ceiling and four walls, all facing into the room.

    Each surface reaches ``SEAM`` past the room's edges into its neighbours, so that the corners
    close as well as the middle of a wall does.
    """
    sx, sy, sz = ROOM_SIZE
    e = SEAM
    floor = _panel_sampler(
        rng, (-sx / 2 - e, -sy / 2 - e, 0.0), (sx + 2 * e, 0, 0), (0, sy + 2 * e, 0), _checker(0.4)
    )
    ceiling = _panel_sampler(
        rng, (-sx / 2 - e, -sy / 2 - e, sz), (0, sy + 2 * e, 0), (sx + 2 * e, 0, 0), _ceiling_panels
    )
    corners = np.array([(-sx / 2, -sy / 2), (sx / 2, -sy / 2), (sx / 2, sy / 2), (-sx / 2, sy / 2)])
    surfaces = [((sx + 2 * e) * (sy + 2 * e), floor), ((sx + 2 * e) * (sy + 2 * e), ceiling)]
    for index in range(4):  # each wall runs clockwise (seen from above), so that it faces inwards
        start, end = corners[(index + 1) % 4], corners[index]
        along = (end - start) / np.linalg.norm(end - start)
        start, end = start - e * along, end + e * along
        texture = _striped((0.72, 0.66, 0.58) if index % 2 else (0.62, 0.66, 0.55), door=index == 1)
        wall = _panel_sampler(rng, (*start, -e), (*(end - start), 0.0), (0.0, 0.0, sz + 2 * e), texture)
        surfaces.append((np.linalg.norm(end - start) * (sz + 2 * e), wall))
    return surfaces


def _furniture(rng: np.random.Generator) -> list[tuple[float, Sampler]]:
    surfaces = []
    for name, ((x, y), (w, d, h)) in FURNITURE.items():
        surfaces.append((2 * (w * d + w * h + d * h), _box_sampler(rng, name, (x, y, h / 2), (w, d, h))))
    return surfaces


def _box_sampler(rng: np.random.Generator, name: str, center, size) -> Sampler:
    return lambda m: sample_box(rng, m, center, size, OBJECT_COLORS[name])


def _panel_sampler(rng: np.random.Generator, corner, u, v, texture) -> Sampler:
    """Points evenly over the rectangle corner + a·u + b·v (a, b in [0, 1]), facing u × v.

    ``texture`` maps the metres along u and along v to base colours; per-sample noise is added.
    """
    corner, u, v = (np.asarray(x, dtype=np.float64) for x in (corner, u, v))
    normal = unit(np.cross(u, v))

    def sample(m: int):
        ab = _even_points(rng, m)
        points = corner + ab[:, :1] * u + ab[:, 1:] * v
        colors = texture(ab[:, 0] * np.linalg.norm(u), ab[:, 1] * np.linalg.norm(v))
        colors = np.clip(colors + rng.normal(0, 0.04, (m, 3)), 0, 1)
        return points, np.tile(normal, (m, 1)), colors

    return sample


def _even_points(rng: np.random.Generator, m: int) -> np.ndarray:
    """m points spread evenly over the unit square, [m,2]: a randomly shifted R2 sequence.

    Low-discrepancy points leave no holes the way uniform random ones do, so few disks close a surface.
    """
    plastic = 1.324717957244746  # the R2 sequence's generalised golden ratio
    steps = np.array([1 / plastic, 1 / plastic**2])
    return (rng.uniform(0.0, 1.0, 2) + np.arange(1, m + 1)[:, None] * steps) % 1.0


def _checker(tile: float, light: Color = (0.75, 0.70, 0.62), dark: Color = (0.32, 0.28, 0.24)):
    def texture(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        odd = ((np.floor(a / tile) + np.floor(b / tile)) % 2)[:, None] > 0
        return np.where(odd, light, dark)

    return texture


def _striped(base: Color, door: bool):
    """Vertical stripes; with ``door``, a dark 0.9×2.0 m door with panels 1 m from the wall's start."""

    def texture(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        stripes = (0.5 + 0.5 * np.sin(a * 2 * math.pi / 0.3))[:, None]
        colors = np.asarray(base) * (0.7 + 0.3 * stripes)
        if door:
            in_door = ((a > 1.0) & (a < 1.9) & (b < SEAM + 2.0))[:, None]  # b counts from below the floor
            panels = 0.85 + 0.15 * ((np.floor(b / 0.5) % 2)[:, None])
            colors = np.where(in_door, np.array([0.36, 0.23, 0.13]) * panels, colors)
        return colors

    return texture


def _ceiling_panels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Light ceiling tiles of 0.6 m with darker joints."""
    joint = ((a % 0.6) < 0.05) | ((b % 0.6) < 0.05)
    return np.where(joint[:, None], (0.55, 0.52, 0.46), (0.80, 0.76, 0.66))


def _ring_cameras(rng: np.random.Generator, count: int, arc_deg: float, radius: float) -> np.ndarray:
    """Cameras around the object at three heights, aimed at it with a little hand jitter and roll."""
    full = arc_deg >= 360.0
    span = math.radians(min(arc_deg, 360.0))
    azimuths = -math.pi / 2 + np.linspace(-span / 2, span / 2, count, endpoint=not full)
    heights = np.array([0.5, 1.1, 1.7])[np.arange(count) % 3]
    eyes = np.column_stack([radius * np.cos(azimuths), radius * np.sin(azimuths), heights])
    targets = OBJECT_CENTER + rng.normal(0, 0.05, (count, 3))
    return _rolled(look_at(eyes, targets, Z_UP), rng.normal(0, math.radians(2), count))


def _unseen_noise(
    rng: np.random.Generator, count: int, c2w: np.ndarray, width: int, height: int, focal: float
) -> Gaussians:
    """``count`` random-initialisation gaussians in a cube around the object that no camera can show."""
    side = 10 * OBJECT_SIZE
    spacing = side / max(count, 1) ** (1 / 3)  # random init sizes its gaussians by neighbour distance
    kept: list[np.ndarray] = []
    kept_log_scales: list[np.ndarray] = []
    while sum(len(k) for k in kept) < count:
        missing = count - sum(len(k) for k in kept)
        points = OBJECT_CENTER + rng.uniform(-side / 2, side / 2, (2 * missing + 64, 3))
        log_scales = math.log(0.3 * spacing) + rng.normal(0, 0.3, (len(points), 3))
        unseen = ~seen_by_cameras(points, 3.5 * np.exp(log_scales).max(axis=1), c2w, width, height, focal)
        kept.append(points[unseen])
        kept_log_scales.append(log_scales[unseen])
    points, log_scales = np.concatenate(kept)[:count], np.concatenate(kept_log_scales)[:count]
    magenta, violet = np.array(NOISE_COLORS["magenta"]), np.array(NOISE_COLORS["violet"])
    colors = magenta + (violet - magenta) * rng.uniform(0, 1, (count, 1)) + rng.normal(0, 0.03, (count, 3))
    quats = unit(rng.normal(size=(count, 4)))
    opacity = rng.normal(2.0, 0.5, count)
    return _splats(rng, points, quats, log_scales, opacity, np.clip(colors, 0, 1))


def seen_by_cameras(
    points: np.ndarray, radii: np.ndarray, c2w: np.ndarray, width: int, height: int, focal: float
) -> np.ndarray:
    """Whether any camera's frustum reaches each ball (centre ``points`` [N,3], radius ``radii`` [N]).

    A ball counts as seen when its centre is in front of the camera (gsplat drops the rest) and it
    reaches inside all four side planes of the view; there is no far limit.
    """
    seen = np.zeros(len(points), dtype=bool)
    slopes = np.array([width / 2 / focal, height / 2 / focal])
    for camera in c2w:
        local = (points - camera[:, 3]) @ camera[:, :3]  # camera coordinates, OpenGL
        depth = -local[:, 2]
        # Signed distance outside each pair of side planes: (|x| − slope·depth) / √(1 + slope²).
        outside = (np.abs(local[:, :2]) - slopes * depth[:, None]) / np.sqrt(1 + slopes**2)
        seen |= (depth > 0) & (outside < radii[:, None]).all(axis=1)
    return seen


# --- assembly -------------------------------------------------------------------------------


def _surface_part(rng: np.random.Generator, surfaces: list[tuple[float, Sampler]], count: int) -> Gaussians:
    points, normals, colors, spacing = sample_surfaces(surfaces, count)
    quats, log_scales, opacity = flat_splats(rng, normals, spacing)
    return _splats(rng, points, quats, log_scales, opacity, colors)


def _splats(rng, points, quats, log_scales, opacity, colors) -> Gaussians:
    """Gaussians of SH degree 3 whose base colour is ``colors``, with a little view-dependent noise."""
    return Gaussians(
        means=f32(points),
        quats=f32(quats),
        log_scales=f32(log_scales),
        opacity_logits=f32(opacity),
        sh_dc=f32((np.asarray(colors) - 0.5) / SH_C0),
        sh_rest=f32(rng.normal(0, SH_NOISE, (len(points), num_sh_rest(3), 3))),
    )


def _masks(sizes: list[int], subject_part: int, residue_part: int) -> dict[str, np.ndarray]:
    """Boolean masks over the concatenated parts: the subject's part and the residue's part."""
    part = np.repeat(np.arange(len(sizes)), sizes)
    return {"subject": part == subject_part, "residue": part == residue_part}


def _rolled(c2w: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Cameras turned about their viewing axis by ``roll`` radians."""
    right, up = c2w[:, :, 0], c2w[:, :, 1]
    cos, sin = np.cos(roll)[:, None], np.sin(roll)[:, None]
    rolled = c2w.copy()
    rolled[:, :, 0], rolled[:, :, 1] = cos * right + sin * up, -sin * right + cos * up
    return rolled


def _rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
