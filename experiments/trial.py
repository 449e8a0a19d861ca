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
from pathlib import Path

from experiments import adaptive, attacks
from experiments.harness import (
    REPO,
    Capture,
    HarnessError,
    Transfer,
    mib,
    pin_neighbours,
    wait_until,
)
from experiments.records import Cell, confinement
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, B_UNTRUSTED, M1, M2

PORT = 5201
# Where the attacker sits: its host, its address, the link of a it eavesdrops.
LOCATIONS = {
    "protected": ("m1", M1, "a-eth0"),  # a's SAVI access network
    "unprotected": ("m2", M2, "a-eth1"),  # a's legacy access network
}
# The legitimate transfer: greeting, pause for the path manager, bulk, then a quiet spell
# in which the attack lands (a fresh acknowledgment is needed for forgeries to pass).
PAUSE, BULK_SECONDS, IDLE = 0.5, 1.0, 2.5
SETTLE = 0.3  # after the bulk, before the attack: the last ACKs are on the tap
SNAPLEN = 128
TIMEOUT = 4.0  # socket timeout of the transfer: how long a killed connection takes to notice
REACT = 1.0  # after the attack: the victim's kernel acts (joins, closes)
ATTEMPT_REACT = 0.1  # s: the victim acts on an option as it arrives; then look at it
ADAPTIVE_BULK_SECONDS = 6.0  # long enough for the early and the bulk attempts

# Success predicates on the victim's kernel counters (deltas over the attack).
VICTIM = {"join_flood": "b"}  # the flood hits the peer's listener; the rest hit a


def succeeded(attack: str, delta: dict[str, int]) -> tuple[bool, str]:
    """(success, evidence) from the victim's MIB deltas."""
    d = delta.get
    if attack == "add_addr":
        ok = d("MPTcpExtAddAddr", 0) > 0 and d("MPTcpExtMPJoinSynTx", 0) > 0
        return ok, f"AddAddr+{d('MPTcpExtAddAddr', 0)} MPJoinSynTx+{d('MPTcpExtMPJoinSynTx', 0)}"
    if attack == "rm_addr":
        ok = d("MPTcpExtRmAddr", 0) > 0
        return ok, f"RmAddr+{d('MPTcpExtRmAddr', 0)} RmSubflow+{d('MPTcpExtRmSubflow', 0)}"
    if attack == "mp_prio":
        return d("MPTcpExtMPPrioRx", 0) > 0, f"MPPrioRx+{d('MPTcpExtMPPrioRx', 0)}"
    if attack == "fastclose":
        return d("MPTcpExtMPFastcloseRx", 0) > 0, f"MPFastcloseRx+{d('MPTcpExtMPFastcloseRx', 0)}"
    if attack == "join_flood":
        # Joins for a token the host does not know count as NoTokenFound as well.
        taken = d("MPTcpExtMPJoinSynRx", 0) - d("MPTcpExtMPJoinNoTokenFound", 0)
        return taken > 0, (f"MPJoinSynRx+{d('MPTcpExtMPJoinSynRx', 0)} "
                           f"NoTokenFound+{d('MPTcpExtMPJoinNoTokenFound', 0)}")  # fmt: skip
    raise ValueError(f"unknown attack {attack!r}")


def seed_of(cell: Cell, trial: int) -> int:
    """A fixed seed per (cell, trial): reruns send the same bytes and the same guesses."""
    return zlib.crc32(f"{cell.key}#{trial}".encode())


def _established_tuples(host) -> list[str]:
    """b->a four-tuples of the live connection, as the blind attacker is given them."""
    out = host.cmd(f"ss -Htn state established '( sport = :{PORT} or dport = :{PORT} )'")
    tuples = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            local, peer = parts[-2], parts[-1]
            tuples.append(f"{peer}-{local}")
    return tuples


FIELDS = ("ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "ip.id", "tcp.flags",
          "tcp.options.mptcp.subtype")  # fmt: skip


def decode(pcap: Path) -> list[tuple]:
    """FIELDS of every packet with an MPTCP option, decoded by tshark."""
    r = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp.options.mptcp.subtype",
                        "-T", "fields", *[a for f in FIELDS for a in ("-e", f)]],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    if r.returncode != 0:
        raise HarnessError(f"tshark could not read {pcap}: {r.stderr.strip()[:300]}")
    rows = [tuple(line.split("\t")) for line in r.stdout.splitlines()]
    return [row for row in rows if len(row) == len(FIELDS)]


