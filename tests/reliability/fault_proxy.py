"""A fault-injecting TCP proxy on 127.0.0.1 in front of an HTTP (S3) server, for tests.

No toxiproxy, `tc netem` or iptables here (docs/design.md, "Storage facts"), so faults are made
by a small asyncio proxy in a background thread. It reads each HTTP request
head on the client side, so a fault hits one *request*, not a whole keep-alive
connection, and forwards responses untouched (clients do not pipeline, so the
next request head arrives only after the previous response).

Faults, chosen per request:

- ``delay_s``: every request waits this long before it is forwarded;
- ``reset_rate``: this fraction of requests get the connection reset (RST);
- ``slowdown_rate``: this fraction get ``503 SlowDown`` (S3's throttling reply);
- ``outage_after``: after this many requests every request is reset (a full outage);
- ``outage_from``: the first request whose request line contains these bytes, and every request after
  it, is reset (an outage that starts at a known step of a job, e.g. its first part upload).

Rates are applied evenly and deterministically (request n is hit when
``floor((n+1)·rate) > floor(n·rate)``), so with a rate ≤ 1/2 no two requests in
a row are hit and a test does not depend on luck. The proxy stops by itself
after ``lifetime_s`` so a hung test never leaves it running.
"""
from __future__ import annotations

import asyncio
import math
import socket
import struct
import threading
from dataclasses import dataclass, field

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b"<Message>Please reduce your request rate.</Message></Error>")
SLOWDOWN_RESPONSE = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(SLOWDOWN_BODY)) + SLOWDOWN_BODY


@dataclass
class FaultCounts:
    requests: int = 0
    resets: int = 0
    slowdowns: int = 0
    outage_resets: int = 0

    @property
    def injected(self) -> int:
        return self.resets + self.slowdowns + self.outage_resets


@dataclass
class FaultProxy:
    """``with FaultProxy(port, reset_rate=0.2) as proxy:`` then point clients at ``proxy.endpoint``."""

    upstream_port: int
    upstream_host: str = "127.0.0.1"
    delay_s: float = 0.0
    reset_rate: float = 0.0
    slowdown_rate: float = 0.0
    outage_after: int | None = None
    outage_from: bytes | None = None
    lifetime_s: float = 120.0
    counts: FaultCounts = field(default_factory=FaultCounts)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start within 10 s")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # --- which request gets which fault --------------------------------------

    def _next_fault(self, request_line: bytes = b"") -> str | None:
        with self._lock:
            n = self.counts.requests
            self.counts.requests += 1
            if self.outage_from is not None and self.outage_from in request_line and self.outage_after is None:
                self.outage_after = n
            if self.outage_after is not None and n >= self.outage_after:
                self.counts.outage_resets += 1
                return "reset"
            if _hits(n, self.reset_rate):
                self.counts.resets += 1
                return "reset"
            if _hits(n, self.slowdown_rate):
                self.counts.slowdowns += 1
                return "slowdown"
            return None

    # --- the event loop --------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.lifetime_s)
        except asyncio.TimeoutError:
            pass
        server.close()
        await server.wait_closed()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            responses = asyncio.create_task(_pipe(upstream_reader, client_writer, close_at_end=True))
            try:
                await self._forward_requests(client_reader, client_writer, upstream_writer)
            finally:
                responses.cancel()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()

    async def _forward_requests(self, client_reader, client_writer, upstream_writer) -> None:
        while True:
            head = await client_reader.readuntil(b"\r\n\r\n")
            fault = self._next_fault(head.split(b"\r\n", 1)[0])
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if fault == "reset":
                _reset(client_writer)
                return
            headers = head.lower()
            length = _content_length(headers)
            if fault == "slowdown":
                if length and b"expect: 100-continue" not in headers:
                    await client_reader.readexactly(length)
                client_writer.write(SLOWDOWN_RESPONSE)
                await client_writer.drain()
                return
            upstream_writer.write(head)
            if b"transfer-encoding: chunked" in headers:
                await _forward_chunked_body(client_reader, upstream_writer)
            else:
                await _forward_body(client_reader, upstream_writer, length)


async def _forward_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, 1 << 16))
        if not chunk:
            raise ConnectionResetError("client closed mid-body")
        writer.write(chunk)
        await writer.drain()
        remaining -= len(chunk)


async def _forward_chunked_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Chunks up to the zero-size one, then trailers up to the empty line (pyarrow's part uploads
    are `aws-chunked` with a trailing checksum), so the next request head is found."""
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        writer.write(await reader.readexactly(size + 2))
        await writer.drain()
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        writer.write(line)
    writer.write(line)
    await writer.drain()


def _hits(n: int, rate: float) -> bool:
    return rate > 0 and math.floor((n + 1) * rate) > math.floor(n * rate)


def _content_length(headers: bytes) -> int:
    for line in headers.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1].strip())
    return 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), what a crashed server or a dropped load balancer looks like."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, close_at_end: bool = False) -> None:
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        return
    if close_at_end:
        # the server closed its side: close the client's too, so it reconnects instead of writing into a void
        writer.close()
