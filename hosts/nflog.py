"""Netfilter's packet log (NFLOG) as a source of copies: the kernel sends us a packet
that an nftables ``log group N`` rule matched, and nothing else.

This replaces an AF_PACKET tap of every frame: a tap makes the kernel clone each
outgoing packet for it before its filter can drop the clone, which cost bulk MPTCP about
6 % of its goodput here (README, Benchmarks); a netfilter rule that does not match costs
a few loads and compares. The codec is pure (pyroute2's message classes for the
configuration; the logged packets' attributes read by hand, see ``decode``); the socket
is a thin shell.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, nla
from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_ULOG, nfgen_msg

from hosts.plain_netlink import NetlinkRequestError, attributes

NETLINK_NETFILTER = 12
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_COPY_PACKET = 2
COPY_RANGE = 0xFFFF  # whole packets: the matched ones are few and short
# Netfilter's hooks, as NFLOG reports them.
NF_INET_LOCAL_IN, NF_INET_POST_ROUTING = 1, 4
RECEIVE_BUFFER = 4 << 20  # room for a burst of handshakes while the agent is busy
SO_RCVBUFFORCE = 33


class NflogError(RuntimeError):
    pass


class nflog_config(nfgen_msg):
    nla_map = (
        ("NFULA_CFG_UNSPEC", "none"),
        ("NFULA_CFG_CMD", "cfg_cmd"),
        ("NFULA_CFG_MODE", "cfg_mode"),
        ("NFULA_CFG_NLBUFSIZ", "be32"),
        ("NFULA_CFG_TIMEOUT", "be32"),
        ("NFULA_CFG_QTHRESH", "be32"),
        ("NFULA_CFG_FLAGS", "be16"),
    )

    class cfg_cmd(nla):
        fields = (("command", "B"),)

    class cfg_mode(nla):
        fields = (("copy_range", ">I"), ("copy_mode", "B"), ("pad", "B"))


class nflog_packet(nfgen_msg):
    nla_map = (
        ("NFULA_UNSPEC", "none"),
        ("NFULA_PACKET_HDR", "packet_hdr"),
        ("NFULA_MARK", "be32"),
        ("NFULA_TIMESTAMP", "hex"),
        ("NFULA_IFINDEX_INDEV", "be32"),
        ("NFULA_IFINDEX_OUTDEV", "be32"),
        ("NFULA_IFINDEX_PHYSINDEV", "be32"),
        ("NFULA_IFINDEX_PHYSOUTDEV", "be32"),
        ("NFULA_HWADDR", "hex"),
        ("NFULA_PAYLOAD", "cdata"),
        ("NFULA_PREFIX", "asciiz"),
        ("NFULA_UID", "be32"),
        ("NFULA_SEQ", "be32"),
        ("NFULA_SEQ_GLOBAL", "be32"),
        ("NFULA_GID", "be32"),
        ("NFULA_HWTYPE", "be16"),
        ("NFULA_HWHEADER", "hex"),
        ("NFULA_HWLEN", "be16"),
        ("NFULA_CT", "hex"),
        ("NFULA_CT_INFO", "be32"),
        ("NFULA_VLAN", "hex"),
        ("NFULA_L2HDR", "hex"),
    )

    class packet_hdr(nla):
        fields = (("hw_protocol", ">H"), ("hook", "B"), ("pad", "B"))


@dataclass(frozen=True)
class Logged:
    """One logged packet: the IP packet, the hook that logged it and its interfaces
    (0 where the hook has none)."""

    hook: int
    indev: int
    outdev: int
    packet: bytes


def config_message(group: int, attrs: list, seq: int) -> bytes:
    msg = nflog_config()
    msg["header"]["type"] = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
    msg["header"]["sequence_number"] = seq
    msg["nfgen_family"] = socket.AF_UNSPEC
    msg["version"] = 0
    msg["res_id"] = group
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def bind_messages(group: int) -> list[bytes]:
    """Bind ``group`` to us, copy whole packets, and send each at once (a queue
    threshold of one: the kernel's default of 100 would hold copies for up to 1 s)."""
    return [
        config_message(group, [("NFULA_CFG_CMD", {"command": NFULNL_CFG_CMD_BIND})], 1),
        config_message(
            group,
            [
                ("NFULA_CFG_MODE", {"copy_range": COPY_RANGE, "copy_mode": NFULNL_COPY_PACKET}),
                ("NFULA_CFG_QTHRESH", 1),
                ("NFULA_CFG_TIMEOUT", 0),
            ],
            2,
        ),
    ]


def messages(data: bytes):
    """(type, bytes) of each netlink message in ``data``; a truncated or impossible
    length raises NflogError (what the kernel sends is whole: anything else is not
    guessed at)."""
    at = 0
    while at + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, at)
        if length < 16 or at + length > len(data):
            raise NflogError(f"netlink message of length {length} at {at} of {len(data)}")
        yield kind, data[at : at + length]
        at += (length + 3) & ~3


