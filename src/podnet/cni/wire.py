"""The request/response protocol between `podnet-cni` and the node agent, over a unix socket.

One connection per invocation: the plugin sends one JSON object and shuts its side down; the
agent answers one JSON object and closes. A request is `CniArgs.to_wire()` plus `"config"` (the
plugin configuration as received); a response is `{"code": 0, "output": <result or null>}` or
`{"code": <CNI code>, "output": <spec error object>}`. Standard library only.
"""

from __future__ import annotations

import json
import socket

MAX_MESSAGE = 4 << 20  # a conflist with prevResult is a few KiB; refuse anything absurd


def read_all(conn: socket.socket) -> bytes:
    """Read until the peer shuts down its side."""
    chunks = []
    size = 0
    while chunk := conn.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE:
            raise ValueError(f"message larger than {MAX_MESSAGE} bytes")
    return b"".join(chunks)


def call(path: str, request: dict[str, object], timeout: float) -> dict[str, object]:
    """Send one request to the agent at `path`; OSError when it cannot be reached."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(json.dumps(request).encode())
        conn.shutdown(socket.SHUT_WR)
        answer = json.loads(read_all(conn))
    if not isinstance(answer, dict) or not isinstance(answer.get("code"), int):
        raise ValueError("malformed answer from the agent")
    return answer
