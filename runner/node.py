"""The node loop: register, lease one task at a time, run it, report the outcome, stop gracefully."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import httpx

from . import CAPABILITY, __version__
from .auth import AuthError, DdsClient, Registrar, TokenKeeper
from .cancel import Cancelled, CancelReason, CancelSignal
from .config import Config
from .dms import DmsClient, Lease, lease_refusal
from .health import HealthServer
from .job import JobFailed, JobOutcome, JobSpec, JobSucceeded, SplatJob
from .lease import LeaseKeeper
from .redaction import Redactor
from .retry import RetriesExhausted
from .workspace import sweep_stale_workspaces

log = logging.getLogger(__name__)

THREAD_JOIN_SECS = 5.0


class Node:
    """A compute node. run() blocks; request_stop() (signal handlers) ends it: the first call stops
    claiming tasks and lets the running one finish, the second cancels the running task."""

    def __init__(self, config: Config):
        self._config = config
        self._http = httpx.Client(timeout=config.http_timeout_secs)
        dds = DdsClient(self._http, config.dds_base_url, config.node_key)
        self._redactor = Redactor(config.secrets)
        self._dms = DmsClient(
            self._http, config.dms_base_url, TokenKeeper(dds, config.retry), config.retry, self._redactor
        )
        self._registrar = Registrar(
            dds,
            config.registration_secret,
            [CAPABILITY],
            __version__,
            config.register_interval_secs,
            config.retry,
        )
        self._health = HealthServer(config.health_port)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._running_task: CancelSignal | None = None

    @property
    def health_port(self) -> int:
        return self._health.port

    def request_stop(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                log.info("stopping: no new tasks will be claimed (signal again to cancel the running task)")
                self._stopping.set()
            elif self._running_task is not None:
                log.warning("cancelling the running task")
                self._running_task.cancel(CancelReason.SHUTDOWN)

    def run(self) -> None:
        log.info("splatter-node %s starting as %s", __version__, self._config.node_key.address)
        self._health.start()
        if not self._config.disable_tasks_cleanup:
            sweep_stale_workspaces(self._config.tasks_root)
        self._registrar.start()
        try:
            self._serve()
        finally:
            self._registrar.stop(THREAD_JOIN_SECS)
            self._health.stop()
            self._http.close()
            log.info("stopped")

    def _serve(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                lease = self._dms.lease(CAPABILITY)
            except Exception as exc:
                failures += 1
                expected = isinstance(exc, (httpx.HTTPError, AuthError, RetriesExhausted))
                log.warning("leasing failed (%s); backing off", exc, exc_info=not expected)
                self._stopping.wait(self._config.retry.delay(failures))
                continue
            failures = 0
            if lease is None:
                self._stopping.wait(random.uniform(1, 2) * self._config.idle_poll_secs)
                continue
            self._handle(lease)

    def _handle(self, lease: Lease) -> None:
        task_id = lease.task.id
        refusal = lease_refusal(lease, CAPABILITY, time.time())
        if refusal is not None:
            log.warning("refusing task %s: %s", task_id, refusal.reason)
            if refusal.tell_dms:
                self._tell_dms(
                    task_id, lambda: self._dms.fail(task_id, f"runner failed: {refusal.reason}", None)
                )
            return
        log.info("leased task %s (job %s)", task_id, lease.task.job_id)
        cancel = CancelSignal()
        with self._lock:
            self._running_task = cancel
        keeper = LeaseKeeper(self._dms, lease, cancel)
        outcome: JobOutcome | None = None
        try:
            keeper.start()
            spec = JobSpec.from_lease(lease, self._config.tasks_root)
            outcome = SplatJob(spec, self._config, self._http, keeper, cancel, self._redactor).run()
        except Cancelled:
            pass
        finally:
            keeper.stop()
            with self._lock:
                self._running_task = None
        self._settle(task_id, outcome, cancel.reason)

    def _settle(self, task_id: str, outcome: JobOutcome | None, cancelled: CancelReason | None) -> None:
        """Tell DMS how the task ended — unless DMS stopped it or the lease is gone."""
        if cancelled in (CancelReason.STOPPED_BY_DMS, CancelReason.LEASE_LOST):
            log.warning("task %s stopped (%s); reporting nothing", task_id, cancelled.value)
        elif cancelled is CancelReason.SHUTDOWN:
            self._tell_dms(
                task_id, lambda: self._dms.fail(task_id, f"runner failed: {cancelled.value}", None)
            )
        elif isinstance(outcome, JobSucceeded):
            meta = {
                "job": outcome.job,
                "artifacts": [a.as_dict() for a in outcome.artifacts],
                "quality": outcome.quality,
            }
            self._tell_dms(
                task_id, lambda: self._dms.complete(task_id, [a.id for a in outcome.artifacts], meta)
            )
            log.info("task %s completed", task_id)
        elif isinstance(outcome, JobFailed):
            details = {"job": outcome.job, "artifacts": [a.as_dict() for a in outcome.artifacts]}
            self._tell_dms(task_id, lambda: self._dms.fail(task_id, outcome.reason, details))

    @staticmethod
    def _tell_dms(task_id: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            log.exception("reporting task %s to DMS failed", task_id)
