"""Where each CPU's time went during a transfer, read from ``perf report``: the profile
behind the benchmark's goodput ratio (``python -m experiments.bench --only
goodput_profile``).

With the hosts on one CPU and the switches on the other (experiments.bench.CpuSplit)
the hosts' CPU is the bottleneck: whatever the agents add there, in their processes or
in the kernel hooks they install (the tc classifier, the nftables copy rules, the
iptables queue rules and their bpf match), is goodput lost. Each sample is put in one
class: idle, the hooks (by kernel symbol, whichever process the packet was handled
in), the agents' processes, the switches' processes, or the rest (the transfers'
applications and their stacks, the controller, the kernel's own threads). The same
classes with the kernel's path manager (no agents; the stale-window filter's classifier
is there in both modes) show what the agents' mode adds. Pure: report text in,
shares out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from enum import Enum

# perf report --no-children --sort cpu,pid,sym -n -t '\t' --stdio -q -g none
REPORT_ARGS = ("--no-children", "--sort", "cpu,pid,sym", "-n", "-t", "\t", "--stdio", "-q")
REPORT_ARGS += ("-g", "none")

# Kernel symbols of netfilter, the tc classifier and BPF programs and helpers: the
# hooks' cost wherever it is paid. (Not bpf_lsm_*: the kernel's LSM hooks, in every mode.)
HOOK_SYMBOL = re.compile(
    r"^(nft_|nf_hook|nf_queue|nf_reinject|nfqnl_|nfulnl_|__nf_|ipt_|iptable_|ip6t_|"
    r"ip6table_|xt_|bpf_mt|cls_bpf|tcf_classify|__tcf_classify|bpf_prog_|bpf_skb_|"
    r"sch_handle_)"
)


class Share(Enum):
    IDLE = "idle"
    HOOKS = "hooks"
    AGENTS = "agents"
    SWITCHES = "switches"
    OTHER = "other"


@dataclass(frozen=True)
class Sample:
    """One line of the report: ``count`` samples of ``symbol`` on ``cpu`` in ``pid``."""

    count: int
    cpu: int
    pid: int
    comm: str
    symbol: str
    kernel: bool


class ReportError(ValueError):
    pass


def parse_report(text: str) -> list[Sample]:
    """The lines of ``perf report`` run with REPORT_ARGS: overhead, samples, CPU,
    ``pid:comm`` and ``[k] symbol`` (or ``[.]`` in user space), tab-separated. Blank
    and comment lines are skipped; any other line that does not read is an error, not
    a silent gap in the shares."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 5:
            raise ReportError(f"not a perf report line (5 tab-separated fields): {line!r}")
        _overhead, count, cpu, task, sym = fields
        pid, sep, comm = task.partition(":")  # perf's unknown thread: "-1::-1"
        mark, _, symbol = sym.partition(" ")
        if not (count.isdigit() and cpu.isdigit() and pid.removeprefix("-").isdigit() and sep):
            raise ReportError(f"not a perf report line: {line!r}")
        if mark not in ("[k]", "[.]"):
            raise ReportError(f"no [k] or [.] before the symbol: {line!r}")
        samples.append(Sample(int(count), int(cpu), int(pid), comm, symbol.strip(), mark == "[k]"))
    return samples


def share_of(sample: Sample, agents: set[int], switches: set[int]) -> Share:
    if sample.pid == 0:
        return Share.IDLE
    if sample.kernel and HOOK_SYMBOL.match(sample.symbol):
        return Share.HOOKS
    if sample.pid in agents:
        return Share.AGENTS
    if sample.pid in switches:
        return Share.SWITCHES
    return Share.OTHER


def shares(
    samples: list[Sample], agents: set[int], switches: set[int]
) -> dict[int, dict[str, float]]:
    """Per CPU, the percentage of its samples in each class (every class present, each
    CPU's adding up to 100)."""
    counts: dict[int, Counter] = {}
    for s in samples:
        counts.setdefault(s.cpu, Counter())[share_of(s, agents, switches)] += s.count
    out = {}
    for cpu, counter in sorted(counts.items()):
        total = sum(counter.values())
        out[cpu] = {share.value: 100.0 * counter[share] / total for share in Share}
    return out


def top_hooks(samples: list[Sample], cpu: int, n: int = 8) -> dict[str, float]:
    """The hooks' heaviest symbols on ``cpu``, as percentages of that CPU's samples."""
    total = sum(s.count for s in samples if s.cpu == cpu)
    hooks: Counter = Counter()
    for s in samples:
        if s.cpu == cpu and s.kernel and HOOK_SYMBOL.match(s.symbol):
            hooks[s.symbol] += s.count
    return {sym: 100.0 * c / total for sym, c in hooks.most_common(n)} if total else {}
