"""`podnet lab up|down|status|exec|probe|verify|flows|report|metrics|list`: an emulated cluster."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from podnet.cli.output import is_tty, print_json, print_marked, print_table
from podnet.cli.policy import add_files, add_probe_options
from podnet.cli.report import register_lab as register_report
from podnet.errors import PodnetError, UsageError
from podnet.model import Manifest, ManifestError, Problem, read_manifests
from podnet.model.lab import Lab

if TYPE_CHECKING:  # podnet.lab is imported by the handlers that use it, not at start-up
    from podnet.lab.state import LabPaths


def register(sub: Any) -> None:
    lab = sub.add_parser("lab", help="an emulated cluster in network namespaces")
    verbs = lab.add_subparsers(dest="verb", metavar="VERB", required=True)

    up = verbs.add_parser("up", help="bring up the lab and workloads the files describe")
    add_files(up)
    up.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    up.set_defaults(handler=cmd_up)

    down = verbs.add_parser("down", help="remove a lab and everything it made")
    which = down.add_mutually_exclusive_group()
    which.add_argument("--name", "--lab", dest="lab", help="the lab (default: the only one)")
    which.add_argument("--all", action="store_true", help="every lab on this machine")
    down.set_defaults(handler=cmd_down)

    status = verbs.add_parser("status", help="the lab's nodes (Ready or not, subnet) and pods")
    add_lab(status)
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    status.set_defaults(handler=cmd_status)

    listing = verbs.add_parser("list", help="labs running on this machine")
    listing.set_defaults(handler=cmd_list)

    exec_ = verbs.add_parser("exec", help="run a command inside a pod (or a node)")
    add_lab(exec_)
    exec_.add_argument("--node", help="run in this node's namespace instead of a pod's")
    exec_.add_argument("argv", nargs=argparse.REMAINDER, metavar="NS/POD -- COMMAND...")
    exec_.set_defaults(handler=cmd_exec)

    probe = verbs.add_parser("probe", help="connect from every pod to every pod and port")
    add_probes(probe)
    probe.set_defaults(handler=cmd_probe)

    verify = verbs.add_parser("verify", help="prove the kernel's verdicts equal the engine's")
    add_probes(verify)
    verify.set_defaults(handler=cmd_verify)

    flows = verbs.add_parser("flows", help="recent connections and the policy rule that "
                             "decided each (or the rules' counters)")
    add_lab(flows)
    flows.add_argument("--verdict", choices=("allowed", "denied"), help="only these")
    flows.add_argument("--since", type=duration, metavar="DURATION",
                       help="only the last 30s, 5m, 2h ...")
    flows.add_argument("--pod", metavar="NS/NAME", help="only from or to this pod")
    flows.add_argument("--last", type=int, default=20, metavar="N",
                       help="the newest N (default 20; 0: all)")
    flows.add_argument("--counters", action="store_true",
                       help="instead: packets counted per policy rule and default deny, per node")
    flows.add_argument("-o", "--output", choices=("table", "json"), default="table")
    flows.set_defaults(handler=cmd_flows)

    register_report(verbs, add_probes)

    metrics = verbs.add_parser("metrics", help="the agents' Prometheus metrics, each sample "
                               "labelled with its node")
    add_lab(metrics)
    metrics.add_argument("--node", action="append", help="only this node (repeatable)")
    metrics.add_argument("prefix", nargs="?", default="", metavar="PREFIX",
                         help="only the metrics whose name starts with PREFIX (podnet_ipam)")
    metrics.set_defaults(handler=cmd_metrics)

    kubelet = verbs.add_parser("kubelet", help=argparse.SUPPRESS)  # started by `lab up`
    add_lab(kubelet)
    kubelet.set_defaults(handler=cmd_kubelet)


def add_lab(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", help="the lab (default: the only one running)")


def add_probes(parser: argparse.ArgumentParser) -> None:
    add_lab(parser)
    add_probe_options(parser, kinds="TCP,UDP")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per probe")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")


def split_lab(manifests: Sequence[Manifest]) -> tuple[Lab, list[Manifest]]:
    """The `kind: Lab` object (defaults if none) and the workloads."""
    from podnet.model import decode

    labs = [m for m in manifests if m.kind == "Lab"]
    if len(labs) > 1:
        raise ManifestError([Problem(m.source, m.title, "", "only one Lab per `lab up`")
                             for m in labs[1:]])
    lab = decode(labs[0]) if labs else Lab()
    assert isinstance(lab, Lab)
    return lab, [m for m in manifests if m.kind != "Lab"]


def cmd_up(args: argparse.Namespace) -> int:
    from podnet.lab import cluster
    from podnet.model import build_cluster

    manifests = read_manifests(args.files)
    lab, workloads = split_lab(manifests)
    build_cluster(workloads)  # every problem reported before anything is made
    with _progress() as report:
        paths = cluster.up(lab, workloads, report, args.timeout)
    show_lab(paths, lab)
    print(f"\nlab {lab.name} is up. Next: podnet lab probe --port ...; "
          f"podnet get pods -A -o wide; podnet lab down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from podnet.lab.state import choose

    paths = choose(args.lab)
    lab = paths.load()
    if args.output == "json":
        nodes, pods = lab_status(paths, lab)
        print_json({"lab": lab.name, "backend": lab.backend, "nodes": nodes, "pods": pods})
    else:
        show_lab(paths, lab)
    return 0


def lab_status(paths: LabPaths, lab: Lab) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lab's nodes with their readiness (as `get nodes`), and its pods."""
    from podnet.cli.resources import node_status, nodes, ready_condition
    from podnet.lab.state import node_address
    from podnet.store import open_store

    with open_store(paths.store_url) as store:
        known = {r.name: r.body for r in nodes(store, None, ())}
        pods = store.list("Pod").items
    rows = []
    for i, name in enumerate(lab.nodes):
        body = known.get(name, {})
        status, renewed = node_status(body)
        rows.append({"name": name, "status": status, "renewed": renewed,
                     "lastRenewal": ready_condition(body).get("lastHeartbeatTime"),
                     "address": node_address(i),
                     "podCIDR": (body.get("spec") or {}).get("podCIDR"),
                     "netns": paths.node(name)})
    return rows, [{"name": f"{p.key.namespace}/{p.key.name}",
                   "node": (p.body.get("spec") or {}).get("nodeName"),
                   "ip": (p.body.get("status") or {}).get("podIP")} for p in pods]


