"""Ports for the Ray processes vaepipe starts, chosen before they start, and whether one answers.

Ray's servers (the GCS, the raylet, the agents) listen on every address of the host, whatever node address they
are given, so a port is free for them only if nothing listens on it at any address. A probe bound to loopback
alone does not see a port taken on the host's outward address: with 3,000 listeners on eth0's address, 640 of
3,000 loopback probes here returned one of their ports, and a job's `ray.init` then waited 30 s for a GCS that
could not bind (the session's Ray in `make test` listens on that address: its agents).
"""
from __future__ import annotations

import contextlib
import socket


def _wildcard_socket() -> socket.socket:
    """A socket bound to every address, IPv6 and IPv4 alike where the host has IPv6 (as Ray's servers bind)."""
    if socket.has_ipv6:
        sock = socket.socket(socket.AF_INET6)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
            return sock
        except OSError:  # IPv6 compiled in, not configured
            sock.close()
    sock = socket.socket(socket.AF_INET)
    sock.bind(("", 0))
    return sock


# Starts of a Ray vaepipe starts itself (a job's own, `vaepipe ray up`'s), each on newly chosen ports: a port chosen
# free can be taken by another process's bind to port 0 before Ray's process binds it
START_ATTEMPTS = 3


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on at any address. Every socket stays bound until all are chosen:
    ports picked one at a time can come back twice (the kernel hands out a just-closed port again), and
    `ray start` then refuses to start ("trying to use a port number … that is used by other components")."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(_wildcard_socket()) for _ in range(count)]
        return [sock.getsockname()[1] for sock in sockets]


def answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts a TCP connection at host:port within `timeout_s`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
