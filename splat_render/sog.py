"""PlayCanvas's compressed splat format, SOG (version 2): a zip of lossless WebP textures and meta.json.

The layout is the one PlayCanvas's reference writer (``splat-transform``) produces and its engine
reads: gaussians in Morton order, one texel each, in textures ``ceil(sqrt(n)/4)·4`` wide;

- ``means_l``/``means_u``: the low and high bytes of each coordinate mapped to 16 bits between the
  bounds of sign(v)·ln(|v|+1) (``means.mins``/``maxs``);
- ``quats``: the unit quaternion's three smallest components ×√2 in 8 bits, the largest one's index
  in alpha (252 + index), its sign made positive;
- ``scales``, ``sh0``: 8-bit indices into 256-entry codebooks of log scales and DC colours (the
  three axes, the three channels pooled), sigmoid(opacity) in ``sh0``'s alpha;
- ``shN_labels``/``shN_centroids``: the higher SH bands palettised by k-means (up to 64 K entries,
  16-bit labels), the palette's values 8-bit indices into a third 256-entry codebook.

Codebooks are the reference's 1-D quantiser (a histogram of 1024 bins placed between uniform and
quantile spacing, weighted count^0.5, split optimally by dynamic programming); values are rounded
where the reference truncates, which halves the worst error at no cost in size. The k-means and the
quantiser run on torch, on the GPU when there is one.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians
from splat_render.outputs import check_writable, published_together

CODEBOOK_SIZE = 256
KMEANS_ITERATIONS = 10  # the reference writer's default
MAX_TEXTURE_SIDE = 16383  # WebP's limit
MAX_GAUSSIANS = 16380 * 16380  # the most whose textures stay within it (width and height are multiples of 4)
SH_COEFFS = {0: 0, 1: 3, 2: 8, 3: 15}
GENERATOR = "splatter-server sog"
# Pillow's WebP options: lossless, every RGB kept under alpha 0 (sh0's alpha is opacity). Method 4
# and quality 70 are what the reference's libwebp call uses.
WEBP_OPTIONS = {"lossless": True, "exact": True, "quality": 70, "method": 4}


@dataclass(frozen=True)
class SogTextures:
    """What a SOG holds before compression: RGBA textures by file name, and meta.json."""

    textures: dict[str, np.ndarray]  # name.webp → [H, W, 4] uint8
    meta: dict


@dataclass(frozen=True)
class SogReport:
    output: Path
    gaussians: int
    non_finite: int  # rows left out for a NaN or infinite value
    sh_degree: int
    bytes: int
    device: str
    stage_seconds: dict[str, float] = field(default_factory=dict)


# ---- the functional core: gaussians → textures → bytes -------------------------------------------


def decode_sog(data: bytes) -> Gaussians:
    """The gaussians a .sog holds, in its order, decoded as PlayCanvas's reader decodes them (the
    tests hold the two to the same values); float32 on the CPU."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        meta = json.loads(archive.read("meta.json"))
        n = int(meta["count"])

        def texels(name: str, rows: int | None = n) -> np.ndarray:
            image = Image.open(io.BytesIO(archive.read(name))).convert("RGBA")
            return np.asarray(image).reshape(-1, 4)[:rows].astype(np.int64)

        low, high = (texels(name) for name in meta["means"]["files"])
        mins, maxs = np.array(meta["means"]["mins"]), np.array(meta["means"]["maxs"])
        logs = mins + np.where(maxs - mins != 0, maxs - mins, 1.0) * (
            (low[:, :3] | (high[:, :3] << 8)) / 65535
        )
        quats = _decode_quats(texels(meta["quats"]["files"][0]))
        scales = np.float32(meta["scales"]["codebook"])[texels(meta["scales"]["files"][0])[:, :3]]
        sh0 = texels(meta["sh0"]["files"][0])
        alpha = np.clip(sh0[:, 3] / 255, 1e-6, 1 - 1e-6)
        sh_dc = np.float32(meta["sh0"]["codebook"])[sh0[:, :3]]
        rest = np.zeros((n, 0, 3), dtype=np.float32)
        if "shN" in meta and SH_COEFFS.get(meta["shN"]["bands"], 0):
            coeffs = SH_COEFFS[meta["shN"]["bands"]]
            labels = texels(meta["shN"]["files"][1])
            labels = labels[:, 0] | (labels[:, 1] << 8)
            palette = texels(meta["shN"]["files"][0], None).reshape(-1, coeffs, 4)[
                :, :, :3
            ]  # [entry, j, rgb]
            book = np.float32(meta["shN"]["codebook"])
            known = labels < min(int(meta["shN"]["count"]), len(palette))
            rest = np.zeros((n, coeffs, 3), dtype=np.float32)
            rest[known] = book[palette[labels[known]]]
    return Gaussians(
        means=torch.from_numpy((np.sign(logs) * np.expm1(np.abs(logs))).astype(np.float32)),
        quats=torch.from_numpy(quats.astype(np.float32)),
        log_scales=torch.from_numpy(scales),
        opacity_logits=torch.from_numpy(np.log(alpha / (1 - alpha)).astype(np.float32)),
        sh_dc=torch.from_numpy(sh_dc),
        sh_rest=torch.from_numpy(rest),
    )


