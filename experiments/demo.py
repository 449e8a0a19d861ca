"""A short SAVI demo (``sudo make demo``, under a minute).

Starts the default dual-homed topology, shows the bindings SAVI learned and the trust
export, lets both attackers send packets with host a's addresses as source, and reports
what arrived at server b. Writes ``results/demo-<UTC time>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from topologies.builder import REPO, Testbed, TestbedError, exit_on_sigterm, have_netem
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, HETERO_PATHS, DualHomedTopo

SPOOFED_PACKETS = 20
SKIPPED = 3  # exit status when a configuration cannot run on this machine


def spoof(host, intf: str, gateway: str, src: str, dst: str, sport: int) -> None:
    gw_mac = host.cmd(f"ip neigh show {gateway}").split("lladdr ")[1].split()[0]
    code = (
        "from scapy.all import Ether, IP, UDP, sendp\n"
        f"sendp(Ether(dst={gw_mac!r})/IP(src={src!r},dst={dst!r})/UDP(sport={sport},dport=9999),"
        f" iface={intf!r}, count={SPOOFED_PACKETS}, verbose=False)\n"
    )
    proc = host.popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    if proc.returncode:
        raise TestbedError(f"sending spoofed packets from {host.name} failed: {err.decode()}")


def run(out_dir: Path, paths: dict | None = None) -> dict:
    with Testbed(DualHomedTopo(paths=paths), log_dir=str(out_dir / "logs")) as tb:
        a, b, m1, m2 = (tb.net[n] for n in ("a", "b", "m1", "m2"))
        for host in (a, m1, m2):
            host.cmd(f"ping -c1 -W2 {B_TRUSTED}")
        a.cmd(f"ping -c1 -W2 -I {A_UNTRUSTED} {B_TRUSTED}")
        pcap = out_dir / "b.pcap"
        cap = b.popen(
            [
                "tcpdump",
                "-Z",
                "root",
                "--immediate-mode",
                "-i",
                "any",
                "-U",
                "-w",
                str(pcap),
                "udp port 9999",
            ],
            stderr=subprocess.PIPE,
        )
        while b"listening" not in cap.stderr.readline():
            pass
        spoof(m1, "m1-eth0", "10.1.0.1", A_TRUSTED, B_TRUSTED, sport=1)
        spoof(m2, "m2-eth0", "10.2.0.1", A_UNTRUSTED, B_TRUSTED, sport=2)
        time.sleep(0.5)
        cap.terminate()
        cap.wait(10)

        def arrived(sport: int) -> int:
            r = subprocess.run(
                ["tcpdump", "-n", "-r", str(pcap), f"udp src port {sport}"],
                capture_output=True,
                text=True,
            )
            return len(r.stdout.splitlines())

        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "start_seconds": round(tb.start_seconds, 3),
            "bindings": tb.get("/savi/bindings"),
            "trusted": [x["ip"] for x in tb.get("/savi/trust")["addresses"]],
            "spoofing": {
                "m1 (SAVI network) as a's trusted address": {
                    "sent": SPOOFED_PACKETS,
                    "arrived": arrived(1),
                },
                "m2 (legacy network) as a's untrusted address": {
                    "sent": SPOOFED_PACKETS,
                    "arrived": arrived(2),
                },
            },
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.demo", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    ap.add_argument("--out", type=Path, help="output folder (default results/demo-<UTC>)")
    ap.add_argument(
        "--hetero",
        action="store_true",
        help="heterogeneous paths (10 ms / 50 ms RTT, 1%% loss); needs netem",
    )
    args = ap.parse_args(argv)
    if args.hetero and not have_netem():
        print(
            "demo: skipped: --hetero needs tc netem (delay/loss), which this kernel lacks; "
            "run it in the Vagrant VM",
            file=sys.stderr,
        )
        return SKIPPED
    exit_on_sigterm()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or REPO / "results" / f"demo-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    try:
        summary = run(out, HETERO_PATHS if args.hetero else None)
    except TestbedError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"testbed started in {summary['start_seconds']} s")
    print("bindings:")
    for bnd in summary["bindings"]:
        print(
            f"  {bnd['ip']:<28} switch {bnd['dpid']} port {bnd['port']:<3} {bnd['mac']} {bnd['source']}"
        )
    print("trusted (exported to hosts):", ", ".join(summary["trusted"]))
    for what, n in summary["spoofing"].items():
        print(f"spoofed from {what}: {n['arrived']} of {n['sent']} arrived at b")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
