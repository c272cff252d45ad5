"""`podnet install-cni` and `podnet agent` as a user meets them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from netns import PODNET
from podnet.datapath.netns import current_netns, is_root


def test_install_cni_writes_a_conflist_and_a_plugin_that_runs(tmp_path: Path) -> None:
    net_d, bin_dir = tmp_path / "net.d", tmp_path / "bin"
    done = subprocess.run([PODNET, "install-cni", "--conf-dir", str(net_d), "--bin-dir",
                           str(bin_dir), "--socket", "/run/x/agent.sock", "--mtu", "1400"],
                          capture_output=True, text=True, check=True)
    assert "installed" in done.stdout
    conflist = json.loads((net_d / "10-podnet.conflist").read_text())
    assert conflist == {"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "podnet-cni", "socket": "/run/x/agent.sock", "mtu": 1400}]}
    plugin = bin_dir / "podnet-cni"
    assert os.access(plugin, os.X_OK)
    version = subprocess.run([str(plugin)], input=b'{"cniVersion": "1.0.0"}',
                             env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=True)
    assert json.loads(version.stdout)["cniVersion"] == "1.0.0"
    status = subprocess.run([str(plugin)], input=json.dumps({**conflist, **conflist["plugins"][0],
                                                            "cniVersion": "1.1.0"}).encode(),
                            env={"CNI_COMMAND": "STATUS"}, capture_output=True, check=False)
    assert json.loads(status.stdout)["code"] == 50


@pytest.mark.netns
def test_the_agent_refuses_the_root_network_namespace(tmp_path: Path) -> None:
    if not is_root(current_netns()):
        pytest.skip("the test process is not in the root network namespace")
    done = subprocess.run([PODNET, "agent", "--node", "n1", "--store",
                           f"sqlite://{tmp_path}/state.db", "--socket",
                           str(tmp_path / "agent.sock")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "refusing to change the root network namespace" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state.db").exists()


@pytest.mark.parametrize(("options", "error"), [
    (["--node-lease-duration", "0"], "'0': must be above 0"),
    (["--node-lease-renew-interval", "soon"], "'soon': not a number"),
    (["--node-lease-duration", "5", "--node-lease-renew-interval", "5"],
     "--node-lease-renew-interval 5 must be shorter than --node-lease-duration 5"),
], ids=["zero duration", "interval not a number", "interval as long as the lease"])
def test_bad_node_lease_options_are_usage_errors(tmp_path: Path, options: list[str],
                                                 error: str) -> None:
    done = subprocess.run([PODNET, "agent", "--node", "n1", "--store",
                           f"sqlite://{tmp_path}/state.db", *options],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert error in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state.db").exists()