def _decode_quats(texels: np.ndarray) -> np.ndarray:
    """(w, x, y, z) from smallest-three texels; a tag outside 252..255 reads as the identity."""
    largest = texels[:, 3] - 252
    valid = (largest >= 0) & (largest <= 3)
    three = (texels[:, :3] / 255 * 2 - 1) / math.sqrt(2)
    slots = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[np.where(valid, largest, 0)]
    quats = np.zeros((len(texels), 4))
    np.put_along_axis(quats, slots, three, axis=1)
    np.put_along_axis(
        quats,
        np.where(valid, largest, 0)[:, None],
        np.sqrt(np.maximum(0, 1 - (three**2).sum(1)))[:, None],
        axis=1,
    )
    quats[~valid] = [1.0, 0.0, 0.0, 0.0]
    return quats


def texture_size(count: int) -> tuple[int, int]:
    """(width, height) of the per-gaussian textures, as the reference sizes them."""
    width = math.ceil(math.sqrt(count) / 4) * 4
    return width, math.ceil(count / width / 4) * 4


def palette_size(count: int) -> int:
    """The reference's SH palette size: a power of two up to 64 K, about a thousandth of the count."""
    return int(min(64, 2 ** math.floor(math.log2(count / 1024))) * 1024)


def encode_sog(
    gaussians: Gaussians, iterations: int = KMEANS_ITERATIONS, seed: int = 0, timings: dict | None = None
) -> SogTextures:
    """The SOG textures and meta.json of finite gaussians, computed on their device."""
    g = gaussians
    clock = _Clock(timings, g.device)
    n, degree = len(g), g.sh_degree
    if degree not in SH_COEFFS:
        raise PreviewInputError(f"SOG stores SH degrees 0 to 3, these gaussians have degree {degree}")
    width, height = texture_size(n)
    order = torch.from_numpy(morton_order(g.means.detach().cpu().numpy())).to(g.device)
    clock("morton")

    def texture(rgba: torch.Tensor) -> np.ndarray:  # [n, 4] uint8 in Morton order → [H, W, 4]
        out = np.zeros((height * width, 4), dtype=np.uint8)
        out[:n] = rgba[order].cpu().numpy()
        return out.reshape(height, width, 4)

    low, high, mins, maxs = encode_means(g.means)
    textures = {"means_l.webp": texture(low), "means_u.webp": texture(high)}
    textures["quats.webp"] = texture(encode_quats(g.quats))
    scale_book, scale_labels = quantize_1d(g.log_scales.T)
    textures["scales.webp"] = texture(_rgba(scale_labels.T))
    colour_book, colour_labels = quantize_1d(g.sh_dc.T)
    opacity = torch.round(torch.sigmoid(g.opacity_logits.double()) * 255).to(torch.uint8)
    textures["sh0.webp"] = texture(_rgba(colour_labels.T, alpha=opacity))
    clock("codebooks")
    meta = {
        "version": 2,
        "asset": {"generator": GENERATOR},
        "count": n,
        "means": {"mins": mins, "maxs": maxs, "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": colour_book.tolist(), "files": ["sh0.webp"]},
    }
    if degree > 0:
        coeffs = SH_COEFFS[degree]
        rest = g.sh_rest.transpose(1, 2).reshape(n, 3 * coeffs)  # f_rest order: channel-major
        count = palette_size(n)
        generator = torch.Generator().manual_seed(seed)
        centroids, labels = kmeans(rest.float(), count, iterations, generator)
        clock("kmeans")
        sh_book, sh_labels = quantize_1d(centroids.T)  # [3·coeffs, count]
        palette = np.zeros((math.ceil(count / 64) * 64 * coeffs, 4), dtype=np.uint8)
        channels = sh_labels.reshape(3, coeffs, count).permute(2, 1, 0).reshape(count * coeffs, 3)
        palette[: count * coeffs] = _rgba(channels).cpu().numpy()
        textures["shN_centroids.webp"] = palette.reshape(-1, 64 * coeffs, 4)
        label_bytes = torch.stack([labels & 0xFF, labels >> 8], dim=1).to(torch.uint8)
        textures["shN_labels.webp"] = texture(_rgba(label_bytes))
        meta["shN"] = {
            "count": count,
            "bands": degree,
            "codebook": sh_book.tolist(),
            "files": ["shN_centroids.webp", "shN_labels.webp"],
        }
        clock("palette")
    return SogTextures(textures, meta)


