"""The Trusted Path Binding Table (TPBT) of draft-hewu-mptcp-trust, as plain logic.

One entry per subflow (source, destination) of a connection, with SipTrust, DipTrust,
Lifetime and the reserved Other field (the draft's Table 1). Local trust belongs to the
host and comes from the SAVI controller's signed export. Remote trust belongs to one
connection: what a peer says about addresses counts for its own connection only (it
cannot make this host trust or distrust an address on another connection). Both expire.
The same export lists every binding of the controller's domain, the peer's addresses too
when the peer is in it: a peer's word about such an address counts only while the export
lists it, and not past a change of its owner (the binding removed: untrusted at once,
with no withdrawal needed, which the peer may have no trusted subflow left to send).
No clock is read: every call takes ``now``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field

FOREVER = 65535  # the draft's "no expiry" lifetime
# Addresses the export once listed and no longer does are remembered (their removal
# voids peers' claims) up to this many; beyond it, those no claim speaks of are
# forgotten first (a port's owner can make the controller list any number in turn).
MAX_OWNERS = 65536

# Who holds a binding, as the controller's export names it: (MAC, switch, port).
Owner = tuple[str | None, int | None, int | None]


@dataclass(frozen=True)
class Entry:
    token: int  # our connection token
    src: str
    dst: str
    sip_trust: bool
    dip_trust: bool
    lifetime: int
    other: str = "/"

    @property
    def trusted(self) -> bool:
        return self.sip_trust and self.dip_trust


@dataclass
class Tpbt:
    local: dict[str, float] = field(default_factory=dict)  # address -> trusted until
    remote: dict[tuple[int, str], float] = field(default_factory=dict)  # (token, peer addr)
    subflows: dict[tuple[int, str, str], str] = field(default_factory=dict)  # -> other
    domain: dict[str, float] = field(default_factory=dict)  # bound in the export -> until
    owners: dict[str, Owner] = field(default_factory=dict)  # last owner named, kept unbound

    # -- feeding it --------------------------------------------------------------------------
    def set_local(self, lifetimes: dict[str, float], now: float) -> set[str]:
        """Replace local trust from a verified controller export; returns what changed."""
        before = self.trusted_local(now)
        self.local = {ip: now + life for ip, life in lifetimes.items() if life > 0}
        return before ^ self.trusted_local(now)

    def set_domain(self, bound: dict[str, tuple[float, Owner]], now: float) -> set[str]:
        """Replace the domain's bindings (address -> lifetime, owner) from a verified
        export. A peer's claims about an address whose owner changed are void (the peer
        must claim it again); returns the addresses peers' claims were trusted for and
        are not now."""
        before = {ip for t, ip in self.remote if self.remote_trusted(t, ip, now)}
        for ip, (_life, owner) in bound.items():
            if self.owners.get(ip, owner) != owner:
                for key in [k for k in self.remote if k[1] == ip]:
                    del self.remote[key]
            self.owners[ip] = owner
        self.domain = {ip: now + life for ip, (life, _owner) in bound.items() if life > 0}
        if len(self.owners) > MAX_OWNERS:
            claimed = {ip for _, ip in self.remote}
            for ip in [ip for ip in self.owners if ip not in bound and ip not in claimed]:
                del self.owners[ip]
        return {ip for ip in before if not self.remote_trusted_anywhere(ip, now)}

    def set_remote(self, token: int, address: str, lifetime: float, now: float) -> None:
        if lifetime > 0:
            self.remote[(token, address)] = now + lifetime
        else:
            self.remote.pop((token, address), None)

    def add_subflow(self, token: int, src: str, dst: str, other: str = "/") -> None:
        self.subflows[(token, src, dst)] = other

    def remove_subflow(self, token: int, src: str, dst: str) -> None:
        self.subflows.pop((token, src, dst), None)

    def remove_connection(self, token: int) -> None:
        for key in [k for k in self.subflows if k[0] == token]:
            del self.subflows[key]
        for key in [k for k in self.remote if k[0] == token]:
            del self.remote[key]

    # -- reading it --------------------------------------------------------------------------
    def next_change(self, now: float) -> float | None:
        """When the next lifetime ends (local, a peer's or the domain's), after ``now``:
        trust changes then without anything arriving. None: nothing left to end."""
        ends = [u for table in (self.local, self.remote, self.domain) for u in table.values()]
        return min((u for u in ends if u > now), default=None)

    def trusted_local(self, now: float) -> set[str]:
        return {ip for ip, until in self.local.items() if until > now}

    def local_trusted(self, ip: str, now: float) -> bool:
        return self.local.get(ip, 0) > now

    def bound_in_domain(self, ip: str, now: float) -> bool:
        """Whether the controller's export lists ``ip`` as bound now (any owner)."""
        return self.domain.get(ip, 0) > now

    def remote_until(self, token: int, ip: str) -> float:
        """Until when the peer of ``token`` is believed about ``ip``: its claim's lifetime,
        and for an address of the controller's domain, its binding's."""
        until = self.remote.get((token, ip), 0)
        return min(until, self.domain.get(ip, 0)) if ip in self.owners else until

    def remote_trusted(self, token: int, ip: str, now: float) -> bool:
        return self.remote_until(token, ip) > now

    def remote_trusted_anywhere(self, ip: str, now: float) -> bool:
        return any(self.remote_trusted(t, a, now) for t, a in self.remote if a == ip)

    def entry(self, token: int, src: str, dst: str, now: float) -> Entry:
        sip, dip = self.local_trusted(src, now), self.remote_trusted(token, dst, now)
        lives = [
            u - now
            for ok, u in ((sip, self.local.get(src)), (dip, self.remote_until(token, dst)))
            if ok
        ]
        lifetime = 0 if not lives else min(FOREVER, int(min(lives)))
        other = self.subflows.get((token, src, dst), "/")
        return Entry(token, src, dst, sip, dip, lifetime, other)

    def entries(self, now: float) -> list[Entry]:
        return [self.entry(t, s, d, now) for t, s, d in sorted(self.subflows)]

    def trusted(self, token: int, src: str, dst: str, now: float) -> bool:
        return self.entry(token, src, dst, now).trusted

    # -- the draft's Table 1 per connection, and JSON ---------------------------------------------
    def render(self, now: float) -> str:
        """Table 1, one block per connection (its token in hex)."""
        blocks = []
        for token in sorted({t for t, _, _ in self.subflows}):
            rows = [("SubFlow", "SipTrust", "DipTrust", "Lifetime", "Other")]
            for e in self.entries(now):
                if e.token == token:
                    rows.append(
                        (
                            f"Sf({e.src},{e.dst})",
                            str(e.sip_trust),
                            str(e.dip_trust),
                            str(e.lifetime),
                            e.other,
                        )
                    )
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            lines = [
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
                for r in rows
            ]
            blocks.append(f"Connection {token:08x}\n" + "\n".join(lines))
        return "\n\n".join(blocks) if blocks else "(no connections)"

    def records(self, now: float) -> list[dict]:
        return [asdict(e) for e in self.entries(now)]

    def to_json(self, now: float) -> str:
        return json.dumps(self.records(now), indent=2)


