"""A real runtime: podman (CNI backend) runs containers whose network comes from podnet-cni.

Podman runs in the node namespace (`nsenter --net`, not `ip netns exec`, which remounts /sys
and leaves runc without cgroups), with a containers.conf, storage and CNI directories of the
test's own, and an image imported from busybox-static (no registry). See reference/podman.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns import PODNET, Agent, NetnsFactory, pod_ip
from podnet.store import open_store

pytestmark = [pytest.mark.netns, pytest.mark.podman]

BUSYBOX = Path("/bin/busybox")
IMAGE = "localhost/pn-bb:test"
APPLETS = ("sh", "ip", "ping", "wget", "nc", "httpd", "sleep", "cat")
PODMAN_DEFAULT_CONFLIST = Path("/etc/cni/net.d/87-podman-bridge.conflist")


def containers_conf(path: Path, plugins: Path, net_d: Path) -> None:
    path.write_text(f"""[containers]
default_ulimits = []
pids_limit = 0
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
[engine.runtimes]
runc = ["/usr/sbin/runc"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["{plugins}", "/usr/lib/cni"]
network_config_dir = "{net_d}"
""")


def busybox_rootfs(tar_path: Path) -> None:
    """A rootfs with /bin/busybox and its applets, as a tarball podman can import."""
    with tarfile.open(tar_path, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for directory in ("tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)


class Podman:
    """podman with private storage, run inside the node namespace."""

    def __init__(self, node_path: str, work: Path) -> None:
        self.node_path = node_path
        self.root, self.runroot = work / "root", work / "runroot"
        self.env = {**os.environ, "CONTAINERS_CONF": str(work / "containers.conf")}

    def __call__(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={self.node_path}", "podman", "--root", str(self.root),
             "--runroot", str(self.runroot), *argv],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )


@pytest.fixture
def podman(agent: Agent) -> Iterator[Podman]:
    """Name: podman. Scope: function. Depends: agent. Podman configured to use podnet-cni."""
    if not shutil.which("podman") or not shutil.which("runc") or not BUSYBOX.exists():
        pytest.skip("needs podman, runc and busybox-static (scripts/setup installs them)")
    work = Path(tempfile.mkdtemp(prefix="pnpm-"))  # podman refuses a runroot over 50 characters
    plugins, net_d = work / "cni-bin", work / "net.d"
    subprocess.run([PODNET, "install-cni", "--conf-dir", str(net_d), "--bin-dir", str(plugins),
                    "--socket", agent.socket, "--name", "podnet"], check=True,
                   capture_output=True)
    containers_conf(work / "containers.conf", plugins, net_d)
    busybox_rootfs(work / "rootfs.tar")
    had_default_conflist = PODMAN_DEFAULT_CONFLIST.exists()
    runner = Podman(agent.node.path, work)
    try:
        imported = runner("import", str(work / "rootfs.tar"), IMAGE)
        assert imported.returncode == 0, imported.stderr
        yield runner
    finally:
        runner("rm", "-af")
        runner("rmi", "-af")
        if not had_default_conflist:
            with contextlib.suppress(FileNotFoundError):
                PODMAN_DEFAULT_CONFLIST.unlink()
        subprocess.run(["umount", "-R", str(runner.root / "overlay")], capture_output=True,
                       check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_a_podman_container_reaches_a_pod_and_releases_its_address(
    agent: Agent, podman: Podman, make_netns: NetnsFactory
) -> None:
    # b: a pod started the way the lab starts pods, for the container to reach by IP.
    b = make_netns("b")
    ip_b = pod_ip(agent.add("cb", b))
    ran = podman("run", "--rm", "--network", "podnet", IMAGE, "sh", "-c",
                 f"ip -4 addr show eth0 && ping -c1 -W2 {ip_b}")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert "10.244." in ran.stdout and "1 packets received" in ran.stdout
    store = open_store(agent.store_url)
    try:
        held = [r.attachment.container_id
                for pool in store.ip_pools() for r in store.ip_store(pool).reservations()]
        assert held == ["cb"], "the container's address was not released by podman's DEL"
        assert [r.name for r in store.list("PodEndpoint").items] == ["cb:eth0"]
    finally:
        store.close()
