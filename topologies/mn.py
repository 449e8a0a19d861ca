"""Checks for ``mn --custom topologies/<file>.py``, made when mn loads the file: before
it builds anything, so a refusal leaves nothing behind and needs no ``mn -c``.

SAVI switches work only under the SAVI controller (OpenFlow 1.3, fail-secure), which mn
does not start: with mn's default controller they never connect, and mn, which waits for
switches before a ``--test``, would wait forever. So mn must be given the running SAVI
controller (``--controller remote,port=P``); otherwise, or when nothing listens there,
the load stops with a message that says what to run. An mn run also takes the machine's
testbed lock (topologies/builder.py), so it and a testbed never tear each other down.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from topologies.builder import MachineLock, TestbedBusy

DEFAULT_OFP = ("127.0.0.1", 6653)  # mn's RemoteController defaults
_held: list[MachineLock] = []  # the lock lives as long as the mn process


def controller_specs(argv: list[str]) -> list[str]:
    """mn's --controller values (it takes the option more than once)."""
    specs = []
    for i, arg in enumerate(argv):
        if arg == "--controller" and i + 1 < len(argv):
            specs.append(argv[i + 1])
        elif arg.startswith("--controller="):
            specs.append(arg.split("=", 1)[1])
    return specs


def remote_address(spec: str) -> tuple[str, int] | None:
    """(ip, port) of a ``remote[,ip=IP][,port=PORT]`` spec; None for other controllers."""
    name, *params = spec.split(",")
    if name != "remote":
        return None
    ip, port = DEFAULT_OFP
    for param in params:
        key, _, value = param.partition("=")
        if key == "ip":
            ip = value
        elif key == "port" and value.isdigit():
            port = int(value)
    return ip, port


def listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def problem(argv: list[str], topology: str, custom: str) -> str | None:
    """Why mn cannot run ``topology`` (from file ``custom``) with these arguments, or None."""
    whole = (
        f"For the whole testbed (SAVI controller, management network, DHCP, agents and a CLI "
        f"with the testbed's commands) run:\n  sudo .venv/bin/python -m topologies {topology}"
    )
    remotes = [a for a in map(remote_address, controller_specs(argv)) if a is not None]
    if not remotes:
        return (
            "the SAVI switches need the SAVI controller, which mn does not start (with mn's "
            "default controller they never connect). Start it and point mn at it:\n"
            "  sudo .venv/bin/python -m controller --ofp-port 6653 &\n"
            f"  sudo mn --custom {custom} --topo {topology} "
            "--controller remote,port=6653\n" + whole
        )
    silent = [f"{ip}:{port}" for ip, port in remotes if not listening((ip, port))]
    if silent:
        return (
            f"nothing listens at {', '.join(silent)}: start the SAVI controller there first "
            "(sudo .venv/bin/python -m controller --ofp-port PORT).\n" + whole
        )
    return None


def preflight(topology: str, custom: str, argv: list[str] | None = None) -> None:
    """Called by a topology file that mn loads; exits mn with a message on a problem."""
    argv = sys.argv if argv is None else argv
    if not argv or Path(argv[0]).name != "mn":
        return  # loaded by something else: its business
    if "-c" in argv or "--clean" in argv:
        return  # mn's own cleanup: it builds nothing
    reason = problem(argv, topology, custom)
    if reason is not None:
        sys.exit(f"mn: {reason}")  # SystemExit: mn's handler would run its cleanup
    lock = MachineLock()
    try:
        lock.acquire(f"mn {' '.join(argv[1:])}"[:200])
    except TestbedBusy as e:
        sys.exit(f"mn: {e}")
    _held.append(lock)
