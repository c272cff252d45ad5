"""Probe servers and the prober, on the kernel, in namespaces these tests make.

The topology: three pod namespaces (x/a, x/b, y/a: two in one namespace, one in another, as
the e2e suite's smallest grid) joined by veths to a bridge in a "node" namespace, each pod
with one address in 10.244.0.0/24. One ProbeServer serves all three pods.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from netns import Netns, NetnsFactory
from podnet.datapath.netns import rtnl, socket_in
from podnet.lab import Reachability
from podnet.lab.probe import (
    Answer,
    ProbeJob,
    ProbeResult,
    ProbeServer,
    ProbeServerError,
    observe,
    probe_json,
    run_probes,
    truth_tables,
)
from podnet.lab.prober import _Run
from podnet.lab.probeserver import peer_ip
from podnet.lab.reachability import PodString
from podnet.model import IPAddress, Protocol

TCP, UDP, SCTP = Protocol.TCP, Protocol.UDP, Protocol.SCTP
PORTS = [(80, TCP), (81, UDP)]
PODS = [PodString(p) for p in ("x/a", "x/b", "y/a")]


@dataclass
class Pods:
    """The pods of a test: their namespaces and addresses."""

    netns: dict[PodString, Netns]
    ips: dict[PodString, IPAddress]

    def jobs(self, ports: list[tuple[int, Protocol]], **extra: object) -> list[ProbeJob]:
        """Every pod to every pod (itself too) on every port."""
        return [ProbeJob(src, self.netns[src].path, dst, self.ips[dst], port, proto, **extra)
                for port, proto in ports for src in PODS for dst in PODS]  # type: ignore[arg-type]


def wire_pods(make_netns: NetnsFactory) -> Pods:
    node = make_netns("node")
    node.run("ip", "link", "add", "br0", "type", "bridge")
    node.run("ip", "link", "set", "br0", "up")
    pods = Pods({}, {})
    for i, key in enumerate(PODS):
        pod = make_netns(key.replace("/", ""))
        ip = ipaddress.IPv4Address(f"10.244.0.{i + 2}")
        node.run("ip", "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                 "netns", pod.path)
        node.run("ip", "link", "set", f"v{i}", "master", "br0", "up")
        pod.run("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        pod.run("ip", "link", "set", "eth0", "up")
        pod.run("ip", "link", "set", "lo", "up")
        pods.netns[key], pods.ips[key] = pod, ip
    return pods


@pytest.fixture
def pods(make_netns: NetnsFactory) -> Pods:
    return wire_pods(make_netns)


@pytest.fixture
def server(pods: Pods) -> Iterator[ProbeServer]:
    with ProbeServer() as serving:
        for key in PODS:
            serving.add(key, pods.netns[key].path, PORTS)
        yield serving


def by_pair(results: list[ProbeResult]) -> dict[tuple[str, str, Protocol], ProbeResult]:
    return {(r.job.src, r.job.dst, r.job.protocol): r for r in results}


# Without root: the wire format, the reproduction command and the JSON shape.


def test_an_answer_survives_the_wire() -> None:
    answer = Answer(PodString("x/a"), ipaddress.ip_address("10.244.0.2"), 81, UDP, 1400)
    assert json.loads(answer.encode()) == {"answeredBy": "x/a", "sourceIP": "10.244.0.2",
                                           "port": 81, "protocol": "UDP", "bytes": 1400}
    assert Answer.decode(answer.encode()) == answer
    with pytest.raises(ValueError, match="not a probe answer"):
        Answer.decode(b'{"answeredBy": "nobody"}')


def test_the_command_enters_the_source_namespace_as_a_person_would() -> None:
    job = ProbeJob(PodString("x/a"), "/run/netns/lab-x-a", PodString("x/b"),
                   ipaddress.ip_address("10.244.1.3"), 81, UDP, size=1400)
    assert job.command(0.5) == (f"ip netns exec lab-x-a {sys.executable} -m podnet.lab.probe "
                                "connect 10.244.1.3 81 --protocol UDP --timeout 0.5 --size 1400")
    other = ProbeJob(PodString("x/a"), "/proc/42/ns/net", PodString("x/b"),
                     ipaddress.ip_address("10.244.1.3"), 80, TCP)
    assert other.command().startswith("nsenter --net=/proc/42/ns/net ")


def test_results_become_tables_and_matrix_json() -> None:
    a, b = PodString("x/a"), PodString("x/b")
    ip = ipaddress.ip_address("10.244.0.2")

    def result(src: PodString, dst: PodString, ok: bool) -> ProbeResult:
        job = ProbeJob(src, None, dst, ip, 80, TCP)
        return ProbeResult(job, ok, dst if ok else None, ip if ok else None,
                           None if ok else "connection refused", job.command())

    results = [result(a, a, True), result(a, b, False), result(b, a, True), result(b, b, True)]
    (table,) = truth_tables(results).values()
    assert table.pretty() == "-    x/a  x/b\nx/a  .    X\nx/b  .    ."
    doc = probe_json(results)
    assert doc["pods"] == ["x/a", "x/b"]
    (entry,) = doc["results"]
    assert entry["port"] == 80 and entry["protocol"] == "TCP"
    assert entry["allowed"] == {"x/a": {"x/a": True, "x/b": False},
                                "x/b": {"x/a": True, "x/b": True}}
    assert entry["details"]["x/b"]["x/a"]["answeredBy"] == "x/a"
    assert entry["details"]["x/b"]["x/a"]["sourceIP"] == "10.244.0.2"
    assert entry["details"]["x/a"]["x/b"]["error"] == "connection refused"
    reachability = Reachability([a, b])
    observe(reachability, results)
    assert reachability.summary(ignore_loopback=False).wrong == 1


# In namespaces.


@pytest.mark.netns
def test_every_pod_answers_every_pod_with_the_senders_own_address(
        pods: Pods, server: ProbeServer) -> None:
    results = run_probes(pods.jobs(PORTS), timeout=5)
    assert len(results) == 18
    for r in results:
        assert r.connected, f"{r.job.src} -> {r.job.dst} {r.job.protocol}: {r.error}"
        assert r.answered_by == r.job.dst
        assert r.source_ip == pods.ips[r.job.src]
        assert r.error is None
    assert all(t.is_complete() and all(v for *_, v in t.cells())
               for t in truth_tables(results, PODS).values())


@pytest.mark.netns
def test_a_tcp_client_may_send_a_request_line_first(pods: Pods, server: ProbeServer) -> None:
    # as a person with netcat would: a line in, the answer out, then the server closes
    a, b = PodString("x/a"), PodString("x/b")
    with socket_in(pods.netns[a].path, socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect((str(pods.ips[b]), 80))
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    assert Answer.decode(reply) == Answer(b, pods.ips[a], 80, TCP)


@pytest.mark.netns
def test_a_port_nobody_serves_is_refused_not_timed_out(pods: Pods, server: ProbeServer) -> None:
    # a 30 s timeout: an answer that came from the timeout path would take the whole of it
    results = run_probes(pods.jobs([(90, TCP), (91, UDP)]), timeout=30)
    assert {r.error for r in results} == {"connection refused"}
    assert not any(r.connected for r in results)


@pytest.mark.netns
@pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables")
def test_dropped_probes_time_out_and_others_still_pass(pods: Pods, server: ProbeServer) -> None:
    # y/a drops what comes in on its ports, as a denying policy would; x/a and x/b do not
    target = pods.netns[PodString("y/a")]
    target.run("iptables", "-A", "INPUT", "-i", "eth0", "-p", "tcp", "--dport", "80", "-j", "DROP")
    target.run("iptables", "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "81", "-j", "DROP")
    results = by_pair(run_probes(pods.jobs(PORTS), timeout=0.5))
    for (src, dst, proto), r in results.items():
        if dst == "y/a" and src != "y/a":
            assert not r.connected
            assert r.error == ("timed out connecting (0.5s)" if proto is TCP
                               else "no answer within 0.5s")
        else:
            assert r.connected, f"{src} -> {dst} {proto}: {r.error}"


def test_an_answer_waiting_when_the_prober_looks_late_counts() -> None:
    """On a loaded machine the prober can get no CPU for longer than its timeout: an answer that
    arrived meanwhile sits in the socket and is a pass, not a timeout. Here the prober connects
    (on loopback), the server answers, and the prober first looks after the probe's deadline.
    (The prober used to see "connected", then fire the timer before reading: at a load of 5,
    half of a 150-pod lab's probes failed so, each with its answer waiting.)"""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        job = ProbeJob(PodString("x/a"), None, PodString("x/b"),
                       ipaddress.ip_address("127.0.0.1"), port, TCP)
        run = _Run([job], timeout=0.01, parallel=1)
        run.start_batch()  # connects; the deadline starts
        conn, address = listener.accept()
        with conn:
            conn.sendall(Answer(PodString("x/b"), peer_ip(address), port, TCP).encode())
            time.sleep(0.1)  # the prober is starved past its deadline
            (result,) = run.run()
    assert result.connected, result.error
    assert (result.answered_by, str(result.source_ip)) == ("x/b", "127.0.0.1")


