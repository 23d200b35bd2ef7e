"""Publishes what run.py produced: the splat (required) and its preview video (best-effort)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .cancel import Cancelled
from .domain import DomainClient
from .retry import describe_error

log = logging.getLogger(__name__)

SPLAT_PATH = Path("refined/splatter/splat_rot.splat")
SPLAT_NAME, SPLAT_TYPE = "refined_splat", "splat_data"
PREVIEW_PATH = Path("refined/splatter/preview.mp4")
PREVIEW_NAME, PREVIEW_TYPE = "refined_splat_preview_video", "splat_preview_video"


class MissingOutput(RuntimeError):
    """run.py finished without writing an output the task cannot do without."""


@dataclass(frozen=True)
class Artifact:
    logical_path: str
    name: str
    data_type: str
    id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Published:
    splat: Artifact
    preview: Artifact | None
    preview_note: str
    """Why there is no preview, or that it was uploaded."""

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return (self.splat,) if self.preview is None else (self.splat, self.preview)


def artifact_name(base: str, suffix: str) -> str:
    """base + suffix, joined by an underscore unless the suffix brings its own (or is empty)."""
    if not suffix or suffix.startswith("_"):
        return f"{base}{suffix}"
    return f"{base}_{suffix}"


def publish_outputs(
    domain: DomainClient, job_root: Path, suffix: str, on_uploaded: Callable[[Artifact], None]
) -> Published:
    uploaded: dict[str, str] = {}

    def upload(relative: Path, base_name: str, data_type: str) -> Artifact:
        name = artifact_name(base_name, suffix)
        meta = domain.upsert(job_root / relative, name, data_type, uploaded.get(name))
        uploaded[name] = meta.id
        artifact = Artifact(logical_path=relative.as_posix(), name=name, data_type=data_type, id=meta.id)
        log.info("uploaded %s as %s (%s, id %s)", relative, name, data_type, meta.id)
        on_uploaded(artifact)
        return artifact

    if not (job_root / SPLAT_PATH).is_file():
        raise MissingOutput(f"run.py produced no {SPLAT_PATH}")
    splat = upload(SPLAT_PATH, SPLAT_NAME, SPLAT_TYPE)

    if not (job_root / PREVIEW_PATH).is_file():
        return Published(splat, None, f"run.py produced no {PREVIEW_PATH}; completing with the splat only")
    try:
        preview = upload(PREVIEW_PATH, PREVIEW_NAME, PREVIEW_TYPE)
    except Cancelled:
        raise
    except Exception as exc:
        log.warning("preview upload failed; completing with the splat only", exc_info=True)
        return Published(
            splat, None, f"preview upload failed ({describe_error(exc)}); completing with the splat only"
        )
    return Published(splat, preview, "preview video uploaded")
