"""The attack experiment: how well MPTCP control traffic stays on trusted paths.

    sudo python -m experiments.run                       # the default configuration
    sudo python -m experiments.run --config full         # every cell, more trials
    sudo python -m experiments.run --cell savi/enforce/unprotected/rm_addr/eavesdrop
    sudo python -m experiments.run --resume results/attack-default-20261201T180000Z
    python -m experiments.run --list --config default    # cells and trial count, no run

Each run writes a folder under results/ (records.csv, summary.json, config.json,
provenance.json, the TPBT tables seen, figures; ``python -m experiments.figures DIR``
re-draws them from the records). The testbed is built once per SAV coverage and the host
mode is switched between groups of trials; every trial uses a fresh connection, fresh
captures and counter deltas, so nothing but the running network is shared.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from experiments import adaptive, attacks, records
from experiments.harness import MODES, REPO, HarnessError, set_mode, warm_up
from experiments.records import Cell
from topologies.builder import exit_on_sigterm, offload_mode
from topologies.dualhomed import COVERAGES

LOCATIONS = ("protected", "unprotected")
# The attack program's strengths, and the adaptive attacker (experiments/adaptive.py).
STRENGTHS = (*attacks.STRENGTHS, "adaptive")
# Measured on 2 cores; used for the up-front estimate only. An adaptive trial in which no
# attempt works makes every attempt (27 for an option attack); a replay and the attacker's
# own connection have short plans (experiments/adaptive.py EXTENSION_PLANS).
SECONDS_PER_TRIAL = {"eavesdrop": 5.2, "blind": 5.2, "adaptive": 9.8}
SECONDS_PER_SHORT_PLAN = 5.8


def _matrix(strengths=attacks.STRENGTHS, modes=MODES) -> list[str]:
    return [
        f"{c}/{m}/{loc}/{a}/{s}"
        for c, m, loc, s in itertools.product(COVERAGES, modes, LOCATIONS, strengths)
        for a in attacks.attacks_of(s)
    ]


# The cells the README's headline rests on: the adaptive eavesdropper on a's unprotected
# network against hosts that run the extension, with SAVI deployed. The attacks on the
# extension against trusted hosts (which enforce nothing: the MP_PRIO behind each is taken
# anyway) are context, 3 trials each, as is the positive control.
HEADLINE = [
    f"savi/{mode}/unprotected/{attack}/adaptive"
    for mode in ("trusted", "enforce")
    for attack in attacks.ATTACKS
] + [f"savi/enforce/unprotected/{attack}/adaptive" for attack in attacks.EXTENSION_ATTACKS]
CONTEXT = [f"savi/trusted/unprotected/{attack}/adaptive" for attack in attacks.EXTENSION_ATTACKS]
# The positive control: the same attacker against vanilla hosts without SAV.
CONTROL = [f"none/vanilla/unprotected/{attack}/adaptive" for attack in attacks.ALL_ATTACKS]

# The same over IPv6 connections (cells with /v6: a dual-stack testbed).
HEADLINE6 = [f"{key}/v6" for key in HEADLINE]
CONTROL6 = [f"{key}/v6" for key in CONTROL]

# A blind attacker fails before the host's path manager sees anything (the TCP checks
# reject its guesses): `full` runs it, the default does not.
CONFIGS = {
    "short": {
        "description": "a few cells, one trial each: the smoke run of `make test`",
        "cells": [
            "none/vanilla/unprotected/mp_prio/eavesdrop",
            "savi/trusted/unprotected/mp_prio/eavesdrop",
            "savi/enforce/unprotected/mp_prio/eavesdrop",
            "none/vanilla/unprotected/rm_addr/adaptive",
            "savi/enforce/unprotected/rm_addr/adaptive",
        ],
        "trials": 1,
    },
    "default": {
        "description": "the adaptive attacker (every shape, three moments) on the "
        "unprotected network against trusted and enforcing hosts with SAVI, "
        "20 trials per cell, and the attacks on the extension (claim, "
        "replay, own connection) against enforcing hosts; against trusted "
        "hosts and vanilla hosts without SAV (the positive control), 3 "
        "trials per cell; the same headline cells over IPv6 (a dual-stack "
        "testbed), 10 trials per cell, and the IPv6 positive control, 3",
        "cells": HEADLINE + CONTEXT + CONTROL + HEADLINE6 + CONTROL6,
        "trials": 20,
        "cell_trials": {key: 3 for key in CONTEXT + CONTROL + CONTROL6}
        | {key: 10 for key in HEADLINE6},
    },
    "ipv6": {
        "description": "the default run's IPv4 headline over IPv6 (a dual-stack testbed, "
        "IPv6 connections): the adaptive attacker against trusted and "
        "enforcing hosts with SAVI, 20 trials per cell, and the IPv6 "
        "positive control, 3",
        "cells": HEADLINE6 + CONTROL6,
        "trials": 20,
        "cell_trials": {key: 3 for key in CONTROL6},
    },
    "shapes": {
        "description": "which shape works at which moment: the adaptive attacker's MP_PRIO "
        "(it leaves the connection as it was) made exhaustively, every "
        "attempt judged on its own, against vanilla hosts without SAV and "
        "trusted and enforcing hosts with SAVI; 13 trials per cell, so "
        "every shape is tried early",
        "cells": [
            "none/vanilla/unprotected/mp_prio/adaptive",
            "savi/trusted/unprotected/mp_prio/adaptive",
            "savi/enforce/unprotected/mp_prio/adaptive",
        ],
        "trials": 13,
        "exhaustive": True,
    },
    "full": {
        "description": "every cell of the matrix (coverage x mode x location x attack x "
        "attacker strength), 30 trials each",
        "cells": _matrix(strengths=STRENGTHS),
        "trials": 30,
    },
}


CONFIG_KEYS = {
    "name": str,
    "description": str,
    "cells": list,
    "trials": int,
    "cell_trials": dict,
    "order_seed": int,
    "exhaustive": bool,
}


KINDS = {str: "text", list: "a list", int: "a whole number", dict: "a table", bool: "true or false"}


def _is(value, kind: type) -> bool:
    """isinstance, with booleans only where a boolean is wanted (True is an int too)."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def load_config_file(path: Path) -> dict:
    """An experiment described in a file: TOML, or JSON with a ``.json`` name, with the
    keys of the ``config.json`` a run writes (``cells`` and ``trials`` required;
    ``cell_trials``, ``exhaustive``, ``order_seed``, ``name``, ``description``
    optional). Raises ValueError saying what is wrong."""
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as e:  # tomllib.TOMLDecodeError is a ValueError
        raise ValueError(f"{path}: {e}") from None
    unknown = set(raw) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(CONFIG_KEYS)}"
        )
    for key, kind in CONFIG_KEYS.items():
        if key in raw and not _is(raw[key], kind):
            raise ValueError(f"{path}: {key} must be {KINDS[kind]}, not {raw[key]!r}")
    missing = {"cells", "trials"} - set(raw)
    if missing:
        raise ValueError(f"{path}: missing {', '.join(sorted(missing))}")
    if not raw["cells"] or not all(isinstance(c, str) for c in raw["cells"]):
        raise ValueError(
            f"{path}: cells must be a non-empty list of COVERAGE/MODE/LOCATION/ATTACK/STRENGTH[/FAMILY]"
        )
    extra = raw.get("cell_trials", {})
    stray = set(extra) - set(raw["cells"])
    if stray:
        raise ValueError(
            f"{path}: cell_trials names cells not in cells: {', '.join(sorted(stray))}"
        )
    name = raw.get("name", path.stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ValueError(
            f"{path}: name {name!r} must be letters, digits, '_', '.' or '-' "
            "(it names the run folder)"
        )
    counts = [raw["trials"], *extra.values()]
    if not all(_is(n, int) and n >= 1 for n in counts):
        raise ValueError(f"{path}: trials and cell_trials must be whole numbers >= 1")
    return {"name": name, **{k: v for k, v in raw.items() if k != "name"}}


def trials_per_cell(config: dict) -> dict[str, int]:
    """Each cell's trial count: the configuration's, unless ``cell_trials`` says other."""
    extra = config.get("cell_trials", {})
    return {key: int(extra.get(key, config["trials"])) for key in config["cells"]}


def estimate(trials: dict[str, int]) -> str:
    def seconds_per_trial(key: str) -> float:
        cell = Cell.parse(key)
        attack, strength = cell.attack, cell.strength
        if strength == "adaptive" and attack in adaptive.EXTENSION_PLANS:
            return SECONDS_PER_SHORT_PLAN
        return SECONDS_PER_TRIAL[strength]

    seconds = sum(n * seconds_per_trial(k) for k, n in trials.items())
    when = f"{seconds / 3600:.1f} h" if seconds > 5400 else f"{seconds / 60:.0f} min"
    return f"{sum(trials.values())} trials, about {when} on 2 cores"


def provenance(argv: list[str], out: Path | None = None, program: str = "experiments.run") -> dict:
    """Where a run came from, taken when it starts: the command, the commit and whether
    the tree differed from it (untracked files too, but not stored results: an earlier
    run's folder changes nothing that runs), the machine, the kernel, the datapath."""

    def run(cmd):
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, cwd=REPO, timeout=30
            ).stdout.strip()
        except OSError:
            return None

    results = [":(exclude)results"] + ([f":(exclude){_relative(out)}"] if out else [])
    packages = {}
    for name in ("ryu", "scapy", "pyroute2", "matplotlib", "NetfilterQueue", "eventlet"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([f"python -m {program}", *argv]),
        "git_commit": run(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(run(["git", "status", "--porcelain", "--", ".", *results])),
        "cpu_model": _cpu_model(),
        "ovs_datapath": "system" if Path("/sys/module/openvswitch").exists() else "userspace",
        "offloads": offload_mode(),
        "kernel": platform.release(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "packages": packages,
        "ovs": (run(["ovs-vsctl", "--version"]) or "").splitlines()[:1],
        "tshark": (run(["tshark", "--version"]) or "").splitlines()[:1],
        "mininet": (run(["mn", "--version"]) or "").splitlines()[:1],
    }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:  # outside the repository: git does not see it anyway
        return str(path)


def _cpu_model() -> str | None:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


class _Tee:
    """stderr to the terminal and to the run's run.log."""

    def __init__(self, stream, path: Path):
        self.stream, self.log = stream, path.open("a")

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def plan(
    cells: list[Cell], trials: int | dict[str, int], done: set[tuple[str, int]], seed: int = 0
) -> list[tuple[Cell, int]]:
    """(cell, trial) still to run: one testbed per coverage (which run() splits by
    family); within it, round by round (trial 0 of every cell, then trial 1, ...), each
    round in a host-mode order drawn from ``seed``, so no mode always runs first or last
    (run order would otherwise mix with mode in the cost figures). The same seed gives
    the same order. ``trials``: per cell key, or one count for all."""
    count = trials if isinstance(trials, dict) else {c.key: trials for c in cells}
    order = {c: i for i, c in enumerate(COVERAGES)}
    out = []
    for coverage in sorted({c.coverage for c in cells}, key=order.__getitem__):
        for t in range(max(count[c.key] for c in cells if c.coverage == coverage)):
            modes = sorted({c.mode for c in cells if c.coverage == coverage}, key=MODES.index)
            random.Random(f"{seed}/{coverage}/{t}").shuffle(modes)
            for mode in modes:
                out += [
                    (c, t)
                    for c in cells
                    if (c.coverage, c.mode) == (coverage, mode)
                    and t < count[c.key]
                    and (c.key, t) not in done
                ]
    return out


def run(
    out: Path,
    cells: list[Cell],
    trials: int | dict[str, int],
    argv: list[str],
    convergence: int,
    keep_pcaps: bool = False,
    seed: int = 0,
    exhaustive: bool = False,
) -> dict:
    from topologies.builder import Testbed
    from topologies.dualhomed import DualHomedTopo

    records_csv = out / "records.csv"
    done = {(r["cell"], r["trial"]) for r in records.read(records_csv)}
    older = set(records.COLUMNS) - set(records.columns_of(records_csv) or records.COLUMNS)
    if older:
        print(
            f"{records_csv} was begun by an earlier version: its columns stay, and "
            f"{', '.join(sorted(older))} is not recorded for the trials left",
            file=sys.stderr,
        )
    todo = plan(cells, trials, done, seed)
    left = {}
    for c, _ in todo:
        left[c.key] = left.get(c.key, 0) + 1
    print(f"{out}: {len(done)} trials done, {estimate(left)} to go", file=sys.stderr)
    # The first start's provenance stays; each resumption is added to it.
    prov = _load(out / "provenance.json")
    if prov is None:
        prov = provenance(argv, out)
    else:
        prov.setdefault("resumed", []).append(provenance(argv, out))
    (out / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
    tpbt_dir = out / "tpbt"
    tpbt_dir.mkdir(exist_ok=True)
    work = out / "work"
    started, finished = time.monotonic(), 0
    convergence_result = _load(out / "convergence.json")
    # One testbed per coverage and family: IPv4 cells on the IPv4 testbed they always had,
    # IPv6 cells on the dual-stack one.
    for coverage, family in itertools.product(COVERAGES, records.FAMILIES):
        group = [(c, t) for c, t in todo if (c.coverage, c.family) == (coverage, family)]
        wants_convergence = (
            coverage == "savi"
            and family == "v4"
            and convergence
            and not convergence_result
            and any(c.mode == "trusted" for c in cells)
        )
        if not group and not wants_convergence:
            continue
        topo = DualHomedTopo(coverage=coverage, ipv6=family == "v6")
        with Testbed(topo, log_dir=str(work / f"{coverage}-{family}")) as tb:
            warm_up(tb)
            mode = None
            for cell, trial in group:
                if cell.mode != mode:
                    set_mode(tb, cell.mode)
                    mode = cell.mode
                tpbt = tpbt_dir / f"{cell.key.replace('/', '_')}.txt" if trial == 0 else None
                pcaps = (
                    out / "pcaps" / f"{cell.key.replace('/', '_')}-{trial}" if keep_pcaps else None
                )
                captures = pcaps or work / "trial"
                record = _trial_or_fail(tb, cell, trial, captures, tpbt, exhaustive)
                if record["success"] and cell.mode == "enforce":
                    kept = _keep_evidence(tb, captures, out / "evidence", cell, trial)
                    print(
                        f"{cell.key} #{trial}: an enforcing host acted on a forgery; "
                        f"captures, agent logs and states kept in {kept}",
                        file=sys.stderr,
                    )
                if pcaps is None:
                    for pcap in captures.glob("*.pcap"):
                        pcap.unlink()
                records.append(records_csv, record)
                finished += 1
                _progress(finished, len(todo), started, record)
            if wants_convergence:
                from experiments.trial import trust_convergence

                set_mode(tb, "trusted")
                print("trust convergence ...", file=sys.stderr)
                convergence_result = trust_convergence(tb, rounds=convergence)
                (out / "convergence.json").write_text(json.dumps(convergence_result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    summary = records.summarize(records.read(records_csv))
    summary["convergence"] = _convergence_summary(convergence_result)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from experiments import figures

    figures.draw(out)
    return summary


def _keep_evidence(tb, captures: Path, into: Path, cell: Cell, trial: int) -> Path:
    """What an unexpected success leaves for a post-mortem: the trial's captures, and the
    agents' logs and state files (TPBT, trust history, guard counters)."""
    dest = into / f"{cell.key.replace('/', '_')}-{trial}"
    dest.mkdir(parents=True, exist_ok=True)
    for path in [
        *captures.glob("*.pcap"),
        *Path(tb.dir).glob("*-agent.log"),
        *Path(tb.dir).glob("*.tpbt.json"),
    ]:
        shutil.copy2(path, dest / path.name)
    return dest


def _trial_or_fail(
    tb, cell: Cell, trial: int, captures: Path, tpbt: Path | None, exhaustive: bool = False
) -> dict:
    """A trial, repeated once if the testbed misbehaved; a second failure ends the run
    (nothing is recorded for it, so ``--resume`` runs it again)."""
    from experiments.trial import explains_broken_transfer, run_trial

    last = None
    for attempt in range(2):
        try:
            record = run_trial(
                tb, cell, trial, captures, tpbt, keep_captures=True, exhaustive=exhaustive
            )
        except HarnessError as e:
            last = str(e)
        else:
            if explains_broken_transfer(record):
                return {**record, "attempt": attempt + 1, "retry_reason": last or ""}
            last = (
                "the legitimate transfer failed and the attack does not explain it "
                f"({record['evidence']}; {record.get('transfer_error', '')})"
            )
            if record.get("window_drops"):
                last += (
                    f"; b dropped {record['window_drops']} segment(s) beyond the window it "
                    "had announced (the kernel's stall with userspace TSO, docs/line-rate.md)"
                )
        print(f"{cell.key} trial {trial}, attempt {attempt + 1}: {last}", file=sys.stderr)
    raise SystemExit(
        f"broken trial {cell.key} #{trial}: {last}\n"
        f"nothing was recorded for it; fix the cause and run with --resume"
    )


def _progress(done: int, total: int, started: float, record: dict) -> None:
    elapsed = time.monotonic() - started
    left = elapsed / done * (total - done)
    print(
        f"[{done}/{total}] {record['cell']} #{record['trial']}: "
        f"{'SUCCESS' if record['success'] else 'failed'} ({record['evidence']}); "
        f"{elapsed / 60:.1f} min elapsed, about {left / 60:.1f} min left",
        file=sys.stderr,
        flush=True,
    )


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _convergence_summary(result: dict | None) -> dict | None:
    if not result:
        return None
    return {key: records.spread(values) for key, values in result.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        prog="python -m experiments.run",
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="configurations: "
        + "; ".join(
            f"{k}: {v['description']} ({estimate(trials_per_cell(v))})" for k, v in CONFIGS.items()
        ),
    )
    ap.add_argument(
        "--config",
        default="default",
        metavar="NAME|FILE",
        help=f"one of {', '.join(sorted(CONFIGS))}, or an experiment file (TOML, or JSON "
        "with a .json name) with the keys of the config.json a run writes; "
        "docs/experiments.md has an example (default: default)",
    )
    ap.add_argument(
        "--cell",
        action="append",
        metavar="COVERAGE/MODE/LOCATION/ATTACK/STRENGTH[/v6]",
        help="run only this cell (repeat); overrides the configuration's cells",
    )
    ap.add_argument("--trials", type=int, help="trials per cell (overrides the configuration)")
    ap.add_argument("--out", help="the run folder (default results/attack-CONFIG-UTCSTAMP)")
    ap.add_argument("--resume", metavar="DIR", help="finish an interrupted run in DIR")
    ap.add_argument(
        "--convergence",
        type=int,
        default=3,
        help="rounds of the trust convergence probe (0: skip; default 3)",
    )
    ap.add_argument("--list", action="store_true", help="print the cells and stop")
    ap.add_argument(
        "--keep-pcaps",
        action="store_true",
        help="keep every trial's captures of a's links (160-byte snaplen) in "
        "DIR/pcaps, for Wireshark",
    )
    ap.add_argument(
        "--exhaustive",
        action="store_true",
        help="the adaptive attacker makes every attempt even after one worked (each judged "
        "on its own; for MP_PRIO, which leaves the connection as it was)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        help="seed of the host-mode order within each round of trials (default: drawn, "
        "and written to config.json, so a resumed run keeps its order)",
    )
    args = ap.parse_args(argv)
    if args.resume:
        out = Path(args.resume).resolve()
        try:
            config = json.loads((out / "config.json").read_text())
        except (OSError, ValueError) as e:
            ap.error(f"--resume {out}: no readable config.json ({e})")
    else:
        if args.config in CONFIGS:
            base, name = CONFIGS[args.config], args.config
        elif Path(args.config).suffix in (".toml", ".json"):
            try:
                base = load_config_file(Path(args.config))
            except ValueError as e:
                ap.error(f"--config {e}")
            name = base["name"]
        else:
            ap.error(
                f"--config: {args.config!r} is neither a configuration "
                f"({', '.join(sorted(CONFIGS))}) nor a .toml or .json file"
            )
        if args.seed is None and "order_seed" in base:
            args.seed = base["order_seed"]
        config = {
            "name": name if not args.cell else "cells",
            "cells": args.cell or base["cells"],
            "trials": base["trials"] if args.trials is None else args.trials,
            "cell_trials": {}
            if args.cell or args.trials is not None
            else base.get("cell_trials", {}),
            "order_seed": args.seed
            if args.seed is not None
            else int.from_bytes(os.urandom(4), "big"),
            "exhaustive": args.exhaustive or base.get("exhaustive", False),
        }
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = (
            Path(args.out).resolve()
            if args.out
            else REPO / "results" / f"attack-{config['name']}-{stamp}"
        )
    try:
        cells = [Cell.parse(k) for k in config["cells"]]
        for c in cells:
            _check(c)
    except ValueError as e:
        ap.error(str(e))
    if config["trials"] < 1:
        ap.error("--trials must be at least 1")
    if args.convergence < 0:
        ap.error("--convergence must be 0 (skip) or more rounds")
    print(
        f"configuration {config['name']}: {len(cells)} cells, "
        f"{estimate(trials_per_cell(config))}",
        file=sys.stderr,
    )
    if args.list:
        for c in cells:
            print(c.key)
        return 0
    if os.geteuid() != 0:
        print("experiments.run: needs root (Mininet, OVS, namespaces)", file=sys.stderr)
        return 2
    exit_on_sigterm()
    out.mkdir(parents=True, exist_ok=True)
    sys.stderr = _Tee(sys.stderr, out / "run.log")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    summary = run(
        out,
        cells,
        trials_per_cell(config),
        argv,
        args.convergence,
        args.keep_pcaps,
        config.get("order_seed", 0),
        config.get("exhaustive", False),
    )
    print(json.dumps(headline(summary), indent=2))
    print(f"results in {out}", file=sys.stderr)
    return 0


def _check(c: Cell) -> None:
    for value, allowed, what in (
        (c.coverage, COVERAGES, "coverage"),
        (c.mode, MODES, "mode"),
        (c.location, LOCATIONS, "location"),
        (c.strength, STRENGTHS, "strength"),
        (c.attack, attacks.attacks_of(c.strength), "attack"),
        (c.family, records.FAMILIES, "family"),
    ):
        if value not in allowed:
            raise ValueError(f"{c.key}: unknown {what} {value!r}; use one of {', '.join(allowed)}")


def headline(summary: dict) -> dict:
    """Attack success and confinement per configuration: the numbers of the README."""
    return {
        cfg: {
            "attack_success_rate": round(v["attack_success_rate"], 3),
            "confinement": None if v["confinement"] is None else round(v["confinement"], 3),
            "goodput_mbps_median": v["goodput_mbps_median"],
        }
        for cfg, v in summary["configurations"].items()
    }


if __name__ == "__main__":
    sys.exit(main())
