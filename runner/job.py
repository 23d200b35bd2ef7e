"""One splatter task from lease to outcome: workspace, inputs, run.py, uploads, progress."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .cancel import Cancelled, CancelSignal
from .config import Config
from .dms import Lease
from .domain import (
    DataRef,
    DomainClient,
    ForeignServer,
    UnsafeFormValue,
    UnusablePartSize,
    UnusableReply,
    UploadTooLarge,
    parse_data_cid,
)
from .inputs import InputError, fetch_inputs
from .lease import LeaseKeeper
from .outputs import Artifact, MissingOutput, Published, publish_outputs
from .process import pipeline_command, pipeline_environment, run_process
from .progress import event, failure_event, parse_progress_line, progress, task_percent
from .quality import QualityFigures, read_quality
from .redaction import Redactor
from .retry import RetriesExhausted, describe_error
from .transfer import TransferAborted
from .workspace import WorkspaceError, create_workspace, remove_workspace

log = logging.getLogger(__name__)


class PipelineFailed(RuntimeError):
    """run.py exited unsuccessfully."""


EXPECTED_FAILURES = (
    WorkspaceError,
    InputError,
    ForeignServer,
    TransferAborted,
    PipelineFailed,
    MissingOutput,
    UnsafeFormValue,
    UploadTooLarge,
    UnusablePartSize,
    UnusableReply,
    RetriesExhausted,
    httpx.HTTPError,
)


@dataclass(frozen=True)
class JobSpec:
    """What the lease asks for, resolved: who, where the manifest lives, where the work happens."""

    task_id: str
    job_id: str
    capability: str
    manifest: DataRef
    domain_server_url: str
    """The lease's domain server: the only one its token is sent to."""
    tasks_root: Path

    @classmethod
    def from_lease(cls, lease: Lease, tasks_root: Path) -> JobSpec:
        """The lease must have passed lease_refusal (it has an input)."""
        return cls(
            task_id=lease.task.id,
            job_id=lease.task.job_id,
            capability=lease.task.capability,
            manifest=parse_data_cid(lease.task.inputs_cids[0], lease.domain_server_url, lease.domain_id),
            domain_server_url=lease.domain_server_url,
            tasks_root=tasks_root,
        )

    @property
    def job_info(self) -> dict[str, str]:
        return {
            "task_id": self.task_id,
            "job_id": self.job_id,
            "domain_id": self.manifest.domain_id,
            "capability": self.capability,
        }


@dataclass(frozen=True)
class JobSucceeded:
    job: dict[str, str]
    artifacts: tuple[Artifact, ...]
    quality: dict[str, Any] | None = None  # quality.json's figures, when run.py wrote a usable one


@dataclass(frozen=True)
class JobFailed:
    reason: str
    job: dict[str, str]
    artifacts: tuple[Artifact, ...]


JobOutcome = JobSucceeded | JobFailed


