"""Batched rtnetlink: the hot path's requests encoded here, sent at once, each acked.

Design note. pyroute2's `IPRoute` runs every request through its argument processors and an
asyncio loop: about a millisecond of Python per request, more than the kernel takes, and a pod's
ADD needs a dozen. Even its message classes (`ifinfmsg`, `rtmsg`, ...) took about 2 ms of a
pod's ADD to encode the requests and decode two replies. The few messages the hot path sends
have fixed shapes, so they are packed here with `struct` (the same bytes pyroute2 sends, which
the tests check) and the replies' links are read attribute by attribute. A whole step (say,
the five changes inside the pod) goes in one `send`. Every request carries NLM_F_ACK; the
kernel answers each in order, and `Rtnl.run` waits for all answers and raises for the first
refused request, naming it. Reads that are not on the hot path (CHECK, resync) keep using
`IPRoute`.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from podnet.datapath.netns import DatapathError, route_socket, start_route_socket

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_ERRNO = struct.Struct("=i")
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_ND = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_RT = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol,
#                                    scope, type, flags
_ATTR = struct.Struct("=HH")  # nlattr: length, type
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_NDT = struct.Struct("=Bxxx")  # ndtmsg: family
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_NEWNEIGH = 28
RTM_SETNEIGHTBL = 67
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_NET_NS_FD = 18, 26, 28
IFLA_INET_CONF = 1
IPV4_DEVCONF_PROXY_ARP = 3
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NDTA_NAME, NDTA_PARMS = 1, 6
NDTPA_IFINDEX, NDTPA_PROXY_DELAY = 1, 13
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
AF_UNSPEC = 0
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


@dataclass(frozen=True)
class Link:
    """What the kernel reports about one interface."""

    index: int
    name: str
    mac: str
    mtu: int
    up: bool
    peer_index: int | None = None  # a veth's other end, numbered in the peer's namespace


class NetlinkRefused(DatapathError):
    """The kernel refused one request of a batch; `errno` says why."""

    def __init__(self, what: str, errno: int) -> None:
        super().__init__(f"{what}: {os.strerror(errno)}")
        self.errno = errno


@dataclass(frozen=True)
class Request:
    """One rtnetlink request and what it is for (for the error message)."""

    what: str
    body: bytes  # the message after its header: the family's header and the attributes
    kind: int
    flags: int = 0


def _build(request: Request, sequence: int) -> bytes:
    return _HEADER.pack(_HEADER.size + len(request.body), request.kind,
                        NLM_F_REQUEST | NLM_F_ACK | request.flags, sequence, 0) + request.body


class Rtnl:
    """A NETLINK_ROUTE socket that runs batches of requests; one per thread, not shared."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.bind((0, 0))
        self._sequence = itertools.count(1)

    def run(self, *requests: Request) -> list[Link]:
        """Send `requests` at once; wait for every answer. Returns the links that GETs read."""
        pending = {next(self._sequence): request for request in requests}
        try:
            self.sock.send(b"".join(_build(r, seq) for seq, r in pending.items()))
        except OSError as err:
            raise DatapathError(f"cannot send to the kernel: {err}") from err
        replies: list[Link] = []
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
                    replies.append(parse_link(data[offset + _HEADER.size:offset + length]))
                offset += (length + 3) & ~3
        if failure is not None:
            raise failure
        return replies

    def close(self) -> None:
        self.sock.close()


def parse_link(body: bytes) -> Link:
    """The link an RTM_NEWLINK message describes (its body: after the header)."""
    _, _, index, flags, _ = _IFINFO.unpack_from(body)
    name, mac, mtu, peer = "", "", 0, None
    offset = _IFINFO.size
    while offset + _ATTR.size <= len(body):
        length, kind = _ATTR.unpack_from(body, offset)
        if length < _ATTR.size:
            break
        value = body[offset + _ATTR.size:offset + length]
        kind &= 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if kind == IFLA_IFNAME:
            name = value.split(b"\0", 1)[0].decode()
        elif kind == IFLA_ADDRESS:
            mac = ":".join(f"{b:02x}" for b in value)
        elif kind == IFLA_MTU:
            (mtu,) = _U32.unpack_from(value)
        elif kind == IFLA_LINK:
            (peer,) = _U32.unpack_from(value)
        offset += (length + 3) & ~3
    return Link(index=index, name=name, mac=mac, mtu=mtu, up=bool(flags & IFF_UP),
                peer_index=peer)


