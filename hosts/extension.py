"""Trusted MPTCP's decisions for one host, as plain logic (no sockets, no clock).

The agent (``hosts/agent.py``) feeds it path-manager events, copies of handshakes and
ADDR_TRUST options, the controller's trust export and a clock tick; it answers with
actions (announce, create a subflow, carry an ADDR_TRUST) and, for the packets the agent
holds in NFQUEUE, typed decisions. Wire format: docs/wire-format.md; the confinement and
enforcement rules: docs/trusted-mptcp.md.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import Enum

from hosts.events import Event, EventKind
from hosts.options import (
    ADD_ADDR,
    ADDR_TRUST_DEFAULT,
    DSS,
    MP_CAPABLE,
    MP_JOIN,
    REMOVE_ADDR,
    AddAddr,
    AddrTrust,
    MpCapable,
    MpJoin,
    add_addr_hmac,
    addr_trust_hmac,
    signed_addr_trust,
    token_of,
)
from hosts.tables import ExpiringTable, TokenBucket
from hosts.tpbt import Owner, Tpbt

Tuple4 = tuple[str, int, str, int]  # local address, local port, remote address, remote port
# On a guarded subflow only these MPTCP subtypes may arrive (the kernel classifier
# hosts/bpf/guard.c enforces it; the same rule here for what the agent reads itself).
ALLOWED_ON_GUARDED = frozenset({MP_CAPABLE, MP_JOIN, DSS})
# Connection-level signals the kernel puts on the oldest subflow: moved to a trusted one.
# MP_PRIO is not among them: it speaks of the subflow that carries it (RFC 8684 3.3.8).
MOVABLE_SUBTYPES = frozenset({ADD_ADDR, REMOVE_ADDR})

MAX_CONNS = 4096
PENDING_KEYS, OFFERED_KEYS, PENDING_JOINS, JOIN_SOURCES, OPENINGS = 1024, 4096, 1024, 1024, 1024
MAX_DEFERRED = 4  # claims held per connection during its opening
# ADDR_TRUSTs that came before the kernel's event made their connection known (the copy
# of the peer's first segments can be read before the event): subflows, messages each,
# and how long they wait (the peer's own retry comes after a second).
EARLY_SUBFLOWS, EARLY_PER_SUBFLOW, EARLY_LIFETIME = 256, 4, 1.0
KEY_LIFETIME = 10.0  # s: a handshake's keys wait this long for the kernel's event
JOIN_PER_CONN = (0.5, 8)  # rate per s, burst: a full mesh needs a few joins at once
JOIN_PER_SOURCE = (0.5, 4)
ORPHAN_LIFETIME = 120.0
WINDOW = 16 * 2**20  # bytes: the largest receive buffer the testbed's hosts allow
MAX_LIFETIME = 65535  # s: what ADDR_TRUST's 16-bit lifetime can say
# s: from a connection's SYN until the kernel's control options are let through on its
# untrusted subflows if no trusted subflow has come (well within the 1 s hold, so the
# peer's fallback announcements arrive after it).
OPENING_GUARD = 0.5


class Scope(Enum):
    """How enforcement treats the segments arriving on a subflow (hosts/bpf/guard.c).

    ``GUARDED``: an untrusted subflow of a connection that has had a trusted one (or a
    join or a closing subflow of such a connection): only MP_CAPABLE, MP_JOIN and DSS
    may arrive. ``OPENING``: a subflow of a connection in its first moments, before any
    trusted subflow, on a host that has a trusted address (so one is expected): the
    kernel's control options are dropped too, but ADDR_TRUST passes (it is how the
    trusted subflow starts, judged by the agent) and ADD_ADDR goes to the agent, which
    refuses it while the subflow is in scope."""

    GUARDED = "guarded"
    OPENING = "opening"


class Verdict(Enum):
    ACCEPT = "accept"
    DROP = "drop"


@dataclass(frozen=True)
class Decision:
    """What to do with a held packet; ``replacement``: an ADD_ADDR to put in its place."""

    verdict: Verdict
    reason: str = ""
    replacement: AddAddr | None = None

    @property
    def drop(self) -> bool:
        return self.verdict is Verdict.DROP


ACCEPT = Decision(Verdict.ACCEPT)


def refuse(reason: str) -> Decision:
    return Decision(Verdict.DROP, reason)


# -- actions for the shell -----------------------------------------------------------------
@dataclass(frozen=True)
class Announce:
    token: int
    addr_id: int
    address: str


@dataclass(frozen=True)
class CreateSubflow:
    token: int
    local_id: int
    local: str
    remote: str
    rport: int


@dataclass(frozen=True)
class Carry:
    """Put ``option`` (an ADDR_TRUST) on ``subflow`` now (an ACK of that subflow).
    ``urgent``: something waits for it (a connection's set-up, a change of trust), so
    the subflow's next segment takes it whatever it is; a refresh waits for a segment
    without payload, so a sender's data does not go through the agent for it."""

    subflow: Tuple4
    option: AddrTrust
    urgent: bool = True


@dataclass
class Subflow:
    four: Tuple4
    order: int


@dataclass
class Conn:
    token: int
    server_side: bool
    created_at: float = 0.0
    destination: str | None = None  # the address the application connected to
    rport: int = 0  # the peer's port, for joins
    local_key: int | None = None
    remote_key: int | None = None
    subflows: dict[Tuple4, Subflow] = field(default_factory=dict)
    # Subflows the kernel reported closed: its socket may still read segments (a forged
    # FIN half-closes a subflow), so they stay in enforcement's scope until the end.
    lingering: set[Tuple4] = field(default_factory=set)
    peer_speaks: bool = False
    sent_counter: int = 0  # of our last ADDR_TRUST on this connection
    # The peer's last accepted counter per address pair (its source, our address): a
    # forger's huge counter on an eavesdropped pair cannot silence the peer elsewhere.
    recv_counters: dict[tuple[str, str], int] = field(default_factory=dict)
    first_peer: str | None = None  # the peer's address on the MP_CAPABLE subflow
    # Claims (ADDR_TRUST) about the client's first address, held until the opening ends
    # (server side): (incoming 4-tuple, message, arrival).
    deferred: list[tuple[Tuple4, AddrTrust, float]] = field(default_factory=list)
    peer_ids: dict[int, str] = field(default_factory=dict)  # peer's address ID -> address
    had_trusted: bool = False  # enforcement stays on from the first trusted subflow
    trust_sent: dict[str, tuple[float, int]] = field(default_factory=dict)  # addr -> (at, tries)
    trust_refreshed: dict[str, float] = field(default_factory=dict)
    trust_wanted: set[str] = field(default_factory=set)  # waiting for a trusted carrier
    pending_announce: dict[str, float] = field(default_factory=dict)  # addr -> deadline
    t_accepted: set[str] = field(default_factory=set)
    peer_addrs: set[str] = field(default_factory=set)  # every peer address a subflow used
    announced_trusted: set[str] = field(default_factory=set)  # peer's, over trusted subflows
    requested: set[tuple[str, str]] = field(default_factory=set)  # (local, remote) asked for
    joins: TokenBucket = field(default_factory=lambda: TokenBucket(*JOIN_PER_CONN))
    order: int = 0
    started: bool = False
    empty_since: float | None = None

    @property
    def keys(self) -> bool:
        return self.local_key is not None and self.remote_key is not None


@dataclass
class Counters:
    addr_trust_sent: int = 0
    addr_trust_received: int = 0
    addr_trust_bad_hmac: int = 0
    addr_trust_withdrawn: int = 0
    addr_trust_guarded: int = 0  # arrived on a guarded subflow: ignored
    addr_trust_replayed: int = 0  # a counter not above the last one: replay or reorder
    withdrawal_untrusted: int = 0  # a verified withdrawal on an untrusted subflow: refused
    forged_claims_seen: int = 0  # the peer answered a claim we never made (in our name)
    claims_deferred: int = 0  # about the client's first address, held for the opening
    claims_superseded: int = 0  # ... and dropped: another client address is trusted
    claims_corroborated: int = 0  # ... or taken in the opening: the export lists it
    add_addr_trust_sent: int = 0
    add_addr_trust_accepted: int = 0
    add_addr_trust_bad_hmac: int = 0
    enforced_drops: int = 0  # control options the agent itself refused (guarded scope)
    relocated: int = 0  # control options moved from an untrusted to a trusted subflow
    announce_fallback: int = 0  # announced on no trusted subflow: the hold ran out
    trust_fallback: int = 0  # ADDR_TRUST sent on an untrusted subflow: the hold ran out
    keys_unverified: int = 0  # a handshake's keys that no SYN/ACK of ours offered
    join_refused_address: int = 0
    join_refused_pair: int = 0
    join_refused_rate: int = 0
    conns_evicted: int = 0
    addr_trust_early: int = 0  # came before its connection was known: held, then judged
    peer_trust_unbound: int = 0  # a peer's address the export stopped listing: untrusted


class Extension:
    def __init__(
        self,
        local_addrs: dict[str, int],
        tpbt: Tpbt | None = None,
        ttl: float = 6.0,
        enforce: bool = False,
        announce_wait: float = 1.0,
        retry: float = 1.0,
        retries: int = 3,
        addr_trust_subtype: int = ADDR_TRUST_DEFAULT,
        opening_guard: float = OPENING_GUARD,
    ):
        self.local_addrs = dict(local_addrs)  # address -> address ID (>= 1)
        self.tpbt = tpbt or Tpbt()
        self.ttl = ttl
        self.enforce = enforce
        self.announce_wait = announce_wait  # the hold: how long signals wait for trust
        self.retry, self.retries = retry, retries
        self.addr_trust_subtype = addr_trust_subtype
        if not 0 < opening_guard < announce_wait:
            raise ValueError(
                f"opening_guard ({opening_guard} s) must be positive and shorter than the "
                f"hold ({announce_wait} s): the peer's fallback signals come at the hold's end"
            )
        self.opening_guard = opening_guard
        self.conns: dict[int, Conn] = {}
        self.pending_keys: ExpiringTable[int, tuple[int, int]] = ExpiringTable(
            PENDING_KEYS, KEY_LIFETIME
        )  # local token -> (local key, remote key)
        self.offered_keys: ExpiringTable[int, Tuple4] = ExpiringTable(OFFERED_KEYS, KEY_LIFETIME)
        self.pending_joins: ExpiringTable[Tuple4, int] = ExpiringTable(PENDING_JOINS, KEY_LIFETIME)
        # incoming 4-tuple -> ADDR_TRUSTs that came before their connection was known
        self.early_trust: ExpiringTable[Tuple4, list[AddrTrust]] = ExpiringTable(
            EARLY_SUBFLOWS, EARLY_LIFETIME
        )
        self.join_sources: ExpiringTable[str, TokenBucket] = ExpiringTable(JOIN_SOURCES, 60.0)
        # The peer's initial sequence number per subflow (local 4-tuple), from its SYN or
        # SYN/ACK: with the kernel's byte count it tells where the subflow's window is.
        self.peer_isn: ExpiringTable[Tuple4, int] = ExpiringTable(MAX_CONNS * 8, 86400.0)
        # Handshakes seen (local 4-tuple -> when), in scope from their SYN: the kernel
        # reports the connection only after its handshake, when a forgery can already come.
        self.openings: ExpiringTable[Tuple4, float] = ExpiringTable(OPENINGS, opening_guard)
        self.counters = Counters()
        self._handlers = {
            EventKind.CREATED: self._ev_created,
            EventKind.ESTABLISHED: self._ev_established,
            EventKind.ANNOUNCED: self._ev_announced,
            EventKind.SUB_ESTABLISHED: self._ev_sub_established,
            EventKind.SUB_CLOSED: self._ev_sub_closed,
            EventKind.CLOSED: self._ev_closed,
        }

    # -- lookups ---------------------------------------------------------------------------
    def conn_of(self, four: Tuple4) -> Conn | None:
        for c in self.conns.values():
            if four in c.subflows:
                return c
        return None

    def trusted(self, conn: Conn, four: Tuple4, now: float) -> bool:
        """Whether subflow ``four`` of ``conn`` is trusted (remote trust is the
        connection's own)."""
        return self.tpbt.trusted(conn.token, four[0], four[2], now)

    def has_trusted(self, conn: Conn, now: float) -> bool:
        trusted = any(self.trusted(conn, f, now) for f in conn.subflows)
        conn.had_trusted |= trusted
        return trusted

    # -- inputs: the controller's export ---------------------------------------------------------
    def on_trust(
        self, lifetimes: dict[str, float], now: float, owners: dict[str, Owner] | None = None
    ) -> list:
        """The controller's verified export: which of our addresses SAVI protects, and
        with ``owners`` (every binding's owner, from the same export) the peers'
        addresses in the domain too (Tpbt.set_domain)."""
        if owners is not None:
            bound = {ip: (lifetimes.get(ip, 0.0), owner) for ip, owner in owners.items()}
            self.counters.peer_trust_unbound += len(self.tpbt.set_domain(bound, now))
        mine = {ip: life for ip, life in lifetimes.items() if ip in self.local_addrs}
        changed = self.tpbt.set_local(mine, now)
        actions = []
        for conn in self.conns.values():
            for addr in changed:
                if self.tpbt.local_trusted(addr, now):
                    actions += self._send_trust(conn, addr, now)
                elif conn.peer_speaks and addr in conn.trust_refreshed:
                    actions += self._withdraw(conn, addr, now)
            actions += self._release(conn, now)
        return actions

    def _withdraw(self, conn: Conn, addr: str, now: float) -> list:
        """Tell the peer at once that ``addr`` lost its protection. Only a trusted subflow
        from another of our addresses carries it (the switch drops packets from ``addr``
        now, and the peer refuses withdrawals on untrusted subflows, where the first
        subflow's eavesdropper could forge one); without such a subflow the peer's trust
        ends with the lifetime of our last notification."""
        del conn.trust_refreshed[addr]
        conn.trust_sent.pop(addr, None)
        conn.trust_wanted.discard(addr)
        if not conn.keys:
            return []
        others = [
            s
            for s in conn.subflows.values()
            if s.four[0] != addr and self.trusted(conn, s.four, now)
        ]
        if not others:
            return []
        carrier = min(others, key=lambda s: s.order).four
        self.counters.addr_trust_withdrawn += 1
        return [Carry(carrier, self._message(conn, addr, carrier, 0, withdraw=True))]

    def _message(
        self,
        conn: Conn,
        addr: str,
        carrier: Tuple4,
        lifetime: float,
        echo: bool = False,
        withdraw: bool = False,
    ) -> AddrTrust:
        """An ADDR_TRUST about our ``addr`` for subflow ``carrier``, with the next counter."""
        conn.sent_counter += 1
        life = int(min(max(lifetime, 0), MAX_LIFETIME))
        unsigned = AddrTrust(self.local_addrs[addr], conn.sent_counter, life, b"", echo, withdraw)
        return signed_addr_trust(
            conn.local_key,
            conn.remote_key,
            unsigned,
            addr,
            carrier[0],
            carrier[2],
            self.addr_trust_subtype,
        )

    # -- inputs: copies of segments (handshakes, ADDR_TRUST) ------------------------------------
    def on_copy(
        self, seen: Tuple4, flags: int, options: list, now: float, seq: int | None = None
    ) -> list:
        """A copied segment, ``seen`` as on the wire (src, sport, dst, dport), with its
        parsed MPTCP options and sequence number. Outgoing when its source is one of our
        addresses."""
        outgoing = seen[0] in self.local_addrs
        local = seen if outgoing else (seen[2], seen[3], seen[0], seen[1])
        if not outgoing and flags & 0x02 and seq is not None:  # the peer's SYN or SYN/ACK
            self.peer_isn.put(local, seq, now)
        actions = []
        for opt in options:
            if isinstance(opt, MpCapable):
                if flags & 0x12 == 0x02 and self.enforce:  # a connection's SYN, either way
                    self.openings.put(local, now, now)
                actions += self._on_mp_capable(local, flags, opt, outgoing, now)
            elif isinstance(opt, MpJoin):
                if opt.token is not None and flags & 0x12 == 0x02:  # SYN
                    self._on_join_syn(local, opt.token, outgoing, now)
                elif opt.token is None and opt.nonce is None:  # the third ACK
                    actions += self._on_join_ack(local, now)
            elif isinstance(opt, AddrTrust) and not outgoing:
                actions += self.on_addr_trust(seen, opt, now)
        return actions

    def _on_mp_capable(
        self, local: Tuple4, flags: int, opt: MpCapable, outgoing: bool, now: float
    ) -> list:
        """Keys. Ours are taken only from our own kernel's segments: the SYN/ACK we send
        offers our key; the third ACK (both keys) counts if we sent it, or if it names a
        key we offered. A flood of forged handshakes adds nothing to the tables."""
        if opt.sender_key is None:
            return []
        if outgoing and flags & 0x12 == 0x12:  # our SYN/ACK: the server's key
            self.offered_keys.put(opt.sender_key, local, now)
            return []
        if opt.receiver_key is None or flags & 0x02:
            return []
        if outgoing:  # our third ACK (or first data): we are the client
            return self._learn_keys(opt.sender_key, opt.receiver_key, now)
        if self.offered_keys.get(opt.receiver_key, now) != local:
            self.counters.keys_unverified += 1
            return []
        return self._learn_keys(opt.receiver_key, opt.sender_key, now)

    def _learn_keys(self, local_key: int, remote_key: int, now: float) -> list:
        conn = self.conns.get(token_of(local_key))
        if conn is None:
            self.pending_keys.put(token_of(local_key), (local_key, remote_key), now)
        elif not conn.keys:
            conn.local_key, conn.remote_key = local_key, remote_key
            return self._start_signals(conn, now)
        return []

    def _on_join_syn(self, local: Tuple4, token: int, outgoing: bool, now: float) -> None:
        """An MP_JOIN SYN. Incoming, it carries our token; outgoing, the peer's."""
        if not outgoing and token in self.conns:
            self.pending_joins.put(local, token, now)
        elif outgoing:
            for conn in self.conns.values():
                if conn.keys and token_of(conn.remote_key) == token:
                    self.pending_joins.put(local, conn.token, now)

    def _on_join_ack(self, local: Tuple4, now: float) -> list:
        """The MP_JOIN third ACK: the subflow is up. The kernel reports it too
        (sub_established); taking it from the wire as well keeps the TPBT independent of
        when that event is read."""
        token = self.pending_joins.pop(local, now)
        conn = self.conns.get(token) if token is not None else None
        if conn is None:
            return []
        return self._add_subflow(conn, local, now)

    def in_window(self, incoming: Tuple4, seq: int, bytes_received: int | None, now: float) -> bool:
        """Whether a segment arriving as ``incoming`` with ``seq`` lies where TCP takes
        segments: within WINDOW of the subflow's next expected byte (its initial sequence
        number plus one plus what the kernel has received). What the kernel's own check
        (RFC 9293 3.10.7.4) would let through, give or take the bytes that came since."""
        local = (incoming[2], incoming[3], incoming[0], incoming[1])
        rcv_nxt = self.next_expected(local, bytes_received, now)
        if rcv_nxt is None:
            return False  # fail closed: we cannot tell
        return (seq - rcv_nxt) % 2**32 < WINDOW or (rcv_nxt - seq) % 2**32 < WINDOW

    def next_expected(self, local: Tuple4, bytes_received: int | None, now: float) -> int | None:
        """The sequence number our subflow ``local`` expects next from the peer (the
        peer's initial one, plus one, plus what the kernel has received), or None when
        its handshake was not seen or the kernel did not say."""
        isn = self.peer_isn.get(local, now)
        if isn is None or bytes_received is None:
            return None
        return (isn + 1 + bytes_received) % 2**32

    # -- inputs: path-manager events -------------------------------------------------------------
    def on_event(self, ev: Event, now: float) -> list:
        handler = self._handlers.get(ev.kind)
        return handler(ev, now) if handler else []

    def _conn(self, ev: Event, now: float) -> Conn:
        conn = self.conns.get(ev.token)
        if conn is None:
            if len(self.conns) >= MAX_CONNS:  # the oldest goes: its state is the stalest
                self._forget(next(iter(self.conns)), now)
                self.counters.conns_evicted += 1
            conn = Conn(
                ev.token, ev.server_side, created_at=now, destination=ev.daddr, rport=ev.dport or 0
            )
            keys = self.pending_keys.pop(ev.token, now)
            if keys:
                conn.local_key, conn.remote_key = keys
            self.conns[ev.token] = conn
        return conn

    def _ev_created(self, ev: Event, now: float) -> list:
        conn = self._conn(ev, now)
        # The first subflow is the oldest, whenever `established` comes (it can be late:
        # the client's kernel says so only when the server's first data acknowledgment
        # arrives). The notification need not wait for it: the keys are known.
        self._register(conn, ev.four)
        return self._start_signals(conn, now) if conn.keys else []

    def _ev_established(self, ev: Event, now: float) -> list:
        conn = self._conn(ev, now)
        if conn.started:
            return []
        conn.started = True
        conn.rport = ev.dport
        actions = self._add_subflow(conn, ev.four, now)
        # Trusted addresses first: the subflow that can be trusted is opened first.
        others = sorted(
            (a for a in self.local_addrs if a != ev.saddr and _family(a) == _family(ev.saddr)),
            key=lambda a: (not self.tpbt.local_trusted(a, now), self.local_addrs[a]),
        )
        for addr in others:
            # Announcements wait for a trusted subflow (or the hold's end): see _release.
            conn.pending_announce[addr] = now + self.announce_wait
            if not conn.server_side:
                actions += self._create(conn, addr, ev.daddr, ev.dport)
        return actions + self._release(conn, now)

    def _create(self, conn: Conn, local: str, remote: str, rport: int) -> list:
        """One subflow per address pair: the kernel may announce an address twice."""
        if (local, remote) in conn.requested or any(
            f[0] == local and f[2] == remote for f in conn.subflows
        ):
            return []
        conn.requested.add((local, remote))
        return [CreateSubflow(conn.token, self.local_addrs.get(local, 0), local, remote, rport)]

    def _ev_announced(self, ev: Event, now: float) -> list:
        conn = self.conns.get(ev.token)
        if conn is None or ev.daddr is None or conn.server_side:
            return []
        actions = []
        for addr in sorted(
            self.local_addrs,
            key=lambda a: (not self.tpbt.local_trusted(a, now), self.local_addrs[a]),
        ):
            if _family(addr) == _family(ev.daddr):
                actions += self._create(conn, addr, ev.daddr, ev.dport or conn.rport)
        return actions

    def _ev_sub_established(self, ev: Event, now: float) -> list:
        conn = self.conns.get(ev.token)
        if conn is None:
            return []
        return self._add_subflow(conn, ev.four, now)

    def _ev_sub_closed(self, ev: Event, now: float) -> list:
        conn = self.conns.get(ev.token)
        if conn is None:
            return []
        if conn.subflows.pop(ev.four, None) is not None:
            conn.lingering.add(ev.four)
        if not any(f[0] == ev.saddr and f[2] == ev.daddr for f in conn.subflows):
            self.tpbt.remove_subflow(conn.token, ev.saddr, ev.daddr)
        conn.requested.discard((ev.saddr, ev.daddr))
        if not conn.subflows:
            conn.empty_since = now
        return []

    def _ev_closed(self, ev: Event, now: float) -> list:
        if ev.token in self.conns:
            self._forget(ev.token, now)
        return []

    def _forget(self, token: int, now: float) -> None:
        """A connection gone: its state, its TPBT rows, and its subflows' peer initial
        sequence numbers (a later connection on the same four-tuple whose handshake we
        did not see must not inherit one: a window kick would land anywhere)."""
        conn = self.conns.pop(token)
        self.tpbt.remove_connection(token)
        for local in [*conn.subflows, *conn.lingering]:
            self.peer_isn.pop(local, now)

    def _register(self, conn: Conn, four: Tuple4) -> None:
        """A subflow of ``conn``, numbered in the order it came (once)."""
        if four not in conn.subflows:
            self.openings.pop(four, 0.0)
            conn.lingering.discard(four)
            conn.subflows[four] = Subflow(four, conn.order)
            if conn.order == 0:
                conn.first_peer = four[2]
            conn.order += 1
            conn.peer_addrs.add(four[2])
            conn.empty_since = None
            self.tpbt.add_subflow(conn.token, four[0], four[2])

    def _add_subflow(self, conn: Conn, four: Tuple4, now: float) -> list:
        self._register(conn, four)
        return self._start_signals(conn, now)

    def _judge_early(self, conn: Conn, now: float) -> list:
        """The ADDR_TRUSTs held for ``conn``'s subflows before it was known, judged now
        like any other (HMAC, counter, scope)."""
        actions = []
        if not conn.keys:
            return actions
        for local in list(conn.subflows):
            incoming = (local[2], local[3], local[0], local[1])
            for opt in self.early_trust.pop(incoming, now) or []:
                actions += self.on_addr_trust(incoming, opt, now)
        return actions

    def _start_signals(self, conn: Conn, now: float) -> list:
        """Notify every trusted local address that has a subflow and no notification
        yet, after judging what the peer said before the connection was known."""
        actions = self._judge_early(conn, now)
        for addr in self.tpbt.trusted_local(now):
            if addr not in conn.trust_refreshed and any(f[0] == addr for f in conn.subflows):
                actions += self._send_trust(conn, addr, now)
        return actions + self._release(conn, now)

    def _announce(self, conn: Conn, addr: str) -> Announce:
        conn.pending_announce.pop(addr, None)
        return Announce(conn.token, self.local_addrs[addr], addr)

    def _release(self, conn: Conn, now: float) -> list:
        """Held announcements go once a trusted subflow is up (the kernel then signals on
        the oldest subflow and the rewriter moves it to the trusted one), or when the hold
        ends without one (the draft's fallback: plain MPTCP signalling, counted)."""
        if not conn.pending_announce:
            return []
        trusted = self.has_trusted(conn, now)
        actions = []
        for addr, deadline in list(conn.pending_announce.items()):
            if trusted or now >= deadline:
                if not trusted:
                    self.counters.announce_fallback += 1
                actions.append(self._announce(conn, addr))
        return actions

    # -- ADDR_TRUST --------------------------------------------------------------------------
    def _send_trust(
        self, conn: Conn, addr: str, now: float, tries: int = 0, urgent: bool = True
    ) -> list:
        if not conn.keys:
            conn.trust_wanted.add(addr)
            return []
        carrier = self._carrier(conn, addr, now)
        if carrier is None:
            conn.trust_wanted.add(addr)
            return []
        conn.trust_wanted.discard(addr)
        conn.trust_sent[addr] = (now, tries + 1)
        conn.trust_refreshed[addr] = now
        self.counters.addr_trust_sent += 1
        lifetime = self.tpbt.local.get(addr, now) - now
        return [Carry(carrier, self._message(conn, addr, carrier, lifetime), urgent)]

    def _carrier(self, conn: Conn, addr: str, now: float) -> Tuple4 | None:
        """The subflow from ``addr`` to carry our notification. A trusted one; else, on
        the client, the one to the address the application chose (the peer learns of our
        trust first: the pair may well be trusted, and no other can be known to be); else
        nothing until the hold ends, then the oldest (counted: unconfined)."""
        mine = sorted(
            (s for s in conn.subflows.values() if s.four[0] == addr), key=lambda s: s.order
        )
        for s in mine:
            if self.trusted(conn, s.four, now):
                return s.four
        if not conn.server_side:
            for s in mine:
                if s.four[2] == conn.destination:
                    return s.four
        if mine and now >= conn.created_at + self.announce_wait:
            self.counters.trust_fallback += 1
            return mine[0].four
        return None

    def on_addr_trust(self, incoming: Tuple4, opt: AddrTrust, now: float) -> list:
        """An ADDR_TRUST the peer sent; ``incoming`` is the packet's (src, sport, dst, dport).

        Accepted only on a subflow of its connection (not guarded), with an HMAC under
        that connection's keys over the segment's addresses, and a counter above the
        last one accepted on that address pair (a replay or a reordered copy is refused).
        A notification or an answer credits the segment's source, for this connection
        only, for the sender's lifetime capped at ``ttl``; a withdrawal is taken only on a
        trusted subflow.

        The first subflow carried the keys in the clear, so whoever reads it — on the
        client's access network, if that is unprotected — can sign anything and speak
        from the client's address there. The server therefore holds claims about that
        address until the connection's opening ends and takes them then only if no
        other client address is trusted by then (a client with a protected address
        claims that one, on its own subflow). Unless the controller's export lists that
        address now: then the claim is true whoever signed it, and is taken at once. An
        answer that arrives on a subflow from one of our unprotected addresses answers a
        claim made in our name: counted.
        """
        src, sport, dst, dport = incoming
        four = (dst, dport, src, sport)
        conn = self.conn_of(four)
        if conn is None or not conn.keys:
            # Judged as if it came now once the connection and its keys are known
            # (_judge_early): the kernel's event can be read after the copy.
            held = self.early_trust.get(incoming, now) or []
            if len(held) < EARLY_PER_SUBFLOW:
                self.counters.addr_trust_early += 1
                self.early_trust.put(incoming, [*held, opt], now)
            return []
        verified = self._verify(conn, opt, incoming)
        if verified is not None and opt.echo and not self.tpbt.local_trusted(dst, now):
            self.counters.forged_claims_seen += 1
        if self.scope_of(incoming, now) is Scope.GUARDED:  # the classifier dropped it too
            self.counters.addr_trust_guarded += 1
            return []
        self.counters.addr_trust_received += 1
        if verified is None:
            self.counters.addr_trust_bad_hmac += 1
            return []
        if conn.server_side and not opt.withdraw and src == conn.first_peer:
            opening = now < conn.created_at + self.opening_guard
            if self.tpbt.bound_in_domain(src, now):
                # The export lists the address: the claim is true whoever signed it.
                self.counters.claims_corroborated += opening
            elif opening:
                if len(conn.deferred) < MAX_DEFERRED:
                    self.counters.claims_deferred += 1
                    conn.deferred.append((incoming, opt, now))
                return []
            elif any(self.tpbt.remote_trusted(conn.token, p, now) for p in conn.peer_addrs - {src}):
                self.counters.claims_superseded += 1
                return []
        pair = (src, dst)
        if opt.counter <= conn.recv_counters.get(pair, 0):
            self.counters.addr_trust_replayed += 1
            return []
        conn.recv_counters[pair] = opt.counter
        if opt.withdraw:
            if not self.trusted(conn, four, now):
                self.counters.withdrawal_untrusted += 1
                return []
            self.tpbt.set_remote(conn.token, verified, 0, now)
            return []
        conn.peer_ids[opt.addr_id] = src
        refresh = self.tpbt.remote_trusted(conn.token, src, now)  # nothing waits for it
        self.tpbt.set_remote(conn.token, src, min(opt.lifetime, self.ttl), now)
        conn.peer_speaks = True
        actions = []
        if opt.echo:
            conn.trust_sent.pop(dst, None)
        elif self.tpbt.local_trusted(dst, now):
            self.counters.addr_trust_sent += 1
            conn.trust_refreshed.setdefault(dst, now)
            conn.trust_wanted.discard(dst)
            lifetime = self.tpbt.local.get(dst, now) - now
            answer = self._message(conn, dst, four, lifetime, echo=True)
            actions.append(Carry(four, answer, urgent=not refresh))
        # Notifications that waited for a trusted carrier may have one now.
        for addr in list(conn.trust_wanted):
            actions += self._send_trust(conn, addr, now)
        return actions + self._release(conn, now)

    def _verify(self, conn: Conn, opt: AddrTrust, incoming: Tuple4) -> str | None:
        """The address a message speaks of if its HMAC verifies, else None: a
        notification's or answer's segment source; the address a withdrawal's ID names."""
        src, _, dst, _ = incoming
        address = conn.peer_ids.get(opt.addr_id) if opt.withdraw else src
        if address is None:
            return None
        want = addr_trust_hmac(
            conn.remote_key, conn.local_key, opt, address, src, dst, self.addr_trust_subtype
        )
        return address if hmac.compare_digest(want, opt.hmac) else None

    # -- timers ----------------------------------------------------------------------------------
    def tick(self, now: float) -> list:
        actions = []
        for token, conn in list(self.conns.items()):
            if conn.empty_since is not None and now - conn.empty_since > ORPHAN_LIFETIME:
                self._forget(token, now)  # its `closed` event was lost
                continue
            if conn.deferred and now >= conn.created_at + self.opening_guard:
                deferred, conn.deferred = conn.deferred, []
                for incoming, opt, _ in deferred:
                    actions += self.on_addr_trust(incoming, opt, now)
            actions += self._release(conn, now)
            for addr in list(conn.trust_wanted):
                if self.tpbt.local_trusted(addr, now):
                    actions += self._send_trust(conn, addr, now)
                else:
                    conn.trust_wanted.discard(addr)
            for addr, (at, tries) in list(conn.trust_sent.items()):
                if now - at >= self.retry:
                    if tries >= self.retries or not self.tpbt.local_trusted(addr, now):
                        del conn.trust_sent[addr]
                    else:
                        actions += self._send_trust(conn, addr, now, tries)
            for addr, at in list(conn.trust_refreshed.items()):
                if now - at >= self.ttl / 2 and addr not in conn.trust_sent:
                    if self.tpbt.local_trusted(addr, now) and conn.peer_speaks:
                        actions += self._send_trust(conn, addr, now, urgent=False)
        for table in self._expiring():
            table.expire(now)
        return actions

    def _expiring(self) -> tuple[ExpiringTable, ...]:
        """The tables the tick expires (what next_due watches too)."""
        return (
            self.pending_keys,
            self.offered_keys,
            self.pending_joins,
            self.join_sources,
            self.openings,
            self.early_trust,
        )

    def next_due(self, now: float) -> float | None:
        """When ``tick`` next has something to do, or what it and ``guarded`` answer
        changes with time alone (a lifetime, a hold, an opening, a retry ends): the
        agent ticks then instead of every TICK while nothing is in motion. ``now``
        means at the next regular tick: a connection's first ``announce_wait`` seconds
        (openings, held claims and announcements, fallbacks). A notification waiting
        for a carrier past them waits for a subflow or keys, which come with events and
        copies, not with time. None: nothing is due."""
        due = [self.tpbt.next_change(now)]
        due += [table.next_expiry() for table in self._expiring()]
        for conn in self.conns.values():
            if now < conn.created_at + self.announce_wait:
                return now
            if conn.empty_since is not None:
                due.append(conn.empty_since + ORPHAN_LIFETIME)
            if conn.deferred:
                due.append(conn.created_at + self.opening_guard)
            due += conn.pending_announce.values()
            due += [at + self.retry for at, _ in conn.trust_sent.values()]
            if conn.peer_speaks:  # (our trust back: on_trust, and a tick soon after)
                due += [
                    at + self.ttl / 2
                    for addr, at in conn.trust_refreshed.items()
                    if addr not in conn.trust_sent and self.tpbt.local_trusted(addr, now)
                ]
        return min((d for d in due if d is not None), default=None)

    # -- the rewriter's questions ------------------------------------------------------------------
    def outgoing_add_addr(self, out: Tuple4, opt: AddAddr, now: float) -> AddAddr | None:
        """Our kernel's ADD_ADDR: set T (with the extension's HMAC) where the address is
        trusted and the peer speaks the extension; T on the echo of a trusted one."""
        conn = self.conn_of(out)
        if conn is None or not conn.keys or not conn.peer_speaks:
            return None
        if opt.echo:
            return (
                AddAddr(opt.addr_id, opt.address, opt.port, echo=True, trust=True)
                if opt.address in conn.t_accepted
                else None
            )
        if not self.tpbt.local_trusted(opt.address, now):
            return None
        mac = add_addr_hmac(
            conn.local_key, conn.remote_key, opt.addr_id, opt.address, opt.port, trust=True
        )
        self.counters.add_addr_trust_sent += 1
        return AddAddr(opt.addr_id, opt.address, opt.port, trust=True, hmac=mac)

    def relocation(self, out: Tuple4, now: float) -> Tuple4 | None:
        """Where a control option the kernel put on subflow ``out`` should go instead: the
        oldest trusted subflow, when ``out`` is untrusted and the connection has one."""
        conn = self.conn_of(out)
        if conn is None or self.trusted(conn, out, now):
            return None
        trusted = [s for s in conn.subflows.values() if self.trusted(conn, s.four, now)]
        if not trusted:
            return None
        self.counters.relocated += 1
        return min(trusted, key=lambda s: s.order).four

    def incoming_add_addr(self, incoming: Tuple4, opt: AddAddr, now: float) -> Decision:
        """A received ADD_ADDR: refused in guarded scope; with T, checked and handed to
        the kernel as the standard option (its HMAC has no T)."""
        src, sport, dst, dport = incoming
        four = (dst, dport, src, sport)
        conn = self.conn_of(four)
        scope = self.scope_of(incoming, now)
        if scope is not None:
            self.counters.enforced_drops += 1
            return refuse(f"ADD_ADDR on a subflow in enforcement's scope ({scope.value})")
        if conn is not None and not opt.echo and self.trusted(conn, four, now):
            conn.announced_trusted.add(opt.address)  # may join us (the join policy)
        if opt.echo or not opt.trust:
            return ACCEPT
        if conn is None or not conn.keys:
            return refuse("T-flagged ADD_ADDR for a connection whose keys are unknown")
        want = add_addr_hmac(
            conn.remote_key, conn.local_key, opt.addr_id, opt.address, opt.port, trust=True
        )
        if not hmac.compare_digest(want, opt.hmac):
            self.counters.add_addr_trust_bad_hmac += 1
            return refuse("T-flagged ADD_ADDR with a bad HMAC")
        # The claim ties the address to this connection (the join policy, the echo's T)
        # but credits no trust: an ADD_ADDR has no room for a freshness value and rides
        # whatever subflow the kernel picks, so a replay could not be told apart. Trust
        # comes from the address's own ADDR_TRUST, on its own subflow.
        conn.t_accepted.add(opt.address)
        conn.peer_speaks = True
        self.counters.add_addr_trust_accepted += 1
        std = add_addr_hmac(conn.remote_key, conn.local_key, opt.addr_id, opt.address, opt.port)
        return Decision(
            Verdict.ACCEPT, replacement=AddAddr(opt.addr_id, opt.address, opt.port, hmac=std)
        )

    def join_syn(self, incoming: Tuple4, token: int, now: float) -> Decision:
        """An MP_JOIN SYN held for the join policy (enforcement mode). A join for one of
        our connections comes from an address the connection has used, or (once it has
        had a trusted subflow) one the peer announced over a trusted subflow; never on an
        address pair that already has a subflow; and within per-connection and
        per-source rates. Joins for unknown tokens are the kernel's to refuse."""
        conn = self.conns.get(token)
        if not self.enforce or conn is None:
            return ACCEPT
        src, _, dst, _ = incoming
        if any(f[0] == dst and f[2] == src for f in conn.subflows):
            self.counters.join_refused_pair += 1
            return refuse("join on an address pair that has a subflow")
        self.has_trusted(conn, now)
        if conn.had_trusted and src not in conn.peer_addrs | conn.announced_trusted:
            self.counters.join_refused_address += 1
            return refuse(f"join from {src}: neither used nor announced over a trusted subflow")
        bucket = self.join_sources.get(src, now)
        if bucket is None:
            bucket = TokenBucket(*JOIN_PER_SOURCE)
            self.join_sources.put(src, bucket, now)
        if not bucket.take(now) or not conn.joins.take(now):
            self.counters.join_refused_rate += 1
            return refuse("join rate exceeded")
        return ACCEPT

    def guarded_scope(self, incoming: Tuple4, now: float) -> bool:
        """Whether a segment arriving as ``incoming`` is in enforcement's scope."""
        return self.scope_of(incoming, now) is not None

    def scope_of(self, incoming: Tuple4, now: float) -> Scope | None:
        src, sport, dst, dport = incoming
        return self.guarded(now).get((dst, dport, src, sport))

    def _conn_scope(self, conn: Conn, expecting: bool, now: float) -> Scope | None:
        self.has_trusted(conn, now)
        if conn.had_trusted:
            return Scope.GUARDED
        if expecting and (now < conn.created_at + self.opening_guard or conn.deferred):
            return Scope.OPENING  # (until held claims are judged, on the tick)
        return None

    def lifted(self, now: float) -> set[Tuple4]:
        """The trusted subflows of connections in enforcement's scope, as local 4-tuples:
        the kernel classifier begins an opening itself for every MPTCP handshake that
        arrives (before the agent can), and these must not stay in it."""
        if not self.enforce:
            return set()
        return {
            four
            for conn in self.conns.values()
            if conn.had_trusted
            for four in conn.subflows
            if self.trusted(conn, four, now)
        }

    def guarded(self, now: float) -> dict[Tuple4, Scope]:
        """Enforcement's scope, as local 4-tuples: the untrusted subflows of every
        connection that has had a trusted subflow (it stays on if trust lapses),
        including its joins from their SYN and its closed subflows; and, while a trusted
        subflow is expected (we have a trusted address), every connection's first
        moments from its SYN (OPENING). Outside both, plain MPTCP (the fallback)."""
        out: dict[Tuple4, Scope] = {}
        if not self.enforce:
            return out
        expecting = bool(self.tpbt.trusted_local(now))
        if expecting:
            out |= dict.fromkeys(self.openings.keys(now), Scope.OPENING)
        joins: dict[int, list[Tuple4]] = {}
        for four, token in self.pending_joins.items(now):
            joins.setdefault(token, []).append(four)
        for conn in self.conns.values():
            scope = self._conn_scope(conn, expecting, now)
            for four in (*conn.subflows, *conn.lingering, *joins.get(conn.token, ())):
                if scope is None or self.trusted(conn, four, now):
                    out.pop(four, None)
                else:
                    out[four] = scope
        return out


def _family(addr: str) -> int:
    return 6 if ":" in addr else 4
