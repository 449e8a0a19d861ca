"""A bulk transfer over an MPTCP socket, with a digest of the bytes on both ends.

    python -m experiments.transfer server --port 5201 [--timeout 60] [--ipv6 | --dual-stack]
    python -m experiments.transfer client --to 10.3.0.20 --port 5201 --bytes 50000000
                                          [--seconds 5] [--bind 10.2.0.10] [--pause 0.5]
                                          [--tcp] [--wait-subflows 4]

Each side prints one JSON line: bytes, sha256, seconds (and goodput, connect time and,
with ``--wait-subflows N``, the time until the connection had N subflows on the client). The
server greets the client with one byte before the client sends, so both ends have seen
data before the bulk starts; ``--pause`` waits after the greeting (for the path manager).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import sys
import time

IPPROTO_MPTCP = getattr(socket, "IPPROTO_MPTCP", 262)
CHUNK = 64 * 1024


def payload(seed: int) -> bytes:
    return random.Random(seed).randbytes(CHUNK)


SOL_MPTCP, MPTCP_INFO = 284, 1


def additional_subflows(s: socket.socket) -> int:
    """Subflows the connection has besides its first (``mptcpi_subflows``, the first
    byte of the kernel's struct mptcp_info)."""
    return s.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)[0]


def server(args) -> dict:
    v6 = args.ipv6 or args.dual_stack
    family = socket.AF_INET6 if v6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, args.proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:  # IPv6 only, unless asked to take IPv4 too (as IPv4-mapped addresses)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(args.ipv6))
        s.bind(("::" if v6 else "0.0.0.0", args.port))
        s.listen(1)
        s.settimeout(args.timeout)
        conn, peer = s.accept()
        with conn:
            conn.settimeout(args.timeout)
            t0 = time.monotonic()
            conn.sendall(b"G")
            digest, n = hashlib.sha256(), 0
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                digest.update(data)
                n += len(data)
    return {
        "bytes": n,
        "sha256": digest.hexdigest(),
        "seconds": time.monotonic() - t0,
        "peer": peer[0],
    }


def client(args) -> dict:
    family = socket.AF_INET6 if ":" in args.to else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, args.proto) as s:
        s.settimeout(args.timeout)
        if args.bind:
            s.bind((args.bind, 0))
        t0 = time.monotonic()
        s.connect((args.to, args.port))
        connect_s = time.monotonic() - t0
        subflows_s = None
        if args.wait_subflows:  # poll until the path managers have built the mesh
            deadline = t0 + args.timeout
            while additional_subflows(s) < args.wait_subflows - 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"fewer than {args.wait_subflows} subflows")
                time.sleep(0.0005)
            subflows_s = time.monotonic() - t0
        if s.recv(1) != b"G":
            raise ConnectionError("no greeting from the server")
        time.sleep(args.pause)
        block, digest, left, sent = payload(args.seed), hashlib.sha256(), args.bytes, 0
        t1 = time.monotonic()
        stop = t1 + args.seconds if args.seconds else None
        gap = CHUNK * 8 / (args.rate_mbps * 1e6) if args.rate_mbps else 0
        while (left > 0) if stop is None else (time.monotonic() < stop):
            chunk = block[: min(left, CHUNK)] if stop is None else block
            if gap:
                time.sleep(gap)
            s.sendall(chunk)
            digest.update(chunk)
            left -= len(chunk)
            sent += len(chunk)
        time.sleep(args.idle)  # the connection stays open, quiet
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # wait for the server to close: everything was received
        seconds = time.monotonic() - t1 - args.idle
    return {
        "bytes": sent,
        "sha256": digest.hexdigest(),
        "seconds": seconds,
        "connect_seconds": connect_s,
        "subflows_seconds": subflows_s,
        "goodput_mbps": sent * 8 / seconds / 1e6 if seconds else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.transfer",
        description=" ".join(__doc__.split("\n\n")[0].split()),
    )
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--port", type=int, default=5201)
    ap.add_argument("--to", help="server address, IPv4 or IPv6 (client)")
    listen = ap.add_mutually_exclusive_group()
    listen.add_argument("--ipv6", action="store_true", help="listen on IPv6 only (server)")
    listen.add_argument(
        "--dual-stack",
        action="store_true",
        help="listen on an IPv6 socket that takes IPv4 too, as IPv4-mapped addresses (server)",
    )
    ap.add_argument("--bind", help="local address of the first subflow (client)")
    ap.add_argument("--bytes", type=int, default=20_000_000)
    ap.add_argument("--seconds", type=float, help="send for this long instead of --bytes")
    ap.add_argument("--rate-mbps", type=float, help="pace the sender (Mbit/s)")
    ap.add_argument(
        "--idle",
        type=float,
        default=0.0,
        help="seconds to keep the connection open and quiet after sending",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pause", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--tcp", action="store_true", help="plain TCP instead of MPTCP")
    ap.add_argument(
        "--wait-subflows",
        type=int,
        default=0,
        metavar="N",
        help="client: wait until the connection has N subflows, report when",
    )
    args = ap.parse_args(argv)
    args.proto = socket.IPPROTO_TCP if args.tcp else IPPROTO_MPTCP
    if args.tcp and args.wait_subflows:
        ap.error("--wait-subflows needs MPTCP")
    if args.role == "client" and not args.to:
        ap.error("client needs --to")
    try:
        result = server(args) if args.role == "server" else client(args)
    except OSError as e:
        print(json.dumps({"error": str(e)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
