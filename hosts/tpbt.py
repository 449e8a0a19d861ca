"""The Trusted Path Binding Table (TPBT) of draft-hewu-mptcp-trust, as plain logic.

One entry per subflow (source, destination) with SipTrust, DipTrust, Lifetime and the
reserved Other field (the draft's Table 1). Local trust comes from the SAVI controller's
signed export, remote trust from the peer's notifications (ADD_ADDR with T, ADDR_TRUST);
both expire. No clock is read: every call takes ``now``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

FOREVER = 65535  # the draft's "no expiry" lifetime


@dataclass(frozen=True)
class Entry:
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
    remote: dict[str, float] = field(default_factory=dict)  # peer address -> trusted until
    subflows: dict[tuple[str, str], str] = field(default_factory=dict)  # (src, dst) -> other

    # -- feeding it --------------------------------------------------------------------------
    def set_local(self, lifetimes: dict[str, float], now: float) -> set[str]:
        """Replace local trust from a verified controller export; returns what changed."""
        before = self.trusted_local(now)
        self.local = {ip: now + life for ip, life in lifetimes.items() if life > 0}
        return before ^ self.trusted_local(now)

    def set_remote(self, address: str, lifetime: float, now: float) -> None:
        if lifetime > 0:
            self.remote[address] = now + lifetime
        else:
            self.remote.pop(address, None)

    def add_subflow(self, src: str, dst: str, other: str = "/") -> None:
        self.subflows[(src, dst)] = other

    def remove_subflow(self, src: str, dst: str) -> None:
        self.subflows.pop((src, dst), None)

    # -- reading it --------------------------------------------------------------------------
    def trusted_local(self, now: float) -> set[str]:
        return {ip for ip, until in self.local.items() if until > now}

    def local_trusted(self, ip: str, now: float) -> bool:
        return self.local.get(ip, 0) > now

    def remote_trusted(self, ip: str, now: float) -> bool:
        return self.remote.get(ip, 0) > now

    def entry(self, src: str, dst: str, now: float) -> Entry:
        sip, dip = self.local_trusted(src, now), self.remote_trusted(dst, now)
        lives = [
            u - now for ok, u in ((sip, self.local.get(src)), (dip, self.remote.get(dst))) if ok
        ]
        lifetime = 0 if not lives else min(FOREVER, int(min(lives)))
        return Entry(src, dst, sip, dip, lifetime, self.subflows.get((src, dst), "/"))

    def entries(self, now: float) -> list[Entry]:
        return [self.entry(s, d, now) for s, d in sorted(self.subflows)]

    def trusted(self, src: str, dst: str, now: float) -> bool:
        return self.entry(src, dst, now).trusted

    # -- the draft's Table 1, and JSON ---------------------------------------------------------
    def render(self, now: float) -> str:
        rows = [("SubFlow", "SipTrust", "DipTrust", "Lifetime", "Other")]
        for e in self.entries(now):
            rows.append((f"Sf({e.src},{e.dst})", str(e.sip_trust), str(e.dip_trust),
                         str(e.lifetime), e.other))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows
        )

    def to_json(self, now: float) -> str:
        return json.dumps([asdict(e) for e in self.entries(now)], indent=2)
