"""``sudo .venv/bin/python -m topologies NAME``: the interactive testbed (topologies/cli.py).

Every argument is checked before anything is started; a testbed already running on the
machine is named and left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from experiments.harness import MODES
from topologies import cli
from topologies.builder import Testbed, TestbedBusy, TestbedError, exit_on_sigterm
from topologies.campus import PLACEMENTS, CampusTopo
from topologies.cluster import PLACEMENTS as SERVER_PLACEMENTS
from topologies.cluster import Cluster, ClusterError
from topologies.dualhomed import COVERAGES, DualHomedTopo
from topologies.localserver import LocalServer, LocalServerError
from topologies.single import SingleSwitchTopo

TOPOLOGIES = ("dualhomed", "savi_single", "campus")
CAMPUS_DEFAULTS = {
    "switches": 4,
    "savi_fraction": 0.5,
    "per_switch": 2,
    "multihomed": 1,
    "attackers": 2,
    "placement": "spread",
    "seed": 1,
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m topologies",
        description="Start a topology with the SAVI controller, the management network, "
        "DHCP and the hosts' agents, and open Mininet's CLI with the testbed's commands "
        "(tpbt, bindings, drops, trust, spoof, transfer, attack; type help). Everything "
        "stops when the CLI ends.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("topology", choices=TOPOLOGIES)
    ap.add_argument(
        "--mode",
        choices=MODES,
        default="trusted",
        help="the multi-homed hosts' path manager: the kernel's (vanilla), the agents "
        "(trusted), or the agents enforcing confinement (enforce)",
    )
    ap.add_argument(
        "--coverage", choices=COVERAGES, default="savi", help="dualhomed: SAVI coverage"
    )
    ap.add_argument(
        "--ipv6",
        action="store_true",
        help="dualhomed: dual stack (IPv6 addresses 2001:db8:N::/64 beside IPv4's)",
    )
    ap.add_argument("--hosts", type=int, default=3, help="savi_single: number of hosts (1..90)")
    ap.add_argument("--dhcp", action="store_true", help="savi_single: addresses from DHCP")
    campus = ap.add_argument_group("campus (topologies/campus.py)")
    d = CAMPUS_DEFAULTS
    campus.add_argument("--switches", type=int, default=d["switches"], help="access switches")
    campus.add_argument(
        "--savi-fraction",
        type=float,
        default=d["savi_fraction"],
        help="fraction of the access switches with SAVI",
    )
    campus.add_argument(
        "--per-switch",
        type=int,
        default=d["per_switch"],
        help="single-homed hosts per access switch",
    )
    campus.add_argument(
        "--multihomed",
        type=int,
        default=d["multihomed"],
        help="hosts with a second address on another switch (agents)",
    )
    campus.add_argument("--attackers", type=int, default=d["attackers"], help="attacker hosts")
    campus.add_argument(
        "--placement", choices=PLACEMENTS, default=d["placement"], help="where the attackers go"
    )
    campus.add_argument("--seed", type=int, default=d["seed"], help="the campus's seed")
    cluster = ap.add_argument_group("cluster mode (topologies/cluster.py, docs/cluster.md)")
    cluster.add_argument(
        "--servers",
        help="spread the topology over these servers with Mininet Cluster Edition: "
        "comma-separated, this machine first as localhost (localhost,10.0.0.2)",
    )
    cluster.add_argument(
        "--server-placement",
        choices=SERVER_PLACEMENTS,
        default="switch-bin",
        help="which node goes to which server",
    )
    cluster.add_argument(
        "--ssh-config", type=Path, help="ssh configuration file for the root logins (ssh -F)"
    )
    cluster.add_argument(
        "--controller-ip",
        help="this machine's address as the other servers reach it (default: the route's "
        "source address toward the second server)",
    )
    cluster.add_argument(
        "--local-server",
        action="store_true",
        help="make a second server on this machine (its own namespace, Open vSwitch and "
        "sshd) and use it: cluster mode without a second machine",
    )
    ap.add_argument(
        "--script",
        default=argparse.SUPPRESS,
        help="run the CLI commands in this file instead, then stop (default: interactive)",
    )
    ap.add_argument(
        "--log-dir",
        help="logs and state files (default: a new temporary folder)",
        default=argparse.SUPPRESS,
    )
    args = ap.parse_args(argv)
    if args.topology == "savi_single" and not 1 <= args.hosts <= 90:
        ap.error(f"--hosts must be 1..90, not {args.hosts}")
    if args.topology != "savi_single" and (args.dhcp or args.hosts != 3):
        ap.error("--hosts and --dhcp are savi_single's")
    if args.topology != "dualhomed" and (args.coverage != "savi" or args.ipv6):
        ap.error("--coverage and --ipv6 are dualhomed's")
    campus_args = {k: getattr(args, k) for k in CAMPUS_DEFAULTS}
    if args.topology != "campus" and campus_args != CAMPUS_DEFAULTS:
        ap.error(
            "--switches, --savi-fraction, --per-switch, --multihomed, --attackers, "
            "--placement and --seed are campus's"
        )
    if args.topology == "campus":
        try:
            args.campus = campus_topo(args)
        except ValueError as e:
            ap.error(f"campus: {e}")
    if args.servers and args.local_server:
        ap.error("--servers and --local-server: choose one")
    cluster_only = [args.ssh_config, args.controller_ip, args.server_placement != "switch-bin"]
    if any(cluster_only) and not (args.servers or args.local_server):
        ap.error("--server-placement, --ssh-config and --controller-ip need --servers")
    if args.servers:
        try:
            args.cluster = Cluster.parse(
                args.servers,
                placement=args.server_placement,
                ssh_config=args.ssh_config,
                controller_ip=args.controller_ip,
            )
        except ClusterError as e:
            ap.error(f"--servers: {e}")
    args.script = getattr(args, "script", None)
    if args.script is not None:
        try:
            open(args.script).close()
        except OSError as e:
            ap.error(f"--script: {e}")
    return args


def campus_topo(args) -> CampusTopo:
    return CampusTopo(
        switches=args.switches,
        hosts=args.per_switch,
        coverage=args.savi_fraction,
        multihomed=args.multihomed,
        attackers=args.attackers,
        placement=args.placement,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.topology == "dualhomed":
        topo = DualHomedTopo(coverage=args.coverage, ipv6=args.ipv6)
    elif args.topology == "campus":
        topo = args.campus
    else:
        topo = SingleSwitchTopo(hosts=args.hosts, dhcp=args.dhcp)
    log_dir = getattr(args, "log_dir", None)
    exit_on_sigterm()
    try:
        with contextlib.ExitStack() as stack:
            cluster = getattr(args, "cluster", None)
            if args.local_server:
                folder = Path(log_dir or tempfile.mkdtemp(prefix="savi-testbed-")) / "server2"
                server = stack.enter_context(LocalServer(folder))
                cluster = Cluster(
                    servers=("localhost", server.address),
                    placement=args.server_placement,
                    ssh_config=server.ssh_config,
                )
                log_dir = str(folder.parent)
            tb = stack.enter_context(Testbed(topo, log_dir=log_dir, cluster=cluster))
            cli.run(tb, args.mode, args.script)
    except (TestbedBusy, TestbedError, ClusterError, LocalServerError) as e:
        print(f"python -m topologies: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
