"""Batched rtnetlink: requests built from pyroute2's message classes, sent at once, each acked.

Design note. pyroute2's `IPRoute` runs every request through its argument processors and an
asyncio loop: about a millisecond of Python per request, more than the kernel takes, and a pod's
ADD needs a dozen. Its message classes (`ifinfmsg`, `ifaddrmsg`, `ndmsg`, `rtmsg`) encode in tens
of microseconds, so the hot path builds those itself and sends a whole step (say, the five
changes inside the pod) in one `send`. Every request carries NLM_F_ACK; the kernel answers each in
order, and `Rtnl.run` waits for all answers and raises for the first refused request, naming it.
Reads that are not on the hot path (CHECK, resync) keep using `IPRoute`.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import struct
from dataclasses import dataclass

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    nlmsg,
)
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from podnet.datapath.netns import DatapathError, route_socket

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_ERRNO = struct.Struct("=i")
IFF_UP = 1
AF_INET = 2
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
_CREATE = NLM_F_CREATE | NLM_F_EXCL
_UPSERT = NLM_F_CREATE | NLM_F_REPLACE


class NetlinkRefused(DatapathError):
    """The kernel refused one request of a batch; `errno` says why."""

    def __init__(self, what: str, errno: int) -> None:
        super().__init__(f"{what}: {os.strerror(errno)}")
        self.errno = errno


@dataclass(frozen=True)
class Request:
    """One rtnetlink request and what it is for (for the error message)."""

    what: str
    msg: nlmsg
    kind: int
    flags: int = 0


def _build(request: Request, sequence: int) -> bytes:
    msg = request.msg
    msg["header"]["type"] = request.kind
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | request.flags
    msg["header"]["sequence_number"] = sequence
    msg.encode()
    return bytes(msg.data)


class Rtnl:
    """A NETLINK_ROUTE socket that runs batches of requests; one per thread, not shared."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.bind((0, 0))
        self._sequence = itertools.count(1)

    def run(self, *requests: Request) -> list[ifinfmsg]:
        """Send `requests` at once; wait for every answer. Returns the links that GETs read."""
        pending = {next(self._sequence): request for request in requests}
        try:
            self.sock.send(b"".join(_build(r, seq) for seq, r in pending.items()))
        except OSError as err:
            raise DatapathError(f"cannot send to the kernel: {err}") from err
        replies: list[ifinfmsg] = []
        failure: NetlinkRefused | None = None
        while pending:
            try:
                data = self.sock.recv(1 << 16)
            except OSError as err:
                raise DatapathError(f"cannot read the kernel's answer: {err}") from err
            offset = 0
            while offset < len(data):
                length, kind, _, sequence, _ = _HEADER.unpack_from(data, offset)
                if kind == NLMSG_ERROR and sequence in pending:
                    (code,) = _ERRNO.unpack_from(data, offset + _HEADER.size)
                    request = pending.pop(sequence)
                    if code and failure is None:
                        failure = NetlinkRefused(request.what, -code)
                elif kind == RTM_NEWLINK and sequence in pending:
                    reply = ifinfmsg(data[offset:offset + length])
                    reply.decode()
                    replies.append(reply)
                offset += (length + 3) & ~3
        if failure is not None:
            raise failure
        return replies

    def close(self) -> None:
        self.sock.close()


def _message(cls: type[nlmsg], fields: dict[str, int], attrs: list[tuple[str, object]]) -> nlmsg:
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    return msg


def new_veth(host: str, mac: str, mtu: int, peer: str, peer_netns_fd: int) -> Request:
    """The pair, host end up with `mac`, the peer created straight inside another namespace."""
    peer_attrs = [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_netns_fd), ("IFLA_MTU", mtu)]
    linkinfo = {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {
        "attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]}
    msg = _message(ifinfmsg, {"flags": IFF_UP, "change": IFF_UP}, [
        ("IFLA_IFNAME", host), ("IFLA_ADDRESS", mac), ("IFLA_MTU", mtu),
        ("IFLA_LINKINFO", linkinfo)])
    return Request(f"create veth {host} with peer {peer}", msg, RTM_NEWLINK, _CREATE)


def get_link(name: str) -> Request:
    return Request(f"look up {name}", _message(ifinfmsg, {}, [("IFLA_IFNAME", name)]),
                   RTM_GETLINK)


def delete_link(name: str) -> Request:
    return Request(f"delete {name}", _message(ifinfmsg, {}, [("IFLA_IFNAME", name)]),
                   RTM_DELLINK)


def link_up(index: int) -> Request:
    msg = _message(ifinfmsg, {"index": index, "flags": IFF_UP, "change": IFF_UP}, [])
    return Request(f"bring up interface {index}", msg, RTM_NEWLINK)


def add_address(index: int, address: ipaddress.IPv4Address, prefixlen: int) -> Request:
    msg = _message(ifaddrmsg, {"family": AF_INET, "prefixlen": prefixlen, "index": index},
                   [("IFA_LOCAL", str(address)), ("IFA_ADDRESS", str(address))])
    return Request(f"add {address}/{prefixlen} to interface {index}", msg, RTM_NEWADDR, _CREATE)


def pin_neighbour(index: int, address: ipaddress.IPv4Address, mac: str) -> Request:
    msg = _message(ndmsg, {"family": AF_INET, "ifindex": index, "state": NUD_PERMANENT},
                   [("NDA_DST", str(address)), ("NDA_LLADDR", mac)])
    return Request(f"pin {address} to {mac}", msg, RTM_NEWNEIGH, _UPSERT)


def route(dst: ipaddress.IPv4Network, index: int, gateway: ipaddress.IPv4Address | None = None,
          onlink: bool = False, replace: bool = False) -> Request:
    """`dst [via gateway] dev index [onlink]` in the main table; without a gateway, scope link."""
    fields = {"family": AF_INET, "dst_len": dst.prefixlen, "table": RT_TABLE_MAIN,
              "proto": RTPROT_STATIC, "type": RTN_UNICAST,
              "scope": RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK,
              "flags": RTNH_F_ONLINK if onlink else 0}
    attrs: list[tuple[str, object]] = [("RTA_OIF", index)]
    if dst.prefixlen:
        attrs.append(("RTA_DST", str(dst.network_address)))
    if gateway is not None:
        attrs.append(("RTA_GATEWAY", str(gateway)))
    how = f" via {gateway}" if gateway else ""
    return Request(f"route {dst}{how} dev {index}", _message(rtmsg, fields, attrs),
                   RTM_NEWROUTE, _UPSERT if replace else _CREATE)


def open_rtnl(path: str | None = None) -> Rtnl:
    """A batch socket in the namespace at `path` (default: the caller's), never the root."""
    return Rtnl(route_socket(path))
