"""Trusted MPTCP's decisions for one host, as plain logic (no sockets, no clock).

The agent (``hosts/agent.py``) feeds it path-manager events, MP_CAPABLE keys and
ADDR_TRUST options it sniffed, the controller's trust export and a clock tick; it answers
with actions (announce, create or destroy a subflow, carry an ADDR_TRUST) and, for the
rewriter, what to do with each queued control packet. Wire format: docs/wire-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hosts.options import (
    ADD_ADDR,
    ADDR_TRUST_DEFAULT,
    MP_FASTCLOSE,
    MP_PRIO,
    REMOVE_ADDR,
    AddAddr,
    AddrTrust,
    add_addr_hmac,
    addr_trust_hmac,
    token_of,
)
from hosts.pm_netlink import Event
from hosts.tpbt import Tpbt

Tuple4 = tuple[str, int, str, int]  # local address, local port, remote address, remote port
CONTROL_SUBTYPES = {ADD_ADDR, REMOVE_ADDR, MP_PRIO, MP_FASTCLOSE}


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
class DestroySubflow:
    token: int
    subflow: Tuple4


@dataclass(frozen=True)
class Carry:
    """Put ``option`` (an encoded ADDR_TRUST) on the next pure ACK of ``subflow``."""

    subflow: Tuple4
    option: AddrTrust


@dataclass
class Subflow:
    four: Tuple4
    order: int


@dataclass
class Conn:
    token: int
    server_side: bool
    rport: int = 0  # the peer's port, for joins
    local_key: int | None = None
    remote_key: int | None = None
    subflows: dict[Tuple4, Subflow] = field(default_factory=dict)
    peer_speaks: bool = False
    trust_sent: dict[str, tuple[float, int]] = field(default_factory=dict)  # addr -> (at, tries)
    trust_refreshed: dict[str, float] = field(default_factory=dict)
    pending_announce: dict[str, float] = field(default_factory=dict)  # addr -> give-up time
    t_accepted: set[str] = field(default_factory=set)
    recreate: set[tuple[str, str]] = field(default_factory=set)
    requested: set[tuple[str, str]] = field(default_factory=set)  # (local, remote) asked for
    order: int = 0
    started: bool = False

    @property
    def keys(self) -> bool:
        return self.local_key is not None and self.remote_key is not None


@dataclass
class Counters:
    addr_trust_sent: int = 0
    addr_trust_received: int = 0
    addr_trust_bad_hmac: int = 0
    addr_trust_withdrawn: int = 0
    add_addr_trust_sent: int = 0
    add_addr_trust_accepted: int = 0
    add_addr_trust_bad_hmac: int = 0
    enforced_drops: int = 0
    reordered: int = 0
    relocated: int = 0


class Extension:
    def __init__(self, local_addrs: dict[str, int], tpbt: Tpbt | None = None, ttl: float = 6.0,
                 enforce: bool = False, announce_wait: float = 1.0, retry: float = 1.0,
                 retries: int = 3, addr_trust_subtype: int = ADDR_TRUST_DEFAULT):  # fmt: skip
        self.local_addrs = dict(local_addrs)  # address -> address ID (>= 1)
        self.tpbt = tpbt or Tpbt()
        self.ttl = ttl
        self.enforce = enforce
        self.announce_wait = announce_wait
        self.retry, self.retries = retry, retries
        self.addr_trust_subtype = addr_trust_subtype
        self.conns: dict[int, Conn] = {}
        self.pending_keys: dict[int, tuple[int, int]] = {}  # local token -> (local, remote)
        self.pending_joins: dict[Tuple4, int] = {}  # join's local 4-tuple -> our token
        self.counters = Counters()

    # -- lookups ---------------------------------------------------------------------------
    def conn_of(self, four: Tuple4) -> Conn | None:
        for c in self.conns.values():
            if four in c.subflows:
                return c
        return None

    def subflow_trusted(self, four: Tuple4, now: float) -> bool:
        return self.tpbt.trusted(four[0], four[2], now)

    def has_trusted(self, conn: Conn, now: float) -> bool:
        return any(self.subflow_trusted(f, now) for f in conn.subflows)

    # -- inputs ------------------------------------------------------------------------------
    def on_trust(self, lifetimes: dict[str, float], now: float) -> list:
        """The controller's verified export: which of our addresses SAVI protects."""
        mine = {ip: life for ip, life in lifetimes.items() if ip in self.local_addrs}
        changed = self.tpbt.set_local(mine, now)
        actions = []
        for conn in self.conns.values():
            for addr in changed:
                if self.tpbt.local_trusted(addr, now):
                    actions += self._send_trust(conn, addr, now)
                elif conn.peer_speaks and addr in conn.trust_refreshed:
                    actions += self._withdraw(conn, addr)
            actions += self._reorder(conn, now)
        return actions

    def _withdraw(self, conn: Conn, addr: str) -> list:
        """Tell the peer at once that ``addr`` lost its protection (it would otherwise
        trust it until the notification's lifetime ends). Sent from another address:
        the switch no longer lets packets from ``addr`` through."""
        del conn.trust_refreshed[addr]
        conn.trust_sent.pop(addr, None)
        if not conn.keys:
            return []
        carrier = min((s for s in conn.subflows.values() if s.four[0] != addr),
                      key=lambda s: s.order, default=None)  # fmt: skip
        if carrier is None:
            return []
        addr_id = self.local_addrs[addr]
        mac = addr_trust_hmac(conn.local_key, conn.remote_key, addr_id, addr, withdraw=True)
        self.counters.addr_trust_withdrawn += 1
        return [Carry(carrier.four, AddrTrust(addr_id, addr, mac, withdraw=True))]

    def on_keys(self, sender_key: int, receiver_key: int) -> list:
        """An MP_CAPABLE ACK carrying both keys, seen on any interface of this host."""
        for local, remote in ((sender_key, receiver_key), (receiver_key, sender_key)):
            token = token_of(local)
            conn = self.conns.get(token)
            if conn is None:
                self.pending_keys[token] = (local, remote)
            elif not conn.keys:
                conn.local_key, conn.remote_key = local, remote
        return []

    def on_event(self, ev: Event, now: float) -> list:
        handler = getattr(self, f"_ev_{ev.kind}", None)
        return handler(ev, now) if handler else []

    def _ev_created(self, ev: Event, now: float) -> list:
        conn = Conn(ev.token, ev.server_side, rport=ev.dport or 0)
        keys = self.pending_keys.pop(ev.token, None)
        if keys:
            conn.local_key, conn.remote_key = keys
        self.conns[ev.token] = conn
        # The first subflow is the oldest, whenever `established` comes (it can be late).
        self._register(conn, (ev.saddr, ev.sport, ev.daddr, ev.dport))
        return []

    def _ev_established(self, ev: Event, now: float) -> list:
        conn = self.conns.get(ev.token) or Conn(ev.token, ev.server_side)
        self.conns[ev.token] = conn
        if conn.started:
            return []
        conn.started = True
        if not conn.keys and ev.token in self.pending_keys:
            conn.local_key, conn.remote_key = self.pending_keys.pop(ev.token)
        conn.rport = ev.dport
        actions = self._add_subflow(conn, (ev.saddr, ev.sport, ev.daddr, ev.dport), now)
        for addr, _addr_id in sorted(self.local_addrs.items(), key=lambda x: x[1]):
            if addr == ev.saddr or _family(addr) != _family(ev.saddr):
                continue
            if self.tpbt.local_trusted(addr, now):
                conn.pending_announce[addr] = now + self.announce_wait  # T needs the peer
            else:
                actions.append(self._announce(conn, addr))
            if not conn.server_side:
                actions += self._create(conn, addr, ev.daddr, ev.dport)
        return actions

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
        if conn is None or ev.daddr is None:
            return []
        if conn.server_side:
            return []
        actions = []
        for addr, _id in sorted(self.local_addrs.items(), key=lambda x: x[1]):
            if _family(addr) == _family(ev.daddr):
                actions += self._create(conn, addr, ev.daddr, ev.dport or conn.rport)
        return actions

    def on_join_syn(self, seen: Tuple4, token: int, outgoing: bool) -> None:
        """An MP_JOIN SYN (sniffed, ``seen`` as on the wire). Incoming, it carries our
        token; outgoing, the peer's."""
        local = seen if outgoing else (seen[2], seen[3], seen[0], seen[1])
        if not outgoing and token in self.conns:
            self.pending_joins[local] = token
        elif outgoing:
            for conn in self.conns.values():
                if conn.keys and token_of(conn.remote_key) == token:
                    self.pending_joins[local] = conn.token

    def on_join_ack(self, seen: Tuple4, outgoing: bool, now: float) -> list:
        """The MP_JOIN third ACK (sniffed): the subflow is up. The kernel reports it too
        (sub_established); taking it from the wire as well keeps the TPBT independent of
        when that event is read."""
        local = seen if outgoing else (seen[2], seen[3], seen[0], seen[1])
        token = self.pending_joins.pop(local, None)
        conn = self.conns.get(token) if token is not None else None
        if conn is None:
            return []
        return self._add_subflow(conn, local, now)

    def _ev_sub_established(self, ev: Event, now: float) -> list:
        conn = self.conns.get(ev.token)
        if conn is None:
            return []
        return self._add_subflow(conn, (ev.saddr, ev.sport, ev.daddr, ev.dport), now)

    def _ev_sub_closed(self, ev: Event, now: float) -> list:
        conn = self.conns.get(ev.token)
        if conn is None:
            return []
        four = (ev.saddr, ev.sport, ev.daddr, ev.dport)
        conn.subflows.pop(four, None)
        if not any(f[0] == ev.saddr and f[2] == ev.daddr for f in conn.subflows):
            self.tpbt.remove_subflow(ev.saddr, ev.daddr)
        conn.requested.discard((ev.saddr, ev.daddr))
        if (ev.saddr, ev.daddr) in conn.recreate:
            conn.recreate.discard((ev.saddr, ev.daddr))
            return self._create(conn, ev.saddr, ev.daddr, ev.dport)
        return []

    def _ev_closed(self, ev: Event, now: float) -> list:
        conn = self.conns.pop(ev.token, None)
        if conn is not None:
            for four in conn.subflows:
                if not self.conn_of(four):
                    self.tpbt.remove_subflow(four[0], four[2])
        return []

    def _register(self, conn: Conn, four: Tuple4) -> None:
        """A subflow of ``conn``, numbered in the order it came (once)."""
        if four not in conn.subflows:
            conn.subflows[four] = Subflow(four, conn.order)
            conn.order += 1
            self.tpbt.add_subflow(four[0], four[2])

    def _add_subflow(self, conn: Conn, four: Tuple4, now: float) -> list:
        self._register(conn, four)
        actions = []
        if self.tpbt.local_trusted(four[0], now) and four[0] not in conn.trust_refreshed:
            actions += self._send_trust(conn, four[0], now)
        return actions + self._reorder(conn, now)

    def _announce(self, conn: Conn, addr: str) -> Announce:
        conn.pending_announce.pop(addr, None)
        return Announce(conn.token, self.local_addrs[addr], addr)

    # -- ADDR_TRUST --------------------------------------------------------------------------
    def _send_trust(self, conn: Conn, addr: str, now: float, tries: int = 0) -> list:
        if not conn.keys:
            return []
        carrier = self._carrier(conn, addr, now)
        if carrier is None:
            return []
        addr_id = self.local_addrs[addr]
        mac = addr_trust_hmac(conn.local_key, conn.remote_key, addr_id, addr)
        conn.trust_sent[addr] = (now, tries + 1)
        conn.trust_refreshed[addr] = now
        self.counters.addr_trust_sent += 1
        return [Carry(carrier, AddrTrust(addr_id, addr, mac))]

    def _carrier(self, conn: Conn, addr: str, now: float) -> Tuple4 | None:
        """The subflow from ``addr`` to carry our notification: a trusted one if any."""
        mine = [s for s in conn.subflows.values() if s.four[0] == addr]
        mine.sort(key=lambda s: (not self.subflow_trusted(s.four, now), s.order))
        return mine[0].four if mine else None

    def on_addr_trust(self, incoming: Tuple4, opt: AddrTrust, now: float) -> list:
        """An ADDR_TRUST the peer sent; ``incoming`` is the packet's (src, sport, dst, dport)."""
        src, sport, dst, dport = incoming
        four = (dst, dport, src, sport)
        conn = self.conn_of(four)
        if conn is None or not conn.keys:
            return []
        self.counters.addr_trust_received += 1
        if opt.withdraw:
            want = addr_trust_hmac(conn.remote_key, conn.local_key, opt.addr_id, opt.address,
                                   withdraw=True)  # fmt: skip
            if want != opt.hmac:
                self.counters.addr_trust_bad_hmac += 1
            else:  # it only takes trust away, so any of the peer's subflows may carry it
                self.tpbt.set_remote(opt.address, 0, now)
            return []
        if opt.echo:
            want = addr_trust_hmac(conn.remote_key, conn.local_key, opt.addr_id, opt.address,
                                   initiator_address=dst)  # fmt: skip
        else:
            want = addr_trust_hmac(conn.remote_key, conn.local_key, opt.addr_id, opt.address)
        if want != opt.hmac or opt.address != src:
            self.counters.addr_trust_bad_hmac += 1
            return []
        self.tpbt.set_remote(opt.address, self.ttl, now)
        first = not conn.peer_speaks
        conn.peer_speaks = True
        actions = []
        if opt.echo:
            conn.trust_sent.pop(dst, None)
        elif self.tpbt.local_trusted(dst, now):
            addr_id = self.local_addrs[dst]
            mac = addr_trust_hmac(conn.local_key, conn.remote_key, addr_id, dst,
                                  initiator_address=src)  # fmt: skip
            self.counters.addr_trust_sent += 1
            actions.append(Carry(four, AddrTrust(addr_id, dst, mac, echo=True)))
        if first:
            actions += [self._announce(conn, a) for a in list(conn.pending_announce)]
        return actions + self._reorder(conn, now)

    # -- confinement ---------------------------------------------------------------------------
    def _reorder(self, conn: Conn, now: float) -> list:
        """Make a trusted subflow the oldest: the kernel puts ADD_ADDR, its echo and RM_ADDR
        on the oldest subflow. Untrusted subflows older than the oldest trusted one are
        destroyed and created again (so they become younger). Only the client creates."""
        if conn.server_side:
            return []
        trusted = [s for s in conn.subflows.values() if self.subflow_trusted(s.four, now)]
        if not trusted:
            return []
        first_trusted = min(s.order for s in trusted)
        actions = []
        for s in sorted(conn.subflows.values(), key=lambda s: s.order):
            pair = (s.four[0], s.four[2])
            if s.order < first_trusted and pair not in conn.recreate:
                conn.recreate.add(pair)
                self.counters.reordered += 1
                actions.append(DestroySubflow(conn.token, s.four))
        return actions

    # -- timers ----------------------------------------------------------------------------------
    def tick(self, now: float) -> list:
        actions = []
        for conn in list(self.conns.values()):
            for addr, deadline in list(conn.pending_announce.items()):
                if now >= deadline:  # the peer never answered: a vanilla host, no T
                    actions.append(self._announce(conn, addr))
            for addr, (at, tries) in list(conn.trust_sent.items()):
                if now - at >= self.retry:
                    if tries >= self.retries or not self.tpbt.local_trusted(addr, now):
                        del conn.trust_sent[addr]
                    else:
                        actions += self._send_trust(conn, addr, now, tries)
            for addr, at in list(conn.trust_refreshed.items()):
                if now - at >= self.ttl / 2 and addr not in conn.trust_sent:
                    if self.tpbt.local_trusted(addr, now) and conn.peer_speaks:
                        actions += self._send_trust(conn, addr, now)
            actions += self._reorder(conn, now)
        return actions

    # -- the rewriter's questions ------------------------------------------------------------------
    def outgoing_add_addr(self, out: Tuple4, opt: AddAddr, now: float) -> AddAddr | None:
        """Our kernel's ADD_ADDR: set T (with the extension's HMAC) where the address is
        trusted and the peer speaks the extension; T on the echo of a trusted one."""
        conn = self.conn_of(out)
        if conn is None or not conn.keys or not conn.peer_speaks:
            return None
        if opt.echo:
            return AddAddr(opt.addr_id, opt.address, opt.port, echo=True, trust=True) \
                if opt.address in conn.t_accepted else None  # fmt: skip
        if not self.tpbt.local_trusted(opt.address, now):
            return None
        mac = add_addr_hmac(conn.local_key, conn.remote_key, opt.addr_id, opt.address, opt.port,
                            trust=True)  # fmt: skip
        self.counters.add_addr_trust_sent += 1
        return AddAddr(opt.addr_id, opt.address, opt.port, trust=True, hmac=mac)

    def relocation(self, out: Tuple4, now: float) -> Tuple4 | None:
        """Where a control option the kernel put on subflow ``out`` should go instead: the
        oldest trusted subflow, when ``out`` is untrusted and the connection has one."""
        conn = self.conn_of(out)
        if conn is None or self.subflow_trusted(out, now):
            return None
        trusted = [s for s in conn.subflows.values() if self.subflow_trusted(s.four, now)]
        if not trusted:
            return None
        self.counters.relocated += 1
        return min(trusted, key=lambda s: s.order).four

    def incoming_add_addr(self, incoming: Tuple4, opt: AddAddr, now: float):
        """('accept', replacement or None) or ('drop', reason) for a received ADD_ADDR."""
        src, sport, dst, dport = incoming
        four = (dst, dport, src, sport)
        conn = self.conn_of(four)
        drop = self.enforcement_drop(incoming, [ADD_ADDR], now)
        if drop:
            return "drop", drop
        if opt.echo or not opt.trust:
            return "accept", None
        if conn is None or not conn.keys:
            return "drop", "T-flagged ADD_ADDR for a connection whose keys are unknown"
        want = add_addr_hmac(conn.remote_key, conn.local_key, opt.addr_id, opt.address, opt.port,
                             trust=True)  # fmt: skip
        if want != opt.hmac:
            self.counters.add_addr_trust_bad_hmac += 1
            return "drop", "T-flagged ADD_ADDR with a bad HMAC"
        self.tpbt.set_remote(opt.address, self.ttl, now)
        conn.t_accepted.add(opt.address)
        conn.peer_speaks = True
        self.counters.add_addr_trust_accepted += 1
        # The kernel checks RFC 8684's HMAC, without T: hand it the standard option.
        std = add_addr_hmac(conn.remote_key, conn.local_key, opt.addr_id, opt.address, opt.port)
        return "accept", AddAddr(opt.addr_id, opt.address, opt.port, hmac=std)

    def enforcement_drop(self, incoming: Tuple4, subtypes, now: float) -> str | None:
        """In enforcement mode: why to drop control options on an untrusted subflow of a
        connection that has a trusted one; None to let them through."""
        if not self.enforce or not CONTROL_SUBTYPES & set(subtypes):
            return None
        src, sport, dst, dport = incoming
        four = (dst, dport, src, sport)
        conn = self.conn_of(four)
        if conn is None or self.subflow_trusted(four, now) or not self.has_trusted(conn, now):
            return None
        self.counters.enforced_drops += 1
        return "control option on an untrusted subflow"

    def guarded(self, now: float) -> set[Tuple4]:
        """Untrusted subflows of connections with a trusted one (enforcement's scope)."""
        out = set()
        for conn in self.conns.values():
            if self.has_trusted(conn, now):
                out |= {f for f in conn.subflows if not self.subflow_trusted(f, now)}
        return out


def _family(addr: str) -> int:
    return 6 if ":" in addr else 4
