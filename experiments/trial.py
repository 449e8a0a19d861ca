"""One trial of the attack experiment on a running dual-homed testbed, and the trust
convergence probe.

A trial: captures on both of a's access links; a legitimate bulk transfer from a to b
(fresh connection, fixed seed); once it has gone quiet, the attacker sends its forged
segments; the victim's kernel counters before and after decide whether the attack
succeeded; tshark decodes the captures to see where the legitimate control options went.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from experiments import adaptive, attacks
from experiments.confinement import HistoryLabels, Packet, StaticLabels, confine
from experiments.harness import (
    REPO,
    WINDOW_DROPS,
    Capture,
    HarnessError,
    Transfer,
    TransferTimeout,
    abort_leftovers,
    mib,
    pin_neighbours,
    wait_until,
)
from experiments.records import Cell, attempt_outcomes
from topologies.dualhomed import A_TRUSTED, B_TRUSTED, PLANS, AddressPlan

PORT = 5201
# Where the attacker sits: its host and the link of a it eavesdrops (its address is the
# cell's family's: AddressPlan).
LOCATIONS = {
    "protected": ("m1", "a-eth0"),  # a's SAVI access network
    "unprotected": ("m2", "a-eth1"),  # a's legacy access network
}
# The legitimate transfer: greeting, pause for the path manager, bulk, then a quiet spell
# in which the attack lands (a fresh acknowledgment is needed for forgeries to pass).
PAUSE, BULK_SECONDS, IDLE = 0.5, 1.0, 2.5
SETTLE = 0.3  # after the bulk, before the attack: the last ACKs are on the tap
# Every header of every shape the forger sends, whole: Ethernet 14, IPv4 with 40 bytes
# of options 60 (IPv6 behind the ip_options shape's 40-byte destination options header:
# 80), TCP with 40 bytes of options 60. At 128 bytes an ip_options forgery lost its MPTCP
# option, and its trial dated the early attempt from the next one, 0.7 s later.
SNAPLEN = 160


def capture_filter(port: int) -> str:
    """A connection's segments on ``port``, and the shapes libpcap's ``tcp port`` misses:
    an IPv4 fragment after the first, TCP behind an IPv6 extension header (fragment or
    options). tshark reassembles the fragments (decode)."""
    return (
        f"tcp port {port} or (ip and ip[6:2] & 0x1fff != 0)"
        " or (ip6 and ip6[6] != 6 and ip6[6] != 58)"
    )


TIMEOUT = 4.0  # socket timeout of the transfer: how long a killed connection takes to notice
# After the trial's own time, how long the transfer may take to end. With Linux
# 6.18.44 (build v1272) an early payload-shaped claim, 8 bytes injected into b's first
# subflow, made b fall back to TCP while a kept sending MPTCP data and never ended.
TRANSFER_END = 30
REACT = 1.0  # after the attack: the victim's kernel acts (joins, closes)
ATTEMPT_REACT = 0.1  # s: the victim acts on an option as it arrives; then look at it
# The adaptive attacker: the bulk lasts for its 13 attempts during the bulk (about
# 0.25 s each), the quiet spell for its 13 in the lull, before the client closes (in the
# run of f41bd15 the last attempt went out 7.9 s after the start at the latest).
CLOSE_MARGIN = 0.2  # s: no attempt this close to the client's close (it would not count)
ADAPTIVE_BULK_SECONDS, ADAPTIVE_IDLE = 4.0, 4.0
# A replay and the forgeries from the attacker's own connection have short plans
# (adaptive.EXTENSION_PLANS): the first transfer's timing, and a quiet spell for 3 lull
# attempts judged by the victim's TPBT as well (its agent writes a change at its next
# 0.2-s tick).
SHORT_PLANS = {"replay": (1.0, 3.0), "own_connection": (1.0, 3.0)}
TPBT_REACT = 0.5  # s: two of the agent's ticks, each writing a change of its TPBT
OWN_PORT = PORT + 2  # the attacker's own connection to the victim (own_connection)
OWN_BYTES = 50_000  # ... carries a little data, then stays quiet

# Attacks whose success the victim answers with signalling of its own (its path manager
# re-plans after a removal; a fast close tears the connection down): confinement counts
# nothing from the moment they worked. (A hijack's answers name or go to the attacker's
# address and are left out by address; an MP_PRIO is not answered; a believed claim
# moves the peer's control options onto the eavesdropped subflow.)
ANSWERED = ("rm_addr", "fastclose", *attacks.EXTENSION_ATTACKS)


@dataclass(frozen=True)
class Oracle:
    """A packet counter the victim's MIB cannot give: an iptables (IPv4 cells) or
    ip6tables (IPv6) rule the trial inserts in the victim for its duration; its packet
    count joins the victim's counters as ``key``. (During a transfer, legitimate
    announcements and joins move the MIB too.)"""

    key: str
    chain: str
    match: str  # {attacker}: the attacker's address
    match6: str = ""  # the IPv6 rule's match, where it differs

    def comment(self) -> str:
        return f"tmptcp-oracle-{self.key}"

    def rule(self, attacker: str, family: str = "v4") -> str:
        match = self.match6 if family == "v6" and self.match6 else self.match
        return (
            f"{self.chain} {match.format(attacker=attacker)} -m comment --comment {self.comment()}"
        )


def iptables(family: str) -> str:
    return "ip6tables -w" if family == "v6" else "iptables -w"


ORACLES = {
    # The hijack: SYNs the victim sends to the attacker's address (a join there is reset
    # at once by the attacker's kernel, nothing listens: too fast for `ss` to see).
    "add_addr": Oracle("TrialSynsToAttacker", "OUTPUT", "-d {attacker} -p tcp --syn"),
    # The flood: forged SYNs (TAG: IPv4's IP ID, IPv6's flow label) that reached the
    # victim's TCP, past the agents' guard; a legitimate join during the flood counts in
    # MPJoinSynRx as well.
    "join_flood": Oracle(
        "TrialForgedSynsIn",
        "INPUT",
        f"-p tcp --syn -m u32 --u32 '4>>16={attacks.TAG:#x}'",
        f"-p tcp --syn -m u32 --u32 '0&0xFFFFF={attacks.TAG:#x}'",
    ),
}

# Success predicates on the victim's kernel counters (deltas over the attack).
# The flood hits the peer's listener; the attacks on the extension try to move the peer's
# (b's) trust in a's addresses; the rest hit a.
VICTIM = {"join_flood": "b", **{attack: "b" for attack in attacks.EXTENSION_ATTACKS}}


# The victim's counters that say its stack refused or ignored a segment or an option:
# which of them moved over an attempt that did not work says where the forgery was lost
# (PAWS, outside the window, a bad IP header, an option dropped, a mapping it could not
# use). A forgery the tc classifier drops moves none of them (its own counters:
# hosts/guard.py).
REFUSALS = (
    "IpInHdrErrors",
    "IpInDiscards",
    "IpReasmFails",
    "Ip6InHdrErrors",
    "Ip6InDiscards",
    "Ip6ReasmFails",
    "TcpInErrs",
    "TcpInCsumErrors",
    "TcpExtPAWSEstab",
    "TcpExtPAWSOldAck",
    "TcpExtBeyondWindow",
    "TcpExtTCPACKSkippedPAWS",
    "TcpExtTCPACKSkippedSeq",
    "TcpExtTCPACKSkippedChallenge",
    "TcpExtTCPChallengeACK",
    "TcpExtTCPOFODrop",
    "TcpExtTCPZeroWindowDrop",
    "TcpExtTCPRcvQDrop",
    "TcpExtTCPBacklogDrop",
    "MPTcpExtAddAddrDrop",
    "MPTcpExtRmAddrDrop",
    "MPTcpExtMismatchPortAckRx",
    "MPTcpExtDuplicateData",
    "MPTcpExtNoDSSInWindow",
    "MPTcpExtDSSCorruptionFallback",
    "MPTcpExtDSSCorruptionReset",
    "MPTcpExtDssFallback",
    "MPTcpExtFallbackFailed",
)


def refusals(moved: dict[str, int]) -> str:
    """``TcpExtPAWSEstab+1 ...``: the REFUSALS counters that moved, '' if none."""
    return " ".join(f"{k}+{moved[k]}" for k in REFUSALS if moved.get(k, 0) > 0)


def succeeded(attack: str, delta: dict[str, int]) -> tuple[bool, str]:
    """(success, evidence) from the victim's MIB deltas."""
    d = delta.get
    if attack == "add_addr":
        syns = d(ORACLES["add_addr"].key, 0)
        return syns > 0, (
            f"SYNs to the attacker: {syns} AddAddr+{d('MPTcpExtAddAddr', 0)} "
            f"MPJoinSynTx+{d('MPTcpExtMPJoinSynTx', 0)}"
        )
    if attack == "rm_addr":
        ok = d("MPTcpExtRmAddr", 0) > 0
        return ok, f"RmAddr+{d('MPTcpExtRmAddr', 0)} RmSubflow+{d('MPTcpExtRmSubflow', 0)}"
    if attack in ("mp_prio", *attacks.EXTENSION_ATTACKS):
        # An attack on the extension is proven by the MP_PRIO behind it (or, with agents,
        # by the victim's TPBT: trust_bent). Announcements the victim's kernel took are
        # evidence, not success: a replayed ADD_ADDR names an address it knows already,
        # and the attacker may announce anything on its own connection.
        evidence = f"MPPrioRx+{d('MPTcpExtMPPrioRx', 0)}"
        if attack in ("replay", "own_connection"):
            evidence += f" AddAddr+{d('MPTcpExtAddAddr', 0)}"
        return d("MPTcpExtMPPrioRx", 0) > 0, evidence
    if attack == "fastclose":
        return d("MPTcpExtMPFastcloseRx", 0) > 0, f"MPFastcloseRx+{d('MPTcpExtMPFastcloseRx', 0)}"
    if attack == "join_flood":
        # Joins for a token the host does not know count as NoTokenFound as well; a join
        # taken counts only if forged SYNs reached the host's TCP.
        taken = d("MPTcpExtMPJoinSynRx", 0) - d("MPTcpExtMPJoinNoTokenFound", 0)
        forged_in = d(ORACLES["join_flood"].key, 0)
        return min(taken, forged_in) > 0, (
            f"forged SYNs in: {forged_in} MPJoinSynRx+{d('MPTcpExtMPJoinSynRx', 0)} "
            f"NoTokenFound+{d('MPTcpExtMPJoinNoTokenFound', 0)}"
        )
    raise ValueError(f"unknown attack {attack!r}")


