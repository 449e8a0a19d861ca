"""Trial records and what is computed from them: plain functions, no testbed.

A run folder holds ``records.csv`` (one row per trial, appended as trials end, so an
interrupted run can resume), ``config.json``, ``provenance.json``, ``summary.json``,
the figures and the TPBT tables seen during the run.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from experiments.confinement import CATEGORIES, PHASES


@dataclass(frozen=True)
class Cell:
    """One point of the experiment matrix."""

    coverage: str
    mode: str
    location: str
    attack: str
    strength: str
    family: str = "v4"  # the connection's address family: v4 or v6 (dual-stack testbed)

    @property
    def key(self) -> str:
        """COVERAGE/MODE/LOCATION/ATTACK/STRENGTH, and /v6 for an IPv6 cell (IPv4 cells
        keep the key they had before the family was a dimension)."""
        parts = (self.coverage, self.mode, self.location, self.attack, self.strength)
        return "/".join(parts + ((self.family,) if self.family != "v4" else ()))

    @property
    def configuration(self) -> str:
        """What the defender runs: SAV coverage and host mode (and /v6 for IPv6)."""
        return configuration_of(self.coverage, self.mode, self.family)

    @classmethod
    def parse(cls, key: str) -> Cell:
        parts = key.split("/")
        if len(parts) not in (5, 6) or len(parts) == 6 and parts[5] not in FAMILIES:
            raise ValueError(
                f"{key!r}: a cell is COVERAGE/MODE/LOCATION/ATTACK/STRENGTH[/FAMILY], "
                f"FAMILY one of {', '.join(FAMILIES)}"
            )
        return cls(*parts)


FAMILIES = ("v4", "v6")


def configuration_of(coverage: str, mode: str, family: str = "v4") -> str:
    return f"{coverage}/{mode}" + (f"/{family}" if family != "v4" else "")


# The columns of records.csv, in order.
COLUMNS = (
    "cell",
    "trial",
    "seed",
    "coverage",
    "mode",
    "location",
    "attack",
    "strength",
    "family",
    "success",
    "evidence",
    "forged_sent",
    "subflows_seen",
    "keys_known",
    "transfer_ok",
    "bytes_match",
    "goodput_mbps",
    "connect_ms",
    "control_total",
    "control_trusted",
    "handshake_total",
    "handshake_trusted",
    "attack_seconds",
    "trial_seconds",
    # the adaptive attacker: the attempt that worked, and how many it made
    "success_moment",
    "success_shape",
    "attempts",
    # traceability: which attempt of the trial this is, and why the one before failed
    "attempt",
    "retry_reason",
    # confinement per option category and phase (experiments.confinement, JSON:
    # "category/phase" -> [on trusted subflows, total]); ms from the client's first
    # segment to its TPBT's first trusted subflow, and to the adaptive attacker's early
    # attempt (and that attempt's shape)
    "confinement",
    "trusted_up_ms",
    "early_shape",
    "early_ms",
    # the adaptive attacker: every attempt made, "moment/shape:1" if it worked; what a
    # replay had to resend (option kinds it recorded: "AddrTrust:2 AddAddr-trust:1")
    "attempt_log",
    "replayed",
    # segments b's kernel dropped over the trial as beyond the data-level window it had
    # announced (MPTcpExtNoDSSInWindow): the kernel's stall with userspace TSO
    # (docs/line-rate.md), which slows or breaks the transfer whatever the attack did,
    # or data an attacker injected past the window; empty in runs before it was counted
    "window_drops",
    # the adaptive attacker's attempts that did not work, each with the victim's counters
    # of refused segments and options that moved over it ("early/plain: TcpExtPAWSEstab+1;
    # bulk/plain: -"; experiments.trial.REFUSALS); empty in runs before it was kept
    "attempt_refusals",
)


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [_typed(row) for row in csv.DictReader(f)]


def columns_of(path: Path) -> tuple[str, ...] | None:
    """The header of an existing records.csv, None if there is none yet."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as f:
        return tuple(next(csv.reader(f), ()))


