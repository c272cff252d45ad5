"""The agent's metrics over HTTPS: its certificate, and scrapers that must show their own.

Certificates come from `openssl` (a CA, the node's certificate for its address, a scraper's);
the agent serves in its node namespace and each scrape is made from inside it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from netns import NODE_ADDRESS, PODNET, Agent
from podnet.datapath.netns import socket_in
from podnet.errors import PodnetError
from podnet.lab.metrics import fetch

PORT = 9471


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def issue(directory: Path, name: str, ca: str, extensions: str) -> tuple[Path, Path]:
    """A key and a certificate for `name`, signed by the CA `ca` (files ca.crt, ca.key)."""
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", csr, "-CA", directory / f"{ca}.crt",
            "-CAkey", directory / f"{ca}.key", "-set_serial", "1", "-days", "1",
            "-extfile", ext, "-out", cert)
    return cert, key


def authority(directory: Path, name: str) -> Path:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", directory / f"{name}.key", "-out", directory / f"{name}.crt",
            "-subj", f"/CN={name}", "-days", "1")
    return directory / f"{name}.crt"


def scrape(agent: Agent, context: ssl.SSLContext) -> str:
    """`GET https://NODE_ADDRESS:PORT/metrics` from inside the node."""
    with socket_in(agent.node.path, socket.AF_INET, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)
        raw.connect((NODE_ADDRESS, PORT))
        with context.wrap_socket(raw, server_hostname=NODE_ADDRESS) as tls:
            tls.sendall(f"GET /metrics HTTP/1.0\r\nHost: {NODE_ADDRESS}\r\n\r\n".encode())
            answer = b"".join(iter(lambda: tls.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b"200 OK"), head
    return body.decode()


@pytest.mark.netns
def test_metrics_over_https_answer_only_scrapers_with_a_certificate_of_the_ca(
        agent: Agent, tmp_path: Path) -> None:
    ca = authority(tmp_path, "ca")
    authority(tmp_path, "other-ca")
    cert, key = issue(tmp_path, "node", "ca", f"subjectAltName=IP:{NODE_ADDRESS}")
    client_cert, client_key = issue(tmp_path, "scraper", "ca", "extendedKeyUsage=clientAuth")
    stranger_cert, stranger_key = issue(tmp_path, "stranger", "other-ca",
                                        "extendedKeyUsage=clientAuth")
    agent.stop()
    agent.start("--metrics-address", f"{NODE_ADDRESS}:{PORT}", "--metrics-cert", str(cert),
                "--metrics-key", str(key), "--metrics-client-ca", str(ca))

    def client(cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(cert, key)
        return context

    text = scrape(agent, client(client_cert, client_key))
    assert "# TYPE podnet_cni_requests_total counter" in text
    # The scraper checked the node's certificate against the CA, and the node the scraper's.
    for refused in (client(), client(stranger_cert, stranger_key)):
        with pytest.raises(OSError):  # ssl.SSLError: the server's alert, or the reset after it
            scrape(agent, refused)
    with pytest.raises(PodnetError):  # plain HTTP gets no answer
        fetch(agent.node.path, NODE_ADDRESS, PORT)
    text = scrape(agent, client(client_cert, client_key))  # the refusals harmed nothing
    assert "podnet_cni_requests_total" in text


@pytest.mark.parametrize(("options", "code", "message"), [
    (["--metrics-cert", "c.pem"], 2, "--metrics-cert and --metrics-key go together"),
    (["--metrics-cert", "c.pem", "--metrics-key", "k.pem"], 2,
     "--metrics-cert needs --metrics-address"),
    (["--metrics-address", "192.0.2.1:9470", "--metrics-cert", "nothere.pem",
      "--metrics-key", "k.pem"], 1, "--metrics-cert nothere.pem: no such file"),
    (["--metrics-address", "192.0.2.1:9470", "--metrics-cert", "k.pem",
      "--metrics-key", "k.pem"], 1, "--metrics-cert k.pem with --metrics-key k.pem: not a "
     "certificate and its key"),
])
def test_wrong_tls_options_are_named_before_the_agent_starts(
        tmp_path: Path, options: list[str], code: int, message: str) -> None:
    (tmp_path / "k.pem").write_text("not a key\n")
    done = subprocess.run([PODNET, "agent", "--node", "n1", "--socket", "agent.sock", *options],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == code and message in done.stderr, done.stderr
    assert not (tmp_path / "agent.sock").exists()