def pack_sog(sog: SogTextures, workers: int = 8) -> bytes:
    """The .sog file: every texture as lossless WebP, then meta.json, stored in one zip."""
    names = list(sog.textures)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        encoded = list(pool.map(lambda name: webp_bytes(sog.textures[name]), names))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in [
            *zip(names, encoded, strict=True),
            ("meta.json", json.dumps(sog.meta, separators=(",", ":")).encode()),
        ]:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def webp_bytes(rgba: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(out, format="WEBP", **WEBP_OPTIONS)
    return out.getvalue()


def morton_order(means: np.ndarray) -> np.ndarray:
    """The reference's gaussian order: 30-bit Morton codes over the bounding box (10 bits an axis),
    a stable sort, and every run of more than 256 equal codes sorted again over its own box."""
    order = np.arange(len(means))
    pending = [(0, len(means))]
    while pending:
        lo, hi = pending.pop()
        index = order[lo:hi]
        points = means[index].astype(np.float64)
        low, extent = points.min(axis=0), np.ptp(points, axis=0)
        if not np.isfinite(extent).all() or not extent.any():
            continue
        scale = np.divide(1024.0, extent, out=np.zeros(3), where=extent > 0)
        cells = np.minimum(1023, (points - low) * scale).astype(np.uint32)
        codes = (
            _spread_bits(cells[:, 0]) | (_spread_bits(cells[:, 1]) << 1) | (_spread_bits(cells[:, 2]) << 2)
        )
        sort = np.argsort(codes, kind="stable")
        order[lo:hi], codes = index[sort], codes[sort]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], len(codes)]
        pending += [(lo + s, lo + e) for s, e in zip(starts, ends, strict=True) if e - s > 256]
    return order


def encode_means(means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[float], list[float]]:
    """Low and high bytes [N,4] of each coordinate's 16-bit log-space position, and the bounds."""
    logs = _log_transform(means.double())
    mins, maxs = logs.min(dim=0).values, logs.max(dim=0).values
    span = maxs - mins
    unit = torch.where(span > 0, (logs - mins) / torch.where(span > 0, span, 1.0), 0.0)
    words = torch.round(unit * 65535).to(torch.int32)
    low = _rgba(torch.stack([words[:, a] & 0xFF for a in range(3)], dim=1).to(torch.uint8))
    high = _rgba(torch.stack([words[:, a] >> 8 for a in range(3)], dim=1).to(torch.uint8))
    return low, high, mins.tolist(), maxs.tolist()


def encode_quats(quats: torch.Tensor) -> torch.Tensor:
    """[N,4] uint8: smallest three of the unit quaternion (w,x,y,z), largest made positive, ×√2,
    in 8 bits; alpha 252 + the largest's index. A zero quaternion stands for the identity."""
    q = quats.double()
    norm = q.norm(dim=1, keepdim=True)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=q.dtype, device=q.device)
    q = torch.where(norm > 0, q / torch.where(norm > 0, norm, 1.0), identity)
    largest = q.abs().argmax(dim=1)
    sign = torch.where(q.gather(1, largest[:, None]) < 0, -1.0, 1.0)
    q = q * sign * math.sqrt(2)
    kept = torch.arange(4, device=q.device)[None, :] != largest[:, None]
    three = q[kept].reshape(-1, 3)
    packed = torch.round(torch.clamp(255 * (three * 0.5 + 0.5), 0, 255)).to(torch.uint8)
    return torch.cat([packed, (252 + largest).to(torch.uint8)[:, None]], dim=1)


