"""A job's progress on its console, printed by the driver: rows done of a batch job, one line per epoch.

Ray's workers do not print to the console (`runtime.ray_console`), so what they have to say goes through a
small actor, `ProgressBoard`: model actors add the rows they have done, the Train controller posts the epoch
lines. A thread on the driver reads it twice a second. Without a terminal (Ray Jobs, KubeRay, CI logs) a
batch job prints a plain line every `LINE_EVERY_S` seconds or `LINE_EVERY_FRACTION` of the rows, whichever
comes first; on a terminal it redraws one progress bar.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, TextIO

LINE_EVERY_S = 10.0
LINE_EVERY_FRACTION = 0.10
POLL_S = 0.5
BAR_WIDTH = 30


def _board_class():
    import ray

    @ray.remote(num_cpus=0, max_restarts=0)
    class ProgressBoard:
        """Rows done and lines to print, filled by workers and drained by the driver."""

        def __init__(self):
            self.rows = 0
            self.lines: list[str] = []

        def add_rows(self, rows: int) -> None:
            self.rows += rows

        def post(self, line: str) -> None:
            self.lines.append(line)

        def take(self) -> tuple[int, list[str]]:
            lines, self.lines = self.lines, []
            return self.rows, lines

    return ProgressBoard


def duration(seconds: float) -> str:
    """`75` → `1m15s`; for ETAs and elapsed times."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class RowRate:
    """Rows done of a known total since `started`: the figures of one progress line."""

    total: int
    started: float

    def line(self, done: int, now: float, what: str = "rows") -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        share = done / self.total if self.total else 1.0
        eta = f"ETA {duration((self.total - done) / rate)}" if 0 < done < self.total else f"in {duration(elapsed)}"
        return f"{done:,} / {self.total:,} {what} ({100 * share:.0f} %)  {rate:,.0f} {what}/s  {eta}"

    def bar(self, done: int, now: float, what: str = "rows") -> str:
        filled = int(BAR_WIDTH * min(1.0, done / self.total)) if self.total else BAR_WIDTH
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.line(done, now, what)}"


class LineSchedule:
    """When a plain progress line is due: `every_s` seconds or `every_fraction` of the total after the last."""

    def __init__(self, total: int, started: float, every_s: float = LINE_EVERY_S,
                 every_fraction: float = LINE_EVERY_FRACTION):
        self.total, self.every_s, self.every_fraction = total, every_s, every_fraction
        self.last_time, self.last_rows = started, 0

    def due(self, done: int, now: float) -> bool:
        if done <= self.last_rows:
            return False
        if now - self.last_time >= self.every_s or done - self.last_rows >= self.every_fraction * self.total \
                or done >= self.total:
            self.last_time, self.last_rows = now, done
            return True
        return False


_current_board = None


def current_board():
    """The board of the batch job whose rows are being counted now (`row_progress`), or None."""
    return _current_board


@contextmanager
def progress_board(say: Callable[[str], None], on_rows: Optional[Callable[[int, float], None]] = None
                   ) -> Iterator[object]:
    """A `ProgressBoard` actor for the block; its posted lines go to `say` and its row count to
    `on_rows(rows, now)`, from a driver thread. Needs a Ray session; the actor is killed after."""
    import ray

    board = _board_class().remote()
    stop = threading.Event()

    def drain() -> None:
        rows, lines = ray.get(board.take.remote())
        for line in lines:
            say(line)
        if on_rows is not None:
            on_rows(rows, time.monotonic())

    def loop() -> None:
        while not stop.wait(POLL_S):
            try:
                drain()
            except Exception:  # noqa: BLE001 -- Ray shutting down under us: the job reports its own outcome
                return

    thread = threading.Thread(target=loop, name="vaepipe-progress", daemon=True)
    thread.start()
    try:
        yield board
    finally:
        stop.set()
        thread.join()
        try:
            drain()
        except Exception:  # noqa: BLE001
            pass
        ray.kill(board)


class RowReport:
    """Rows done of `total`, reported as a job reports them: plain lines (`LineSchedule`) without a terminal,
    one redrawn bar on one."""

    def __init__(self, total: int, say: Callable[[str], None], what: str = "rows", stream: Optional[TextIO] = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        started = time.monotonic()
        self.rate, self.schedule = RowRate(total, started), LineSchedule(total, started)
        self.say, self.what, self.done = say, what, 0

    def show(self, done: int, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        if self.tty:
            self.stream.write("\r  " + self.rate.bar(done, now, self.what))
            self.stream.flush()
        elif self.schedule.due(done, now):
            self.say(self.rate.line(done, now, self.what))

    def add(self, rows: int) -> None:
        self.done += rows
        self.show(self.done)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


@contextmanager
def row_progress(total: int, say: Callable[[str], None], what: str = "rows",
                 stream: Optional[TextIO] = None) -> Iterator[None]:
    """Count the rows a batch job's model actors finish (`count_rows` on `current_board()`) and report them
    (`RowReport`)."""
    global _current_board
    report = RowReport(total, say, what, stream)
    with progress_board(say, report.show) as board:
        _current_board = board
        try:
            yield
        finally:
            _current_board = None
    report.close()


def counting(actor_class: type, board) -> type:
    """`actor_class` (a `map_batches` callable class) that also adds the rows of every batch it returns to
    `board`, without waiting for the board."""

    class Counted(actor_class):
        def __call__(self, batch):
            out = super().__call__(batch)
            column = next(iter(out.values()), None)
            if column is not None:
                board.add_rows.remote(len(column))
            return out

    # Ray Data names the operator (and its log lines) after the class
    Counted.__name__ = Counted.__qualname__ = actor_class.__name__
    return Counted


def counted_batches(batches: Iterable[dict], total: int, say: Callable[[str], None], what: str = "rows",
                    stream: Optional[TextIO] = None) -> Iterator[dict]:
    """`batches` (a job's output computed in this process, engine local) passed through, their rows reported as
    `row_progress` reports a Ray job's."""
    report = RowReport(total, say, what, stream)
    for batch in batches:
        yield batch
        column = next(iter(batch.values()), None)
        report.add(len(column) if column is not None else 0)
    report.close()
