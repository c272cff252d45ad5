"""The request/response protocol between `podnet-cni` and the node agent, over a unix socket.

One connection per invocation. The plugin sends one JSON object, `CniArgs.to_wire()` plus
`"config"` (the configuration exactly as the runtime wrote it), and shuts its side down. The
agent answers the exit code on the first line and then the bytes to print on stdout (a result,
nothing, or the spec's error object), and closes. The plugin side uses only `_socket` and
`leanjson`, so that it starts fast.
"""

from __future__ import annotations

import _socket

from podnet.cni import leanjson

MAX_MESSAGE = 4 << 20  # a conflist with prevResult is a few KiB; refuse anything absurd


class MalformedMessage(ValueError):
    """The other side spoke something else than this protocol."""


def read_all(conn: _socket.socket) -> bytes:
    """Read until the peer shuts down its side."""
    chunks = []
    size = 0
    while chunk := conn.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE:
            raise MalformedMessage(f"message larger than {MAX_MESSAGE} bytes")
    return b"".join(chunks)


def encode_request(fields: dict[str, str], config_text: str) -> bytes:
    """The request: `fields` plus the configuration, which is valid JSON already."""
    head = leanjson.dumps(fields)
    return f'{head[:-1]}, "config": {config_text}}}'.encode()


def encode_response(code: int, stdout: str) -> bytes:
    return f"{code}\n{stdout}".encode()


def decode_response(data: bytes) -> tuple[int, bytes]:
    code, newline, stdout = data.partition(b"\n")
    if not newline or not code.strip().isdigit():
        raise MalformedMessage("malformed answer from the agent")
    return int(code), stdout


def call(path: str, request: bytes, timeout: float) -> tuple[int, bytes]:
    """Send one request to the agent at `path`: (exit code, stdout); OSError if unreachable."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(request)
        conn.shutdown(_socket.SHUT_WR)
        return decode_response(read_all(conn))
    finally:
        conn.close()
