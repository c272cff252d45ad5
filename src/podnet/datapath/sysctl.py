"""The sysctls of a routed node: forwarding (each pod veth's proxy ARP is set by netlink, in
the batch of its route: `routes.answer_arp`).

`/proc/sys/net` shows the network namespace of the thread that opens it, so these writes land
in the agent's own namespace (the node); `assert_not_root` runs before each one.
"""

from __future__ import annotations

from pathlib import Path

from podnet.datapath.netns import DatapathError, assert_not_root, current_netns

PROC_SYS = Path("/proc/sys")


def write_sysctl(key: str, value: str) -> None:
    """Set `net.ipv4.…` style `key` in the caller's (non-root) namespace."""
    assert_not_root(current_netns())
    path = PROC_SYS / key.replace(".", "/")
    try:
        path.write_text(value)
    except OSError as err:
        raise DatapathError(f"cannot set {key}={value}: {err}") from err


def read_sysctl(key: str) -> str:
    return (PROC_SYS / key.replace(".", "/")).read_text().strip()


def enable_forwarding() -> None:
    """The node routes every pod packet, same-node ones too."""
    write_sysctl("net.ipv4.ip_forward", "1")
