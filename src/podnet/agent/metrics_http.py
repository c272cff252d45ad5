"""The agent's `/metrics` endpoint: plain HTTP, or HTTPS with an optional client certificate.

Plain HTTP suits the lab, whose node addresses exist only in its namespaces. On a real node
the metrics say which pods talk and which policies deny them, so the endpoint can serve TLS
(`--metrics-cert`, `--metrics-key`) and, with `--metrics-client-ca`, answer only scrapers
that show a certificate that CA signed, as kube-rbac-proxy in front of an exporter would.
The handshake runs in the request's thread, not in the accepting one, so a client that
connects and stays silent holds up nobody but itself, and only for HANDLER_TIMEOUT seconds.
"""

from __future__ import annotations

import ipaddress
import logging
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import prometheus_client
from prometheus_client.exposition import ThreadingWSGIServer

from podnet.agent.metrics import Metrics
from podnet.errors import PodnetError

log = logging.getLogger(__name__)

HANDLER_TIMEOUT = 10.0  # seconds a scraper may take to shake hands and ask


@dataclass(frozen=True)
class MetricsTls:
    """The endpoint's certificate and key; with `client_ca`, scrapers must show a certificate
    this CA signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def context(self) -> ssl.SSLContext:
        """The server's TLS context; an error names the option and file that are wrong."""
        files = {"--metrics-cert": self.cert, "--metrics-key": self.key,
                 "--metrics-client-ca": self.client_ca}
        for option, path in files.items():
            if path is not None and not path.is_file():
                raise PodnetError(f"{option} {path}: no such file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as err:
            raise PodnetError(f"--metrics-cert {self.cert} with --metrics-key {self.key}: "
                              f"not a certificate and its key: {err}") from err
        if self.client_ca is not None:
            try:
                context.load_verify_locations(self.client_ca)
            except (OSError, ssl.SSLError) as err:
                raise PodnetError(f"--metrics-client-ca {self.client_ca}: not a CA "
                                  f"certificate: {err}") from err
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class _Server(ThreadingWSGIServer):
    """prometheus_client's server, bound without `HTTPServer`'s reverse DNS look-up of its own
    address (`socket.getfqdn`): in a node whose resolver is out of reach it held every lab
    agent's start for 10 s (bench/lab.py)."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper that failed the handshake or went away: one line, not a traceback."""
        log.warning("metrics: request from %s failed: %s", client_address[0], sys.exc_info()[1])


class _QuietHandler(WSGIRequestHandler):
    timeout = HANDLER_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def serve(metrics: Metrics, address: ipaddress.IPv4Address, port: int,
          tls: MetricsTls | None = None) -> Callable[[], None]:
    """Serve `/metrics` on `address:port` in the agent's namespace (the node); the stop call."""
    context = tls.context() if tls else None
    # `_created` samples (a series' start time) would double the counters' lines; nothing
    # here reads them. The switch is process-wide: this process is the agent.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    app = prometheus_client.make_wsgi_app(metrics.registry)
    try:
        server = make_server(str(address), port, app, _Server, handler_class=_QuietHandler)
    except OSError as err:
        raise PodnetError(f"cannot serve metrics on {address}:{port}: {err.strerror}") from err
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="podnet-metrics", daemon=True)
    thread.start()
    log.info("serving metrics on %s://%s:%d/metrics%s", "https" if tls else "http", address,
             port, " (client certificates required)" if tls and tls.client_ca else "")

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
