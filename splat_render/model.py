"""Load a trained splatfacto checkpoint through nerfstudio's own ``eval_setup``, anywhere.

``eval_setup`` is the reference loader, but out of the box it breaks in ways a compute node meets
daily: a moved job root, a different working directory, no network (LPIPS weights are downloaded
when the model is built), torch >= 2.6 refusing nerfstudio's pickled checkpoints, no training
images, no open3d. ``load_splatfacto`` wraps it so that none of these matter, and turns every
failure into a one-line ``PreviewInputError``.

Loading runs no code a run's files name beyond nerfstudio's own: checkpoints are unpickled with
``weights_only`` and only the numpy scalars nerfstudio's schedulers store are allowed besides
tensors, and config.yml, which ``eval_setup`` reads with YAML's unsafe loader, is first checked to
name only nerfstudio's classes, paths and the optimizer classes it points to.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians, splatfacto_sh_dc
from splat_render.raster import resolve_device

if TYPE_CHECKING:  # nerfstudio is imported only where a camera batch is built
    from nerfstudio.cameras.cameras import Cameras

CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)\.ckpt$")

# Splatfacto's eval background for "random" (viser's default grey); black and white are literal.
BACKGROUNDS = {
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "random": (0.1490, 0.1647, 0.2157),
}


@dataclass(frozen=True)
class LoadedSplat:
    """What the preview needs from a checkpoint: the gaussians and how splatfacto renders them."""

    gaussians: Gaussians
    background: torch.Tensor  # [3] in [0,1]
    rasterize_mode: str  # "classic" or "antialiased"
    cameras: Cameras  # training cameras on the CPU: OpenGL poses (training frame), intrinsics, sizes
    checkpoint: Path
    step: int
    dataparser: Any = None  # the run's dataparser config, relocated: the quality report parses it again


def find_checkpoint(config_path: Path) -> Path:
    """The newest ``step-*.ckpt`` in ``nerfstudio_models/`` beside config.yml."""
    model_dir = config_path.parent / "nerfstudio_models"
    steps = sorted(
        (int(m.group(1)), p)
        for p in (model_dir.iterdir() if model_dir.is_dir() else ())
        if (m := CHECKPOINT_PATTERN.match(p.name))
    )
    if not steps:
        raise PreviewInputError(
            f"no checkpoint (step-*.ckpt) in {model_dir}: was training run to completion?"
        )
    return steps[-1][1]


def load_splatfacto(config_path: Path | str, device: torch.device | str | None = None) -> LoadedSplat:
    """Load the newest checkpoint of a splatfacto run, given its config.yml.

    The checkpoint folder and the dataset folder are found relative to config.yml, so the run can
    have been moved or copied and the current directory does not matter.
    """
    config_path = Path(config_path).resolve()
    if not config_path.is_file():
        raise PreviewInputError(f"config not found: {config_path}")
    checkpoint = find_checkpoint(config_path)
    splatfacto_model_config(config_path)
    target = resolve_device(device)

    eval_setup = import_eval_setup()

    def relocate(cfg: Any) -> Any:
        # An absolute relative_model_dir wins over output_dir/experiment/method/timestamp.
        cfg.relative_model_dir = checkpoint.parent
        cfg.load_step = int(CHECKPOINT_PATTERN.match(checkpoint.name).group(1))
        data = locate_dataset(
            config_path, Path(cfg.pipeline.datamanager.data or cfg.pipeline.datamanager.dataparser.data)
        )
        cfg.data = data
        cfg.pipeline.datamanager.data = data
        cfg.pipeline.datamanager.dataparser.data = data
        # The gaussians come from the checkpoint: no point cloud (it would need open3d).
        if hasattr(cfg.pipeline.datamanager.dataparser, "load_3D_points"):
            cfg.pipeline.datamanager.dataparser.load_3D_points = False
        return cfg

    try:
        with offline_nerfstudio(), contextlib.redirect_stdout(io.StringIO()):
            _, pipeline, _, step = eval_setup(
                config_path, test_mode="inference", update_config_callback=relocate
            )
    except PreviewInputError:
        raise
    except SystemExit as exc:
        raise PreviewInputError(f"nerfstudio could not load {config_path} (exit {exc.code})") from None
    except Exception as exc:
        raise PreviewInputError(f"cannot load checkpoint {checkpoint}: {first_line(exc)}") from exc
    return extract(pipeline, checkpoint, step, target)


class _SplatfactoMethods(dict):
    """Stands in for nerfstudio's method registry while ``eval_utils`` is first imported.

    ``eval_setup`` only reads ``all_methods[method_name].pipeline.datamanager._target`` from it,
    which for every splatfacto variant is the full-image datamanager. The real registry builds the
    configs of every method nerfstudio knows, scans all installed packages for plugins and builds a
    CLI type over them: seconds of start-up that a preview (of a config already checked to be
    splatfacto) does not need.
    """

    def __missing__(self, method_name: str) -> Any:
        from types import SimpleNamespace

        from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig

        return SimpleNamespace(pipeline=SimpleNamespace(datamanager=FullImageDatamanagerConfig()))


def import_eval_setup() -> Any:
    """nerfstudio's ``eval_setup``, imported without building the registry of every method."""
    registry = "nerfstudio.configs.method_configs"
    if "nerfstudio.utils.eval_utils" not in sys.modules and registry not in sys.modules:
        sys.modules[registry] = types.ModuleType(registry)
        sys.modules[registry].all_methods = _SplatfactoMethods()
        try:
            import nerfstudio.utils.eval_utils  # noqa: F401  (binds the stand-in registry)
        finally:
            del sys.modules[registry]  # anyone importing it later gets the real one
    from nerfstudio.utils.eval_utils import eval_setup

    return eval_setup


