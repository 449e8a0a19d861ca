"""Bulk TCP or MPTCP for the reproduction: ``xfer.py server PORT tcp|mptcp`` prints the
goodput it received; ``xfer.py client IP PORT tcp|mptcp SECONDS`` sends zeros."""

import socket
import sys
import time

IPPROTO_MPTCP = 262


def open_socket(proto: str) -> socket.socket:
    return socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if proto == "mptcp" else 0
    )


def main(argv: list[str]) -> None:
    if argv[0] == "server":
        with open_socket(argv[2]) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.settimeout(30)
            s.bind(("0.0.0.0", int(argv[1])))
            s.listen(1)
            conn, _ = s.accept()
            conn.settimeout(30)
            buf, received, t0 = bytearray(1 << 20), 0, time.monotonic()
            try:
                while n := conn.recv_into(buf):
                    received += n
            except TimeoutError:
                pass
            print(f"{received * 8 / (time.monotonic() - t0) / 1e6:.1f} Mbit/s")
    else:
        with open_socket(argv[3]) as c:
            c.connect((argv[1], int(argv[2])))
            data, end = b"\0" * (1 << 20), time.monotonic() + float(argv[4])
            c.settimeout(5)
            try:
                while time.monotonic() < end:
                    c.sendall(data)
            except TimeoutError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])