def trust_bent(
    before: list[dict], after: list[dict], protected: set[str], unprotected: set[str]
) -> str:
    """What changed in the victim's TPBT entries (its agent's state file) that an attack
    on the extension aims at: a peer address in ``unprotected`` trusted where it was not,
    or one in ``protected`` no longer trusted on a subflow that trusted it. '' if none
    (the legitimate connection's trust does not change during a trial)."""
    was = {(e["token"], e["src"], e["dst"]): e["dip_trust"] for e in before}
    changes = set()
    for e in after:
        trusted_before = was.get((e["token"], e["src"], e["dst"]))
        if e["dst"] in unprotected and e["dip_trust"] and not trusted_before:
            changes.add(f"trusts {e['dst']}")
        elif e["dst"] in protected and trusted_before and not e["dip_trust"]:
            changes.add(f"no longer trusts {e['dst']}")
    return ", ".join(sorted(changes))


def seed_of(cell: Cell, trial: int) -> int:
    """A fixed seed per (cell, trial): reruns send the same bytes and the same guesses."""
    return zlib.crc32(f"{cell.key}#{trial}".encode())


def _established_tuples(host) -> list[str]:
    """b->a four-tuples of the live connection, as the blind attacker is given them."""
    out = host.cmd(f"ss -Htn state established '( sport = :{PORT} or dport = :{PORT} )'")
    tuples = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:  # IPv6 as [ADDR]:PORT
            local, peer = (p.replace("[", "").replace("]", "") for p in parts[-2:])
            tuples.append(f"{peer}-{local}")
    return tuples


