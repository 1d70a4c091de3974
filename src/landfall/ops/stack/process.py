"""Who holds a port: checked before a component starts, so a clash is named instead of a crash log."""

from __future__ import annotations

import socket

import psutil


def port_owner(port: int) -> str | None:
    """Who listens on 127.0.0.1/0.0.0.0:`port`, as 'pid N (name)', or None when the port is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                name = psutil.Process(conn.pid).name() if conn.pid else "?"
                return f"pid {conn.pid} ({name})"
    except (psutil.Error, PermissionError):
        pass
    return "another process"
