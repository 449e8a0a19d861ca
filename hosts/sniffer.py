"""A copy of the few packets the agent must read but never hold: MP_CAPABLE handshakes
(the keys), MP_JOIN handshakes and packets whose first MPTCP option is ADDR_TRUST. An AF_PACKET socket with a
kernel BPF filter, so data segments never reach userspace and nothing is delayed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from scapy.arch.common import compile_filter
from scapy.arch.linux import sock_fprog

from hosts.options import OptionError
from hosts.segment import Segment, parse

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
IPV6_HEADER = 40


def bpf_expression(addr_trust_subtype: int) -> str:
    """MP_CAPABLE, MP_JOIN or ADDR_TRUST as the first MPTCP option, where Linux puts it:
    right after the TCP header, after NOP NOP TIMESTAMP, or (in a SYN) after MSS,
    SACK-permitted + timestamp and window scale. IPv6: TCP right after the fixed header
    (libpcap cannot index ``tcp[]`` in IPv6); a segment behind extension headers is not
    copied, so it teaches the agent nothing (no keys, no trust: it fails closed), and
    while enforcing the classifier judges it (docs/trusted-mptcp.md, IPv6)."""
    wanted = [0x00, 0x10, addr_trust_subtype << 4]

    def first(tcp_byte) -> str:
        return " or ".join(
            f"({tcp_byte(at)} = 30 and "
            f"({' or '.join(f'{tcp_byte(at + 2)} & 0xf0 = {w:#x}' for w in wanted)}))"
            for at in (20, 32, 40)
        )

    v4 = first(lambda at: f"tcp[{at}]")
    v6 = first(lambda at: f"ip6[{IPV6_HEADER + at}]")
    return f"(ip and tcp and ({v4})) or (ip6 and ip6[6] = 6 and ({v6}))"


@dataclass(frozen=True)
class Copy:
    """A copied segment and where it was seen: the tap sees a packet before the kernel
    classifier, so the interface must be checked here too."""

    ifname: str
    outgoing: bool
    segment: Segment


class Sniffer:
    def __init__(self, addr_trust_subtype: int):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        prog = compile_filter(bpf_expression(addr_trust_subtype), linktype=1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                             bytes(sock_fprog(prog.bf_len, prog.bf_insns)))  # fmt: skip
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[Copy]:
        out = []
        while True:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return out
            outgoing = addr[2] == socket.PACKET_OUTGOING
            if outgoing and addr[0] == "lo":
                continue
            try:
                out.append(Copy(addr[0], outgoing, parse(frame[14:])))
            except OptionError:
                continue

    def close(self) -> None:
        self.sock.close()
