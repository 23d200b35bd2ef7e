"""Publishes what run.py produced: the splat (required); its SOG, preview video, poster and coverage
picture (best-effort)."""

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


@dataclass(frozen=True)
class Output:
    """A file run.py writes and the domain item it is published as (name + the manifest's suffix)."""

    path: Path
    base_name: str
    data_type: str
    label: str


SPLAT = Output(Path("refined/splatter/splat_rot.splat"), "refined_splat", "splat_data", "splat")
SOG = Output(Path("refined/splatter/splat_rot.sog"), "refined_splat_sog", "splat_data_sog", "SOG")
PREVIEW_VIDEO = Output(
    Path("refined/splatter/preview.mp4"),
    "refined_splat_preview_video",
    "splat_preview_video",
    "preview video",
)
POSTER = Output(
    Path("refined/splatter/preview.jpg"), "refined_splat_preview_image", "splat_preview_image", "poster"
)

COVERAGE = Output(
    Path("refined/splatter/coverage.jpg"),
    "refined_splat_coverage_image",
    "splat_coverage_image",
    "coverage picture",
)


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
class BestEffort:
    """A best-effort output: its artifact, or None; and a note saying it was uploaded or why not."""

    artifact: Artifact | None
    note: str

    def artifact_dict(self) -> dict[str, Any] | None:
        return None if self.artifact is None else self.artifact.as_dict()


@dataclass(frozen=True)
class Published:
    sog: BestEffort
    splat: Artifact
    preview_video: BestEffort
    poster: BestEffort
    coverage: BestEffort

    @property
    def best_effort(self) -> tuple[BestEffort, ...]:
        return (self.sog, self.preview_video, self.poster, self.coverage)

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        """In upload order: the SOG (the viewer's first choice), the splat, the preview video, the poster,
        the coverage picture."""
        uploaded = (
            self.sog.artifact,
            self.splat,
            self.preview_video.artifact,
            self.poster.artifact,
            self.coverage.artifact,
        )
        return tuple(artifact for artifact in uploaded if artifact is not None)


def artifact_name(base: str, suffix: str) -> str:
    """base + suffix, joined by an underscore unless the suffix brings its own (or is empty)."""
    if not suffix or suffix.startswith("_"):
        return f"{base}{suffix}"
    return f"{base}_{suffix}"


def publish_outputs(
    domain: DomainClient, job_root: Path, suffix: str, on_uploaded: Callable[[Artifact], None]
) -> Published:
    """Upload the SOG, the splat, the preview video, the poster, then the coverage picture; only a
    splat failure raises (a missing splat before anything is uploaded)."""
    uploaded: dict[str, str] = {}

    def upload(output: Output) -> Artifact:
        name = artifact_name(output.base_name, suffix)
        meta = domain.upsert(job_root / output.path, name, output.data_type, uploaded.get(name))
        uploaded[name] = meta.id
        artifact = Artifact(output.path.as_posix(), name, output.data_type, meta.id)
        log.info("uploaded %s as %s (%s, id %s)", output.path, name, output.data_type, meta.id)
        on_uploaded(artifact)
        return artifact

    def upload_best_effort(output: Output) -> BestEffort:
        if not (job_root / output.path).is_file():
            return BestEffort(
                None, f"run.py produced no {output.path}; completing without the {output.label}"
            )
        try:
            return BestEffort(upload(output), f"{output.label} uploaded")
        except Cancelled:
            raise
        except Exception as exc:
            log.warning("%s upload failed; completing without it", output.label, exc_info=True)
            return BestEffort(
                None, f"{output.label} upload failed ({describe_error(exc)}); completing without it"
            )

    if not (job_root / SPLAT.path).is_file():
        raise MissingOutput(f"run.py produced no {SPLAT.path}")
    sog = upload_best_effort(SOG)
    splat = upload(SPLAT)
    return Published(
        sog,
        splat,
        preview_video=upload_best_effort(PREVIEW_VIDEO),
        poster=upload_best_effort(POSTER),
        coverage=upload_best_effort(COVERAGE),
    )
