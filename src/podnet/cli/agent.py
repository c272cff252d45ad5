"""`podnet agent` (the node daemon) and `podnet install-cni` (podnet for a container runtime)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import podnet
from podnet.cni.types import CURRENT_VERSION, DEFAULT_SOCKET, SUPPORTED_VERSIONS
from podnet.errors import UsageError
from podnet.model.nodelease import DEFAULT_DURATION

PLUGIN_TYPE = "podnet-cni"


def register(sub: Any) -> None:
    agent = sub.add_parser(
        "agent",
        help="run the node agent in this network namespace (the node)",
        description="Register the node, prepare its namespace and serve CNI requests for its "
        "pods. Runs in the network namespace it is started in; refuses the root one.",
    )
    agent.add_argument("--node", required=True, help="the node's name")
    agent.add_argument("--store", metavar="URL", help="store URL (default: $PODNET_STORE, ...)")
    agent.add_argument("--socket", default=DEFAULT_SOCKET, help=f"default {DEFAULT_SOCKET}")
    agent.add_argument(
        "--cluster-cidr",
        type=ipaddress.IPv4Network,
        metavar="CIDR",
        help="initialise the cluster network if the store has none (default 10.244.0.0/16)",
    )
    agent.add_argument("--node-subnet-prefix", type=int, metavar="N", help="default 24")
    agent.add_argument("--mtu", type=int,
                       help="pod MTU when the CNI config has none (default: the underlay's MTU "
                       "less the backend's overhead, 50 for vxlan)")
    agent.add_argument("--backend", choices=("vxlan", "host-gw"), default="vxlan",
                       help="how pods reach other nodes (default vxlan)")
    agent.add_argument("--iface", metavar="IFNAME",
                       help="the underlay interface (default: the default route's)")
    agent.add_argument("--flow-log", metavar="PATH",
                       help="log every policy decision (NFLOG) to PATH, one JSON line each")
    agent.add_argument("--metrics-address", type=address_and_port, metavar="ADDR:PORT",
                       help="serve Prometheus metrics on http://ADDR:PORT/metrics, in the "
                       "node's namespace (default: not served; docs/metrics.md)")
    agent.add_argument("--metrics-cert", type=Path, metavar="FILE",
                       help="serve the metrics over HTTPS with this certificate (PEM; with "
                       "--metrics-key)")
    agent.add_argument("--metrics-key", type=Path, metavar="FILE",
                       help="the private key of --metrics-cert (PEM)")
    agent.add_argument("--metrics-client-ca", type=Path, metavar="FILE",
                       help="answer only scrapers with a client certificate this CA signed")
    agent.add_argument("--node-lease-duration", type=positive(int), default=DEFAULT_DURATION,
                       metavar="SECONDS",
                       help="the node is NotReady when its agent has not renewed its lease for "
                       f"this long (default {DEFAULT_DURATION}; docs/store.md, Node liveness)")
    agent.add_argument("--node-lease-renew-interval", type=positive(float), metavar="SECONDS",
                       help="renew the node lease this often (default: a third of the duration)")
    agent.set_defaults(handler=cmd_agent)

    install = sub.add_parser(
        "install-cni",
        help="write podnet's conflist and install podnet-cni for a container runtime",
    )
    install.add_argument("--conf-dir", required=True, type=Path, help="e.g. /etc/cni/net.d")
    install.add_argument("--bin-dir", required=True, type=Path, help="e.g. /opt/cni/bin")
    install.add_argument("--name", default="podnet", help="network name (default podnet)")
    install.add_argument("--socket", default=DEFAULT_SOCKET, help=f"default {DEFAULT_SOCKET}")
    install.add_argument("--mtu", type=int, help="pod MTU (default: the agent's)")
    install.add_argument(
        "--cni-version", default="1.0.0", choices=SUPPORTED_VERSIONS,
        help=f"conflist version (default 1.0.0, which older runtimes read; {CURRENT_VERSION} "
        "adds STATUS and GC)",
    )
    install.set_defaults(handler=cmd_install_cni)


def cmd_agent(args: argparse.Namespace) -> int:
    from podnet.agent.daemon import AgentConfig, run  # pyroute2 and the store: only when needed
    from podnet.agent.metrics_http import MetricsTls

    tls = None
    if args.metrics_cert or args.metrics_key or args.metrics_client_ca:
        if not (args.metrics_cert and args.metrics_key):
            raise UsageError("--metrics-cert and --metrics-key go together")
        if not args.metrics_address:
            raise UsageError("--metrics-cert needs --metrics-address")
        tls = MetricsTls(args.metrics_cert, args.metrics_key, args.metrics_client_ca)
        tls.context()  # a wrong file fails here, before the node is touched

    interval = args.node_lease_renew_interval
    if interval is not None and interval >= args.node_lease_duration:
        raise UsageError(f"--node-lease-renew-interval {interval:g} must be shorter than "
                         f"--node-lease-duration {args.node_lease_duration}")
    return run(
        AgentConfig(
            node=args.node,
            store_url=args.store,
            socket=args.socket,
            cluster_cidr=args.cluster_cidr,
            subnet_prefix=args.node_subnet_prefix,
            mtu=args.mtu,
            backend=args.backend,
            iface=args.iface,
            flow_log=args.flow_log,
            metrics_address=args.metrics_address,
            metrics_tls=tls,
            node_lease_duration=args.node_lease_duration,
            node_lease_renew_interval=interval,
        )
    )


def address_and_port(text: str) -> tuple[ipaddress.IPv4Address, int]:
    """`192.0.2.10:9470` (`0.0.0.0:PORT`: every address of the node)."""
    host, _, port = text.rpartition(":")
    try:
        address, number = ipaddress.IPv4Address(host), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not ADDR:PORT (192.0.2.10:9470)") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: port {number} is not 1-65535")
    return address, number


def positive(number: Callable[[str], float]) -> Callable[[str], Any]:
    """An argparse type: a number above zero."""
    def parse(text: str) -> float:
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be above 0")
        return value

    return parse


def conflist(name: str, socket: str, cni_version: str, mtu: int | None) -> dict[str, Any]:
    plugin: dict[str, Any] = {"type": PLUGIN_TYPE, "socket": socket}
    if mtu is not None:
        plugin["mtu"] = mtu
    return {"cniVersion": cni_version, "name": name, "plugins": [plugin]}


def plugin_script() -> str:
    """The plugin executable: this interpreter running `podnet.cni.main`, isolated (-I) and
    without `site` (-S), which halves its start-up; podnet.cni needs only the standard library."""
    package_root = Path(podnet.__file__).resolve().parent.parent
    return (
        f"#!{sys.executable} -IS\n"
        "import sys\n\n"
        f"sys.path.insert(0, {str(package_root)!r})\n"
        "from podnet.cni.main import run  # noqa: E402\n\n"
        "run()\n"
    )


def cmd_install_cni(args: argparse.Namespace) -> int:
    args.conf_dir.mkdir(parents=True, exist_ok=True)
    args.bin_dir.mkdir(parents=True, exist_ok=True)
    binary = args.bin_dir / PLUGIN_TYPE
    write_atomically(binary, plugin_script(), mode=0o755)
    conf = args.conf_dir / f"10-{args.name}.conflist"
    body = conflist(args.name, args.socket, args.cni_version, args.mtu)
    write_atomically(conf, json.dumps(body, indent=2) + "\n", mode=0o644)
    print(f"installed {binary} and {conf}")
    return 0


def write_atomically(path: Path, text: str, mode: int) -> None:
    """A runtime may read the file at any moment: never let it see half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
