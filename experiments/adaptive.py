"""The adaptive attacker's plan: which packet shapes it tries, at which moments, in
what order. Plain data; the trial (experiments/trial.py) carries the plan out with
experiments.forger and judges each attempt by the victim's kernel counters, stopping at
the first that works.

Moments of a connection (its bulk transfer starts after a short greeting pause):
- ``early``: as soon as the tap has shown the peer's first segments, before the bulk:
  the trusted subflow may not be up yet, and nothing is guarded;
- ``bulk``: while data flows;
- ``lull``: after the bulk, once the tap has gone quiet (the peer's last segment is
  current: the shape the first experiment used).
Within a moment the shapes that leave the connection as it was come first, then those
that can end a subflow (payload without a data-level mapping, FIN, RST).
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.shapes import SHAPES

MOMENTS = ("early", "bulk", "lull")
DESTRUCTIVE = ("payload", "fin", "rst")
SHAPE_ORDER = tuple(s for s in SHAPES if s not in DESTRUCTIVE) + DESTRUCTIVE
FLOOD = "flood"  # the MP_JOIN flood has one shape


@dataclass(frozen=True)
class Attempt:
    moment: str
    shape: str


def plan(attack: str, moments: tuple[str, ...] = MOMENTS) -> list[Attempt]:
    """The attempts, in order. The MP_JOIN flood is judged by the peer's join counter,
    which the connection's own joins move early on: it strikes in the lull only."""
    unknown = set(moments) - set(MOMENTS)
    if unknown:
        raise ValueError(f"unknown moments {sorted(unknown)}; use {', '.join(MOMENTS)}")
    if attack == "join_flood":
        return [Attempt("lull", FLOOD)] if "lull" in moments else []
    return [Attempt(m, s) for m in MOMENTS if m in moments for s in SHAPE_ORDER]


@dataclass
class Outcome:
    """What the attacker achieved: the first attempt that worked, if any."""

    success: bool = False
    moment: str = ""
    shape: str = ""
    attempts: int = 0
    sent: int = 0
    evidence: str = "no attempt worked"