class SplatJob:
    """Runs the stages in order, reporting progress through the lease keeper.

    Raises Cancelled when the task was stopped; every other end is a JobOutcome.
    """

    def __init__(
        self,
        spec: JobSpec,
        config: Config,
        http: httpx.Client,
        keeper: LeaseKeeper,
        cancel: CancelSignal,
        redactor: Redactor,
    ):
        self._spec = spec
        self._config = config
        self._keeper = keeper
        self._cancel = cancel
        self._redactor = redactor
        self._domain = DomainClient(
            http,
            spec.domain_server_url,
            spec.manifest.base_url,
            spec.manifest.domain_id,
            token=keeper.domain_token,
            client_id=config.client_id,
            backoff=config.retry,
            cancel=cancel,
            limits=config.transfer,
        )
        self._stage = "workspace"
        self._artifacts: list[Artifact] = []
        self._output_tail: tuple[str, ...] = ()

    def run(self) -> JobOutcome:
        job_root: Path | None = None  # set once this job made it: nothing else is ever removed
        try:
            job_root = create_workspace(self._spec.tasks_root, self._spec.task_id)
            return self._run_stages(job_root)
        except Cancelled:
            raise
        except EXPECTED_FAILURES as exc:
            return self._failed(_explain(exc))
        except Exception as exc:
            log.exception("task %s failed unexpectedly in stage %s", self._spec.task_id, self._stage)
            return self._failed(f"internal error: {exc!r}")
        finally:
            if job_root is not None:
                self._clean_up(job_root)

    def _clean_up(self, job_root: Path) -> None:
        if self._config.disable_tasks_cleanup:
            log.info("leaving workspace %s in place (DISABLE_TASKS_CLEANUP)", job_root)
        else:
            remove_workspace(job_root)

    def _run_stages(self, job_root: Path) -> JobSucceeded:
        self._report(progress(5, "workspace", "prepared", job_root=str(job_root)))

        self._stage = "inputs"
        inputs = fetch_inputs(self._domain, self._spec.manifest.data_id, job_root)
        self._report(
            progress(
                20, "inputs", "materialized", datasets=len(inputs.scans), colmap=bool(inputs.colmap_names)
            ),
            event(
                "info",
                "inputs",
                "inputs materialized",
                scans=list(inputs.scans),
                colmap=list(inputs.colmap_names),
            ),
        )

        self._stage = "python"
        self._run_pipeline(job_root)

        self._stage = "upload"
        self._report(progress(85, "upload", "starting"))
        published = publish_outputs(self._domain, job_root, inputs.suffix, self._on_uploaded)
        quality = read_quality(job_root)
        self._report(
            progress(
                95,
                "upload",
                "completed",
                sog_note=published.sog.note,
                preview=published.preview_video.note,
                poster=published.poster.note,
                coverage_picture=published.coverage.note,
            ),
            *(
                event("info" if output.artifact else "warning", "upload", output.note)
                for output in published.best_effort
            ),
            *([] if quality.figures is not None else [event("warning", "upload", quality.note)]),
        )
        self._report(self._final_progress(published, quality))
        return JobSucceeded(job=self._spec.job_info, artifacts=published.artifacts, quality=quality.figures)

    def _run_pipeline(self, job_root: Path) -> None:
        script = self._config.run_script
        self._report(progress(35, "python", "starting", script=str(script), job_root_path=str(job_root)))
        started = time.monotonic()
        result = run_process(
            pipeline_command(script, self._spec.manifest.domain_id, self._spec.job_id, job_root),
            cwd=script.parent,
            env=pipeline_environment(os.environ, self._config.node_variables, self._redactor),
            cancel=self._cancel,
            on_line=self._on_pipeline_line,
            kill_grace_secs=self._config.kill_grace_secs,
            redactor=self._redactor,
        )
        self._output_tail = result.output_tail
        if result.returncode != 0:
            how = (
                f"was killed by signal {-result.returncode}"
                if result.returncode < 0
                else f"exited with code {result.returncode}"
            )
            last = next((line for line in reversed(result.output_tail) if line.strip()), "")
            raise PipelineFailed(f"run.py {how}" + (f": {last}" if last else ""))
        self._report(progress(80, "python", "completed", duration_secs=round(time.monotonic() - started, 1)))

    def _on_pipeline_line(self, line: str) -> None:
        update = parse_progress_line(line)
        if update is not None:
            self._report(
                progress(
                    task_percent(update.percent),
                    "python",
                    "running",
                    step=update.step,
                    step_pct=round(update.percent),  # whole percents: at most ~100 heartbeats a step
                )
            )

    def _on_uploaded(self, artifact: Artifact) -> None:
        self._artifacts.append(artifact)
        self._report(
            progress(90, "upload", "uploading", uploaded=[a.name for a in self._artifacts]),
            event("info", "upload", f"uploaded {artifact.name}", artifact=artifact.as_dict()),
        )

    def _final_progress(self, published: Published, quality: QualityFigures) -> dict[str, Any]:
        return progress(
            100,
            "complete",
            "succeeded",
            artifacts=[a.as_dict() for a in published.artifacts],
            sog=published.sog.artifact_dict(),
            preview_video=published.preview_video.artifact_dict(),
            preview_image=published.poster.artifact_dict(),
            coverage_image=published.coverage.artifact_dict(),
            preview=published.preview_video.note,
            poster=published.poster.note,
            sog_note=published.sog.note,
            coverage_picture=published.coverage.note,
            quality=quality.figures,
            quality_note=quality.note,
        )

    def _report(self, new_progress: dict[str, Any], *events: dict[str, Any]) -> None:
        self._cancel.check()
        self._keeper.report(new_progress, events)
        self._cancel.check()

    def _failed(self, why: str) -> JobFailed:
        reason = f"runner failed: {self._stage}: {why}"
        log.error("task %s: %s", self._spec.task_id, reason)
        if self._cancel.reason is None:
            self._keeper.report(events=[failure_event(self._stage, reason, list(self._output_tail))])
        return JobFailed(reason=reason, job=self._spec.job_info, artifacts=tuple(self._artifacts))


def _explain(error: Exception) -> str:
    return describe_error(error) if isinstance(error, httpx.HTTPError) else str(error)