@pytest.mark.netns
def test_remove_closes_a_pods_sockets_and_it_can_come_back(
        pods: Pods, server: ProbeServer) -> None:
    b = PodString("x/b")
    server.remove(b)
    assert sorted(server.pods()) == ["x/a", "y/a"]
    results = run_probes(pods.jobs(PORTS), timeout=30)
    for r in results:
        assert r.connected is (r.job.dst != b)
        if r.job.dst == b:
            assert r.error == "connection refused"
    server.add(b, pods.netns[b].path, PORTS)
    assert all(r.connected for r in run_probes(pods.jobs(PORTS), timeout=5))


@pytest.mark.netns
def test_a_pod_is_served_once_and_sctp_is_skipped_with_a_warning(
        pods: Pods, server: ProbeServer, caplog: pytest.LogCaptureFixture) -> None:
    a = PodString("x/a")
    with pytest.raises(ProbeServerError, match="x/a is served already"):
        server.add(a, pods.netns[a].path, [(82, TCP)])
    with pytest.raises(ProbeServerError, match="Address already in use"):
        server.add("z/taken", pods.netns[a].path, [(80, TCP)])
    with caplog.at_level(logging.WARNING):
        server.add("z/sctp", pods.netns[a].path, [(83, SCTP), (84, TCP)])
    assert "not serving 83/SCTP" in caplog.text
    job = ProbeJob(a, pods.netns[a].path, PodString("z/sctp"), pods.ips[a], 84, TCP)
    (result,) = run_probes([job], timeout=5)
    assert result.answered_by == "z/sctp"


