"""`free_ports`: the ports a `ray start` is given are distinct and free. Picked one socket at a time, the kernel
can hand a just-closed port out twice, and `ray start` then refuses to start (seen in `make test`:
client_server and metrics_export both on 40659)."""
import socket

from pipelines.runtime.warm_ray import HOST, free_ports


def test_many_ports_at_once_are_distinct_and_free_to_bind():
    for _ in range(20):
        ports = free_ports(7)
        assert len(set(ports)) == 7
        for port in ports:
            with socket.socket() as sock:
                sock.bind((HOST, port))
