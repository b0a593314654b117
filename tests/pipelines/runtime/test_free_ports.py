"""`free_ports`: the ports vaepipe gives the Ray processes it starts are distinct and free at every address.
Picked one socket at a time, the kernel can hand a just-closed port out twice, and `ray start` then refuses to
start (seen in `make test`: client_server and metrics_export both on 40659); probed on loopback alone, a port
taken on the host's outward address comes back, and the GCS, which listens on every address, cannot bind (a
job's `ray.init` timed out in a fresh-clone `make test`)."""
import socket

import psutil

from pipelines.runtime.ports import answers, free_ports


def _wildcard_bindable(port: int) -> None:
    with socket.socket() as sock:
        sock.bind(("", port))


def test_many_ports_at_once_are_distinct_and_free_to_bind_at_every_address():
    for _ in range(20):
        ports = free_ports(7)
        assert len(set(ports)) == 7
        for port in ports:
            _wildcard_bindable(port)


def _other_address() -> str:
    """The host's outward IPv4 address (where Ray's agents listen), else 127.0.0.2: Linux answers on all of
    127/8, and a probe bound to 127.0.0.1 is as blind to a port taken there (34 of 500 picks in the same test)."""
    return next((address.address for addresses in psutil.net_if_addrs().values() for address in addresses
                 if address.family == socket.AF_INET and not address.address.startswith("127.")), "127.0.0.2")


def test_a_port_listened_on_at_the_hosts_outward_address_is_never_chosen():
    outward = _other_address()
    listeners = []
    try:
        # many, so that a probe blind to them would meet one: a loopback probe did in ~1 of 5 picks
        for _ in range(1000):
            sock = socket.socket()
            listeners.append(sock)
            sock.bind((outward, 0))
            sock.listen()
        taken = {sock.getsockname()[1] for sock in listeners}
        chosen = {port for _ in range(100) for port in free_ports(5)}
        assert not chosen & taken
    finally:
        for sock in listeners:
            sock.close()


def test_a_port_answers_while_something_listens_and_not_after():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert answers("127.0.0.1", port)
    listener.close()
    assert not answers("127.0.0.1", port)
