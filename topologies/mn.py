"""``mn --custom topologies/<file>.py``: the SAVI controller mn starts with the network,
and checks made when mn loads the file (before it builds anything, so a refusal leaves
nothing behind and needs no ``mn -c``).

SAVI switches work only under the SAVI controller (OpenFlow 1.3, fail-secure): with any
other controller they never connect, and mn, which waits for switches before a
``--test``, would wait forever. So a topology file registers SaviController as mn's
``savi`` controller (``--controller savi``; mn's default cannot be replaced, mn picks it
itself): mn starts it with the network, with the config of the topology mn built (its
uplinks trusted, so routed traffic passes), and stops it at the end; if it cannot start,
mn's own clean-up runs (the testbed lock keeps any other run off the machine).
``--controller remote,port=P`` uses a SAVI controller the user runs (it must be
listening, and for a routed topology it needs that topology's config); any other
controller is refused with a message that says what to run. An mn run also takes the
machine's testbed lock (topologies/builder.py), so it and a testbed never tear each
other down.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mininet.node import Controller

from topologies.builder import MachineLock, TestbedBusy, free_port
from topologies.nodes import OpenFlowController

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OFP = ("127.0.0.1", 6653)  # mn's RemoteController defaults
_held: list[MachineLock] = []  # the lock lives as long as the mn process
_built: list = []  # the topologies mn built (one per mn run): SaviController's config


def remembering(topos: dict) -> dict:
    """``topos`` for mn: each class wrapped so that the topology mn builds is kept for
    SaviController (mn gives its controller no reference to the topology)."""

    def factory(cls):
        def build(*args, **kwargs):
            topo = cls(*args, **kwargs)
            _built.append(topo)
            return topo

        return build

    return {name: factory(cls) for name, cls in topos.items()}


class SaviController(Controller):
    """The SAVI controller (``python -m controller`` of this repository's virtualenv)
    as mn's controller: it gets the built topology's SAVI config, and its REST API
    listens on a free loopback port (printed; read-only)."""

    def __init__(self, name, port: int = DEFAULT_OFP[1], **params):
        self.process = None
        self.workdir = None
        super().__init__(name, port=port, **params)

    def checkListening(self):
        """The preflight checked the port before mn built anything; Mininet's own check
        probes it with telnet, which an OpenFlow hello can crash."""

    def start(self):
        python = REPO / ".venv" / "bin" / "python"
        if not python.exists():
            raise RuntimeError(f"{python} is missing: run scripts/install.sh first")
        config = _built[-1].savi_config() if _built else {}
        self.workdir = Path(tempfile.mkdtemp(prefix="tmptcp-mn-"))
        (self.workdir / "savi.json").write_text(json.dumps(config, indent=2))
        rest = free_port()
        log = open(self.workdir / "controller.log", "wb")
        self.process = subprocess.Popen(
            [
                *(str(python), "-m", "controller", "--ofp-port", str(self.port)),
                *("--rest-port", str(rest), "--rest-host", "127.0.0.1"),
                *("--config", str(self.workdir / "savi.json")),
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while not listening((self.ip, self.port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / "controller.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the SAVI controller did not start:\n{tail}")
            time.sleep(0.1)
        print(
            f"SAVI controller: OpenFlow {self.ip}:{self.port}, REST http://127.0.0.1:{rest}/savi/"
        )

    def stop(self, *args, **kwargs):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        Controller.stop(self, *args, **kwargs)


def controller_specs(argv: list[str]) -> list[str]:
    """mn's --controller values (it takes the option more than once)."""
    specs = []
    for i, arg in enumerate(argv):
        if arg == "--controller" and i + 1 < len(argv):
            specs.append(argv[i + 1])
        elif arg.startswith("--controller="):
            specs.append(arg.split("=", 1)[1])
    return specs


def _address(spec: str, wanted: str) -> tuple[str, int] | None:
    """(ip, port) of a ``NAME[,ip=IP][,port=PORT]`` controller spec if NAME is
    ``wanted``, else None; mn's defaults where a parameter is left out."""
    name, *params = spec.split(",")
    if name != wanted:
        return None
    ip, port = DEFAULT_OFP
    for param in params:
        key, _, value = param.partition("=")
        if key == "ip":
            ip = value
        elif key == "port" and value.isdigit():
            port = int(value)
    return ip, port


def remote_address(spec: str) -> tuple[str, int] | None:
    """(ip, port) of a ``remote[,ip=IP][,port=PORT]`` spec; None for other controllers."""
    return _address(spec, "remote")


def savi_address(spec: str) -> tuple[str, int] | None:
    """(ip, port) of a ``savi[,port=PORT]`` spec (it listens on loopback); None for
    other controllers."""
    address = _address(spec, "savi")
    return None if address is None else (DEFAULT_OFP[0], address[1])


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
    specs = controller_specs(argv)
    start_savi = (
        f"Let mn start the SAVI controller with the network (the topology's config, its "
        f"uplinks trusted):\n  sudo mn --custom {custom} --topo {topology} --controller savi\n"
        "or point mn at a SAVI controller you run (--controller remote,port=P).\n"
    )
    if not specs:
        return (
            "the SAVI switches need the SAVI controller; with mn's default controller "
            "they never connect and mn would wait for them forever. " + start_savi + whole
        )
    others = [s.split(",")[0] for s in specs if s.split(",")[0] not in ("savi", "remote")]
    if others:
        return (
            f"the SAVI switches need the SAVI controller; with mn's {', '.join(others)} "
            "they never connect. " + start_savi + whole
        )
    python = REPO / ".venv" / "bin" / "python"
    if any(s.split(",")[0] == "savi" for s in specs) and not python.exists():
        return f"{python} is missing: run sudo scripts/install.sh first."
    ours = [a for a in map(savi_address, specs) if a is not None]
    busy = [f"{ip}:{port}" for ip, port in ours if listening((ip, port))]
    if busy:
        return (
            f"something already listens at {', '.join(busy)}, where mn would start the SAVI "
            "controller: stop it, give another port (--controller savi,port=P) or use it "
            "(--controller remote,port=P)."
        )
    remotes = [a for a in map(remote_address, specs) if a is not None]
    silent = [f"{ip}:{port}" for ip, port in remotes if not listening((ip, port))]
    if silent:
        return (
            f"nothing listens at {', '.join(silent)}: start the SAVI controller there first "
            "(sudo .venv/bin/python -m controller --ofp-port PORT), or let mn start it "
            "(--controller savi).\n" + whole
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


def controllers() -> dict:
    """mn's controller names a topology file registers (``controllers = ...``). A
    function, not a constant: mn makes every global of a custom file its own, and an
    upper-case name could replace one of mn's (its CONTROLLERS dictionary, for one)."""
    return {
        "savi": SaviController,
        "remote": OpenFlowController,  # mn's RemoteController, without its telnet probe
    }
