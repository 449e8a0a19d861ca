"""The agents' kernel hooks without an agent, for the benchmark that splits their cost.

A host running our agent pays on every packet for the hooks the agent installs: the
tc ingress classifier on each interface (hosts/guard.py), the nftables copy rules and
the iptables rules that queue control packets (hosts/firewall.py). On this testbed
those costs fall on OVS's userspace thread, which also runs the receiving host's stack,
so they cost goodput. ``python -m experiments.hooks_only --addr A ...``, run in a
host's namespace, installs exactly those hooks (classifier configured as the agent
configures it, addresses bound to their interfaces) and leaves the kernel's own path
manager in charge: with nothing listening, the queues let packets pass
(``--queue-bypass``) and the copies go nowhere. ``--part classifier`` installs only the
classifier, ``--part netfilter`` only the nftables and iptables rules (the classifier's
program loaded for the iptables match, attached nowhere). The benchmark
(``experiments.bench --only hook_cost``) then measures kernel PM, kernel PM with each
part and with all the hooks, and the agents.

It prints ``ready`` once everything is in place and removes it all on SIGTERM or
SIGINT; a failure to install is reported and whatever was installed is removed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from hosts import firewall
from hosts.agent import attach_guard
from hosts.guard import Guard, GuardError
from hosts.options import ADDR_TRUST_DEFAULT

PARTS = ("all", "classifier", "netfilter")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.hooks_only", description=__doc__)
    ap.add_argument("--addr", action="append", default=[], help="an address of this host")
    ap.add_argument("--enforce", action="store_true", help="configure the classifier to enforce")
    ap.add_argument(
        "--part",
        choices=PARTS,
        default="all",
        help="which hooks: all (default), the classifier alone, the netfilter rules alone",
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("experiments.hooks_only: needs root (tc, bpf, netfilter)", file=sys.stderr)
        return 2
    # Held until the hooks are in place, then awaited: a stop asked for during the
    # installation is not lost, and what was installed is removed.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    guard = None
    try:
        # The agent's own set-up of its hooks (hosts.agent.Agent.start).
        name = f"hooks-{os.getpid()}"
        if args.part == "netfilter":
            guard = Guard(name)  # loaded for iptables' bpf match; attached to no interface
        else:
            guard, _ = attach_guard(name, args.enforce, args.addr)
        if args.part != "classifier":
            firewall.install(str(guard.control_out_prog), ADDR_TRUST_DEFAULT)
        print("ready", flush=True)
        signal.sigwait(stop_signals)
        return 0
    except (GuardError, firewall.FirewallError, OSError) as e:
        print(f"experiments.hooks_only: {e}", file=sys.stderr)
        return 1
    finally:
        firewall.remove()
        if guard is not None:
            guard.close()


if __name__ == "__main__":
    sys.exit(main())