def quantize_1d(
    columns: torch.Tensor, k: int = CODEBOOK_SIZE, alpha: float = 0.5
) -> tuple[np.ndarray, torch.Tensor]:
    """The reference's 256-entry codebook of finite values pooled from every column, and each value's
    nearest entry (uint8, the columns' shape). Codebook float32, ascending, padded with its last entry."""
    values = columns.reshape(-1).double()
    sorted_values = torch.sort(values).values
    n = len(sorted_values)
    v_min, v_max = sorted_values[0].item(), sorted_values[-1].item()
    if v_max - v_min < 1e-20:
        return np.full(k, v_min, dtype=np.float32), torch.zeros_like(columns, dtype=torch.uint8)
    bins = min(1024, n)
    v_range = v_max - v_min
    iqr = (sorted_values[int(n * 0.75)] - sorted_values[int(n * 0.25)]).item()
    beta = max(0.5, min(0.999, 1 - iqr / v_range))
    rank = torch.arange(n, dtype=torch.float64, device=values.device) / n
    position = beta * rank + (1 - beta) * (sorted_values - v_min) / v_range
    bin_of = torch.clamp(torch.floor(bins * position), max=bins - 1).long()
    counts = torch.bincount(bin_of, minlength=bins).double()
    sums = torch.zeros(bins, dtype=torch.float64, device=values.device).index_add_(0, bin_of, sorted_values)
    filled = counts > 0  # an empty bin weighs nothing: leaving it out of the split changes no cost
    centers = (sums[filled] / counts[filled]).cpu().numpy()
    centroids = _optimal_split(centers, (counts[filled] ** alpha).cpu().numpy(), min(k, len(centers)))
    book = np.empty(k, dtype=np.float32)
    book[: len(centroids)] = centroids
    book[len(centroids) :] = centroids[-1]
    book64 = torch.from_numpy(book.astype(np.float64)).to(values.device)
    labels = torch.searchsorted((book64[:-1] + book64[1:]) * 0.5, values, right=True)
    return book, labels.to(torch.uint8).reshape(columns.shape)