FIELDS = (
    "frame.time_epoch",
    "ip.src",
    "tcp.srcport",
    "ip.dst",
    "tcp.dstport",
    "ip.id",
    "tcp.flags",
    "tcp.options",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.flow",
)
# Every MPTCP subtype but DSS: a bulk transfer's data segments carry DSS alone.
NOT_DSS_ONLY = "tcp.options.mptcp.subtype in {0, 1, 3..15}"


# Segments whose only option after NOP NOP TIMESTAMP is one DSS (with its padding): the
# bulk of a capture, and nothing confinement counts. tcpdump drops them before tshark
# dissects the rest (7 times faster on a trial's captures; what tshark then selects is
# the same, see tests/unit/test_confinement.py). Each part first checks that the bytes
# it reads are there (a whole, unfragmented segment with 35 bytes of TCP header): a
# filter that reads past a packet rejects it outright, and `not` cannot undo that — the
# forger's fragments vanished so.
DSS_ONLY = (
    "(ip and ip[6:2] & 0x3fff = 0 and ip[2:2] >= (ip[0] & 0xf) * 4 + 35"
    " and tcp[20] = 1 and tcp[21] = 1 and tcp[22] = 8 and tcp[32] = 30"
    " and tcp[34] & 0xf0 = 0x20 and (tcp[12] & 0xf0) >> 2 <= 34 + tcp[33])"
    # IPv6 (libpcap has no tcp[] there): TCP right after the fixed header, at ip6[40]
    " or (ip6 and ip6[6] = 6 and ip6[4:2] >= 35"
    " and ip6[60] = 1 and ip6[61] = 1 and ip6[62] = 8 and ip6[72] = 30"
    " and ip6[74] & 0xf0 = 0x20 and (ip6[52] & 0xf0) >> 2 <= 34 + ip6[73])"
)


