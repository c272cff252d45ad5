"""The CNI commands, side by side as in the reference ptp plugin: ADD, DEL, CHECK, GC, STATUS.

Each handler takes the invocation, the validated configuration and the agent's `Env`, and either
returns what the plugin prints or raises. ADD undoes what it did if a later step fails; DEL is
best-effort and idempotent (SPEC: "plugins should always complete a DEL action without error
to the fullest extent possible"); GC releases what the runtime no longer lists.
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import ExitStack

from podnet import ipam
from podnet.agent import wiring
from podnet.agent.endpoints import Endpoint, check_problems, leaked_veths, stale
from podnet.agent.env import Env
from podnet.cni import errors
from podnet.cni.errors import CniError
from podnet.cni.types import CniArgs, Interface, NetConf, Result
from podnet.datapath import veth
from podnet.datapath.routes import DEFAULT, GATEWAY
from podnet.datapath.veth import host_ifname
from podnet.errors import PodnetError
from podnet.store import StoreError

log = logging.getLogger(__name__)


def cmd_add(args: CniArgs, conf: NetConf, env: Env) -> Result:
    """ADD: allocate, wire the pod, record the endpoint; undo what was done if a step fails."""
    attachment = ipam.Attachment(args.container_id, args.ifname)
    namespace, name = args.pod() or ("", "")
    with env.attachment_lock(args.container_id, args.ifname), ExitStack() as undo:
        if env.endpoint(args.container_id, args.ifname) is not None:
            # SPEC: a runtime should not ADD twice; the first ADD's pod must stay intact.
            raise CniError(
                errors.DATAPATH_FAILURE,
                "attachment already exists",
                f"{args.container_id}/{args.ifname} was added before; DEL it first",
            )
        ip = env.allocator.allocate(attachment, pod=f"{namespace}/{name}" if name else None)
        env.metrics.allocations.inc()
        undo.callback(release, env, attachment, "rollback")
        ep = Endpoint(
            node=env.node,
            container_id=args.container_id,
            ifname=args.ifname,
            ip=ipaddress.IPv4Address(ip),
            host_ifname=host_ifname(args.container_id, args.ifname),
            netns=args.netns,
            mtu=conf.mtu or env.mtu,
            pod_namespace=namespace,
            pod_name=name,
        )
        wired = wiring.wire_pod(env.netlink(), ep)
        undo.callback(wiring.unwire_pod, env.netlink(), ep.host_ifname)
        env.record(ep)
        undo.callback(env.forget, args.container_id, args.ifname)
        env.admit(ep)  # isolated, if a policy selects it, before the runtime sees the pod
        undo.pop_all()  # success: keep everything
    log.info("%s/%s: %s on %s", args.container_id, args.ifname, ep.ip, ep.host_ifname)
    return Result(
        interfaces=[
            Interface(wired.host.name, wired.host.mac, wired.host.mtu),
            Interface(wired.pod.name, wired.pod.mac, wired.pod.mtu, sandbox=args.netns),
        ],
        ips=[(ipaddress.IPv4Interface(f"{ep.ip}/32"), GATEWAY, 1)],
        routes=[(DEFAULT, GATEWAY)],
        previous=conf.prev_result(),
    )


def cmd_del(args: CniArgs, conf: NetConf, env: Env) -> None:
    """DEL: remove the veth, release the address, drop the endpoint; absence is success."""
    failures = []
    with env.attachment_lock(args.container_id, args.ifname):
        ep = env.endpoint(args.container_id, args.ifname)
        veth_name = ep.host_ifname if ep else host_ifname(args.container_id, args.ifname)
        steps = (
            ("remove veth", lambda: wiring.unwire_pod(env.netlink(), veth_name)),
            ("release address", lambda: release(
                env, ipam.Attachment(args.container_id, args.ifname), "del")),
            ("drop endpoint", lambda: env.forget(args.container_id, args.ifname)),
        )
        for what, step in steps:
            try:
                step()
            except PodnetError as err:  # go on: the other steps may still succeed
                log.warning("DEL %s/%s: %s: %s", args.container_id, args.ifname, what, err)
                failures.append(f"{what}: {err}")
    if failures:
        raise CniError(errors.DATAPATH_FAILURE, "DEL incomplete", "; ".join(failures))


def cmd_check(args: CniArgs, conf: NetConf, env: Env) -> None:
    """CHECK: the pod's interface, address and routes and the node's route are as ADD left them."""
    ep = env.endpoint(args.container_id, args.ifname)
    if ep is None:
        raise CniError(
            errors.CHECK_FAILED, "no such attachment", f"{args.container_id}/{args.ifname}"
        )
    observed = wiring.observe_pod(env.rtnl(), ep)
    problems = check_problems(
        ep,
        observed.pod_link,
        observed.pod_routes,
        observed.host_link,
        observed.host_oif,
        expected_ips=prev_result_ips(conf),
    )
    held = env.allocator.store.get_by_owner(ep.attachment)
    if ep.ip not in held:
        problems.append(f"the address reservation of {ep.ip} is gone")
    if problems:
        raise CniError(errors.CHECK_FAILED, "pod network is not as set up", "; ".join(problems))


def cmd_gc(args: CniArgs, conf: NetConf, env: Env) -> None:
    """GC: release endpoints, veths and addresses of attachments the runtime no longer lists,
    and veths no endpoint owns (an ADD that died half-way)."""
    valid = conf.valid_attachments()
    failures = []
    node = env.netlink()
    with env.all_attachments_locked():
        recorded = env.endpoints()
        for ep in stale(recorded, valid):
            try:
                wiring.unwire_pod(node, ep.host_ifname)
                env.forget(ep.container_id, ep.ifname)
            except PodnetError as err:
                failures.append(f"{ep.name}: {err}")
        kept = [ep for ep in recorded if (ep.container_id, ep.ifname) in valid]
        for name in leaked_veths(kept, veth.list_host_veths(env.rtnl())):
            try:
                wiring.unwire_pod(node, name)
            except PodnetError as err:
                failures.append(f"{name}: {err}")
        released = env.allocator.gc({ipam.Attachment(cid, ifname) for cid, ifname in valid})
        env.metrics.released("gc", len(released))
    log.info("GC: released %d addresses", len(released))
    if failures:
        raise CniError(errors.DATAPATH_FAILURE, "GC incomplete", "; ".join(failures))


def cmd_status(args: CniArgs, conf: NetConf, env: Env) -> None:
    """STATUS: ready while the store answers and the node's subnet has a free address (SPEC:
    else code 50)."""
    try:
        used = len(env.allocator.reservations())
    except StoreError as err:
        raise CniError(errors.NOT_AVAILABLE, "store unavailable", str(err)) from err
    if used >= len(env.allocator.range):
        raise CniError(
            errors.NOT_AVAILABLE, "no free pod address", f"{env.lease.subnet} is full ({used})"
        )


def release(env: Env, attachment: ipam.Attachment, reason: str) -> None:
    """Free the attachment's address, counted under `reason` (del, rollback)."""
    env.metrics.released(reason, len(env.allocator.release(attachment)))


def prev_result_ips(conf: NetConf) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses prevResult puts inside the pod (on an interface with a `sandbox`, or
    on none): CHECK requires each of them on the pod's interface."""
    prev = conf.raw.get("prevResult")
    if not isinstance(prev, dict):
        return []
    try:
        interfaces = prev.get("interfaces") or []
        out = []
        for ip in prev.get("ips") or []:
            index = ip.get("interface")
            iface = interfaces[index] if isinstance(index, int) else {}
            address = ipaddress.ip_interface(ip["address"])
            if (index is None or iface.get("sandbox")) and address.version == 4:
                out.append(ipaddress.IPv4Interface(address))
        return out
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:
        raise CniError(errors.DECODING_FAILURE, "cannot read prevResult", str(err)) from err


HANDLERS = {
    "ADD": cmd_add,
    "DEL": cmd_del,
    "CHECK": cmd_check,
    "GC": cmd_gc,
    "STATUS": cmd_status,
}
