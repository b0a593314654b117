"""How commands talk to a person: everything goes through the stdlib logger `vaepipe`, to stdout.

- `progress(...)`: what a job is doing (INFO, indented); hidden by `vaepipe --quiet`.
- `result(...)`: what a command found or made (INFO, marked as a result); shown by `--quiet` too.
- warnings (`warnings.warn`, e.g. a report that could not be written) become WARNING records.
`--log-format json` writes each record as one JSON object per line (time, level, kind, message), for log
collectors; `--verbose` also shows Ray's own output (`runtime.ray_console`) and DEBUG records.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Literal

LOGGER = logging.getLogger("vaepipe")


class _Stdout(logging.StreamHandler):
    """A handler that writes to whatever `sys.stdout` is at the time (pytest's capture replaces it)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message if getattr(record, "result", False) else f"  {message}"


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        kind = "result" if getattr(record, "result", False) else "progress" if record.levelno < logging.WARNING \
            else record.levelname.lower()
        return json.dumps({"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                           "level": record.levelname, "kind": kind, "logger": record.name,
                           "message": record.getMessage()}, ensure_ascii=False)


class _QuietFilter(logging.Filter):
    """--quiet: results and warnings, no progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or getattr(record, "result", False)


def configure(verbosity: Literal["quiet", "normal", "verbose"] = "normal", log_format: str = "text") -> None:
    """Set up the `vaepipe` logger for one command (replacing an earlier set-up), and route `warnings` to it."""
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
    handler = _Stdout()
    handler.setFormatter(_Json() if log_format == "json" else _Text())
    if verbosity == "quiet":
        handler.addFilter(_QuietFilter())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG if verbosity == "verbose" else logging.INFO)
    LOGGER.propagate = False
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    for old in list(warnings_logger.handlers):
        warnings_logger.removeHandler(old)
    warnings_logger.addHandler(handler)
    warnings_logger.propagate = False


def _ready() -> None:
    # a job called from Python (a test, a notebook) without `vaepipe`'s set-up still prints its lines
    if not LOGGER.handlers:
        configure()


def progress(message: str) -> None:
    _ready()
    LOGGER.info(message)


def result(message: str) -> None:
    _ready()
    LOGGER.info(message, extra={"result": True})
