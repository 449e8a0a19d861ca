"""Figures of an attack run, drawn from its records only (no testbed, no root):

    python -m experiments.figures results/attack-default-20261201T180000Z

writes attack_success, confinement and cost, each as PDF and PNG, and the tables of
summary.md into that folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on the testbed machines
import matplotlib.pyplot as plt  # noqa: E402

from experiments import attacks, records  # noqa: E402
from experiments.harness import MODES  # noqa: E402
from topologies.dualhomed import COVERAGES  # noqa: E402

CONFIGURATIONS = [f"{c}/{m}" for c in COVERAGES for m in MODES]


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("pdf", "png"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _panels(summary: dict) -> list[tuple[str, str]]:
    """(location, strength) pairs present, the eavesdropper's first."""
    return sorted({tuple(k.split("/")[2:5:2]) for k in summary["cells"]},
                  key=lambda p: (p[1] != "eavesdrop", p[0]))  # fmt: skip


def attack_success(summary: dict, out: Path) -> list[Path]:
    """One heat map per (attacker location, strength): configurations x attacks, the
    success rate in each square with its trials."""
    panels = _panels(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 + 2.9 * len(panels), 4.6),
                             squeeze=False)  # fmt: skip
    for n, (ax, (location, strength)) in enumerate(zip(axes[0], panels, strict=True)):
        grid = [[float("nan")] * len(attacks.ATTACKS) for _ in CONFIGURATIONS]
        for key, v in summary["cells"].items():
            cov, mode, loc, attack, st = key.split("/")
            if (loc, st) == (location, strength):
                grid[CONFIGURATIONS.index(f"{cov}/{mode}")][attacks.ATTACKS.index(attack)] = v
        values = [[v["rate"] if isinstance(v, dict) else v for v in row] for row in grid]
        ax.imshow(values, vmin=0, vmax=1, cmap="Reds", aspect="auto")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if isinstance(v, dict):
                    ax.text(j, i, f"{v['successes']}/{v['trials']}", ha="center", va="center",
                            fontsize=7, color="white" if v["rate"] > 0.6 else "black")  # fmt: skip
        ax.set_xticks(range(len(attacks.ATTACKS)), attacks.ATTACKS, rotation=45, ha="right")
        ax.set_yticks(range(len(CONFIGURATIONS)), CONFIGURATIONS if n == 0 else [])
        ax.set_title(f"{strength},\n{location} network", fontsize=9)
    fig.suptitle("Attack success (successful / trials)", y=1.03)
    return _save(fig, out, "attack_success")