def append(path: Path, record: dict) -> None:
    """Add a trial's record. A file begun by an earlier version keeps its own columns
    (a resumed run): a column it lacks is not written, so every row stays under its
    header (``run --resume`` says which are left out)."""
    missing = set(COLUMNS) - set(record)
    if missing:
        raise ValueError(f"record lacks {sorted(missing)}")
    if isinstance(record["confinement"], dict):
        record = {**record, "confinement": json.dumps(record["confinement"], sort_keys=True)}
    header = columns_of(path)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header or COLUMNS, extrasaction="ignore")
        if header is None:
            w.writeheader()
        w.writerow(record)


def _typed(row: dict) -> dict:
    out = dict(row)
    for k in (
        "trial",
        "seed",
        "forged_sent",
        "subflows_seen",
        "control_total",
        "control_trusted",
        "handshake_total",
        "handshake_trusted",
    ):
        out[k] = int(row[k])
    for k in ("success", "keys_known", "transfer_ok", "bytes_match"):
        out[k] = row[k] == "True"
    for k in ("goodput_mbps", "connect_ms", "attack_seconds", "trial_seconds"):
        out[k] = float(row[k]) if row[k] not in ("", "None") else None
    # Columns that runs before the adaptive attacker did not write.
    for k, default in (("attempts", 1), ("attempt", 1)):
        out[k] = int(row.get(k) or default)
    for k in (
        "success_moment",
        "success_shape",
        "retry_reason",
        "early_shape",
        "attempt_log",
        "replayed",
        "attempt_refusals",
    ):
        out[k] = row.get(k) or ""
    for k in ("trusted_up_ms", "early_ms"):
        out[k] = float(row[k]) if row.get(k) not in (None, "", "None") else None
    drops = row.get("window_drops")
    out["window_drops"] = int(drops) if drops not in (None, "", "None") else None
    out["confinement"] = json.loads(row.get("confinement") or "{}")
    out["family"] = row.get("family") or "v4"  # runs before IPv6 cells were IPv4
    return out