def run_trial(tb, cell: Cell, trial: int, workdir: Path, tpbt_out: Path | None = None,
              keep_captures: bool = False, bind: str | None = A_UNTRUSTED) -> dict:  # fmt: skip
    """Run one trial of ``cell`` on ``tb`` (already in the cell's coverage and mode).

    ``bind``: the client's address for the connection's first subflow. By default a's
    unprotected address: the case the extension is for (the first subflow, which carries
    the keys and, in vanilla MPTCP, every later control option, is untrusted); None lets
    the routing choose (a's protected address in this topology).
    The captures of a's links are deleted after decoding unless ``keep_captures``."""
    t_start = time.monotonic()
    seed = seed_of(cell, trial)
    workdir.mkdir(parents=True, exist_ok=True)
    a = tb.net["a"]
    attacker_name, attacker_addr, tap_iface = LOCATIONS[cell.location]
    cmd = [sys.executable, "-m", "experiments.attacks", cell.attack, "--strength", cell.strength,
           "--attacker", attacker_addr, "--seed", str(seed), "--wait", "--port", str(PORT)]  # fmt: skip
    for addr in (A_TRUSTED, A_UNTRUSTED):
        cmd += ["--victim", addr]
    for addr in (B_TRUSTED, B_UNTRUSTED):
        cmd += ["--peer", addr]
    if cell.strength == "adaptive":  # experiments.forger, driven attempt by attempt
        cmd = [sys.executable, "-m", "experiments.forger", "--attacker", attacker_addr,
               "--seed", str(seed), "--port", str(PORT)]  # fmt: skip
        for flag, addrs in (("--victim", (A_TRUSTED, A_UNTRUSTED)),
                            ("--peer", (B_TRUSTED, B_UNTRUSTED))):  # fmt: skip
            cmd += [a for addr in addrs for a in (flag, addr)]
    victim = tb.net[VICTIM.get(cell.attack, "a")]
    caps, attacker, xfer = {}, None, None
    outcome = None
    bulk = ADAPTIVE_BULK_SECONDS if cell.strength == "adaptive" else BULK_SECONDS
    try:
        # Headers are enough for the attacker's tap and for tshark (options end by byte 94).
        for i in ("a-eth0", "a-eth1"):
            caps[i] = Capture(a, i, f"tcp port {PORT}", workdir / f"{i}.pcap", snaplen=SNAPLEN)
        if cell.strength in ("eavesdrop", "adaptive"):
            cmd += ["--tap", str(caps[tap_iface].path)]
        attacker = tb.net[attacker_name].popen(cmd, cwd=REPO, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True)  # fmt: skip
        if attacker.stdout.readline().strip() != "ready":
            raise HarnessError(f"the attack program did not start: {attacker.stderr.read()[:500]}")
        xfer = Transfer(tb, seconds=bulk, pause=PAUSE, idle=IDLE, timeout=TIMEOUT, bind=bind,
                        seed=seed % 2**31, port=PORT)  # fmt: skip
        if cell.strength == "adaptive":
            before = mib(victim)
            t_attack = time.monotonic()
            outcome, report = adapt(attacker, victim, cell.attack, attacker_addr, xfer.started,
                                    bulk)  # fmt: skip
            attack_seconds = time.monotonic() - t_attack
        else:
            _until(xfer.started + PAUSE + bulk + SETTLE)
            go = " ".join(_established_tuples(a)) if cell.strength == "blind" else ""
            before = mib(victim)  # the legitimate joins and announcements are over by now
            t_attack = time.monotonic()
            out, err = attacker.communicate(go + "\n", timeout=60)
            attack_seconds = time.monotonic() - t_attack
            try:
                report = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise HarnessError(f"the attack program failed: {err.strip()[-500:]}") from None
            if "error" in report:
                raise HarnessError(f"the attack program failed: {report['error']}")
        time.sleep(REACT)
        after = mib(victim)
        if tpbt_out is not None and tb.agents:
            tpbt_out.write_text(
                "".join(f"# {h}\n{tb.tpbt(h)['table']}\n" for h in sorted(tb.agents))
            )
        client, server = xfer.outcome(timeout=30)
    finally:  # whatever happened: no process of this trial outlives it
        if attacker is not None and attacker.poll() is None:
            attacker.kill()
            attacker.wait(10)
        if xfer is not None:
            xfer.kill()
        time.sleep(0.3)  # the last packets reach the files
        for c in caps.values():
            c.stop(settle=0)
    delta = {k: after.get(k, 0) - v for k, v in before.items()}
    success, evidence = succeeded(cell.attack, delta)
    if outcome is not None:  # judged attempt by attempt (legitimate signals interleave)
        success, evidence = outcome.success, outcome.evidence
    transfer_ok = "error" not in client and "error" not in server
    trusted_pair = None if cell.coverage == "none" else {A_TRUSTED, B_TRUSTED}
    rows = [row for c in caps.values() for row in decode(c.path)]
    record = {
        "cell": cell.key, "trial": trial, "seed": seed, **vars(cell),
        "success": success, "evidence": evidence,
        "forged_sent": outcome.sent if outcome else report["sent"],
        "success_moment": outcome.moment if outcome else "",
        "success_shape": outcome.shape if outcome else "",
        "attempts": outcome.attempts if outcome else 1,
        "subflows_seen": report["subflows_seen"], "keys_known": report["keys_known"],
        "transfer_ok": transfer_ok,
        "bytes_match": transfer_ok and client["sha256"] == server["sha256"]
                       and client["bytes"] == server["bytes"],
        "goodput_mbps": client.get("goodput_mbps") if transfer_ok else None,
        "connect_ms": client["connect_seconds"] * 1000 if transfer_ok else None,
        **confinement(rows, trusted_pair, attacks.TAG),
        "attack_seconds": round(attack_seconds, 3),
        "trial_seconds": round(time.monotonic() - t_start, 3),
    }  # fmt: skip
    if not keep_captures:
        for c in caps.values():
            c.path.unlink(missing_ok=True)
    return record


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