def confinement(summary: dict, out: Path) -> list[Path]:
    """Share of the legitimate hosts' control options (not DSS, not handshakes) that
    travelled on the trusted subflow, per configuration."""
    cfgs = [c for c in CONFIGURATIONS if c in summary["configurations"]]
    shares = [summary["configurations"][c]["confinement"] or 0.0 for c in cfgs]
    counts = [summary["configurations"][c]["control_options"] for c in cfgs]
    cis = [summary["configurations"][c].get("confinement_ci95") for c in cfgs]
    err = [
        [max(0.0, s - ci[0]) if ci else 0 for s, ci in zip(shares, cis, strict=True)],
        [max(0.0, ci[1] - s) if ci else 0 for s, ci in zip(shares, cis, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(range(len(cfgs)), shares, color="tab:blue", yerr=err, capsize=3)
    for bar, share, n, up in zip(bars, shares, counts, err[1], strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, share + up + 0.02, f"{share:.2f}\nn={n}",
                ha="center", fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(cfgs)), cfgs, rotation=45, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("control options on the trusted subflow")
    ax.set_title(
        "Confinement (no trusted subflow exists without SAV); bars: 95 % "
        "bootstrap interval over trials",
        fontsize=9,
    )
    return _save(fig, out, "confinement")


def cost(summary: dict, out: Path) -> list[Path]:
    """Goodput and connection set-up time of the legitimate transfer (median, IQR)."""
    cfgs = [c for c in CONFIGURATIONS if c in summary["configurations"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (metric, label) in zip(axes, (("goodput_mbps", "goodput (Mbit/s)"),
                                          ("connect_ms", "connect (ms)")), strict=True):  # fmt: skip
        med = [summary["configurations"][c][f"{metric}_median"] or 0.0 for c in cfgs]
        iqr = [summary["configurations"][c][f"{metric}_iqr"] or (0.0, 0.0) for c in cfgs]
        err = [[m - lo for m, (lo, _) in zip(med, iqr, strict=True)],
               [hi - m for m, (_, hi) in zip(med, iqr, strict=True)]]  # fmt: skip
        ax.bar(range(len(cfgs)), med, yerr=err, capsize=3, color="tab:gray")
        ax.set_xticks(range(len(cfgs)), cfgs, rotation=45, ha="right")
        ax.set_ylabel(label)
    fig.suptitle("Cost for the legitimate transfer (median, bars: interquartile range)")
    return _save(fig, out, "cost")


def tables(summary: dict) -> str:
    """The summary as Markdown: attack success per configuration and attacker (eavesdropper
    and blind), then confinement and cost per configuration."""
    lines = []
    for location, strength in _panels(summary):
        lines += [f"Attack success, {strength} attacker on the {location} network "
                  "(successful/trials):", "",
                  "| coverage/mode | " + " | ".join(attacks.ATTACKS) + " |",
                  "|---" * (len(attacks.ATTACKS) + 1) + "|"]  # fmt: skip
        for cfg in CONFIGURATIONS:
            cells = [
                summary["cells"].get(f"{cfg}/{location}/{a}/{strength}") for a in attacks.ATTACKS
            ]
            if any(cells):
                lines.append(f"| {cfg} | " + " | ".join(
                    f"{c['successes']}/{c['trials']}" if c else "—" for c in cells) + " |")  # fmt: skip
        lines.append("")
    lines += ["| coverage/mode | control options on the trusted subflow | goodput Mbit/s, median "
              "(IQR) | connect ms, median | transfers intact |", "|---|---|---|---|---|"]  # fmt: skip
    for cfg in CONFIGURATIONS:
        v = summary["configurations"].get(cfg)
        if not v:
            continue
        ci = v.get("confinement_ci95")
        conf = (
            "—"
            if v["confinement"] is None
            else f"{v['confinement']:.2f} ({v['control_on_trusted']}/{v['control_options']}"
            + (f"; 95 % {ci[0]:.2f}–{ci[1]:.2f})" if ci else ")")
        )
        good = "—" if v["goodput_mbps_median"] is None else (
            f"{v['goodput_mbps_median']:.0f} ({v['goodput_mbps_iqr'][0]:.0f}–{v['goodput_mbps_iqr'][1]:.0f})")  # fmt: skip
        conn = "—" if v["connect_ms_median"] is None else f"{v['connect_ms_median']:.2f}"
        lines.append(
            f"| {cfg} | {conf} | {good} | {conn} | {v['transfers_intact']}/{v['trials']} |"
        )
    return "\n".join(lines) + "\n"


def draw(run_dir: Path) -> list[Path]:
    rows = records.read(run_dir / "records.csv")
    if not rows:
        raise ValueError(f"{run_dir}: no records.csv with trials")
    summary = records.summarize(rows)
    (run_dir / "summary.md").write_text(tables(summary))
    return attack_success(summary, run_dir) + confinement(summary, run_dir) + cost(summary, run_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.figures",
                                 description=__doc__.split("\n")[0])  # fmt: skip
    ap.add_argument("run_dir", help="a run folder with records.csv")
    args = ap.parse_args(argv)
    try:
        paths = draw(Path(args.run_dir))
    except (OSError, ValueError, KeyError) as e:
        print(f"figures: {e}", file=sys.stderr)
        return 1
    print(json.dumps([str(p) for p in paths]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
