"""What Ray itself prints on a job's console: nothing by default, everything with `vaepipe --verbose`.

A job's own lines (epochs, rows done, where outputs are) reach the console from the driver
(`runtime.job_progress`), so by default Ray forwards nothing from its workers (`log_to_driver`): that
hides at once the Train workers' `Reporting training result ...` lines, core-worker warnings, the raylet's
worker-pool notes and Ray Data's per-task chatter. On the driver, Ray's loggers stay at WARNING and the
warnings known to be harmless are dropped (`HARMLESS`). `--verbose` leaves Ray as it is.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.runtime import ray_private

# Said by Ray on every job, harmless, and read as failures by people new to Ray (issue 23).
HARMLESS = (
    r"Progress bars (for operators )?disabled",                         # Ray Data: we print our own progress
    r"`?ExecutionOptions\.exclude_resources`? is deprecated",            # Ray Train's own use of Ray Data
    r"The minimum number of concurrent actors for .* is set to",         # a small job on a fixed actor pool
    r"has constructor arguments in the object store and max_restarts",  # Ray Data's actor pools (ray#53727)
    r"Failed to kill actor .* Socket closed",                           # shutdown of finished actors
    r"PYTHON worker processes have been started on node",               # a burst of actors on a small node
    r"Started a local Ray instance",
    # Ray 2.52+ turning on its own secure default for a Ray the job starts; the opposite warning, that a
    # cluster runs without authentication, is not in this list and is always shown
    r"Token authentication is enabled for this Ray cluster",
)
_HARMLESS = re.compile("|".join(HARMLESS))
# Ray's C++ core says it at INFO on the driver's stderr when it reads RAY_BACKEND_LOG_LEVEL, before it
# applies that level: the one line a quiet job cannot silence through Ray's settings
LEVEL_NOTICE = re.compile(r"logging\.cc:\d+\W+Set ray log level from environment variable")
RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune")

_verbose = False


def set_verbose(verbose: bool) -> None:
    """`vaepipe --verbose`: Ray's own output is shown; otherwise it is quieted (call before a job starts Ray)."""
    global _verbose
    _verbose = verbose


def is_verbose() -> bool:
    return _verbose


class HarmlessRayRecords(logging.Filter):
    """Drops Ray's log records that match `HARMLESS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _HARMLESS.search(record.getMessage())


def environment() -> dict[str, str]:
    """Settings a quiet job gives the Ray it starts (`ray_session.configure_ray_environment`; a value already in
    the environment wins). Ray's C++ core prints its ERROR lines on the driver's stderr whatever Python's logging
    says — `has constructor arguments in the object store` for every Ray Data actor pool (ray#53727) is one —
    so its level is FATAL; Ray Data's own loggers WARNING, also in workers that a `--verbose` run shows."""
    if _verbose:
        return {}
    return {"RAY_BACKEND_LOG_LEVEL": "fatal", "RAY_DATA_LOG_LEVEL": "WARNING"}


def init_options() -> dict:
    """`ray.init` arguments for this verbosity: workers' output forwarded and Ray's driver logs at INFO only
    when verbose."""
    return {"log_to_driver": _verbose, "logging_level": logging.INFO if _verbose else logging.WARNING}


@contextmanager
def connecting() -> Iterator[None]:
    """Around `ray.init` on the driver: the process's stderr (file descriptor 2, where Ray's C++ core writes)
    passes through a pipe that drops `LEVEL_NOTICE` and forwards every other line as it comes. Ray's own
    processes started meanwhile write to their log files, not to the inherited descriptor. Ray's Python
    loggers are quieted first (`quiet_driver`), since `ray.init` itself logs (the token-auth notice). A no-op
    when verbose."""
    if _verbose:
        yield
        return
    quiet_driver()
    sys.stderr.flush()
    console = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward_lines, args=(read_end, console), name="vaepipe-stderr",
                                 daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(console, 2)  # closes this process's last write end of the pipe: the forwarder sees its end
        forwarder.join(timeout=2)


def _forward_lines(read_end: int, console: int) -> None:
    with os.fdopen(read_end, "rb") as lines, os.fdopen(console, "wb", buffering=0) as out:
        for line in lines:
            if not LEVEL_NOTICE.search(line.decode(errors="replace")):
                out.write(line)


def quiet_driver() -> None:
    """After Ray (and Ray Data, which sets up its own handlers when imported) is imported on the driver:
    Ray's loggers at WARNING, harmless records and warnings dropped, an `InterruptedError` that ends one of
    Ray Data's worker threads at shutdown not printed as a traceback. A no-op when verbose."""
    if _verbose:
        return
    harmless = HarmlessRayRecords()
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
        for handler in logger.handlers:
            if not any(isinstance(f, HarmlessRayRecords) for f in handler.filters):
                handler.addFilter(harmless)
    for pattern in HARMLESS:
        warnings.filterwarnings("ignore", message=f".*{pattern}")
    ray_private.drop_cluster_messages(lambda line: _HARMLESS.search(line) is not None)
    _drop_interrupted_thread_errors()


def _drop_interrupted_thread_errors() -> None:
    previous = threading.excepthook
    if getattr(previous, "drops_interrupted", False):
        return

    def hook(args) -> None:
        if args.exc_type is InterruptedError:
            return  # Ray Data interrupts its listing and mapping threads when a dataset's execution ends
        previous(args)

    hook.drops_interrupted = True
    threading.excepthook = hook
