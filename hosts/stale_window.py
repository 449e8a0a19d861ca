"""The hosts' work-around for Linux MPTCP's stale-window edge (hosts/bpf/stale_window.c).

A Linux MPTCP sender adds a data ACK to a subflow window TCP did not take, runs past the
receiver's window and stalls for seconds at 10 Gbit/s (tools/mptcp-stall/REPORT.md). The
program, on the egress of the MPTCP endpoints' interfaces, takes the data ACK out of the
receiver's ACKs that would teach the sender such an edge (their window TCP ignores).
``StaleWindowFilter`` loads it once per testbed (bpftool, pinned, like the agents'
guard) and gives the commands that attach it in a host's shell, so a host costs one
``tc`` process per interface and no verifier run. Its counters are the testbed's own
(``tracked``, ``stripped``), summed over the hosts.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from hosts import bpf_syscall
from hosts.bpf_syscall import Map
from hosts.guard import GuardError, _run, mount_bpffs, remove_stale, require_built

OBJECT = Path(__file__).with_name("bpf") / "stale_window.o"
COUNTERS = ("tracked", "stripped")  # the program's enum counter, in order
# A filter priority of its own (the agents' guard is pref 1 on ingress): deleting one
# filter never touches the other.
PREF = 7


class StaleWindowFilter:
    """The loaded program of one testbed; ``name`` makes its pin directory unique
    (``testbed-PID``: a dead run's is removed by the next)."""

    def __init__(self, name: str):
        require_built(OBJECT)
        root = mount_bpffs()
        remove_stale(root, "testbed")
        self.dir = root / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir()
        try:
            _run(
                [
                    "bpftool",
                    "prog",
                    "load",
                    str(OBJECT),
                    str(self.prog),
                    "type",
                    "classifier",
                    "pinmaps",
                    str(self.dir / "maps"),
                ]
            )
            self.cpus = bpf_syscall.possible_cpus()
            self.map_counters = Map(
                bpf_syscall.obj_get(self.dir / "maps/counters"), 4, 8 * self.cpus
            )
        except (GuardError, bpf_syscall.BpfError):
            shutil.rmtree(self.dir, ignore_errors=True)  # nothing pinned stays behind
            raise

    @property
    def prog(self) -> Path:
        return self.dir / "prog"

    def attach_commands(self, iface: str) -> list[str]:
        """Shell commands that attach the program to ``iface``'s egress, run in the
        interface's namespace (pins are visible there: Mininet hosts share the mount
        namespace). ``replace`` keeps an agent's ingress filter, and the agent's stop
        deletes only its own."""
        return [
            f"tc qdisc replace dev {iface} clsact",
            f"tc filter replace dev {iface} egress pref {PREF} bpf object-pinned {self.prog}"
            " direct-action",
        ]

    def counters(self) -> dict[str, int]:
        out = {}
        for i, name in enumerate(COUNTERS):
            raw = self.map_counters.lookup(struct.pack("=I", i)) or b""
            out[name] = sum(struct.unpack(f"={len(raw) // 8}Q", raw)) if raw else 0
        return out

    def close(self) -> None:
        """Unpin: the program goes with the last interface that holds it."""
        self.map_counters.close()
        shutil.rmtree(self.dir, ignore_errors=True)
