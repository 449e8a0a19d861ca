"""Netlink requests on a plain blocking socket: pyroute2 encodes the request and decodes
the answers, the socket here sends and reads them. And the flat attributes of the
messages the agent reads on its hot paths (path-manager events, NFLOG copies).

pyroute2 0.9's own request path runs an asyncio loop for every call, about 1 ms each
(py-spy on the agents: 2-3 ms of every subflow an agent opened and of every ADDR_TRUST
it checked, on the critical path of a connection's set-up); a send and a recv on a
plain socket take tens of microseconds. The events are read the same way
(hosts.pm_netlink.EventListener), for another reason.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NETLINK_SOCK_DIAG, NETLINK_GENERIC = 4, 16
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_MULTI, NLM_F_ACK = 2, 4
HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence number, port id
ATTRIBUTE = struct.Struct("=HH")  # length, type
NLA_TYPE_MASK = 0x3FFF  # the type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
TIMEOUT = 2.0  # s: the kernel answers at once; a missing answer is a bug, not a wait


class NetlinkRequestError(OSError):
    """The kernel refused a request (errno set) or did not answer."""


def split(data: bytes):
    """The messages of one netlink read, in order: (type, flags, sequence number, the
    whole message). A length that does not fit the read raises: the kernel never sends
    one, so what follows it cannot be trusted either."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, seq, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            raise NetlinkRequestError(errno.EBADMSG, "netlink: truncated message")
        yield kind, flags, seq, data[offset : offset + length]
        offset += (length + 3) & ~3


def attributes(message: bytes, offset: int) -> dict[int, bytes]:
    """Type -> value of the flat attributes of one netlink message, from ``offset`` (past
    the headers) to the message's end; of a type given twice, the last. A length that
    does not fit raises. pyroute2's generic decoder took 50-80 us for an event or a
    copy (tens of them in every connection's set-up, each on the critical path of the
    next step); this takes a few. The tests check it against pyroute2's."""
    out = {}
    end = len(message)
    while offset + ATTRIBUTE.size <= end:
        length, kind = ATTRIBUTE.unpack_from(message, offset)
        if length < ATTRIBUTE.size or offset + length > end:
            raise NetlinkRequestError(errno.EBADMSG, "netlink: truncated attribute")
        out[kind & NLA_TYPE_MASK] = message[offset + ATTRIBUTE.size : offset + length]
        offset += (length + 3) & ~3
    return out


class PlainNetlink:
    """One netlink socket of ``protocol`` for requests, answered in order."""

    def __init__(self, protocol: int):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        self.sock.bind((0, 0))
        self.sock.settimeout(TIMEOUT)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg, msg_type: int, flags: int, answer=None) -> list:
        """Send pyroute2 message ``msg`` and read until the request is done: its
        acknowledgement, the end of a dump, or one answer. Answers are decoded as
        ``answer`` (a pyroute2 message class); an error answer raises with its errno."""
        self.seq = self.seq % 0xFFFFFFFF + 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self.seq
        msg["header"]["pid"] = 0
        msg.encode()
        try:
            self.sock.send(msg.data)
        except OSError as e:
            raise NetlinkRequestError(e.errno, f"netlink request: {e.strerror}") from e
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except TimeoutError:
                raise NetlinkRequestError(errno.ETIMEDOUT, "netlink: no answer") from None
            except OSError as e:
                raise NetlinkRequestError(e.errno, f"netlink answer: {e.strerror}") from e
            for kind, msg_flags, seq, body in split(data):
                if seq != self.seq:
                    continue  # the late answer of a request that timed out
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body, HEADER.size)
                    if code:
                        raise NetlinkRequestError(-code, os.strerror(-code))
                    return out  # the acknowledgement
                if kind == NLMSG_DONE:
                    return out
                if answer is not None:
                    decoded = answer(body)
                    decoded.decode()
                    out.append(decoded)
                if not msg_flags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return out
