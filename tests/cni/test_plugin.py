"""The `podnet-cni` executable against the spec, where no agent is needed: VERSION, bad input,
an agent that is not running. Every answer is spec JSON on stdout, never a traceback."""

from __future__ import annotations

import pytest

from netns import run_cni

NO_AGENT = "/nonexistent/podnet/agent.sock"
CONF = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni", "socket": NO_AGENT}
ADD_ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}


def test_version_lists_supported_versions_and_echoes_the_callers() -> None:
    call = run_cni("VERSION", {"cniVersion": "1.0.0"})
    assert call.code == 0
    assert call.output == {"cniVersion": "1.0.0",
                           "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}


def test_status_without_agent_is_not_available() -> None:
    call = run_cni("STATUS", CONF)
    assert (call.code, call.error_code) == (1, 50)
    assert call.output["cniVersion"] == "1.1.0"
    assert NO_AGENT in str(call.output["details"])


def test_add_without_agent_asks_to_try_again_later() -> None:
    call = run_cni("ADD", CONF, ADD_ENV)
    assert (call.code, call.error_code) == (1, 11)


@pytest.mark.parametrize(
    ("command", "env", "conf", "stdin", "code"),
    [
        pytest.param("", {}, CONF, None, 4, id="no CNI_COMMAND"),
        pytest.param("FROB", {}, CONF, None, 4, id="unknown command"),
        pytest.param("ADD", {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}, CONF, None, 4,
                     id="ADD without CNI_NETNS"),
        pytest.param("DEL", {"CNI_CONTAINERID": "c1"}, CONF, None, 4, id="DEL without ifname"),
        pytest.param("ADD", {**ADD_ENV, "CNI_CONTAINERID": "-bad/id"}, CONF, None, 4,
                     id="invalid container ID"),
        pytest.param("ADD", {**ADD_ENV, "CNI_IFNAME": "a-very-long-ifname"}, CONF, None, 4,
                     id="interface name too long"),
        pytest.param("ADD", {**ADD_ENV, "CNI_ARGS": "novalue"}, CONF, None, 4,
                     id="malformed CNI_ARGS"),
        pytest.param("ADD", ADD_ENV, CONF, b"{not json", 6, id="config not JSON"),
        pytest.param("ADD", ADD_ENV, CONF, b"[1]", 6, id="config not an object"),
        pytest.param("ADD", ADD_ENV, {**CONF, "name": ""}, None, 7, id="no network name"),
        pytest.param("ADD", ADD_ENV, {**CONF, "name": "a b"}, None, 7, id="bad network name"),
        pytest.param("ADD", ADD_ENV, {**CONF, "mtu": 20}, None, 7, id="mtu out of range"),
        pytest.param("ADD", ADD_ENV, {**CONF, "socket": "relative.sock"}, None, 7,
                     id="relative socket"),
        pytest.param("ADD", ADD_ENV, {**CONF, "cniVersion": "0.3.1"}, None, 1,
                     id="unsupported version"),
        pytest.param("ADD", ADD_ENV, {k: v for k, v in CONF.items() if k != "cniVersion"},
                     None, 1, id="no version"),
        pytest.param("STATUS", {}, {**CONF, "cniVersion": "1.0.0"}, None, 1,
                     id="STATUS needs 1.1.0"),
        pytest.param("GC", {}, {**CONF, "cniVersion": "0.4.0"}, None, 1, id="GC needs 1.1.0"),
        pytest.param("ADD", ADD_ENV, {**CONF, "ipam": {"type": "host-local"}}, None, 2,
                     id="delegated ipam unsupported"),
    ],
)
def test_bad_input_gets_the_spec_error_code(
    command: str, env: dict[str, str], conf: dict[str, object], stdin: bytes | None, code: int
) -> None:
    call = run_cni(command, conf, env, stdin=stdin)
    assert call.code != 0
    assert call.error_code == code, call.output
    assert isinstance(call.output["msg"], str) and call.output["msg"]