def kmeans(
    points: torch.Tensor, k: int, iterations: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means [k,D], [N] from k distinct random points, as the reference runs it: each
    iteration assigns every point to its nearest centroid, then moves each centroid to its points'
    mean (an empty cluster takes a random point). The labels are the last assignment's."""
    n, dims = points.shape
    if n <= k:
        return points.clone(), torch.arange(n, device=points.device)
    centre = points.mean(dim=0)
    spread = (points - centre).abs().max().clamp(min=1e-12)
    x = (points - centre) / spread  # the same nearest centroids, in half precision's range and accuracy
    centroids = x[torch.randperm(n, generator=generator)[:k].to(x.device)]
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    for _ in range(iterations):
        labels = nearest(x, centroids)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        empty = counts == 0
        centroids = sums / counts.clamp(min=1)[:, None]
        if empty.any():
            picks = torch.randint(n, (int(empty.sum()),), generator=generator).to(x.device)
            centroids[empty] = x[picks]
    return centroids * spread + centre, labels


def nearest(points: torch.Tensor, centroids: torch.Tensor, budget: int = 1 << 28) -> torch.Tensor:
    """Index of each point's nearest centroid: argmin of |c|² − 2x·c as one matrix product per block
    of points (half precision on the GPU, where it runs on tensor cores)."""
    half = points.is_cuda
    dtype = torch.float16 if half else torch.float32
    augmented = torch.cat([-2 * centroids, (centroids * centroids).sum(dim=1, keepdim=True)], dim=1).to(dtype)
    ones = torch.ones(len(points), 1, dtype=dtype, device=points.device)
    rows = max(1, budget // len(centroids))
    labels = torch.empty(len(points), dtype=torch.long, device=points.device)
    for start in range(0, len(points), rows):
        block = torch.cat([points[start : start + rows].to(dtype), ones[start : start + rows]], dim=1)
        labels[start : start + rows] = (block @ augmented.T).argmin(dim=1)
    return labels


def _optimal_split(centers: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """k centroids minimising the weighted squared error of the sorted bin centres: dynamic
    programming over where each of the k runs of bins ends (the first split on ties, as the reference),
    each split searched from the one before it for one run fewer (Knuth), so a level costs a few bins."""
    bins = len(centers)
    pw, pwx, pwxx = (np.r_[0.0, np.cumsum(v)] for v in (weights, weights * centers, weights * centers**2))
    a = np.arange(bins)
    first, last = a[:, None], a[None, :]  # cost[a, b]: one centroid for bins a..b
    w, wx = pw[last + 1] - pw[first], pwx[last + 1] - pwx[first]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(w > 0, (pwxx[last + 1] - pwxx[first]) - wx * wx / w, 0.0)
    after = np.full((bins, bins), np.inf)  # after[s, j]: one centroid for bins s+1..j
    after[:-1] = np.where(last >= first[1:], cost[1:], np.inf)
    best, lower, splits = cost[0], np.zeros(bins, dtype=np.int64), []
    for m in range(2, k + 1):
        lower = np.maximum(lower, m - 2)
        s = lower[None, :] + np.arange(max(1, int((a - lower).max())))[:, None]  # candidates, [width, bins]
        valid = s < last
        s = np.where(valid, s, 0)
        values = np.where(valid, best[s] + after[s, last], np.inf)
        offset = values.argmin(axis=0)
        best, lower = values[offset, a], s[offset, a]
        splits.append(lower)
    runs, j = [], bins - 1
    for split in reversed(splits):
        runs.append((split[j] + 1, j))
        j = split[j]
    runs.append((0, j))
    total = np.array([pw[hi + 1] - pw[lo] for lo, hi in runs])
    summed = np.array([pwx[hi + 1] - pwx[lo] for lo, hi in runs])
    middle = np.array([(centers[lo] + centers[hi]) / 2 for lo, hi in runs])
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(total > 0, summed / total, middle)
    return np.sort(means.astype(np.float32))


def _rgba(rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """[N,C≤3] uint8 → [N,4]: missing channels 0, alpha 255 unless given."""
    out = torch.zeros(len(rgb), 4, dtype=torch.uint8, device=rgb.device)
    out[:, : rgb.shape[1]] = rgb
    out[:, 3] = 255 if alpha is None else alpha
    return out


def _log_transform(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.log(v.abs() + 1)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """The 10 low bits of v spread to every third bit (Morton encoding)."""
    v = v & 0x3FF
    v = (v ^ (v << 16)) & 0xFF0000FF
    v = (v ^ (v << 8)) & 0x0300F00F
    v = (v ^ (v << 4)) & 0x030C30C3
    return (v ^ (v << 2)) & 0x09249249


class _Clock:
    """Adds the seconds since the last call to ``timings[stage]`` (when timings are kept)."""

    def __init__(self, timings: dict | None, device: torch.device | None = None) -> None:
        self.timings, self.device, self.last = timings, device, time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is None:
            return
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now


# ---- the edges: a PLY in, a .sog out ---------------------------------------------------------------


def check_gaussian_count(path: Path) -> None:
    """Refuse, before reading the body, a PLY whose header promises more gaussians than SOG can hold."""
    from splat_render.ply import read_header

    try:
        header = read_header(path)
    except OSError:
        return  # the reader says what is wrong with the file
    for line in header.splitlines():
        words = line.split()
        declared = int(words[2]) if len(words) == 3 and words[2].isdigit() else 0
        if words[:2] == ["element", "vertex"] and declared > MAX_GAUSSIANS:
            raise PreviewInputError(
                f"{path} declares {declared:,} gaussians; a SOG holds at most {MAX_GAUSSIANS:,}"
            )


def write_sog(
    ply: Path | str,
    output: Path | str,
    device: str | torch.device | None = "auto",
) -> SogReport:
    """Read a splat PLY, encode it and write the .sog atomically; a one-line PreviewInputError on
    a PLY without usable gaussians or an output that cannot be written."""
    from splat_render.ply import read_gaussians
    from splat_render.raster import resolve_device

    ply, output = Path(ply), Path(output)
    check_writable([output])
    resolved = resolve_device(device)
    check_gaussian_count(ply)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    gaussians = read_gaussians(ply)
    finite = gaussians.finite_rows()
    kept = gaussians.select(finite) if not bool(finite.all()) else gaussians
    if len(kept) == 0:
        raise PreviewInputError(f"{ply} has no gaussian whose values are all finite")
    if len(kept) > MAX_GAUSSIANS:
        raise PreviewInputError(f"{ply} holds {len(kept):,} gaussians; a SOG holds at most {MAX_GAUSSIANS:,}")
    kept = kept.to(resolved)
    timings["read"] = time.perf_counter() - started
    textures = encode_sog(kept, timings=timings)
    clock = _Clock(timings)
    data = pack_sog(textures)
    clock("webp+zip")
    with published_together([output]) as temps:
        temps[output].write_bytes(data)
    clock("write")
    return SogReport(
        output=output,
        gaussians=len(kept),
        non_finite=len(gaussians) - len(kept),
        sh_degree=kept.sh_degree,
        bytes=len(data),
        device=str(resolved),
        stage_seconds=timings,
    )