TRAINER_CONFIG = "nerfstudio.engine.trainer.TrainerConfig"
SPLATFACTO_CONFIG = "nerfstudio.models.splatfacto.SplatfactoModelConfig"
CLASS_KEY = "!class"  # where the structure reader keeps the class a mapping's tag names


# What the python tags of a nerfstudio config may name: "prefix." allows a module and everything in
# it, anything else one name exactly. Nothing else is constructed, called or imported.
CONFIG_TAGS = {
    "object": ("nerfstudio.",),  # config dataclasses, built without calling them
    "name": ("nerfstudio.", "torch.optim."),  # classes a config's setup() instantiates
    "object/apply": (  # the only calls: paths, and the log writer's event names (an Enum)
        *(f"pathlib.{kind}" for kind in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")),
        *(f"pathlib._local.{kind}" for kind in ("PosixPath", "WindowsPath")),
        "nerfstudio.utils.writer.EventName",
    ),
}
PLAIN_TAGS = frozenset(  # tags of plain data
    {"none", "bool", "int", "long", "float", "complex", "str", "unicode", "bytes", "list", "tuple", "dict"}
)


class _StructureLoader(yaml.SafeLoader):
    """Reads config.yml as plain data, keeping the class names its tags carry.

    config.yml is nerfstudio's pickled-as-YAML TrainerConfig: constructing it imports every class it
    names (the trainer, the viewer, the model: seconds of imports). Telling what kind of run it is
    needs only the names.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.foreign: list[str] = []  # tags naming code beyond CONFIG_TAGS, with their lines


def _construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    kind, _, name = suffix.partition(":")
    allowed = kind in PLAIN_TAGS if not name else any(_names(a, name) for a in CONFIG_TAGS.get(kind, ()))
    if not allowed:
        loader.foreign.append(f"!!python/{suffix} on line {node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
        return {**value, CLASS_KEY: name} if kind == "object" else value
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


def _names(allowed: str, name: str) -> bool:
    return name.startswith(allowed) if allowed.endswith(".") else name == allowed


_StructureLoader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_tagged)


def splatfacto_model_config(config_path: Path) -> dict[str, Any]:
    """The model section of a splatfacto run's config.yml as plain data, importing nothing;
    a one-line PreviewInputError when the file is not a splatfacto training config, or when its
    tags name code beyond ``CONFIG_TAGS`` (which ``eval_setup``'s unsafe loader would run)."""
    try:
        loader = _StructureLoader(config_path.read_text())
        try:
            config = loader.get_single_data()
        finally:
            loader.dispose()
    except Exception as exc:
        raise PreviewInputError(
            f"{config_path} is not a readable nerfstudio config: {first_line(exc)}"
        ) from exc
    if not isinstance(config, dict) or config.get(CLASS_KEY) != TRAINER_CONFIG:
        raise PreviewInputError(f"{config_path} is not a nerfstudio training config")
    pipeline = config.get("pipeline")
    model = pipeline.get("model") if isinstance(pipeline, dict) else None
    if not isinstance(model, dict) or model.get(CLASS_KEY) != SPLATFACTO_CONFIG:
        raise PreviewInputError(
            f"{config_path} is a '{config.get('method_name')}' run; only splatfacto models can be "
            "previewed or exported"
        )
    if loader.foreign:
        raise PreviewInputError(
            f"{config_path} names code a nerfstudio config never does ({loader.foreign[0]}): "
            "refusing to load it"
        )
    return model


def locate_dataset(config_path: Path, stored: Path) -> Path:
    """Find the nerfstudio dataset a run was trained on, wherever the job root now lives.

    Tries the stored path (absolute, or relative to the run's original working directory, which
    is one of config.yml's ancestors), then each tail of the stored path under each ancestor.
    """
    candidates = [stored] if stored.is_absolute() else []
    parts = stored.parts[1:] if stored.is_absolute() else stored.parts
    for ancestor in config_path.parents:
        candidates += [ancestor.joinpath(*parts[i:]) for i in range(len(parts))]
    for candidate in candidates:
        if (candidate / "transforms.json").is_file():
            return candidate
    raise PreviewInputError(
        f"dataset '{stored}' of {config_path} not found (looked for transforms.json beside the job root)"
    )


class _NoLPIPS(torch.nn.Module):
    """Stands in for splatfacto's LPIPS metric, whose construction downloads AlexNet weights."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.zeros(())


@contextlib.contextmanager
def offline_nerfstudio() -> Iterator[None]:
    """Let nerfstudio build and load a splatfacto pipeline with no network and torch >= 2.6.

    Inside this block ``torch.load`` is ``load_checkpoint``: what nerfstudio checkpoints hold loads,
    anything that would run code is refused.
    """
    import torchmetrics.image.lpip as lpip

    with (
        _patched(lpip, "LearnedPerceptualImagePatchSimilarity", _NoLPIPS),
        _patched(torch, "load", load_checkpoint),
    ):
        yield


_torch_load = torch.load


def checkpoint_globals() -> list[Any]:
    """What nerfstudio 1.1.5 checkpoints hold besides tensors, containers and plain numbers: numpy
    scalars, the learning rates its schedulers compute with numpy (float64; int64 steps too)."""
    import numpy as np

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar constructor, wherever this numpy keeps it
    return [scalar, np.dtype, *(type(np.dtype(kind)) for kind in (np.float64, np.int64))]


def load_checkpoint(path: Path | str, **options: Any) -> Any:
    """``torch.load`` with ``weights_only``, allowing ``checkpoint_globals`` and nothing that would
    run code; a one-line PreviewInputError for a checkpoint that is corrupt or holds more."""
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return _torch_load(path, weights_only=True, **options)
    except Exception as exc:
        reason = first_line(exc)
        if reason.startswith("Weights only load failed"):  # torch's words for what it refused
            foreign = re.search(r"GLOBAL (\S+)", str(exc))
            held = foreign[1] if foreign else "more than tensors and numbers"
            reason = f"it holds {held}, which nerfstudio checkpoints never hold: refusing to load it"
        raise PreviewInputError(f"cannot load checkpoint {path}: {reason}") from exc


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def extract(pipeline: Any, checkpoint: Path, step: int, device: torch.device) -> LoadedSplat:
    """Copy the tensors the renderer needs out of a loaded nerfstudio pipeline."""
    model = pipeline.model
    params = model.gauss_params
    with torch.no_grad():
        gaussians = Gaussians(
            means=params["means"].detach(),
            quats=params["quats"].detach(),
            log_scales=params["scales"].detach(),
            opacity_logits=params["opacities"].detach().reshape(-1),
            sh_dc=splatfacto_sh_dc(params["features_dc"].detach(), model.config.sh_degree),
            sh_rest=params["features_rest"].detach(),
        ).to(device)
    cameras = pipeline.datamanager.train_dataset.cameras
    return LoadedSplat(
        gaussians=gaussians,
        background=torch.tensor(BACKGROUNDS[model.config.background_color], device=device),
        rasterize_mode=model.config.rasterize_mode,
        cameras=cameras.to("cpu"),
        checkpoint=checkpoint,
        step=int(step),
        dataparser=pipeline.datamanager.config.dataparser,
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
