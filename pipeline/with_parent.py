"""Runs a program that dies with the process that started it.

Usage: ``python -I with_parent.py PARENT_PID PROGRAM [ARG ...]``.

The pipeline starts each external program in a process group of its own, so that a timeout can kill
it whole; that also puts it beyond the reach of whoever kills the pipeline's own group. A pipeline
that is SIGTERMed kills its programs itself, but one that is SIGKILLed (the runner's last resort,
the kernel's out-of-memory killer) cannot, and an orphaned training would hold the GPU for hours.
Linux kills such a program for us once asked with ``PR_SET_PDEATHSIG``, a request that outlives
``exec`` but that only the process itself can make. The standard library has no call for it (and
``Popen``'s ``preexec_fn`` is unsafe in a process with threads, as the pipeline is), hence this
launcher: it asks, makes sure its parent did not go before it asked, and becomes the program.
It imports nothing beyond the standard library, so it runs with ``python -I``.

The parent is the thread that starts the launcher (the kernel's rule): start it from the thread that
waits for the program, or from an older one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
EXIT_CANNOT_START = 127  # the shell's status for a command that could not be run


def tied_to_this_process(argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` through this launcher on Linux; elsewhere ``argv`` itself
    (there a program of a SIGKILLed parent runs on)."""
    if sys.platform != "linux":
        return list(argv)
    return [sys.executable, "-I", __file__, str(os.getpid()), *argv]


def main(argv: list[str]) -> int:
    parent, program = int(argv[0]), argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        print(f"cannot tie {program[0]} to its parent: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return EXIT_CANNOT_START
    if os.getppid() != parent:  # the parent went before the request was made: nobody waits for us
        return EXIT_CANNOT_START
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        print(f"cannot start {program[0]}: {exc.strerror or exc}", file=sys.stderr)
    return EXIT_CANNOT_START


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
