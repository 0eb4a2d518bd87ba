"""Port checks shared by the test packages (tests/ is on sys.path: ``from netcheck import``)."""

from __future__ import annotations

import socket


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` and a new server could listen there (SO_REUSEADDR, as
    servers bind: connections closed a moment ago may linger in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True
