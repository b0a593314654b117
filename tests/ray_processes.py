"""Which of Ray's worker processes load torch while a block of a test runs: the processes named `ray::<prefix>...`
(Ray sets a worker's title to its actor's class) are looked at every `interval_s`, and for each the last look
says whether torch's library was mapped in it."""
from __future__ import annotations

import threading

import psutil


class TorchInProcesses:
    def __init__(self, prefix: str, interval_s: float = 0.5):
        self.prefix, self.interval_s = f"ray::{prefix}", interval_s
        self.loaded: dict[int, bool] = {}  # pid -> torch mapped at the last look
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "TorchInProcesses":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            for process in psutil.process_iter(["cmdline"]):
                command = process.info["cmdline"] or [""]
                if not command[0].startswith(self.prefix):
                    continue
                try:
                    self.loaded[process.pid] = any("libtorch" in mapped.path
                                                   for mapped in process.memory_maps(grouped=True))
                except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
                    pass  # it ended between the listing and the look
