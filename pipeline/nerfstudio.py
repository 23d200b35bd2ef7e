"""Steps 2–3: the nerfstudio command lines, run from the job root with paths relative to it.

- ``ns-process-data images --skip-colmap`` turns the job's COLMAP model and frames into
  ``refined/nerfstudio-data/`` (transforms.json, copied images, sparse_pc.ply).
- ``ns-train splatfacto`` writes its run to ``{output-dir}/{experiment-name}/{method-name}/{timestamp}``;
  with an empty experiment name and timestamp that is ``refined/splatter/splatfacto/`` itself, holding
  config.yml and ``nerfstudio_models/``. The dataparser flags keep the training frame equal to the
  COLMAP-derived frame (no centring, no reorientation, scale 1), which the rotate step relies on.
  The viewer is nerfstudio's only logger that needs no extra package or account and skips the
  periodic evaluation passes (tensorboard and wandb run them); it listens on localhost only, and
  ``quit-on-train-completion`` makes ns-train exit when training ends instead of serving it.

Step 4 writes ``splat.ply`` with ``splat_render.export`` (what ``ns-export gaussian-splat`` writes,
byte for byte, without building the model).
"""

from __future__ import annotations

import os

from pipeline.layout import COLMAP_MODEL, FRAMES, NERFSTUDIO_DATA, SPLATTER, TRAIN_RUN


def process_data_command() -> list[str]:
    colmap_from_output = os.path.relpath(COLMAP_MODEL, NERFSTUDIO_DATA)  # ns-process-data resolves it so
    return [
        "ns-process-data", "images",
        "--data", str(FRAMES),
        "--output-dir", str(NERFSTUDIO_DATA),
        "--skip-colmap",
        "--colmap-model-path", colmap_from_output,
    ]  # fmt: skip


STEPS_PER_LOG = 500  # one stats line per 500 iterations, appended (not a redrawn table) for log files


def train_command(max_iterations: int | None) -> list[str]:
    """The splatfacto training run; ``max_iterations`` shortens it (tests, demos), None keeps 30 000."""
    budget = ["--max-num-iterations", str(max_iterations)] if max_iterations is not None else []
    return [
        "ns-train", "splatfacto",
        "--output-dir", str(SPLATTER),
        "--experiment-name", "",
        "--method-name", TRAIN_RUN.name,
        "--timestamp", "",
        "--data", str(NERFSTUDIO_DATA),
        "--vis", "viewer",
        "--viewer.websocket-host", "127.0.0.1",
        "--viewer.quit-on-train-completion", "True",
        "--logging.steps-per-log", str(STEPS_PER_LOG),
        "--logging.local-writer.max-log-size", "0",
        *budget,
        "nerfstudio-data",
        "--center-method", "none",
        "--orientation-method", "none",
        "--auto-scale-poses", "False",
    ]  # fmt: skip