@pytest.mark.netns
def test_both_families_are_served_when_asked(pods: Pods, server: ProbeServer) -> None:
    # one pod serving IPv4 and IPv6, probed over loopback from its own namespace
    a = PodString("x/a")
    server.add("z/v6", pods.netns[a].path, [(85, TCP), (85, UDP)],
               families=(socket.AF_INET, socket.AF_INET6))
    jobs = [ProbeJob(a, pods.netns[a].path, PodString("z/v6"), ipaddress.ip_address(ip), 85, p)
            for ip in ("127.0.0.1", "::1") for p in (TCP, UDP)]
    results = run_probes(jobs, timeout=5)
    assert [(r.answered_by, r.source_ip) for r in results] == [
        ("z/v6", ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "127.0.0.1", "::1", "::1")]


@pytest.mark.netns
def test_a_full_size_datagram_arrives_whole(pods: Pods, server: ProbeServer) -> None:
    results = run_probes(pods.jobs([(81, UDP)], size=1400), timeout=5)
    assert {(r.connected, r.size) for r in results} == {(True, 1400)}


@pytest.mark.netns
def test_a_missing_source_namespace_is_a_result_not_an_exception(pods: Pods) -> None:
    job = ProbeJob(PodString("x/a"), "/run/netns/pn-t-gone", PodString("x/b"),
                   pods.ips[PodString("x/b")], 80, TCP)
    (result,) = run_probes([job])
    assert not result.connected
    assert result.error is not None and "does not exist" in result.error


@pytest.mark.netns
def test_the_printed_command_reproduces_the_probe(pods: Pods, server: ProbeServer) -> None:
    a, b = PodString("x/a"), PodString("x/b")
    allowed, refused = run_probes([
        ProbeJob(a, pods.netns[a].path, b, pods.ips[b], 81, UDP, size=1400),
        ProbeJob(a, pods.netns[a].path, b, pods.ips[b], 90, TCP),
    ], timeout=5)
    done = subprocess.run(shlex.split(allowed.command), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"answeredBy": "x/b", "sourceIP": str(pods.ips[a]),
                                       "port": 81, "protocol": "UDP", "bytes": 1400}
    done = subprocess.run(shlex.split(refused.command), capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"{pods.ips[b]} 90/TCP: connection refused\n"


@pytest.mark.netns
def test_serve_answers_for_a_pod_until_terminated(pods: Pods) -> None:
    # x/b's ports served by a process in its namespace (as a host-network pod's would be)
    a, b = PodString("x/a"), PodString("x/b")
    proc = pods.netns[b].popen(sys.executable, "-m", "podnet.lab.probe", "serve", "--pod", "x/b",
                               "--port", "80/TCP", "--port", "81/udp")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "serving x/b on 80/TCP, 81/UDP\n"
        results = run_probes([ProbeJob(a, pods.netns[a].path, b, pods.ips[b], port, proto)
                              for port, proto in PORTS], timeout=5)
        assert [(r.answered_by, r.source_ip) for r in results] == [(b, pods.ips[a])] * 2
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.netns
@pytest.mark.slow
def test_one_server_serves_500_pods_on_4_sockets_each(make_netns: NetnsFactory) -> None:
    # 500 pods, namespaces without links: each pod probes itself on 127.0.0.1 (lo is enough)
    ports = [(80, TCP), (80, UDP), (81, TCP), (81, UDP)]
    netns = {PodString(f"scale/p{i}"): make_netns("scale").path for i in range(500)}
    for path in netns.values():
        with rtnl(path) as ipr:
            ipr.link("set", index=1, state="up")
    lo = ipaddress.ip_address("127.0.0.1")
    with ProbeServer() as server:
        for pod, path in netns.items():
            server.add(pod, path, ports)
        jobs = [ProbeJob(pod, path, pod, lo, port, proto)
                for pod, path in netns.items() for port, proto in [*ports, (90, TCP)]]
        results = run_probes(jobs, timeout=30)
    assert len(results) == 2500
    for r in results:
        if r.job.port == 90:
            assert r.error == "connection refused"
        else:
            assert (r.answered_by, r.source_ip) == (r.job.dst, lo), r.error
