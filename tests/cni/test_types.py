"""CNI spec types: results per version, CNI_ARGS, GC's attachment list."""

from __future__ import annotations

import ipaddress

import pytest

from podnet.cni.errors import CniError
from podnet.cni.types import CniArgs, Interface, NetConf, Result

RESULT = Result(
    interfaces=[Interface("pnabc", "ee:ee:ee:ee:ee:ee", 1450),
                Interface("eth0", "02:00:00:00:00:01", 1450, sandbox="/run/netns/p")],
    ips=[(ipaddress.IPv4Interface("10.244.0.5/32"), ipaddress.IPv4Address("169.254.1.1"), 1)],
    routes=[(ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv4Address("169.254.1.1"))],
)


def test_result_names_the_pod_interface_sandbox_and_its_address() -> None:
    out = RESULT.to_json("1.1.0")
    assert out["interfaces"] == [
        {"name": "pnabc", "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1450},
        {"name": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1450, "sandbox": "/run/netns/p"},
    ]
    assert out["ips"] == [{"address": "10.244.0.5/32", "gateway": "169.254.1.1", "interface": 1}]
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]


def test_result_for_a_0_4_0_config_names_the_ip_version() -> None:
    out = RESULT.to_json("0.4.0")
    assert out["cniVersion"] == "0.4.0"
    assert out["ips"][0]["version"] == "4"  # type: ignore[index]


def test_cni_args_give_the_kubernetes_pod() -> None:
    args = CniArgs("ADD", args="IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0")
    assert args.pod() == ("shop", "web-0")
    assert CniArgs("ADD").pod() is None


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_accepts_both_names_of_the_attachment_list(key: str) -> None:
    conf = NetConf.parse({"cniVersion": "1.1.0", "name": "podnet",
                          key: [{"containerID": "c1", "ifname": "eth0"}]}, "GC")
    assert conf.valid_attachments() == {("c1", "eth0")}


def test_gc_rejects_a_malformed_attachment_list() -> None:
    conf = NetConf.parse({"cniVersion": "1.1.0", "name": "podnet",
                          "cni.dev/valid-attachments": [{"ifname": "eth0"}]}, "GC")
    with pytest.raises(CniError) as err:
        conf.valid_attachments()
    assert err.value.code == 7


def test_a_chained_result_appends_to_the_previous_one() -> None:
    previous = {"cniVersion": "1.1.0", "interfaces": [{"name": "tap0", "sandbox": "/x"}],
                "ips": [{"address": "192.168.1.2/24", "interface": 0}],
                "routes": [{"dst": "192.168.0.0/16"}], "dns": {"nameservers": ["10.0.0.10"]}}
    chained = Result(RESULT.interfaces, RESULT.ips, RESULT.routes, previous=previous)
    out = chained.to_json("1.1.0")
    assert [i["name"] for i in out["interfaces"]] == ["tap0", "pnabc", "eth0"]  # type: ignore[index]
    assert [ip["interface"] for ip in out["ips"]] == [0, 2]  # type: ignore[index]
    assert out["routes"] == [{"dst": "192.168.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert out["dns"] == {"nameservers": ["10.0.0.10"]}
