"""Reading the packets that nftables `log group N` rules hand to NFLOG, in a node's namespace.

Design note. A `log prefix "<comment>" group N` statement gives the packet to nfnetlink_log;
a NETLINK_NETFILTER socket bound to group N receives it with the prefix, the in/out
interfaces and the first bytes of the packet. Without a bound socket the kernel discards
the message, so logging costs little when nobody listens. Groups are per network namespace:
the socket is made in the node's namespace (by a throwaway thread, see `netns.socket_in`, or
in the caller's own when it is already the node, as the agent is), never in the root one.

The socket asks for `COPY_RANGE` bytes of each packet (IPv4 header and ports; the payload
is of no use) and lets the kernel batch messages for up to `FLUSH_CS` hundredths of a
second. Only first packets reach podnet's log rules (established traffic is accepted
before them), so nothing is copied for the bulk of a connection.

A reader too slow for a burst loses messages: once the socket's receive buffer
(`RECV_BUFFER`) is full the kernel drops each batch it cannot queue, reports ENOBUFS on
the next recv (one overrun), and queues nothing more until the reader has emptied the
buffer. The socket asks for NFLOG's per-group sequence numbers (`NFULNL_CFG_F_SEQ`): every
message takes the next one, dropped ones included, so a gap is exactly the number of
decisions lost. Reading goes on after an overrun with what was queued and what comes next.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from podnet.datapath.netns import DatapathError, assert_not_root, current_netns, socket_in

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH = 1, 2, 4, 5
NFULA_CFG_FLAGS = 6
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
NFULNL_CFG_F_SEQ = 1
NFULA_PACKET_HDR, NFULA_TIMESTAMP, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 1, 3, 4, 5
NFULA_PAYLOAD, NFULA_PREFIX, NFULA_SEQ = 9, 10, 12
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
CONFIG_SEQ = 1
HOOKS = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}
COPY_RANGE = 64  # the largest IPv4 header (60) and the L4 ports
FLUSH_CS = 5  # hundredths of a second the kernel may hold a message to batch it
QUEUE_THRESHOLD = 32  # ... or until this many are waiting
SO_RCVBUFFORCE = 33  # Linux; not in Python's socket module
RECV_BUFFER = 1 << 20  # doubled by the kernel: some 15,000 decisions queued (measured)


@dataclass(frozen=True)
class LoggedPacket:
    """One packet a log rule reported: which rule (its prefix) and what the packet was."""

    prefix: str
    time: float  # seconds since the epoch (the kernel's stamp, else when it was read)
    hook: str  # forward, input, ...
    protocol: str  # TCP, UDP, SCTP, ICMP, or the IP protocol number
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    sport: int | None  # TCP, UDP and SCTP; ICMP: None
    dport: int | None  # ICMP: None
    indev: int  # ifindex, 0 if none
    outdev: int


class NflogSocket:
    """A socket bound to NFLOG `group` in the namespace at `netns` (default: the caller's)."""

    def __init__(self, group: int, netns: str | None = None) -> None:
        assert_not_root(netns or current_netns())
        self.group = group
        self.overruns = 0  # times the kernel reported dropping messages (ENOBUFS)
        self.lost = 0  # messages it dropped, from the gaps in their sequence numbers
        self._next_seq = 0  # the group's numbering starts with its binding, below
        self._pending: list[bytes] = []
        if netns is None:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        else:
            self._sock = socket_in(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            # FORCE: the agent is root, and net.core.rmem_max (a host-wide cap) would shrink it
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER)
            self._sock.bind((0, 0))
            self._configure(_attr(NFULA_CFG_CMD, struct.pack("B3x", NFULNL_CFG_CMD_BIND)),
                            _attr(NFULA_CFG_MODE, struct.pack("!IBx", COPY_RANGE,
                                                              NFULNL_COPY_PACKET)),
                            _attr(NFULA_CFG_TIMEOUT, struct.pack("!I", FLUSH_CS)),
                            _attr(NFULA_CFG_QTHRESH, struct.pack("!I", QUEUE_THRESHOLD)),
                            _attr(NFULA_CFG_FLAGS, struct.pack("!H", NFULNL_CFG_F_SEQ)))
        except BaseException:
            self._sock.close()
            raise

    def _configure(self, *attrs: bytes) -> None:
        """Send one config message and wait for its ACK (packets arriving meanwhile are kept)."""
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.group) + b"".join(attrs)
        kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        self._sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK,
                                    CONFIG_SEQ, 0) + body)
        while True:
            data = self._sock.recv(1 << 16)
            kind, seq = struct.unpack_from("=4xH2xI", data)
            if kind != NLMSG_ERROR or seq != CONFIG_SEQ:
                self._pending.append(data)
                continue
            code = -struct.unpack_from("=i", data, 16)[0]
            if code:
                why = "another reader has it" if code == errno.EBUSY else os.strerror(code)
                raise DatapathError(f"cannot bind NFLOG group {self.group}: {why}")
            return

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, timeout: float | None = None) -> list[LoggedPacket]:
        """The packets of one batch, waiting up to `timeout` seconds ([] if none came, or
        if the kernel reported an overrun)."""
        if self._pending:
            return self._batch(self._pending.pop(0))
        poller = select.poll()  # not select(): it refuses descriptors above 1023
        poller.register(self._sock, select.POLLIN)
        if not poller.poll(None if timeout is None else timeout * 1000):
            return []
        try:
            data = self._sock.recv(1 << 16)
        except OSError as err:
            if err.errno != errno.ENOBUFS:
                raise
            self.overruns += 1
            return []
        return self._batch(data)

    def _batch(self, data: bytes) -> list[LoggedPacket]:
        packets = []
        for seq, packet in _messages(data, time.time()):
            if seq is not None:
                self.lost += (seq - self._next_seq) % (1 << 32)
                self._next_seq = (seq + 1) % (1 << 32)
            if packet is not None:
                packets.append(packet)
        return packets

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NflogSocket:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _attr(kind: int, payload: bytes) -> bytes:
    """A netlink attribute, padded to 4 bytes."""
    return struct.pack("=HH", 4 + len(payload), kind) + payload + bytes(-len(payload) % 4)