def _reacted(victim, before: dict, attack: str, attacker: str, timeout: float = ATTEMPT_REACT):
    """(success, evidence) once the victim shows the attack worked, or after ``timeout``
    (the kernel acts on an option as it arrives). The hijack is judged by a subflow
    towards the attacker's address: during a transfer the legitimate ADD_ADDRs and joins
    move the counters too."""
    deadline = time.monotonic() + timeout
    while True:
        if attack == "add_addr":
            sockets = victim.cmd(f"ss -Htn dst {attacker}").strip()
            ok, evidence = bool(sockets), f"subflow to {attacker}: {'yes' if sockets else 'no'}"
        else:
            now = mib(victim)
            ok, evidence = succeeded(attack, {k: now.get(k, 0) - v for k, v in before.items()})
        if ok or time.monotonic() >= deadline:
            return ok, evidence
        time.sleep(0.05)


def adapt(forger, victim, attack: str, attacker: str, started: float, bulk: float):
    """Carry out the adaptive attacker's plan (experiments/adaptive.py) with the forger,
    judging each attempt by the victim's counters; stop at the first that works."""
    outcome, report = adaptive.Outcome(), {"subflows_seen": 0, "keys_known": False}
    starts = {"early": started, "bulk": started + PAUSE + 0.2,
              "lull": started + PAUSE + bulk + SETTLE}  # fmt: skip
    for attempt in adaptive.plan(attack):
        _until(starts[attempt.moment])
        before = mib(victim)
        now = attempt.moment != "lull"
        shape = "plain" if attempt.shape == adaptive.FLOOD else attempt.shape
        report = _command(forger, attack, shape, now)
        if attempt.moment == "early":  # until the tap has shown the peer's first segments
            deadline = time.monotonic() + 2.0
            while report["sent"] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
                report = _command(forger, attack, shape, now)
        outcome.attempts += 1
        outcome.sent += report["sent"]
        ok, evidence = _reacted(victim, before, attack, attacker)
        if ok:
            outcome.success, outcome.moment, outcome.shape = True, attempt.moment, attempt.shape
            outcome.evidence = f"{attempt.moment}/{attempt.shape}: {evidence}"
            break
    return outcome, report


def explains_broken_transfer(record: dict) -> bool:
    """A failed legitimate transfer is an outcome only if a successful attack explains it
    (FASTCLOSE resets the connection; RM_ADDR may remove every subflow)."""
    return record["transfer_ok"] or (
        record["success"] and record["attack"] in ("fastclose", "rm_addr")
    )


def trust_convergence(tb, rounds: int = 3) -> dict:
    """Seconds from a's trusted address losing its binding (REST DELETE) to b's TPBT
    marking the subflow untrusted, and from a's new claim (gratuitous ARP) to b marking
    it trusted again. Needs the agents and SAVI coverage."""
    table = lambda: {(e["src"], e["dst"]): e["dip_trust"] for e in tb.tpbt("b")["entries"]}  # noqa: E731
    xfer = Transfer(tb, seconds=8 * rounds + 10, rate_mbps=2, pause=0.5, timeout=60, port=PORT + 1)
    # Removal reaches b only when a's last notification's lifetime ends (a has no other
    # trusted subflow for a withdrawal), unless an ARP claims the address back first.
    pin_neighbours(tb, "a", A_TRUSTED, "10.1.0.1")
    down, up = [], []
    try:
        wait_until(lambda: table().get((B_TRUSTED, A_TRUSTED)) is True, 20,
                   "b's TPBT to trust a's protected address")  # fmt: skip
        for _ in range(rounds):
            t0 = time.monotonic()
            status = tb.request("DELETE", "/savi/bindings", {"ip": A_TRUSTED})[0]
            if status != 200:
                raise HarnessError(f"removing a's binding answered {status}")
            wait_until(lambda: table().get((B_TRUSTED, A_TRUSTED)) is False, 20,
                       "b's TPBT to drop a's trust")  # fmt: skip
            down.append(time.monotonic() - t0)
            t0 = time.monotonic()
            tb.net["a"].cmd(f"arping -q -U -c 1 -I a-eth0 -s {A_TRUSTED} {A_TRUSTED}")
            wait_until(lambda: table().get((B_TRUSTED, A_TRUSTED)) is True, 20,
                       "b's TPBT to trust a's address again")  # fmt: skip
            up.append(time.monotonic() - t0)
    finally:
        xfer.kill()
    return {"binding_to_peer_trusted_s": up, "removal_to_peer_untrusted_s": down}