def _attr(kind: int, value: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def _string(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, _U32.pack(value))


def _mac(kind: int, mac: str) -> bytes:
    return _attr(kind, bytes.fromhex(mac.replace(":", "")))


def _ipv4(kind: int, address: ipaddress.IPv4Address) -> bytes:
    return _attr(kind, address.packed)


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(AF_UNSPEC, 0, index, flags, change)


def new_veth(host: str, mac: str, mtu: int, peer: str, peer_netns_fd: int) -> Request:
    """The pair, host end up with `mac`, the peer created straight inside another namespace."""
    peer_info = (_ifinfo() + _string(IFLA_IFNAME, peer) + _u32(IFLA_NET_NS_FD, peer_netns_fd)
                 + _u32(IFLA_MTU, mtu))
    linkinfo = _string(IFLA_INFO_KIND, "veth") + _attr(
        IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info))
    body = (_ifinfo(flags=IFF_UP, change=IFF_UP) + _string(IFLA_IFNAME, host)
            + _mac(IFLA_ADDRESS, mac) + _u32(IFLA_MTU, mtu) + _attr(IFLA_LINKINFO, linkinfo))
    return Request(f"create veth {host} with peer {peer}", body, RTM_NEWLINK, _CREATE)


def get_link(name: str) -> Request:
    return Request(f"look up {name}", _ifinfo() + _string(IFLA_IFNAME, name), RTM_GETLINK)


def delete_link(name: str) -> Request:
    return Request(f"delete {name}", _ifinfo() + _string(IFLA_IFNAME, name), RTM_DELLINK)


def link_up(index: int) -> Request:
    return Request(f"bring up interface {index}", _ifinfo(index, IFF_UP, IFF_UP), RTM_NEWLINK)


def add_address(index: int, address: ipaddress.IPv4Address, prefixlen: int) -> Request:
    body = (_IFADDR.pack(AF_INET, prefixlen, 0, 0, index) + _ipv4(IFA_LOCAL, address)
            + _ipv4(IFA_ADDRESS, address))
    return Request(f"add {address}/{prefixlen} to interface {index}", body, RTM_NEWADDR, _CREATE)


def pin_neighbour(index: int, address: ipaddress.IPv4Address, mac: str) -> Request:
    body = (_ND.pack(AF_INET, index, NUD_PERMANENT, 0, 0) + _ipv4(NDA_DST, address)
            + _mac(NDA_LLADDR, mac))
    return Request(f"pin {address} to {mac}", body, RTM_NEWNEIGH, _UPSERT)


def proxy_arp(index: int) -> Request:
    """`net.ipv4.conf.<link>.proxy_arp = 1`, as a change of the link's IPv4 settings."""
    conf = _attr(IFLA_INET_CONF, _u32(IPV4_DEVCONF_PROXY_ARP, 1))
    return Request(f"enable proxy ARP on interface {index}",
                   _ifinfo(index) + _attr(IFLA_AF_SPEC, _attr(AF_INET, conf)), RTM_NEWLINK)


def no_proxy_delay(index: int) -> Request:
    """`net.ipv4.neigh.<link>.proxy_delay = 0`, in the link's parameters of the ARP table."""
    parms = _u32(NDTPA_IFINDEX, index) + _attr(NDTPA_PROXY_DELAY, _U64.pack(0))
    body = _NDT.pack(AF_INET) + _string(NDTA_NAME, "arp_cache") + _attr(NDTA_PARMS, parms)
    return Request(f"answer ARP at once on interface {index}", body, RTM_SETNEIGHTBL)


def route(dst: ipaddress.IPv4Network, index: int, gateway: ipaddress.IPv4Address | None = None,
          onlink: bool = False, replace: bool = False) -> Request:
    """`dst [via gateway] dev index [onlink]` in the main table; without a gateway, scope link."""
    body = _RT.pack(AF_INET, dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC,
                    RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK, RTN_UNICAST,
                    RTNH_F_ONLINK if onlink else 0)
    body += _u32(RTA_OIF, index)
    if dst.prefixlen:
        body += _ipv4(RTA_DST, dst.network_address)
    if gateway is not None:
        body += _ipv4(RTA_GATEWAY, gateway)
    how = f" via {gateway}" if gateway else ""
    return Request(f"route {dst}{how} dev {index}", body, RTM_NEWROUTE,
                   _UPSERT if replace else _CREATE)


def open_rtnl(path: str | None = None) -> Rtnl:
    """A batch socket in the namespace at `path` (default: the caller's), never the root."""
    return Rtnl(route_socket(path))


def start_rtnl(path: str) -> Callable[[], Rtnl]:
    """`open_rtnl(path)`, its socket made by a thread while the caller goes on: the call
    returned waits for it."""
    made = start_route_socket(path)
    return lambda: Rtnl(made())
