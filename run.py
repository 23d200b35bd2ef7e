#!/usr/bin/env python3
"""Train a gaussian splat for one splatter job and write its files under the job root.

Steps: extract frames, COLMAP → nerfstudio data, train splatfacto, then the orbit preview
(best-effort) beside export splat.ply → rotate to y-up → convert to .splat. Finished steps are skipped
on a re-run (``--force`` redoes all). Each step's start is announced on stdout as one line,
``[PROGRESS] stage=<name> pct=<0..100>``, and a final ``[PROGRESS] stage=done pct=100`` once every
step has ended. Log lines go to stdout, errors to stderr; a failed job ends with one error line and
exit status 1.

Environment: ``SPLATTER_PREVIEW_CMD`` replaces the preview renderer's command prefix (shell syntax);
``--config``, ``--output`` and ``--standby`` options are appended to it, and the renderer is sent
one line on stdin when training has finished (see ``pipeline/preview.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.job import JobOptions, run_job
from pipeline.preview import DEFAULT_RENDERER

log = logging.getLogger("pipeline")

PREVIEW_COMMAND_ENV = "SPLATTER_PREVIEW_CMD"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain_id", default="00000000-0000-0000-0000-000000000000")
    parser.add_argument("--job_id", default="00000000-0000-0000-0000-000000000000")
    parser.add_argument(
        "--job_root_path", type=Path, required=True, help="folder with datasets/ and refined/global/"
    )
    parser.add_argument(
        "--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper
    )
    parser.add_argument("--force", action="store_true", help="redo every step, even finished ones")
    parser.add_argument(
        "--train-iterations",
        type=_positive_int,
        help="splatfacto's iteration budget (default: its own 30000)",
    )
    parser.add_argument(
        "--preview-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="limit for the preview render, from the end of training",
    )
    return parser.parse_args(argv)


def job_options(args: argparse.Namespace, environ: dict[str, str]) -> JobOptions:
    renderer = environ.get(PREVIEW_COMMAND_ENV)
    return JobOptions(
        root=args.job_root_path.resolve(),
        force=args.force,
        train_iterations=args.train_iterations,
        preview_timeout_s=args.preview_timeout,
        preview_renderer=tuple(shlex.split(renderer)) if renderer else DEFAULT_RENDERER,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    options = job_options(args, dict(os.environ))
    log.info("job %s of domain %s in %s", args.job_id, args.domain_id, options.root)
    try:
        run_job(options, emit=print_line)
    except PipelineError as exc:
        log.error("%s", exc)
        return 1
    log.info("job finished: %s", options.root)
    return 0


def print_line(line: str) -> None:
    """Print a line in one write: print() writes the text and its newline apart, and another thread's
    log line (the renderer's output, while it runs beside export) could land between them."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def configure_logging(level: str) -> None:
    """Log lines to stdout, errors to stderr, one line each."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    to_stdout = logging.StreamHandler(sys.stdout)
    to_stdout.addFilter(lambda record: record.levelno < logging.ERROR)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.ERROR)
    for handler in (to_stdout, to_stderr):
        handler.setFormatter(formatter)
    log.handlers[:] = [to_stdout, to_stderr]
    log.setLevel(level)
    log.propagate = False


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """Turn the runner's SIGTERM into an exit that unwinds, so running commands are killed too."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
