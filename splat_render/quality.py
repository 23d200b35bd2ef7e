"""How well a trained splat reproduces its images: PSNR and SSIM of our own renders against them.

The views are nerfstudio's: its dataparser is run again from the run's config (which ``eval_setup``
loaded) at the resolution training used (its automatic downscale to at most 1600 px, or the config's
factor), and its default split holds about a tenth of the images out of training. Every held-out
view is measured (an even stride of at most ``HELD_OUT_VIEWS``) and an even sample of the training
views; each image is undistorted exactly as splatfacto's datamanager undistorts it for training, and
the render uses the intrinsics that undistortion gives. PSNR and SSIM are torchmetrics' (as
splatfacto's own evaluation computes them), on [0,1] RGB over the eval background.

Images load and undistort in background threads from the moment ``start_evaluation`` is called, so
that on the GPU machine they are ready when the preview has been encoded. On the CPU the views are
few and rendered downscaled to ``CPU_SIZE`` (the report says so).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from splat_render.gaussians import Gaussians
from splat_render.raster import RenderSettings, render_batch
from splat_render.views import viewmats_from_c2w

HELD_OUT_VIEWS = {"cuda": 40, "cpu": 4}
TRAINING_VIEWS = {"cuda": 20, "cpu": 4}
CPU_SIZE = 160  # longest side of a view rendered on the CPU
MAX_PSNR = 100.0  # dB reported for a render equal to its image (PSNR is infinite there; JSON has no inf)
LOADERS = 4  # threads reading and undistorting images


@dataclass(frozen=True)
class Target:
    """One view to measure: its camera (OpenGL camera-to-world, intrinsics) and its image [H,W,3]."""

    name: str
    c2w: torch.Tensor  # [3,4]
    K: torch.Tensor  # [3,3]
    image: torch.Tensor  # [H,W,3] float32 in [0,1], CPU


@dataclass(frozen=True)
class ViewSet:
    split: str  # "held_out" or "training"
    total: int  # views in the split
    targets: tuple[Future, ...]  # of Target, loading


def even_indices(total: int, count: int) -> list[int]:
    """At most ``count`` indices spread evenly over ``range(total)``, first and last included."""
    if total <= count:
        return list(range(total))
    return sorted({round(i * (total - 1) / max(count - 1, 1)) for i in range(count)})


class Evaluation:
    """The views of a run, loading from construction; ``measure`` renders and compares them."""

    def __init__(self, dataparser_config: Any, device: torch.device) -> None:
        self._device = device
        self._pool = ThreadPoolExecutor(LOADERS, thread_name_prefix="quality")
        self._sets: Future = self._pool.submit(self._prepare, dataparser_config)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _prepare(self, dataparser_config: Any) -> tuple[ViewSet, ...]:
        parser = dataparser_config.setup()
        sets = []
        for split, dataparser_split, sizes in (
            ("held_out", "test", HELD_OUT_VIEWS),
            ("training", "train", TRAINING_VIEWS),
        ):
            outputs = parser.get_dataparser_outputs(split=dataparser_split)
            total = len(outputs.image_filenames)
            chosen = even_indices(total, sizes[self._device.type])
            futures = tuple(self._pool.submit(self._load, outputs, index) for index in chosen)
            sets.append(ViewSet(split, total, futures))
        return tuple(sets)

    def _load(self, outputs: Any, index: int) -> Target:
        """One view as splatfacto trains on it: the image, undistorted, and its camera."""
        from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image
        from nerfstudio.data.datasets.base_dataset import InputDataset

        camera = outputs.cameras[index].reshape(())
        image = InputDataset(outputs).get_image_float32(index)[..., :3]
        K = camera.get_intrinsics_matrices().numpy().astype(np.float64)
        distortion = camera.distortion_params
        if distortion is not None and bool(torch.any(distortion != 0)):
            K, undistorted, _ = _undistort_image(camera, distortion.numpy(), {}, image.numpy(), K)
            image = torch.from_numpy(np.ascontiguousarray(undistorted))
        K = torch.as_tensor(K, dtype=torch.float32)
        if self._device.type == "cpu":
            image, K = downscaled(image, K, CPU_SIZE)
        name = outputs.image_filenames[index].name
        return Target(name, camera.camera_to_worlds.to(torch.float32), K, image)

    def measure(self, gaussians: Gaussians, settings: RenderSettings) -> dict[str, Any]:
        """The ``quality`` section of the report: per split, per view and summarised."""
        report: dict[str, Any] = {
            "resolution": "training" if self._device.type == "cuda" else f"downscaled to {CPU_SIZE} px",
        }
        try:
            sets = self._sets.result()
        except FileNotFoundError as exc:  # a run copied without its images (or a scene that has none)
            why = f"the run's images are missing ({exc.filename or line(exc)})"
            return report | {"held_out": None, "training": None, "note": f"no views to measure: {why}"}
        except Exception as exc:  # an unreadable transforms.json, a dataparser that cannot run
            return report | {"held_out": None, "training": None, "note": f"no views to measure: {line(exc)}"}
        for view_set in sets:
            if not view_set.targets:
                report[view_set.split] = None
                kind = view_set.split.replace("_", "-")
                report[f"{view_set.split}_note"] = f"the dataset has no {kind} views"
                continue
            try:
                report[view_set.split] = measure_views(gaussians, settings, view_set)
            except OSError as exc:
                report[view_set.split] = None
                report[f"{view_set.split}_note"] = f"cannot read its images: {line(exc)}"
        return report


@contextlib.contextmanager
def start_evaluation(dataparser_config: Any, device: torch.device) -> Iterator[Evaluation | None]:
    """An ``Evaluation`` loading its views meanwhile (None without a run config); stopped at the end."""
    if dataparser_config is None:
        yield None
        return
    evaluation = Evaluation(dataparser_config, device)
    try:
        yield evaluation
    finally:
        evaluation.close()


def measure_views(gaussians: Gaussians, settings: RenderSettings, view_set: ViewSet) -> dict[str, Any]:
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    device = gaussians.device
    per_view = []
    for future in view_set.targets:
        target = future.result()
        height, width = target.image.shape[:2]
        viewmat = viewmats_from_c2w(target.c2w[None].to(device))
        rendered = render_batch(gaussians, viewmat, target.K[None].to(device), width, height, settings)
        predicted = rendered.permute(0, 3, 1, 2)
        truth = target.image.to(device).permute(2, 0, 1)[None]
        psnr = min(float(peak_signal_noise_ratio(predicted, truth, data_range=1.0)), MAX_PSNR)
        ssim = float(structural_similarity_index_measure(predicted, truth, data_range=1.0))
        per_view.append({"image": target.name, "psnr": round(psnr, 3), "ssim": round(ssim, 4)})
    psnrs = [view["psnr"] for view in per_view]
    ssims = [view["ssim"] for view in per_view]
    return {
        "views": len(per_view),
        "of": view_set.total,
        "psnr": round(float(np.mean(psnrs)), 3),
        "ssim": round(float(np.mean(ssims)), 4),
        "psnr_min": min(psnrs),
        "ssim_min": min(ssims),
        "per_view": per_view,
    }


def downscaled(image: torch.Tensor, K: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image area-averaged to at most ``size`` pixels on its longest side, and its intrinsics."""
    height, width = image.shape[:2]
    scale = size / max(width, height)
    if scale >= 1:
        return image, K
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    image = torch.nn.functional.interpolate(
        image.permute(2, 0, 1)[None], size=(new_height, new_width), mode="area"
    )[0].permute(1, 2, 0)
    K = K.clone()
    K[0] *= new_width / width
    K[1] *= new_height / height
    return image.contiguous(), K


def line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]
