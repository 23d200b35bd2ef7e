"""Where every input and output of a job lives, relative to the job root.

External programs run with the job root as their working directory and are given these relative
paths, so that what they store (nerfstudio writes paths into config.yml) stays valid when the job
root moves.
"""

from pathlib import Path

DATASETS = Path("datasets")
DATASET_VIDEO = "Frames.mp4"
COLMAP_MODEL = Path("refined/global/refined_sfm_combined")
COLMAP_FILES = ("cameras.bin", "images.bin", "points3D.bin")

FRAMES = Path("Frames")
NERFSTUDIO_DATA = Path("refined/nerfstudio-data")
TRANSFORMS = NERFSTUDIO_DATA / "transforms.json"
SPLATTER = Path("refined/splatter")
TRAIN_RUN = SPLATTER / "splatfacto"
CONFIG = TRAIN_RUN / "config.yml"
CHECKPOINTS = TRAIN_RUN / "nerfstudio_models"
SPLAT_PLY = SPLATTER / "splat.ply"
ROTATED_PLY = SPLATTER / "splat_rot.ply"
SPLAT_FILE = SPLATTER / "splat_rot.splat"
SOG_FILE = SPLATTER / "splat_rot.sog"
PREVIEW = SPLATTER / "preview.mp4"
POSTER = SPLATTER / "preview.jpg"
QUALITY = SPLATTER / "quality.json"
COVERAGE = SPLATTER / "coverage.jpg"

STAGE_MARKERS = Path(".pipeline")
LOCK_FILE = STAGE_MARKERS / "lock"
