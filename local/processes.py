"""Child processes that end with the process that started them, whatever ended it.

`make run` and `python -m local.sandbox` start Azurite (a node process). If their Python
process is killed with SIGKILL it runs no cleanup, and the child used to live on, holding its
ports and, on disk, its data. So every child is started with `spawn`:

- on Linux, the kernel sends the child SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`,
  set between fork and exec, kept across exec). SIGKILL rather than SIGTERM: an orphaned Azurite
  was seen to ignore SIGTERM and SIGINT, and nobody is left to escalate. The signal is tied to
  the *thread* that forked the child: start children from a thread that lives as long as they
  should (the main thread, in this package);
- in a process group of its own, so `stop` ends the child and anything it started, on a
  normal exit or Ctrl-C, and a Ctrl-C in the terminal reaches the parent only, which then
  stops its children in order.

Elsewhere than Linux only the process group applies: a parent killed with SIGKILL leaves its
children behind there.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_SECONDS = 10.0


def _die_with(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` that asks Linux to SIGKILL the child when `parent` dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def preexec() -> None:
        # Runs in the child between fork and exec: no allocation-heavy work, no logging.
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)  # fail the exec rather than run a child that may outlive us
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a process group of its own, killed by the kernel if this process dies."""
    return subprocess.Popen(  # noqa: S603 - callers pass fixed argument lists
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=stdout,
        stderr=stderr,
        process_group=0,
        preexec_fn=_die_with(os.getpid()),  # only prctl and kill run in the child
    )


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # process_group=0: the group id is the child's pid


def stop(process: subprocess.Popen[bytes], *, timeout: float = STOP_SECONDS) -> None:
    """SIGTERM the child's process group, SIGKILL it after `timeout`, and reap the child."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored SIGTERM for %.0f s: SIGKILL", process.pid, timeout)
    _signal_group(process, signal.SIGKILL)  # whatever the child left in its group
    process.wait(timeout=timeout)
