"""The adaptive attacker's plan: which packet shapes it tries, at which moments, in
what order. Plain data; the trial (experiments/trial.py) carries the plan out with
experiments.forger and judges each attempt by the victim's kernel counters, stopping at
the first that works.

Moments of a connection (its bulk transfer starts after a short greeting pause):
- ``early``: as soon as the tap has shown the peer's first segments (the connection's
  first 100 ms or so), when the trusted subflow may not be up yet and nothing is
  guarded. One shape per connection, as a second attempt would come too late: trial
  ``t`` tries ``SHAPE_ORDER[t % 13]``, so 13 trials of a cell cover every shape early
  (the record says which shape, and when it went out);
- ``bulk``: while data flows;
- ``lull``: after the bulk, once the tap has gone quiet (the peer's last segment is
  current: the shape the first experiment used).
Within a moment the shapes that leave the connection as it was come first, then those
that can end a subflow (payload without a data-level mapping, FIN, RST).

A replay and the forgeries from the attacker's own connection test the extension's
freshness and per-connection checks rather than its classifier (which the option
attacks try in every shape): they have short plans of their own (EXTENSION_PLANS), and
a replay has no early attempt (nothing is recorded yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from experiments.shapes import SHAPES

MOMENTS = ("early", "bulk", "lull")
DESTRUCTIVE = ("payload", "fin", "rst")
SHAPE_ORDER = tuple(s for s in SHAPES if s not in DESTRUCTIVE) + DESTRUCTIVE
FLOOD = "flood"  # the MP_JOIN flood has one shape
EXTENSION_PLANS = {
    "replay": (
        ("bulk", "plain"),
        ("lull", "plain"),
        ("lull", "behind_dss"),
        ("lull", "ip_options"),
    ),
    "own_connection": (("early", "plain"), ("bulk", "plain"), ("lull", "plain")),
}


@dataclass(frozen=True)
class Attempt:
    moment: str
    shape: str


def early_shape(attack: str, trial: int) -> str:
    """The one shape trial ``trial`` tries in the early moment ("" if none)."""
    if attack in EXTENSION_PLANS:
        return next((s for m, s in EXTENSION_PLANS[attack] if m == "early"), "")
    return "" if attack == "join_flood" else SHAPE_ORDER[trial % len(SHAPE_ORDER)]


def plan(attack: str, moments: tuple[str, ...] = MOMENTS, early: str = "plain") -> list[Attempt]:
    """The attempts, in order: ``early`` alone in the early moment, every shape during
    the bulk and in the lull. The MP_JOIN flood is judged by the peer's join counter,
    which the connection's own joins move early on: it strikes in the lull only."""
    unknown = set(moments) - set(MOMENTS)
    if unknown:
        raise ValueError(f"unknown moments {sorted(unknown)}; use {', '.join(MOMENTS)}")
    if early not in SHAPES:
        raise ValueError(f"unknown shape {early!r}")
    if attack == "join_flood":
        return [Attempt("lull", FLOOD)] if "lull" in moments else []
    if attack in EXTENSION_PLANS:
        return [Attempt(m, s) for m, s in EXTENSION_PLANS[attack] if m in moments]
    out = [Attempt("early", early)] if "early" in moments else []
    return out + [Attempt(m, s) for m in MOMENTS[1:] if m in moments for s in SHAPE_ORDER]


@dataclass
class Outcome:
    """What the attacker achieved: the first attempt that worked, if any."""

    success: bool = False
    moment: str = ""
    shape: str = ""
    attempts: int = 0
    sent: int = 0
    evidence: str = "no attempt worked"
    at: float | None = None  # wall-clock time the attempt that worked went out
    early_shape: str = ""
    early_at: float | None = None  # when the early attempt went out
    # Every attempt of the plan reached, and whether it worked; None: not made, as the
    # shape cannot carry the option (experiments.shapes.NoRoom).
    log: list[tuple[Attempt, bool | None]] = field(default_factory=list)
    # Each attempt that did not work, with the victim's refusal counters that moved over
    # it (experiments.trial.REFUSALS; '' if none did).
    refused: list[tuple[Attempt, str]] = field(default_factory=list)

    def refusals_text(self) -> str:
        """``moment/shape: TcpExtPAWSEstab+1; moment/shape: -`` for every attempt that
        did not work, as records.csv keeps it (``-``: no refusal counter moved)."""
        return "; ".join(f"{a.moment}/{a.shape}: {why or '-'}" for a, why in self.refused)

    def log_text(self) -> str:
        """Every attempt and its outcome, as records.csv keeps it: ``moment/shape:1``
        (worked), ``:0`` (did not), ``:-`` (not made: no room for the option)."""
        return " ".join(
            f"{a.moment}/{a.shape}:{'-' if ok is None else int(ok)}" for a, ok in self.log
        )