def _messages(data: bytes, received: float) -> Iterator[tuple[int | None, LoggedPacket | None]]:
    """Each NFULNL_MSG_PACKET message of a batch: its sequence number, and its packet if IPv4."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
            attrs = _attributes(data, offset + 20, offset + length)
            seq = attrs.get(NFULA_SEQ, b"")
            yield (struct.unpack("!I", seq)[0] if len(seq) == 4 else None,
                   _packet(attrs, received))
        offset += (length + 3) & ~3


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs = {}
    while start + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4:
            break
        attrs[kind & 0x7FFF] = data[start + 4:start + length]
        start += (length + 3) & ~3
    return attrs


def _packet(attrs: dict[int, bytes], received: float) -> LoggedPacket | None:
    ip = attrs.get(NFULA_PAYLOAD, b"")
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None  # IPv6: pods have none yet; only anti-spoofing logs (and drops) it
    header = (ip[0] & 15) * 4
    protocol = ip[9]
    sport = dport = None
    if protocol in (6, 17, 132) and len(ip) >= header + 4:
        sport, dport = struct.unpack_from("!HH", ip, header)
    stamp = received
    if len(attrs.get(NFULA_TIMESTAMP, b"")) == 16:
        sec, usec = struct.unpack("!QQ", attrs[NFULA_TIMESTAMP])
        stamp = sec + usec / 1e6
    hook = attrs[NFULA_PACKET_HDR][2] if len(attrs.get(NFULA_PACKET_HDR, b"")) >= 3 else -1
    return LoggedPacket(
        prefix=attrs.get(NFULA_PREFIX, b"").rstrip(b"\0").decode(errors="replace"),
        time=stamp, hook=HOOKS.get(hook, str(hook)),
        protocol=PROTOCOLS.get(protocol, str(protocol)),
        src=ipaddress.IPv4Address(ip[12:16]), dst=ipaddress.IPv4Address(ip[16:20]),
        sport=sport, dport=dport,
        indev=_ifindex(attrs.get(NFULA_IFINDEX_INDEV)),
        outdev=_ifindex(attrs.get(NFULA_IFINDEX_OUTDEV)))


def _ifindex(raw: bytes | None) -> int:
    return struct.unpack("!I", raw)[0] if raw and len(raw) == 4 else 0
