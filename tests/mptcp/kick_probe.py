"""Run inside a client namespace by tests/mptcp/test_kicks.py: open an MPTCP connection
to ``server:port``, learn the server's initial sequence number from its SYN/ACK (an
AF_PACKET socket), then deliver the agent's kicks to our own stack as the agent does
(``hosts.agent``'s segments, its raw socket) and print, as JSON, what the test needs.
After the kicks the connection still carries data both ways."""

import hashlib
import json
import os
import socket
import sys
import time

from hosts.agent import injecting_socket, kick_segment, window_kick_segment
from hosts.options import OptionError
from hosts.segment import parse
from hosts.sock_diag import SockDiag

IPPROTO_MPTCP = 262
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


def nstat() -> dict[str, int]:
    """This namespace's TCP counters (/proc/net/netstat and snmp), by name."""
    counters = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(path).read().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=True):
            prefix = names.split(":")[0]
            for n, v in zip(names.split()[1:], values.split()[1:], strict=True):
                counters[prefix + n] = int(v)
    return counters


def main() -> None:
    server, port = sys.argv[1], int(sys.argv[2])
    v6 = ":" in server
    sniff = socket.socket(
        socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6 if v6 else ETH_P_IP)
    )
    sniff.settimeout(5)
    conn = socket.socket(
        socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP
    )
    conn.settimeout(10)
    conn.connect((server, port))
    local, lport = conn.getsockname()[:2]
    while True:
        try:
            seg = parse(sniff.recv(65535))
        except OptionError:  # neighbour discovery and the like
            continue
        if (
            seg.src == server
            and seg.sport == port
            and seg.dport == lport
            and seg.flags & 0x12 == 0x12
        ):
            isn = seg.seq
            break
    sniff.close()
    assert conn.recv(1) == b"G"
    raw = injecting_socket(local)
    diag = SockDiag()
    steps = {}

    def step(name: str, segment: bytes) -> None:
        """Deliver ``segment`` and record the counters it moved: loopback hands it to TCP
        in the sender's softirq, so it has been judged (and answered) once TCP counted
        it in; polled all the same."""
        before = nstat()
        raw.sendto(segment, (local, 0))
        deadline = time.monotonic() + 5
        while (after := nstat())["TcpInSegs"] == before["TcpInSegs"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: the kick never reached TCP")
            time.sleep(0.001)
        steps[name] = {k: after[k] - before[k] for k in after if after[k] != before[k]}

    step("syn", kick_segment(server, port, local, lport, int.from_bytes(os.urandom(4), "big")))
    step(
        "syn again", kick_segment(server, port, local, lport, int.from_bytes(os.urandom(4), "big"))
    )
    for n in (1, 2):
        received = diag.bytes_received(local, lport, server, port)
        rcv_nxt = (isn + 1 + received) % 2**32
        step(f"window {n}", window_kick_segment(server, port, local, lport, rcv_nxt))
    data = os.urandom(1 << 20)
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    echoed = b""
    while chunk := conn.recv(1 << 16):
        echoed += chunk
    print(
        json.dumps(
            {
                "steps": steps,
                "sent": hashlib.sha256(data).hexdigest(),
                "echoed": hashlib.sha256(echoed).hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    main()