def show_lab(paths: LabPaths, lab: Lab) -> None:
    nodes, pods = lab_status(paths, lab)
    print_table(("node", "status", "renewed", "address", "pod subnet", "namespace"), [
        (n["name"], n["status"], n["renewed"], n["address"], n["podCIDR"] or "-", n["netns"])
        for n in nodes], title=f"lab {lab.name}: {lab.backend}")
    print()
    print_table(("pod", "node", "ip"), [(p["name"], p["node"] or "-", p["ip"] or "-")
                                        for p in pods])


class _progress:
    """`report(what, done, total)`: a progress bar on a terminal, quiet otherwise."""

    def __enter__(self) -> Any:
        if not is_tty():
            return lambda what, done, total: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.start()
        self._tasks: dict[str, Any] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in self._tasks:
                self._tasks[what] = self._bar.add_task(f"{what:6}", total=total)
            self._bar.update(self._tasks[what], completed=done, total=total)

        return report

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "_bar"):
            self._bar.stop()


def cmd_down(args: argparse.Namespace) -> int:
    from podnet.lab import cluster
    from podnet.lab.state import choose

    removed = cluster.down_all() if args.all else cluster.down(choose(args.lab))
    for line in removed:
        print(f"removed {line}")
    if not removed:
        print("nothing to remove")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from podnet.lab.state import labs

    names = labs()
    print_table(("lab", "nodes", "backend"), [_describe(n) for n in names])
    return 0


def _describe(name: str) -> tuple[str, str, str]:
    try:
        from podnet.lab.state import LabPaths

        lab = LabPaths(name).load()
    except PodnetError:
        return name, "?", "(half removed: podnet lab down --name " + name + ")"
    return name, ",".join(lab.nodes), lab.backend


def cmd_exec(args: argparse.Namespace) -> int:
    from podnet.lab.state import choose

    paths = choose(args.lab)
    argv = list(args.argv)
    target = args.node
    if not args.node:
        if not argv or "/" not in argv[0]:
            raise UsageError("name a pod (NS/POD) or a node (--node NAME)")
        target = argv.pop(0)
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        raise UsageError("no command given (podnet lab exec x/a -- ping -c1 10.244.1.2)")
    netns = paths.node(args.node) if args.node else _pod_netns(paths, target)
    path = paths.netns_path(netns)
    if not os.path.exists(path):
        raise PodnetError(f"{target}: no such pod or node in lab {paths.name}")
    done = subprocess.run(["nsenter", f"--net={path}", *command], check=False)
    return done.returncode


