"""What the kernel has received on one TCP socket, from sock_diag (``tcpi_bytes_received``).

The agent asks for every ADDR_TRUST it reads (the kernel checks sequence numbers after
our copy was taken, so we check the window ourselves), on the critical path of a
connection's set-up. So it asks for one socket by its four-tuple (the kernel looks it
up in its hash: a dump walks every bucket of the host's TCP hash, about 1 ms here) on
one plain socket kept open (hosts.plain_netlink).
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.diag import SOCK_DIAG_BY_FAMILY, inet_diag_msg, inet_diag_req

from hosts.events import unmapped
from hosts.plain_netlink import NETLINK_SOCK_DIAG, NetlinkRequestError, PlainNetlink

INET_DIAG_INFO = 2
INET_DIAG_NOCOOKIE = 0xFFFFFFFFFFFFFFFF


def _words(address: str) -> tuple[int, int, int, int]:
    """An address as sock_diag's four big-endian words (IPv4 in the first)."""
    packed = ipaddress.ip_address(address).packed.ljust(16, b"\0")
    return tuple(int.from_bytes(packed[i : i + 4], "big") for i in range(0, 16, 4))


class SockDiag:
    def __init__(self):
        self.sock = PlainNetlink(NETLINK_SOCK_DIAG)

    def close(self) -> None:
        self.sock.close()

    def bytes_received(self, local: str, lport: int, remote: str, rport: int) -> int | None:
        """``tcpi_bytes_received`` of the TCP socket (local, lport) <-> (remote, rport),
        or None when there is none. (The kernel finds an IPv4 subflow of an IPv6 socket,
        IPv4-mapped, by its IPv4 four-tuple.)"""
        req = inet_diag_req()
        req["sdiag_family"] = socket.AF_INET6 if ":" in local else socket.AF_INET
        req["sdiag_protocol"] = socket.IPPROTO_TCP
        req["idiag_ext"] = 1 << (INET_DIAG_INFO - 1)
        req["idiag_states"] = 0xFFFFFFFF
        req["idiag_sport"], req["idiag_dport"] = lport, rport
        req["idiag_src"], req["idiag_dst"] = _words(local), _words(remote)
        req["idiag_cookie"] = INET_DIAG_NOCOOKIE
        try:
            answers = self.sock.request(req, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, inet_diag_msg)
        except NetlinkRequestError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        for msg in answers:
            src, dst = unmapped(msg["idiag_src"]), unmapped(msg["idiag_dst"])
            if (src, msg["idiag_sport"], dst, msg["idiag_dport"]) == (local, lport, remote, rport):
                info = msg.get_attr("INET_DIAG_INFO")
                return None if info is None else info["tcpi_bytes_received"]
        return None
