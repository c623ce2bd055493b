"""Connect to a Dask scheduler, or fail within a deadline with one line that says what to check.

Before a ``dask.distributed.Client`` is made, :func:`probe` opens a plain TCP connection and reads the greeting a
Dask scheduler sends at once on every new connection (a length-prefixed msgpack frame announcing its
compression and pickle protocol). A closed port, a server that says nothing (an HTTP server such as Dask's
dashboard on port 8787 waits for a request) or one that says something else is refused before Dask's own client
could hang on it or try to allocate a frame length read from foreign bytes.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

CONNECT_DEADLINE_S = 10.0
"""Seconds from the start of :func:`connect` to a connected client, or :class:`SchedulerUnreachable`."""
_MAX_GREETING = 1 << 16


class SchedulerUnreachable(ConnectionError):
    """The address given as a Dask scheduler is not one that answers."""


def _fail(address: str, why: str) -> SchedulerUnreachable:
    return SchedulerUnreachable(f"cannot reach the Dask scheduler at {address!r}: {why}; check that "
                                f"`dask scheduler` runs there and that this is its address (tcp://HOST:PORT, "
                                f"port 8786 by default; 8787 is its dashboard)")


def parse(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``tcp://HOST:PORT`` or ``HOST:PORT``; :class:`SchedulerUnreachable` otherwise."""
    if not address or not address.strip():
        raise _fail(address, "the address is empty")
    rest = address.strip()
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        if scheme != "tcp":
            raise _fail(address, f"only tcp:// addresses are supported, not {scheme}://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(address, "expected tcp://HOST:PORT")
    return host.strip("[]"), int(port)


def _read_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def probe(address: str, deadline: float) -> None:
    """Check that a Dask scheduler answers at ``address`` before ``deadline`` (a ``time.monotonic`` value)."""
    import msgpack

    host, port = parse(address)
    try:
        with socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.01)) as sock:
            (length,) = struct.unpack("<Q", _read_exactly(sock, 8, deadline))
            if not 16 <= length <= _MAX_GREETING:
                raise _fail(address, "the server there does not speak Dask's protocol")
            body = _read_exactly(sock, length, deadline)
    except socket.timeout:
        raise _fail(address, "the server there accepted the connection but sent no Dask greeting "
                             "(is it another kind of server?)") from None
    except OSError as e:
        raise _fail(address, e.strerror or str(e)) from None
    try:
        (n_frames,) = struct.unpack("<Q", body[:8])
        sizes = struct.unpack(f"<{n_frames}Q", body[8:8 + 8 * n_frames])
        greeting = msgpack.unpackb(body[8 + 8 * n_frames:8 + 8 * n_frames + sizes[0]], raw=False)
        if not isinstance(greeting, dict) or "compression" not in greeting:
            raise ValueError(greeting)
    except Exception:  # noqa: BLE001 (any foreign bytes)
        raise _fail(address, "the server there does not speak Dask's protocol") from None


def connect(address: str, deadline_s: float = CONNECT_DEADLINE_S) -> Any:
    """A ``dask.distributed.Client`` on ``address`` within ``deadline_s`` seconds, or
    :class:`SchedulerUnreachable` (nothing else, no lingering client).

    The workers must import this package (same environment) and see the repository and the artifact root at
    the same paths (a shared file system), since each cell is a notebook run on a worker.
    """
    deadline = time.monotonic() + deadline_s
    probe(address, deadline)
    result: dict[str, Any] = {}

    def make() -> None:
        from dask.distributed import Client

        try:
            result["client"] = Client(address, timeout=max(deadline - time.monotonic(), 0.5), set_as_default=False)
        except Exception as e:  # noqa: BLE001
            result["error"] = e

    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0.5) + 1)
    if "client" in result:
        return result["client"]
    raise _fail(address, f"no Dask client within {deadline_s:g} s ({result.get('error', 'timed out')!r})")
