"""Enforcement in the kernel: the tc ingress classifier of hosts/bpf/guard.c.

``Guard`` loads the compiled program once per agent (bpftool, maps pinned in a bpffs
directory of its own: Mininet hosts share the root mount namespace, so one pin path per
agent), attaches it to the host's interfaces (clsact ingress, direct action), and keeps
its ``guarded`` map equal to the agent's guarded subflows. The program drops forbidden
options on guarded subflows and marks the segments the agent must judge (ADD_ADDR,
MP_JOIN SYNs); data never leaves the kernel. The object is built by scripts/install.sh.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import struct
import subprocess
from enum import IntEnum
from pathlib import Path

from hosts import bpf_syscall
from hosts.bpf_syscall import BpfError, Map
from hosts.extension import Scope
from hosts.options import ADD_ADDR, DSS, MP_CAPABLE, MP_JOIN

OBJECT = Path(__file__).with_name("bpf") / "guard.o"
BPFFS = Path("/run/tmptcp-bpf")
# The program's enum counter, in order; then one slot per MPTCP subtype.
COUNTERS = (
    "tcp_seen",
    "guarded_seen",
    "drop_control",
    "drop_malformed",
    "drop_fragment",
    "drop_truncated",
    "drop_exthdr",
    "mark_add_addr",
    "mark_join",
    "drop_wrong_iface",
    "opened",
    "opening_seen",
    "mark_held",
)
SUBTYPE_SLOTS = 16
KEY = struct.Struct("=I16s16s2s2s")  # struct flow_key: family, saddr, daddr, ports (BE)
ADDR_KEY = struct.Struct("=I16s")  # struct addr_key: family, address

Tuple4 = tuple[str, int, str, int]
# The map's value: the MPTCP subtypes that may arrive on the subflow, as a bit mask; a
# segment with any other is dropped (any that passes may still be marked for the agent).
ALWAYS_ALLOWED = (1 << MP_CAPABLE) | (1 << MP_JOIN) | (1 << DSS)


EVERY_SUBTYPE = 0xFFFFFFFF  # a trusted subflow: lifts an opening the program began


def allowed_subtypes(scope: Scope | None, addr_trust_subtype: int) -> int:
    """A guarded subflow takes data and handshakes only; an opening one also ADDR_TRUST
    (how the trusted subflow starts: the agent judges it) and ADD_ADDR (marked: the agent
    refuses it while the subflow is in scope, and takes it once the subflow is trusted);
    None (a trusted subflow the program may have put in an opening of its own) any."""
    if scope is None:
        return EVERY_SUBTYPE
    if scope is Scope.GUARDED:
        return ALWAYS_ALLOWED
    return ALWAYS_ALLOWED | (1 << ADD_ADDR) | (1 << addr_trust_subtype)


class CarryMode(IntEnum):
    """Which segments of a subflow in the ``carriers`` map go to the agent (guard.c)."""

    ANY = 1  # the next segment, whatever it is: an option the set-up waits for
    EMPTY = 2  # only segments without payload (the kick's ACK): a refresh can wait


class GuardError(RuntimeError):
    pass


def flow_key(src: str, sport: int, dst: str, dport: int) -> bytes:
    """The map key of a segment from ``src:sport`` to ``dst:dport`` (as it arrives)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ValueError(f"{src} and {dst} are of different families")
    return KEY.pack(
        s.version, s.packed, d.packed, sport.to_bytes(2, "big"), dport.to_bytes(2, "big")
    )


def config_value(enforce: bool, mark: int, opening_allowed: int = 0, opening_ms: int = 0) -> bytes:
    """struct config. With ``opening_allowed`` (while enforcing) the program begins an
    opening itself for every MPTCP SYN or SYN/ACK that arrives, for ``opening_ms``."""
    return struct.pack("=IIII", int(enforce), mark, opening_allowed, opening_ms)


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if r.returncode:
        raise GuardError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()[-400:]}")
    return r.stdout


def require_built(obj: Path) -> None:
    """A GuardError unless the compiled ``obj`` is there and newer than its source (an
    old object would load what the source no longer says)."""
    source = obj.with_suffix(".c")
    if not obj.is_file() or (source.is_file() and source.stat().st_mtime > obj.stat().st_mtime):
        raise GuardError(f"{obj} is missing or older than its source: run 'sudo make install'")


def mount_bpffs() -> Path:
    """A bpf filesystem at BPFFS (mounted once per machine, shared by all agents)."""
    BPFFS.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mountpoint", "-q", str(BPFFS)]).returncode != 0:
        _run(["mount", "-t", "bpf", "bpf", str(BPFFS)])
    return BPFFS