def ack_error(message: bytes) -> int:
    """The (positive) errno of an NLMSG_ERROR message; 0 is an acknowledgement."""
    return -struct.unpack_from("=i", message, 16)[0]


NFGEN_HEADER = 4  # family, version, resource id
NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV, NFULA_PAYLOAD = 1, 4, 5, 9


def decode(data: bytes) -> list[Logged]:
    """The logged packets in one datagram from the kernel. The attributes are read by
    hand (hosts.plain_netlink.attributes: this is the agent's hot path); nflog_packet
    is the same format in pyroute2's terms, and the tests hold one to the other."""
    out = []
    for kind, message in messages(data):
        if kind != NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET:
            continue
        try:
            attrs = attributes(message, 16 + NFGEN_HEADER)
        except NetlinkRequestError as e:
            raise NflogError(f"logged packet: {e.strerror}") from None
        hdr, payload = attrs.get(NFULA_PACKET_HDR), attrs.get(NFULA_PAYLOAD)
        if hdr is None or len(hdr) < 4 or payload is None:
            raise NflogError("logged packet without its header or payload")
        out.append(
            Logged(
                hdr[2],  # hw_protocol (2 bytes), hook, pad
                _index(attrs.get(NFULA_IFINDEX_INDEV)),
                _index(attrs.get(NFULA_IFINDEX_OUTDEV)),
                payload,
            )
        )
    return out


def _index(value: bytes | None) -> int:
    if value is None:
        return 0
    if len(value) != 4:
        raise NflogError(f"interface index of {len(value)} bytes")
    return int.from_bytes(value, "big")


class NflogSocket:
    """A netlink socket bound to one NFLOG group of this network namespace."""

    def __init__(self, group: int):
        self.group = group
        self.overflows = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            try:  # beyond net.core.rmem_max: we run as root
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self.sock.bind((0, 0))
            for request in bind_messages(group):
                self.sock.send(request)
                self._expect_ack()
        except OSError as e:
            self.sock.close()
            raise NflogError(f"NFLOG group {group}: {e}") from e
        except NflogError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def _expect_ack(self) -> None:
        for kind, message in messages(self.sock.recv(65536)):
            if kind == NLMSG_ERROR:
                code = ack_error(message)
                if code:
                    taken = code in (errno.EBUSY, errno.EPERM)
                    hint = " (another socket has it: a second agent?)" if taken else ""
                    raise NflogError(
                        f"NFLOG group {self.group}: {errno.errorcode.get(code, code)}{hint}"
                    )
                return
        raise NflogError(f"NFLOG group {self.group}: no acknowledgement")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[Logged]:
        """Everything waiting (non-blocking). A full receive buffer (ENOBUFS) means the
        kernel dropped copies: counted in ``overflows`` for the caller to report."""
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1
                continue
            out += decode(data)

    def close(self) -> None:
        self.sock.close()