def decode(pcap: Path) -> list[Packet]:
    """Every packet with an MPTCP option other than DSS, decoded by tshark (the option
    area's bytes are parsed by hosts.options)."""
    pre = subprocess.Popen(
        ["tcpdump", "-r", str(pcap), "-w", "-", f"not ({DSS_ONLY})"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        r = subprocess.run(
            [
                "tshark",
                "-r",
                "-",
                "-Y",
                NOT_DSS_ONLY,
                "-T",
                "fields",
                *[a for f in FIELDS for a in ("-e", f)],
            ],
            stdin=pre.stdout,
            capture_output=True,
            text=True,
            timeout=120,
        )
        pre.stdout.close()
        pre_err = pre.communicate(timeout=30)[1].decode(errors="replace")
    finally:  # tshark failed or hung: the reader goes too
        if pre.poll() is None:
            pre.kill()
            pre.wait(5)
    if pre.returncode != 0:
        raise HarnessError(f"tcpdump could not read {pcap}: {pre_err.strip()[-300:]}")
    if r.returncode != 0:
        raise HarnessError(f"tshark could not read {pcap}: {r.stderr.strip()[:300]}")
    packets = []
    for line in r.stdout.splitlines():
        row = line.split("\t")
        if len(row) != len(FIELDS):
            continue
        t, src, sport, dst, dport, ip_id, flags, options, src6, dst6, flow = row
        if not src:  # IPv6: the flow label stands for the IP ID (forgeries carry TAG there)
            src, dst, ip_id = src6, dst6, flow
        if not src:
            continue
        packets.append(
            Packet(
                float(t),
                src,
                int(sport),
                dst,
                int(dport),
                int(ip_id or "0", 0),
                int(flags, 0),
                bytes.fromhex(options.replace(":", "")),
            )
        )
    return packets


def labels_for(tb, cell: Cell):
    """How the packets of a trial are labelled: from the agents' TPBT histories, or for
    hosts without agents from the SAVI controller's export (nothing without SAV)."""
    if tb.agents:
        return HistoryLabels([tb.tpbt(h).get("history", []) for h in ("a", "b")])
    if cell.coverage == "none":
        return StaticLabels(set())
    status, doc = tb.request("GET", "/savi/trust")
    if status != 200:
        raise HarnessError(f"the controller's trust export answered {status}")
    return StaticLabels({entry["ip"] for entry in doc["addresses"]})


def run_trial(
    tb,
    cell: Cell,
    trial: int,
    workdir: Path,
    tpbt_out: Path | None = None,
    keep_captures: bool = False,
    bind: str | None = "unprotected",
    exhaustive: bool = False,
) -> dict:
    """Run one trial of ``cell`` on ``tb`` (already in the cell's coverage and mode; a
    dual-stack testbed for an IPv6 cell).

    ``bind``: the client's address for the connection's first subflow. By default
    ("unprotected") a's unprotected address of the cell's family: the case the extension
    is for (the first subflow, which carries the keys and, in vanilla MPTCP, every later
    control option, is untrusted); None lets the routing choose (a's protected address
    in this topology); else an address.
    The captures of a's links are deleted after decoding unless ``keep_captures``."""
    t_start = time.monotonic()
    leftovers = abort_leftovers(tb, ("a", "b", "m1", "m2"), (PORT, OWN_PORT))
    if leftovers:
        print(
            f"{cell.key} #{trial}: aborted {leftovers} leftover connection(s) of earlier trials",
            file=sys.stderr,
            flush=True,
        )
    seed = seed_of(cell, trial)
    workdir.mkdir(parents=True, exist_ok=True)
    a = tb.net["a"]
    plan = plan_of(tb, cell)
    if bind == "unprotected":
        bind = plan.a[1]
    attacker_name, tap_iface = LOCATIONS[cell.location]
    attacker_addr = getattr(plan, attacker_name)
    cmd = [
        sys.executable,
        "-m",
        "experiments.attacks",
        cell.attack,
        "--strength",
        cell.strength,
        "--attacker",
        attacker_addr,
        "--seed",
        str(seed),
        "--wait",
        "--port",
        str(PORT),
    ]
    for addr in plan.a:
        cmd += ["--victim", addr]
    for addr in plan.b:
        cmd += ["--peer", addr]
    if cell.strength == "adaptive":  # experiments.forger, driven attempt by attempt
        cmd = [
            sys.executable,
            "-m",
            "experiments.forger",
            "--attacker",
            attacker_addr,
            "--seed",
            str(seed),
            "--port",
            str(PORT),
        ]
        a_addrs, b_addrs = plan.a, plan.b
        if cell.attack in attacks.EXTENSION_ATTACKS:  # in a's name to b
            a_addrs, b_addrs = b_addrs, a_addrs
        for flag, addrs in (("--victim", a_addrs), ("--peer", b_addrs)):
            cmd += [a for addr in addrs for a in (flag, addr)]
    victim = tb.net[VICTIM.get(cell.attack, "a")]
    receiver = tb.net["b"]  # the legitimate transfer's
    caps, attacker, xfer = {}, None, None
    outcome = None
    bulk = ADAPTIVE_BULK_SECONDS if cell.strength == "adaptive" else BULK_SECONDS
    idle = ADAPTIVE_IDLE if cell.strength == "adaptive" else IDLE
    if cell.strength == "adaptive" and cell.attack in SHORT_PLANS:
        bulk, idle = SHORT_PLANS[cell.attack]
    own_xfer = None
    oracle = ORACLES.get(cell.attack)
    if oracle is not None:
        rule = oracle.rule(attacker_addr, cell.family)
        out = victim.cmd(f"{iptables(cell.family)} -I {rule} && echo inserted")
        if "inserted" not in out:
            raise HarnessError(f"could not add the {oracle.key} rule in {victim.name}: {out}")
    try:
        # The attack program loads scapy while the captures start: it reads its taps
        # only when told to strike.
        pcap = {i: workdir / f"{i}.pcap" for i in ("a-eth0", "a-eth1", "own")}
        if cell.strength in ("eavesdrop", "adaptive"):
            cmd += ["--tap", str(pcap[tap_iface])]
        if cell.attack == "replay":  # it reads a's other link too (it cannot send there)
            cmd += ["--record-tap", str(pcap["a-eth0" if tap_iface == "a-eth1" else "a-eth1"])]
        if cell.attack == "own_connection":
            cmd += ["--own", attacker_addr, "--own-tap", str(pcap["own"])]
        attacker = tb.net[attacker_name].popen(
            cmd,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Headers are enough for tshark (SNAPLEN).
        for i in ("a-eth0", "a-eth1"):
            caps[i] = Capture(a, i, capture_filter(PORT), pcap[i], snaplen=SNAPLEN)
        if cell.attack == "own_connection":
            own_xfer = _own_connection(
                tb, attacker_name, pcap["own"], caps, bulk + idle + PAUSE, plan
            )
        said = attacker.stdout.readline().strip()
        if said != "ready":
            err = attacker.stderr.read()[:500]
            raise HarnessError(f"the attack program did not start: {said[:300]} {err}")
        # The server waits through the quiet spell: its socket timeout must outlast it.
        timeout = max(TIMEOUT, idle + TIMEOUT / 2)
        receiver_drops_before = mib(receiver).get(WINDOW_DROPS, 0)
        xfer = Transfer(
            tb,
            seconds=bulk,
            pause=PAUSE,
            idle=idle,
            timeout=timeout,
            bind=bind,
            seed=seed % 2**31,
            port=PORT,
            to=plan.b[0],
        )
        if cell.strength == "adaptive":
            before = counters(victim, cell.attack, cell.family)
            t_attack = time.monotonic()
            tpbt = None
            if tb.agents and cell.attack in SHORT_PLANS:  # a claim shows in the MP_PRIO
                tpbt = lambda: tb.tpbt(victim.name)["entries"]  # noqa: E731
            outcome, report = adapt(
                attacker,
                victim,
                cell.attack,
                xfer.started,
                bulk,
                early_shape=adaptive.early_shape(cell.attack, trial),
                exhaustive=exhaustive,
                tpbt=tpbt,
                idle=idle,
                plan=plan,
                family=cell.family,
            )
            attack_seconds = time.monotonic() - t_attack
        else:
            _until(xfer.started + PAUSE + bulk + SETTLE)
            go = " ".join(_established_tuples(a)) if cell.strength == "blind" else ""
            before = counters(victim, cell.attack, cell.family)
            t_attack, attack_wall = time.monotonic(), time.time()
            out, err = attacker.communicate(go + "\n", timeout=60)
            attack_seconds = time.monotonic() - t_attack
            try:
                report = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise HarnessError(f"the attack program failed: {err.strip()[-500:]}") from None
            if "error" in report:
                raise HarnessError(f"the attack program failed: {report['error']}")
        if outcome is None:  # adaptive attempts were each judged as they were made
            time.sleep(REACT)
        after = counters(victim, cell.attack, cell.family)
        if tpbt_out is not None and tb.agents:
            tpbt_out.write_text(
                "".join(f"# {h}\n{tb.tpbt(h)['table']}\n" for h in sorted(tb.agents))
            )
        try:
            client, server = xfer.outcome(timeout=TRANSFER_END)
        except TransferTimeout as e:  # both ends killed: a failed transfer, like an error
            client = server = {"error": str(e)}
        window_drops = mib(receiver).get(WINDOW_DROPS, 0) - receiver_drops_before
        labels = labels_for(tb, cell)
    finally:  # whatever happened: no process or rule of this trial outlives it
        if oracle is not None:
            victim.cmd(f"{iptables(cell.family)} -D {oracle.rule(attacker_addr, cell.family)}")
        if attacker is not None and attacker.poll() is None:
            attacker.kill()
            attacker.wait(10)
        for x in (xfer, own_xfer):
            if x is not None:
                x.kill()
        time.sleep(0.3)  # the last packets reach the files
        for c in caps.values():
            c.stop(settle=0)
    delta = {k: after.get(k, 0) - v for k, v in before.items()}
    success, evidence = succeeded(cell.attack, delta)
    # Every TCP and MPTCP counter of the victim that moved over the attack: what its
    # kernel did with the forgeries (when they failed: dropped as old, PAWS, bad HMAC).
    moved = {k: n for k, n in sorted(delta.items()) if n and k.startswith(("TcpExt", "MPTcp"))}
    if outcome is not None:  # judged attempt by attempt (legitimate signals interleave)
        success, evidence = outcome.success, outcome.evidence
    transfer_ok = "error" not in client and "error" not in server
    worked_at = None  # the victim's signalling from then on answers the forgery
    if success and cell.attack in ANSWERED:
        worked_at = outcome.at if outcome is not None else attack_wall
    # Both of a's links at once: tcpdump and tshark each use a core.
    with ThreadPoolExecutor(2) as pool:
        decoded = pool.map(decode, [c.path for i, c in caps.items() if i != "own"])
        packets = [p for link in decoded for p in link]
    conf = confine(
        packets, labels, {"a": set(plan.a), "b": set(plan.b)}, attacks.TAG, until=worked_at
    )
    trusted_total = conf.totals()
    started_at = conf.started_at
    # When the forger's first packet reached a's link (the forger's own clock says when
    # it decided; the wire says when it struck).
    forged = [p.time for p in packets if p.ip_id == attacks.TAG]
    first_forged = min(forged, default=None)
    record = {
        "cell": cell.key,
        "trial": trial,
        "seed": seed,
        **vars(cell),
        "success": success,
        "evidence": evidence,
        "victim_counters": moved,
        "forged_sent": outcome.sent if outcome else report["sent"],
        "success_moment": outcome.moment if outcome else "",
        "success_shape": outcome.shape if outcome else "",
        "attempts": outcome.attempts if outcome else 1,
        "subflows_seen": report["subflows_seen"],
        "keys_known": report["keys_known"],
        "replayed": report.get("replayed", ""),
        "transfer_ok": transfer_ok,
        "transfer_error": "; ".join(
            f"{side}: {o['error']}"
            for side, o in (("client", client), ("server", server))
            if "error" in o
        ),
        "bytes_match": transfer_ok
        and client["sha256"] == server["sha256"]
        and client["bytes"] == server["bytes"],
        "goodput_mbps": client.get("goodput_mbps") if transfer_ok else None,
        "window_drops": window_drops,
        "connect_ms": client["connect_seconds"] * 1000 if transfer_ok else None,
        "control_total": trusted_total[1],
        "control_trusted": trusted_total[0],
        "handshake_total": conf.handshake[1],
        "handshake_trusted": conf.handshake[0],
        "confinement": conf.as_record(),
        "trusted_up_ms": _ms(conf.trusted_up_at, started_at),
        "early_shape": outcome.early_shape if outcome else "",
        "attempt_log": outcome.log_text() if outcome else "",
        "attempt_refusals": outcome.refusals_text() if outcome else "",
        "early_ms": _ms(first_forged, started_at) if outcome and outcome.early_shape else None,
        "attack_seconds": round(attack_seconds, 3),
        "trial_seconds": round(time.monotonic() - t_start, 3),
    }
    if not keep_captures:
        for c in caps.values():
            c.path.unlink(missing_ok=True)
    return record


def plan_of(tb, cell: Cell) -> AddressPlan:
    """The addresses of the cell's family; an IPv6 cell needs a dual-stack testbed."""
    if cell.family == "v6" and not getattr(tb.topo, "ipv6", False):
        raise HarnessError(f"{cell.key} is an IPv6 cell: it needs DualHomedTopo(ipv6=True)")
    return PLANS[cell.family]


def _own_connection(
    tb, attacker: str, path: Path, caps: dict, seconds: float, plan: AddressPlan = PLANS["v4"]
) -> Transfer:
    """The attacker's own MPTCP connection to b (a little data, then quiet for
    ``seconds``), captured on its own link as ``caps["own"]``; returned once the capture
    has shown the handshake's third ACK (the keys)."""
    host = tb.net[attacker]
    caps["own"] = Capture(host, f"{attacker}-eth0", capture_filter(OWN_PORT), path, snaplen=SNAPLEN)
    own = Transfer(
        tb,
        nbytes=OWN_BYTES,
        pause=0,
        idle=seconds + 2,
        timeout=seconds + 10,
        client=attacker,
        server="b",
        port=OWN_PORT,
        to=plan.b[0],
    )
    # Read on from where the last look stopped, as the attacker does.
    tap = attacks.TapFollower(str(path))
    learner = attacks.Learner(set(plan.b), {getattr(plan, attacker)})
    try:
        wait_until(
            lambda: learner.feed(tap()).keys is not None,
            10,
            "the attacker's own connection to show its keys",
        )
    except HarnessError:
        own.kill()  # the caller never gets it to kill
        raise
    finally:
        tap.close()
    return own


def _ms(when: float | None, since: float | None) -> float | None:
    return None if when is None or since is None else round((when - since) * 1000, 1)


def _until(when: float) -> None:
    """The trial's schedule: carry on at monotonic time ``when`` (a moment of the
    experiment's design, not a wait for a condition)."""
    time.sleep(max(0.0, when - time.monotonic()))


def _command(forger, attack: str, shape: str, now: bool) -> dict:
    forger.stdin.write(f"{attack} {shape}{' now' if now else ''}\n")
    forger.stdin.flush()
    line = forger.stdout.readline()
    if not line:
        raise HarnessError(f"the forger ended: {forger.stderr.read()[-500:]}")
    report = json.loads(line)
    if "error" in report:
        raise HarnessError(f"the forger failed: {report['error']}")
    return report


def counters(victim, attack: str, family: str = "v4") -> dict[str, int]:
    """The victim's MIB and the packet count of the attack's oracle rule (ORACLES)."""
    values = mib(victim)
    oracle = ORACLES.get(attack)
    if oracle is not None:
        out = victim.cmd(f"{iptables(family)} -nvx -L {oracle.chain}")
        rows = [line.split() for line in out.splitlines() if oracle.comment() in line]
        if len(rows) != 1 or not rows[0][0].isdigit():
            raise HarnessError(f"no single {oracle.key} rule in {victim.name}: {out!r}")
        values[oracle.key] = int(rows[0][0])
    return values


def _reacted(
    victim,
    before: dict,
    attack: str,
    timeout: float = ATTEMPT_REACT,
    tpbt=None,
    plan: AddressPlan = PLANS["v4"],
    family: str = "v4",
):
    """(success, evidence, the counters' moves) once the victim's counters (with the
    attack's oracle rule: ORACLES) show the attack worked, or after ``timeout`` (the
    kernel acts on an option as it arrives)."""
    deadline = time.monotonic() + timeout
    while True:
        now = counters(victim, attack, family)
        moved = {k: now.get(k, 0) - v for k, v in before.items() if k != "tpbt"}
        ok, evidence = succeeded(attack, moved)
        if tpbt is not None:
            bent = trust_bent(before["tpbt"], tpbt(), {plan.a[0]}, {plan.a[1]})
            ok, evidence = ok or bool(bent), f"{evidence} TPBT: {bent or 'unchanged'}"
        if ok or time.monotonic() >= deadline:
            return ok, evidence, moved
        time.sleep(0.05)


def adapt(
    forger,
    victim,
    attack: str,
    started: float,
    bulk: float,
    early_shape: str = "plain",
    exhaustive: bool = False,
    tpbt=None,
    idle: float = ADAPTIVE_IDLE,
    plan: AddressPlan = PLANS["v4"],
    family: str = "v4",
):
    """Carry out the adaptive attacker's plan (experiments/adaptive.py) with the forger,
    judging each attempt by the victim's counters (and ``tpbt()``, its TPBT entries, if
    given: trust_bent); stop at the first that works, unless ``exhaustive`` (every
    attempt is made and judged on its own: for an attack that leaves the connection as
    it was, to see which shapes and moments work)."""
    outcome, report = adaptive.Outcome(), {"subflows_seen": 0, "keys_known": False}
    starts = {
        "early": started,
        "bulk": started + PAUSE + 0.2,
        "lull": started + PAUSE + bulk + SETTLE,
    }
    closes = started + PAUSE + bulk + idle
    for attempt in adaptive.plan(attack, early=early_shape or "plain"):
        _until(starts[attempt.moment])
        if time.monotonic() > closes - CLOSE_MARGIN:
            # The connection is about to end: attempts after that would be recorded as
            # failures on a connection that is gone. Left out (`attempts` says so).
            break
        before = counters(victim, attack, family)
        if tpbt is not None:
            before["tpbt"] = tpbt()
        now = attempt.moment != "lull"
        shape = "plain" if attempt.shape == adaptive.FLOOD else attempt.shape
        report = _command(forger, attack, shape, now)
        if attempt.moment == "early":  # until the tap has shown the peer's first segments
            deadline = time.monotonic() + 2.0
            while not report["sent"] and not report["no_room"] and time.monotonic() < deadline:
                time.sleep(0.005)
                report = _command(forger, attack, shape, now)
            if not report["no_room"]:
                outcome.early_shape, outcome.early_at = attempt.shape, report.get("sent_at")
        if report["no_room"]:  # nothing went out: not an attempt that failed
            outcome.log.append((attempt, None))
            continue
        outcome.attempts += 1
        outcome.sent += report["sent"]
        react = TPBT_REACT if tpbt is not None else ATTEMPT_REACT
        ok, evidence, moved = _reacted(victim, before, attack, react, tpbt, plan, family)
        outcome.log.append((attempt, ok))
        if not ok:
            outcome.refused.append((attempt, refusals(moved)))
        if ok and not outcome.success:
            outcome.success, outcome.moment, outcome.shape = True, attempt.moment, attempt.shape
            outcome.at = report.get("sent_at")
            outcome.evidence = f"{attempt.moment}/{attempt.shape}: {evidence}"
        if ok and not exhaustive:
            break
    if not outcome.success and outcome.attempts:
        outcome.evidence = f"no attempt worked; the last: {evidence}"
    return outcome, report


def explains_broken_transfer(record: dict) -> bool:
    """A failed legitimate transfer is an outcome only if the attack explains it:
    FASTCLOSE resets the connection and RM_ADDR may remove every subflow when they work;
    a claim's forgeries go to b, the transfer's receiver, and in the payload, FIN and
    RST shapes inject data, a FIN or a reset into its stream (TCP-level injection, which
    no MPTCP option guard stops: with one subflow, unmapped data ends MPTCP there)."""
    if record["transfer_ok"]:
        return True
    if record["success"] and record["attack"] in ("fastclose", "rm_addr"):
        return True
    tried = {what.split("/")[-1] for what in attempt_outcomes([record])}
    return record["attack"] == "claim" and bool(tried & set(adaptive.DESTRUCTIVE))


def trust_convergence(tb, rounds: int = 3) -> dict:
    """Seconds from a's trusted address losing its binding (REST DELETE) to b's TPBT
    marking the subflow untrusted, and from a's new claim (gratuitous ARP) to b marking
    it trusted again. Needs the agents and SAVI coverage.

    The moment b's TPBT changed is read from b's own history of it (its agent stamps
    each change as it makes it), not from when a poll of its state file (written at
    the 0.2-s tick after a change) first shows it; the claim is sent without waiting
    for arping to end (it waits a second for an answer that a gratuitous ARP never
    gets: the 1.01 s every round showed in the runs before)."""
    pair = (B_TRUSTED, A_TRUSTED)
    xfer = Transfer(tb, seconds=8 * rounds + 10, rate_mbps=2, pause=0.5, timeout=60, port=PORT + 1)
    # a has no other trusted subflow for a withdrawal: b learns of the removal from the
    # controller's export (Tpbt.set_domain). Pinned neighbours: no ARP of a's claims the
    # address back before the probe's own.
    pin_neighbours(tb, "a", A_TRUSTED, "10.1.0.1")
    down, up = [], []
    try:
        # The transfer's connection, the newest b trusts a's address on (a closing one
        # of an earlier run leaves changes of its own to the same address pair).
        token = wait_until(
            lambda: _newest_trusting(tb.tpbt("b"), pair),
            20,
            "b's TPBT to trust a's protected address",
        )
        subflow = (token, *pair)
        for _ in range(rounds):
            t0 = time.time()
            status = tb.request("DELETE", "/savi/bindings", {"ip": A_TRUSTED})[0]
            if status != 200:
                raise HarnessError(f"removing a's binding answered {status}")
            at = wait_until(
                lambda since=t0: _changed_at(tb, "b", subflow, False, since),
                20,
                "b's TPBT to drop a's trust",
            )
            down.append(at - t0)
            t0 = time.time()
            arping = tb.net["a"].popen(
                ["arping", "-q", "-U", "-c", "1", "-I", "a-eth0", "-s", A_TRUSTED, A_TRUSTED]
            )
            try:
                at = wait_until(
                    lambda since=t0: _changed_at(tb, "b", subflow, True, since),
                    20,
                    "b's TPBT to trust a's address again",
                )
            finally:
                arping.wait(10)
            up.append(at - t0)
    finally:
        xfer.kill()
    return {"binding_to_peer_trusted_s": up, "removal_to_peer_untrusted_s": down}


def _newest_trusting(state: dict, pair: tuple[str, str]) -> int | None:
    """The token of the newest connection whose subflow ``pair`` (local, remote) the
    host's TPBT trusts now, by its history; None if none does."""
    trusted = {
        e["token"]
        for e in state["entries"]
        if (e["src"], e["dst"]) == pair and e["sip_trust"] and e["dip_trust"]
    }
    since = {c[1]: c[0] for c in state["history"] if c[1] in trusted and (c[2], c[3]) == pair}
    return max(since, key=since.get) if since else None


def _changed_at(tb, host: str, subflow: tuple[int, str, str], trusted: bool, since: float):
    """When ``host``'s TPBT last marked ``subflow`` (token, local, remote address)
    ``trusted`` (or untrusted), if it did at or after ``since`` and that is how the
    subflow stands now: its agent's history of changes, each stamped as it was made.
    None otherwise (the history is written with the state, a tick after the change)."""
    changes = [c for c in tb.tpbt(host)["history"] if tuple(c[1:4]) == subflow]
    if changes and changes[-1][4] is trusted and changes[-1][0] >= since:
        return changes[-1][0]
    return None