def _pod_netns(paths: LabPaths, pod: str) -> str:
    from podnet.store import Key, NotFound, open_store

    namespace, name = pod.split("/", 1)
    with open_store(paths.store_url) as store:
        try:
            body = store.get(Key("Pod", namespace, name)).body
        except NotFound:
            raise PodnetError(f"pod {pod} not found in lab {paths.name}") from None
    spec = body.get("spec") or {}
    return paths.node(spec["nodeName"]) if spec.get("hostNetwork") else \
        paths.pod(namespace, name)


def cmd_probe(args: argparse.Namespace) -> int:
    from podnet.lab.pods import probe_all
    from podnet.lab.probe import probe_json, truth_tables
    from podnet.lab.state import choose

    paths = choose(args.lab)
    pods, results = probe_all(paths, args.port, args.protocol, args.timeout)
    if args.output == "json":
        print_json(probe_json(results, pods))
        return 0
    for i, ((port, protocol), table) in enumerate(truth_tables(results, pods).items()):
        if i:
            print()
        print(f"{protocol}/{port}  (rows: from, columns: to; . answered, X no answer)")
        print_marked(table.pretty())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from podnet.lab.state import choose
    from podnet.lab.verify import verify

    pods, results = verify(choose(args.lab), args.port, args.protocol, args.timeout)
    mismatches = sum(len(v.mismatches) for v in results)
    if args.output == "json":
        print_json({"pods": pods, "results": [v.to_json() for v in results]})
        return 1 if mismatches else 0
    for i, v in enumerate(results):
        if i:
            print()
        print(f"{v.probe}: expected (engine)")
        print_marked(v.expected.pretty("  "))
        print(f"{v.probe}: observed (kernel)")
        print_marked(v.observed.pretty("  "))
        if v.retried:
            why = ", ".join(f"{n} {error}" for error, n in sorted(v.retried_for.items()))
            print(f"  ({v.retried} allowed probes met silence and were asked again: {why})")
        for src, dst in v.mismatches:
            print(f"  MISMATCH {src} -> {dst}: engine says "
                  f"{'allowed' if v.expected.get(src, dst) else 'denied'}, kernel "
                  f"{'let it through' if v.observed.get(src, dst) else 'dropped it'}")
    total = len(pods) ** 2 * len(results)
    print(f"\n{total - mismatches} of {total} verdicts agree; {mismatches} mismatches")
    return 1 if mismatches else 0


def duration(text: str) -> float:
    """`30s`, `5m`, `2h`, or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a duration (30s, 5m, 2h)") from None


def cmd_flows(args: argparse.Namespace) -> int:
    import time

    from podnet.lab.flows import lab_flows, node_counters
    from podnet.lab.state import choose

    paths = choose(args.lab)
    if args.counters:
        counters = node_counters(paths)
        if args.output == "json":
            print_json(counters)
        else:
            print_table(("node", "rule", "packets"), [
                (node, rule, packets) for node, rules in counters.items()
                for rule, packets in sorted(rules.items())])
        return 0
    since = time.time() - args.since if args.since is not None else None
    flows = lab_flows(paths, args.verdict, since, args.pod, args.last)
    if args.output == "json":
        print_json([f.to_json() for f in flows])
        return 0
    print_table(("time", "node", "source", "destination", "protocol", "verdict", "by"), [
        (doc["time"][11:23], doc["node"], _endpoint(doc["source"]),
         _endpoint(doc["destination"]), doc["protocol"], doc["verdict"],
         _decided_by(doc)) for doc in (f.to_json() for f in flows)])
    return 0


def _endpoint(end: dict[str, Any]) -> str:
    where = end["pod"] or end["ip"]
    return f"{where}:{end['port']}" if end["port"] is not None else where


def _decided_by(doc: dict[str, Any]) -> str:
    if doc["rule"] == "default deny":
        return f"default deny {doc['direction']} ({', '.join(doc['policies'])})"
    if doc["verdict"] == "allowed":
        return f"{doc['policies'][0]} {doc['rule']}"
    return str(doc["rule"])


def cmd_metrics(args: argparse.Namespace) -> int:
    from podnet.lab.metrics import lab_metrics, merge
    from podnet.lab.state import choose

    texts, failures = lab_metrics(choose(args.lab), args.node)
    print(merge(texts, args.prefix), end="")
    for err in failures:
        print(f"podnet: {err}", file=sys.stderr)
    return 1 if failures else 0


def cmd_kubelet(args: argparse.Namespace) -> int:
    from podnet.lab import kubelet
    from podnet.lab.state import choose

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    kubelet.run(choose(args.lab), stop)
    return 0