# -- statistics ----------------------------------------------------------------------------
def wilson(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (scipy; sound for 0 and n too)."""
    if n == 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def pooled_ratio_ci(
    numerators: list[int], denominators: list[int], seed: int = 20261202
) -> tuple[float, float] | None:
    """95 % bootstrap interval (percentile, 2,000 resamples of trials, scipy) of
    sum(numerators) / sum(denominators): trials are the unit, so a trial that sends many
    options weighs as it does in the pooled ratio. None with fewer than two trials that
    have a denominator."""
    pairs = [(n, d) for n, d in zip(numerators, denominators, strict=True) if d]
    if len(pairs) < 2:
        return None
    import numpy as np
    from scipy.stats import bootstrap

    nums, dens = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    if (nums * dens.sum() == dens * nums.sum()).all():  # every trial the same: no spread
        value = float(nums.sum() / dens.sum())
        return (value, value)
    res = bootstrap(
        (nums, dens),
        lambda n, d, axis=-1: n.sum(axis=axis) / d.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        random_state=seed,
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0..100), linear between ranks."""
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def spread(values: list[float]) -> dict:
    """Median, extremes and the values themselves, for a handful of measurements."""
    return {
        "median": percentile(values, 50),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def _median(values: list) -> float | None:
    return percentile([v for v in values if v is not None], 50)


def _iqr(values: list) -> tuple[float, float] | None:
    values = [v for v in values if v is not None]
    return (percentile(values, 25), percentile(values, 75)) if values else None


def attempt_outcomes(rows: list[dict]) -> dict[str, list[int]]:
    """Over a cell's trials, per "moment/shape": [attempts that worked, attempts made]
    (from the adaptive attacker's attempt logs; a shape with no room for the option,
    ``:-``, made no attempt)."""
    out: dict[str, list[int]] = {}
    for r in rows:
        for item in r["attempt_log"].split():
            what, _, ok = item.rpartition(":")
            if ok == "-":
                continue
            counts = out.setdefault(what, [0, 0])
            counts[0] += ok == "1"
            counts[1] += 1
    return out


def by_category(rows: list[dict]) -> dict:
    """Confinement per option category and phase, pooled over trials, with a bootstrap
    interval over trials: ``{category: {phase: {trusted, total, share, ci95}}}`` for
    what was seen at all."""
    out = {}
    for cat in CATEGORIES:
        for phase in PHASES:
            pairs = [r["confinement"].get(f"{cat}/{phase}", [0, 0]) for r in rows]
            total = sum(p[1] for p in pairs)
            if not total:
                continue
            trusted = sum(p[0] for p in pairs)
            out.setdefault(cat, {})[phase] = {
                "trusted": trusted,
                "total": total,
                "share": trusted / total,
                "trials_with": sum(1 for p in pairs if p[1]),
                "ci95": pooled_ratio_ci([p[0] for p in pairs], [p[1] for p in pairs]),
            }
    return out


def summarize(records: list[dict]) -> dict:
    """Per cell: attack success with a 95 % interval. Per configuration (coverage and
    mode): confinement of legitimate control options, goodput and set-up time."""
    cells, configs = defaultdict(list), defaultdict(list)
    for r in records:
        cells[r["cell"]].append(r)
        configs[configuration_of(r["coverage"], r["mode"], r["family"])].append(r)
    out_cells = {}
    for key, rows in sorted(cells.items()):
        k = sum(r["success"] for r in rows)
        lo, hi = wilson(k, len(rows))
        out_cells[key] = {
            "trials": len(rows),
            "successes": k,
            "rate": k / len(rows),
            "ci95": [lo, hi],
            "transfers_intact": sum(r["bytes_match"] for r in rows),
            # the adaptive attacker: the moment and shape of each trial's first success
            "by_moment": dict(Counter(r["success_moment"] for r in rows if r["success_moment"])),
            "by_shape": dict(Counter(r["success_shape"] for r in rows if r["success_shape"])),
            "attempts": attempt_outcomes(rows),
            # the attacker went on after a success (every attempt made: --exhaustive)
            "exhaustive": any(":1 " in r["attempt_log"] for r in rows),
        }
    out_configs = {}
    for key, rows in sorted(configs.items()):
        total = sum(r["control_total"] for r in rows)
        trusted = sum(r["control_trusted"] for r in rows)
        hs_total = sum(r["handshake_total"] for r in rows)
        hs_trusted = sum(r["handshake_trusted"] for r in rows)
        ok = [r for r in rows if r["transfer_ok"]]
        out_configs[key] = {
            "trials": len(rows),
            "by_category": by_category(rows),
            "control_options": total,
            "control_on_trusted": trusted,
            "confinement": trusted / total if total else None,
            "confinement_ci95": pooled_ratio_ci(
                [r["control_trusted"] for r in rows], [r["control_total"] for r in rows]
            ),
            "handshake_options": hs_total,
            "handshake_on_trusted_share": hs_trusted / hs_total if hs_total else None,
            "goodput_mbps_median": _median([r["goodput_mbps"] for r in ok]),
            "goodput_mbps_iqr": _iqr([r["goodput_mbps"] for r in ok]),
            "connect_ms_median": _median([r["connect_ms"] for r in ok]),
            "connect_ms_iqr": _iqr([r["connect_ms"] for r in ok]),
            "transfers_intact": sum(r["bytes_match"] for r in rows),
            "transfers_with_window_drops": sum(1 for r in rows if r.get("window_drops")),
            "attack_success_rate": sum(r["success"] for r in rows) / len(rows),
        }
    return {"trials": len(records), "cells": out_cells, "configurations": out_configs}