def remove_stale(root: Path, owner: str = "agent") -> None:
    """Pins of ``owner``s that died without cleaning up (``agent-PID``, ``testbed-PID``
    with PID gone)."""
    for d in root.glob(f"{owner}-*"):
        pid = d.name.removeprefix(f"{owner}-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


def _sync(m: Map, held: dict[Tuple4, int], wanted: dict[Tuple4, int]) -> None:
    """Make the 4-tuple map ``m``, which holds ``held``, hold exactly ``wanted``."""
    for t, value in wanted.items():
        if held.get(t) != value:
            m.update(flow_key(*t), struct.pack("=I", value))
    for t in held.keys() - wanted.keys():
        m.delete(flow_key(*t))


class Guard:
    """The loaded classifier of one agent. ``name`` makes its pin directory unique."""

    def __init__(self, name: str):
        require_built(OBJECT)
        root = mount_bpffs()
        remove_stale(root)
        self.dir = root / name
        self.ifaces: list[str] = []
        self.guarded: dict[Tuple4, int] = {}  # incoming 4-tuple -> allowed subtypes
        self.config = b""
        self._remove_pins()
        self.dir.mkdir()
        try:
            _run(
                [
                    "bpftool",
                    "prog",
                    "loadall",
                    str(OBJECT),
                    str(self.dir / "progs"),
                    "pinmaps",
                    str(self.dir / "maps"),
                ]
            )
        except GuardError:
            self._remove_pins()  # a refused program leaves nothing pinned behind
            raise
        self.prog_fd = bpf_syscall.obj_get(self.ingress_prog)
        self.map_guarded = Map(bpf_syscall.obj_get(self.dir / "maps/guarded"), KEY.size, 4)
        self.map_settings = Map(bpf_syscall.obj_get(self.dir / "maps/settings"), 4, 16)
        self.map_bound = Map(bpf_syscall.obj_get(self.dir / "maps/bound"), ADDR_KEY.size, 4)
        self.map_carriers = Map(bpf_syscall.obj_get(self.dir / "maps/carriers"), KEY.size, 4)
        self.map_held = Map(bpf_syscall.obj_get(self.dir / "maps/held"), KEY.size, 4)
        self.carriers: dict[Tuple4, int] = {}
        self.cpus = bpf_syscall.possible_cpus()
        self.map_counters = Map(bpf_syscall.obj_get(self.dir / "maps/counters"), 4, 8 * self.cpus)
        self.n_counters = len(COUNTERS) + SUBTYPE_SLOTS

    @property
    def ingress_prog(self) -> Path:
        return self.dir / "progs" / "guard_ingress"

    @property
    def control_out_prog(self) -> Path:
        """For ``iptables -m bpf --object-pinned``: the host's own control options, and
        the segments of the subflows in the ``carriers`` map."""
        return self.dir / "progs" / "control_out"

    def configure(
        self, enforce: bool, mark: int, opening_allowed: int = 0, opening_ms: int = 0
    ) -> None:
        value = config_value(enforce, mark, opening_allowed, opening_ms)
        if value != self.config:
            self.map_settings.update(struct.pack("=I", 0), value)
            self.config = value

    def bind(self, address: str, ifindex: int) -> None:
        """Packets for ``address`` are taken only from interface ``ifindex``."""
        ip = ipaddress.ip_address(address)
        self.map_bound.update(ADDR_KEY.pack(ip.version, ip.packed), struct.pack("=I", ifindex))

    def attach(self, iface: str) -> None:
        _run(["tc", "qdisc", "replace", "dev", iface, "clsact"])
        _run(
            [
                "tc",
                "filter",
                "replace",
                "dev",
                iface,
                "ingress",
                "pref",
                "1",
                "bpf",
                "object-pinned",
                str(self.ingress_prog),
                "direct-action",
            ]
        )
        self.ifaces.append(iface)

    def set_guarded(self, incoming: dict[Tuple4, int]) -> None:
        """Make the map hold exactly ``incoming`` (4-tuples as segments arrive -> the
        subtypes allowed there, see ``allowed_subtypes``)."""
        _sync(self.map_guarded, self.guarded, incoming)
        self.guarded = dict(incoming)

    def set_carriers(self, outgoing: dict[Tuple4, CarryMode]) -> None:
        """Make the ``carriers`` map hold exactly ``outgoing`` (our subflows' 4-tuples as
        our segments leave, and which of their segments): ``control_out`` sends those
        segments to the agent."""
        wanted = {t: int(mode) for t, mode in outgoing.items()}
        _sync(self.map_carriers, self.carriers, wanted)
        self.carriers = wanted

    def release(self, incoming: Tuple4) -> bool:
        """Segments of ``incoming`` pass in the kernel again (no ADD_ADDR of it is held);
        False when none was held."""
        return self.map_held.delete(flow_key(*incoming))

    def counters(self) -> dict[str, int]:
        out = {}
        for i in range(self.n_counters):
            raw = self.map_counters.lookup(struct.pack("=I", i)) or b""
            total = sum(struct.unpack(f"={len(raw) // 8}Q", raw)) if raw else 0
            name = COUNTERS[i] if i < len(COUNTERS) else f"drop_subtype_{i - len(COUNTERS)}"
            out[name] = total
        return out

    def close(self) -> None:
        for iface in self.ifaces:  # our filter only: the testbed's egress one stays
            subprocess.run(
                ["tc", "filter", "del", "dev", iface, "ingress", "pref", "1"],
                capture_output=True,
                timeout=30,
            )
        self.ifaces = []
        maps = (self.map_guarded, self.map_settings, self.map_bound, self.map_carriers)
        for m in (*maps, self.map_held, self.map_counters):
            m.close()
        os.close(self.prog_fd)
        self._remove_pins()

    def _remove_pins(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["Guard", "GuardError", "BpfError", "flow_key", "allowed_subtypes", "COUNTERS"]
