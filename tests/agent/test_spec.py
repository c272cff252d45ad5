"""CNI spec behaviour of podnet-cni with a running agent: DEL, CHECK, GC, STATUS, restarts."""

from __future__ import annotations

import pytest

from netns import Agent, NetnsFactory, pod_ip, run_cni
from podnet import ipam
from podnet.store import open_store

pytestmark = pytest.mark.netns


def reservations(agent: Agent) -> list[ipam.Reservation]:
    store = open_store(agent.store_url)
    try:
        return [r for pool in store.ip_pools() for r in store.ip_store(pool).reservations()]
    finally:
        store.close()


def endpoints(agent: Agent) -> list[str]:
    store = open_store(agent.store_url)
    try:
        return [r.name for r in store.list("PodEndpoint").items]
    finally:
        store.close()


def host_veths(agent: Agent) -> list[str]:
    return [name for name in agent.node.links() if name.startswith("pn")]


def test_del_releases_everything_and_repeating_it_succeeds(agent: Agent,
                                                           make_netns: NetnsFactory) -> None:
    pod = make_netns("pod")
    assert agent.add("c1", pod, args="K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0").code == 0
    assert endpoints(agent) == ["c1:eth0"]
    assert [r.pod for r in reservations(agent)] == ["shop/web-0"]
    for _ in range(3):
        deleted = agent.delete("c1", pod)
        assert (deleted.code, deleted.output) == (0, {})
    assert (reservations(agent), endpoints(agent), host_veths(agent)) == ([], [], [])
    assert "eth0" not in pod.links()


def test_del_after_the_namespace_is_gone_still_releases_the_address(
    agent: Agent, make_netns: NetnsFactory
) -> None:
    pod = make_netns("pod")
    assert agent.add("c1", pod).code == 0
    make_netns.delete(pod)
    assert agent.delete("c1", pod).code == 0
    assert agent.delete("c1", None).code == 0  # CNI_NETNS is optional on DEL
    assert (reservations(agent), endpoints(agent), host_veths(agent)) == ([], [], [])


def test_add_into_a_missing_namespace_fails_and_leaks_nothing(agent: Agent,
                                                               make_netns: NetnsFactory) -> None:
    pod = make_netns("pod")
    make_netns.delete(pod)
    added = agent.add("c1", pod)
    assert (added.code, added.error_code) == (1, 3)
    assert (reservations(agent), endpoints(agent), host_veths(agent)) == ([], [], [])


def test_add_twice_fails_and_leaves_the_first_pod_working(agent: Agent,
                                                          make_netns: NetnsFactory) -> None:
    pod = make_netns("pod")
    ip = pod_ip(agent.add("c1", pod))
    assert agent.add("c1", pod).code == 1
    other = make_netns("other")
    assert agent.add("c2", other).code == 0
    assert other.ping(ip)


def test_add_fails_when_the_pod_has_the_interface_already_and_leaks_nothing(
    agent: Agent, make_netns: NetnsFactory
) -> None:
    pod = make_netns("pod")
    assert agent.add("c1", pod).code == 0
    clash = agent.add("c2", pod)  # another attachment asking for the same eth0
    assert clash.code == 1 and "exists" in str(clash.output["msg"])
    assert [r.attachment.container_id for r in reservations(agent)] == ["c1"]
    assert endpoints(agent) == ["c1:eth0"] and len(host_veths(agent)) == 1


def test_check_passes_on_a_healthy_pod_and_fails_on_a_broken_one(
    agent: Agent, make_netns: NetnsFactory
) -> None:
    a, b = make_netns("a"), make_netns("b")
    added_a, added_b = agent.add("ca", a), agent.add("cb", b)
    assert agent.check("ca", a, added_a.output).code == 0
    mixed_up = agent.check("ca", a, added_b.output)  # prevResult of another pod
    assert mixed_up.code == 1 and "lacks address" in str(mixed_up.output["details"])
    a.run("ip", "route", "del", "default")  # the pod loses its way out
    broken = agent.check("ca", a, added_a.output)
    assert broken.code == 1 and "default route" in str(broken.output["details"])
    agent.node.run("ip", "route", "del", f"{pod_ip(added_b)}/32")  # the node forgets b
    broken = agent.check("cb", b, added_b.output)
    assert broken.code == 1 and "does not route" in str(broken.output["details"])


def test_gc_releases_what_the_runtime_no_longer_lists(agent: Agent,
                                                      make_netns: NetnsFactory) -> None:
    pods = [make_netns(f"p{i}") for i in range(3)]
    for i, pod in enumerate(pods):
        assert agent.add(f"c{i}", pod).code == 0
    # A veth no endpoint owns, as an ADD that died half-way leaves it.
    leaked = make_netns("leaked")
    agent.node.run("ip", "link", "add", "pn0123456789a", "type", "veth", "peer", "eth0",
                   "netns", leaked.name)
    conf = agent.conf(**{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    assert run_cni("GC", conf).code == 0
    assert endpoints(agent) == ["c1:eth0"]
    assert [r.attachment for r in reservations(agent)] == [ipam.Attachment("c1", "eth0")]
    assert len(host_veths(agent)) == 1


def test_status_is_ready_while_the_agent_runs(agent: Agent) -> None:
    assert run_cni("STATUS", agent.conf()).code == 0
    agent.stop()
    stopped = run_cni("STATUS", agent.conf())
    assert (stopped.code, stopped.error_code) == (1, 50)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_older_configurations_get_results_in_their_version(
    agent: Agent, make_netns: NetnsFactory, version: str
) -> None:
    agent.cni_version = version
    pod = make_netns("pod")
    added = agent.add("c1", pod)
    assert added.code == 0 and added.output["cniVersion"] == version
    assert agent.check("c1", pod, added.output).code == 0
    assert agent.delete("c1", pod).code == 0


def test_a_restarted_agent_keeps_pods_working_and_knows_them(
    agent: Agent, make_netns: NetnsFactory
) -> None:
    a, b = make_netns("a"), make_netns("b")
    added = agent.add("ca", a)
    ip_a, ip_b = pod_ip(added), pod_ip(agent.add("cb", b))
    agent.stop()
    assert b.ping(ip_a), "pods lost their network when the agent stopped"
    agent.start()
    assert agent.check("ca", a, added.output).code == 0
    c = make_netns("c")
    ip_c = pod_ip(agent.add("cc", c))
    assert ip_c not in (ip_a, ip_b)
    assert agent.delete("ca", a).code == 0
    assert sorted(endpoints(agent)) == ["cb:eth0", "cc:eth0"]