@dataclass
class TrustHistory:
    """When each subflow's trust changed, as this host's TPBT said it: what an experiment
    needs to label a packet by the TPBT state at the time it was sent (not by a fixed
    address pair). ``observe`` is called after every change the host makes and on its
    tick (expiry); only transitions are kept, at most ``limit`` (the oldest go first)."""

    limit: int = 4096
    last: dict[tuple[int, str, str], bool] = field(default_factory=dict)
    changes: list[tuple[float, int, str, str, bool]] = field(default_factory=list)
    total: int = 0  # changes ever recorded, the trimmed ones included

    def observe(self, entries: list[Entry], now: float) -> None:
        seen = set()
        for e in entries:
            key = (e.token, e.src, e.dst)
            seen.add(key)
            if self.last.get(key) != e.trusted:
                self.last[key] = e.trusted
                self._record((now, *key, e.trusted))
        for key in [k for k in self.last if k not in seen]:  # the subflow is gone
            del self.last[key]
            self._record((now, *key, False))
        del self.changes[: max(0, len(self.changes) - self.limit)]

    def _record(self, change: tuple[float, int, str, str, bool]) -> None:
        self.changes.append(change)
        self.total += 1


class HistoryJson:
    """A history's changes as a JSON array, each change encoded once. The agent writes
    its state on the tick after a change, on the loop that also sets up subflows and
    judges queued segments; encoding a full history of 4,096 changes anew took 2.5 ms a
    tick (10 ms indented), a stall that fell into set-ups."""

    def __init__(self, history: TrustHistory):
        self.history = history
        self.encoded: deque[str] = deque(maxlen=history.limit)
        self.done = 0  # history.total when last encoded

    def text(self) -> str:
        new = self.history.total - self.done
        if new:
            for change in self.history.changes[-new:]:
                self.encoded.append(json.dumps(change))
            self.done = self.history.total
        return "[" + ",".join(self.encoded) + "]"
