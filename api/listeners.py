"""How several API processes on one host share a port: each binds its own `SO_REUSEPORT` listener, so the kernel
spreads connections over the processes by their address hash. uvicorn's own `--workers` shares one listening
socket, and the kernel then hands most keep-alive connections to whichever process accepted last: measured
here with 16 keep-alive clients, two such processes gave 0.85 x the uploads/s of one.

uvicorn's supervisor (`Multiprocess`) still starts, watches, restarts and stops the processes; it hands each
new process the listener it was given, pickled. `ReusePortListener` pickles to a recipe, so every process,
a restarted one too, binds a fresh socket of its own when it unpickles it."""

from __future__ import annotations

import socket

SUPPORTED = hasattr(socket, "SO_REUSEPORT")
"""Linux (and the BSDs, without the balancing) have it; elsewhere `--processes` falls back to uvicorn's."""


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (the server calls listen on it)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ReusePortListener:
    """Stands in for a socket in the parent; becomes a socket of its own in each process that unpickles it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return bind_reuse_port, (self.host, self.port)


def port_taken(host: str, port: int) -> str | None:
    """Why host:port cannot be served by a new group of processes, or None. Something already listening there
    is refused too: with SO_REUSEPORT, a second deployment of the same user would otherwise share the port."""
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with socket.create_connection((probe_host, port), timeout=0.5):
            return f"something is already listening on {host}:{port}"
    except OSError:
        pass
    try:
        bind_reuse_port(host, port).close()
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None
