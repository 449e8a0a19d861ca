"""Figures of an attack run, drawn from its records only (no testbed, no root).

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
from experiments.adaptive import FLOOD, MOMENTS, SHAPE_ORDER  # noqa: E402
from experiments.confinement import CATEGORIES, PHASES  # noqa: E402
from experiments.harness import MODES  # noqa: E402
from topologies.dualhomed import COVERAGES  # noqa: E402

CONFIGURATIONS = [
    records.configuration_of(c, m, f) for f in records.FAMILIES for c in COVERAGES for m in MODES
]


def _cell(key: str) -> records.Cell:
    return records.Cell.parse(key)


def _cell_key(cfg: str, location: str, attack: str, strength: str) -> str:
    """The key of a configuration's cell (``cfg`` as CONFIGURATIONS spells it)."""
    coverage, mode, *family = cfg.split("/")
    return records.Cell(coverage, mode, location, attack, strength, *family).key


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("pdf", "png"):
        path = out / f"{name}.{ext}"
        # No creation date in the PDF: a figure redrawn from the same records is the
        # same file (git sees no change).
        metadata = {"CreationDate": None} if ext == "pdf" else None
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def _panels(summary: dict) -> list[tuple[str, str]]:
    """(location, strength) pairs present, the adaptive attacker's first; the blind
    attacker's results go into a footnote line instead."""
    rank = {"adaptive": 0, "eavesdrop": 1}
    return sorted(
        {tuple(k.split("/")[2:5:2]) for k in summary["cells"]} - _blind(summary),
        key=lambda p: (rank.get(p[1], 2), p[0]),
    )


def _blind(summary: dict) -> set[tuple[str, str]]:
    return {tuple(k.split("/")[2:5:2]) for k in summary["cells"] if _cell(k).strength == "blind"}


def caption(provenance: dict | None) -> str:
    """The line every figure carries: where its numbers come from."""
    if not provenance:
        return "provenance unknown (no provenance.json)"
    commit = (provenance.get("git_commit") or "?")[:10]
    dirty = ", dirty tree" if provenance.get("git_dirty") else ""
    return (
        f"commit {commit}{dirty} · kernel {provenance.get('kernel', '?')} · "
        f"{provenance.get('date', '?')[:10]} · {provenance.get('command', '')}"
    )


def _caption(fig, provenance: dict | None, extra: str = "") -> None:
    """Under everything else: the layout is made tight first, so the caption does not
    run into tick labels."""
    fig.tight_layout()
    text = caption(provenance) + (f"\n{extra}" if extra else "")
    fig.text(0.01, 0.0, text, fontsize=6, ha="left", va="top", color="dimgray", wrap=True)


def _blind_footnote(summary: dict) -> str:
    cells = [v for k, v in summary["cells"].items() if k.endswith("/blind")]
    if not cells:
        return ""
    k, n = sum(c["successes"] for c in cells), sum(c["trials"] for c in cells)
    lo, hi = records.wilson(k, n)
    return (
        f"blind attacker (given the four-tuples, guessing sequence numbers): {k}/{n} "
        f"successes over {len(cells)} cells (95 % Wilson {lo:.2f}–{hi:.2f})"
    )


def attack_success(
    summary: dict, out: Path, provenance: dict | None = None, headline: frozenset[str] = frozenset()
) -> list[Path]:
    """Heat maps per (attacker location, strength): configurations (grouped by SAV
    coverage) x attacks; each square the successes/trials and the 95 % Wilson interval;
    the cells the headline rests on outlined."""
    from matplotlib.patches import Rectangle

    panels = _panels(summary)
    present = {_cell(k).configuration for k in summary["cells"]}
    configs = [c for c in CONFIGURATIONS if c in present]
    fig, axes = plt.subplots(
        1,
        max(1, len(panels)),
        figsize=(2.6 + 4.2 * max(1, len(panels)), 1.4 + 0.62 * len(configs)),
        squeeze=False,
    )
    for n, (ax, (location, strength)) in enumerate(zip(axes[0], panels, strict=False)):
        columns = attacks.attacks_of(strength)
        values = [[float("nan")] * len(columns) for _ in configs]
        for key, v in summary["cells"].items():
            cell = _cell(key)
            if (cell.location, cell.strength) != (location, strength):
                continue
            i, j = configs.index(cell.configuration), columns.index(cell.attack)
            values[i][j] = v["rate"]
            lo, hi = v["ci95"]
            ax.text(
                j,
                i,
                f"{v['successes']}/{v['trials']}\n[{lo:.2f}–{hi:.2f}]",
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if v["rate"] > 0.6 else "black",
            )
            if key in headline:
                ax.add_patch(
                    Rectangle(
                        (j - 0.48, i - 0.48),
                        0.96,
                        0.96,
                        fill=False,
                        edgecolor="black",
                        linewidth=2.2,
                    )
                )
        ax.imshow(values, vmin=0, vmax=1, cmap="Reds", aspect="auto")
        for i in range(1, len(configs)):  # a line between coverages
            if configs[i].split("/")[0] != configs[i - 1].split("/")[0]:
                ax.axhline(i - 0.5, color="black", linewidth=0.8)
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
        ax.set_yticks(range(len(configs)), configs if n == 0 else [])
        ax.set_title(f"{strength} attacker, {location} network", fontsize=9)
    fig.suptitle(
        "Attack success per trial (unit: one connection attacked); "
        "successes/trials, [95 % Wilson interval]; outlined: headline cells",
        fontsize=9,
        y=1.0,
    )
    _caption(fig, provenance, _blind_footnote(summary))
    return _save(fig, out, "attack_success")


def confinement(summary: dict, out: Path, provenance: dict | None = None) -> list[Path]:
    """Per configuration, per option category and phase: the share of the legitimate
    hosts' control options sent on a subflow their TPBT held trusted (dark) and the rest
    (light), stacked to 1, with the 95 % bootstrap interval over trials and n."""
    cfgs = [c for c in CONFIGURATIONS if c in summary["configurations"]]
    fig, axes = plt.subplots(len(cfgs), 1, figsize=(9, 2.3 * len(cfgs)), squeeze=False)
    for ax, cfg in zip(axes[:, 0], cfgs, strict=True):
        by_cat = summary["configurations"][cfg].get("by_category") or {}
        bars = [
            (f"{cat}\n{phase}", v)
            for cat in CATEGORIES
            for phase in PHASES
            if (v := by_cat.get(cat, {}).get(phase))
        ]
        x = range(len(bars))
        shares = [v["share"] for _, v in bars]
        err = [
            [max(0.0, v["share"] - v["ci95"][0]) if v["ci95"] else 0 for _, v in bars],
            [max(0.0, v["ci95"][1] - v["share"]) if v["ci95"] else 0 for _, v in bars],
        ]
        ax.bar(x, shares, color="tab:blue", label="on a trusted subflow")
        ax.bar(x, [1 - s for s in shares], bottom=shares, color="lightgray", label="elsewhere")
        ax.errorbar(x, shares, yerr=err, fmt="none", ecolor="black", capsize=3)
        for i, (_, v) in enumerate(bars):
            ax.text(i, 1.02, f"n={v['total']}", ha="center", fontsize=6.5)
        ax.set_xticks(list(x), [label for label, _ in bars], fontsize=7)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("share of options")
        n_trials = summary["configurations"][cfg]["trials"]
        ax.set_title(
            f"{cfg} ({n_trials} trials)" + ("" if bars else ": no control options"),
            fontsize=8,
            loc="left",
        )
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "Confinement of the legitimate hosts' control options per category and "
        "phase (before/after a trusted subflow is up in the sender's TPBT); "
        "unit: option; bars: 95 % bootstrap interval over trials",
        fontsize=8,
    )
    _caption(fig, provenance)
    return _save(fig, out, "confinement")


def cost_points(rows: list[dict], cfg: str, metric: str) -> tuple[list[float], list[float]]:
    """One configuration's values of ``metric`` over its intact transfers: (those whose
    receiver dropped no data beyond its window or was not counted, those where it did,
    the kernel's stall with userspace TSO)."""
    plain, stalled = [], []
    for r in rows:
        if (
            records.configuration_of(r["coverage"], r["mode"], r["family"]) == cfg
            and r["transfer_ok"]
            and r[metric] is not None
        ):
            (stalled if r.get("window_drops") else plain).append(r[metric])
    return plain, stalled


def cost(rows: list[dict], out: Path, provenance: dict | None = None) -> list[Path]:
    """Goodput and connection set-up time of each trial's legitimate transfer, per
    configuration: box plots with every trial as a point, and n. Trials whose receiver
    dropped data beyond its window (the kernel's stall with userspace TSO) are marked:
    their cost is the kernel's as much as the configuration's."""

    def cfg_of(r: dict) -> str:
        return records.configuration_of(r["coverage"], r["mode"], r["family"])

    cfgs = [c for c in CONFIGURATIONS if any(cfg_of(r) == c for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    marked = False
    for ax, (metric, label) in zip(
        axes, (("goodput_mbps", "goodput (Mbit/s)"), ("connect_ms", "connect (ms)")), strict=True
    ):
        points = [cost_points(rows, c, metric) for c in cfgs]
        data = [plain + stalled for plain, stalled in points]
        ax.boxplot([d or [float("nan")] for d in data], widths=0.5, showfliers=False)
        for i, d in enumerate(data, start=1):
            jitter = [i + 0.18 * ((k * 0.618) % 1 - 0.5) for k in range(len(d))]
            n_plain = len(points[i - 1][0])
            ax.plot(jitter[:n_plain], d[:n_plain], ".", color="tab:gray", markersize=3, alpha=0.7)
            if len(d) > n_plain:
                marked = True
                ax.plot(jitter[n_plain:], d[n_plain:], "x", color="tab:red", markersize=4)
        ax.set_xticks(
            range(1, len(cfgs) + 1),
            [f"{c}\nn={len(d)}" for c, d in zip(cfgs, data, strict=True)],
            rotation=30,
            ha="right",
            fontsize=7,
        )
        ax.set_ylabel(label)
    fig.suptitle(
        "Cost for the legitimate transfer; unit: one trial's connection "
        "(box: quartiles, points: trials; attacked trials included"
        + ("; x: b dropped data beyond its window, the kernel's stall" if marked else "")
        + ")",
        fontsize=9,
    )
    _caption(fig, provenance)
    return _save(fig, out, "cost")


def _attempt_table(summary: dict) -> list[str]:
    """Which shape worked at which moment (worked/tried), per adaptive cell whose every
    attempt was made: nothing worked, or the attacker went on after a success
    (``--exhaustive``). Cells where it stopped at a success would mislead here."""
    lines = []
    for key, cell in summary["cells"].items():
        attempts = cell.get("attempts") or {}
        if not attempts or not (cell["successes"] == 0 or cell.get("exhaustive")):
            continue
        lines += [
            f"Attempts of {key} (worked/tried; —: none, as where a shape has no room "
            "for the option):",
            "",
            "| shape | " + " | ".join(MOMENTS) + " |",
            "|---" * (len(MOMENTS) + 1) + "|",
        ]
        tried = {key.split("/", 1)[1] for key in attempts}  # the flood has one shape
        for shape in [s for s in (*SHAPE_ORDER, FLOOD) if s in tried]:
            cols = [attempts.get(f"{m}/{shape}") for m in MOMENTS]
            row = " | ".join(f"{c[0]}/{c[1]}" if c else "—" for c in cols)
            lines.append(f"| {shape} | {row} |")
        lines.append("")
    return lines


def _rate(c: dict) -> str:
    lo, hi = c["ci95"]
    return f"{c['successes']}/{c['trials']} [{lo:.2f}–{hi:.2f}]"


def tables(summary: dict) -> str:
    """The summary as Markdown: attack success per configuration and attacker, each cell
    with its 95 % Wilson interval and a pooled line per configuration; the blind
    attacker in a footnote; then confinement per category and phase, and cost."""
    lines = []
    for location, strength in _panels(summary):
        columns = attacks.attacks_of(strength)
        lines += [
            f"Attack success, {strength} attacker on the {location} network "
            "(successes/trials [95 % Wilson]):",
            "",
            "| coverage/mode | " + " | ".join(columns) + " | pooled |",
            "|---" * (len(columns) + 2) + "|",
        ]
        for cfg in CONFIGURATIONS:
            cells = [summary["cells"].get(_cell_key(cfg, location, a, strength)) for a in columns]
            present = [c for c in cells if c]
            if not present:
                continue
            k, n = sum(c["successes"] for c in present), sum(c["trials"] for c in present)
            pooled = _rate({"successes": k, "trials": n, "ci95": records.wilson(k, n)})
            row = " | ".join(_rate(c) if c else "—" for c in cells)
            lines.append(f"| {cfg} | {row} | {pooled} |")
        lines.append("")
        moments = {}
        for key, c in summary["cells"].items():
            cfg = _cell(key).configuration
            if key.split("/")[2:5:2] == [location, strength] and c.get("by_moment"):
                for m, count in c["by_moment"].items():
                    moments.setdefault(cfg, {}).setdefault(m, 0)
                    moments[cfg][m] += count
        if moments:
            lines += ["Where the successes came from (moment: trials):", ""]
            for cfg, by in moments.items():
                lines.append(f"- {cfg}: " + ", ".join(f"{m} {n}" for m, n in sorted(by.items())))
            lines.append("")
    lines += _attempt_table(summary)
    if foot := _blind_footnote(summary):
        lines += [f"Footnote: {foot}.", ""]
    lines += [
        "Confinement per option category and phase (on a subflow the sender's TPBT held "
        "trusted / all; share [95 % bootstrap over trials]):",
        "",
        "| coverage/mode | category | before a trusted subflow | after |",
        "|---|---|---|---|",
    ]
    for cfg in CONFIGURATIONS:
        v = summary["configurations"].get(cfg)
        for cat, phases in (v or {}).get("by_category", {}).items():
            cols = []
            for phase in PHASES:
                p = phases.get(phase)
                ci = f" [{p['ci95'][0]:.2f}–{p['ci95'][1]:.2f}]" if p and p["ci95"] else ""
                cols.append(f"{p['trusted']}/{p['total']} ({p['share']:.2f}{ci})" if p else "—")
            lines.append(f"| {cfg} | {cat} | {cols[0]} | {cols[1]} |")
    lines += [
        "",
        "| coverage/mode | all control options on a trusted subflow | goodput Mbit/s, "
        "median (IQR) | connect ms, median | transfers intact |",
        "|---|---|---|---|---|",
    ]
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
        iqr = v["goodput_mbps_iqr"]
        good = (
            "—"
            if v["goodput_mbps_median"] is None
            else f"{v['goodput_mbps_median']:.0f} ({iqr[0]:.0f}–{iqr[1]:.0f})"
        )
        conn = "—" if v["connect_ms_median"] is None else f"{v['connect_ms_median']:.2f}"
        lines.append(
            f"| {cfg} | {conf} | {good} | {conn} | {v['transfers_intact']}/{v['trials']} |"
        )
    stalled = {
        cfg: v
        for cfg, v in summary["configurations"].items()
        if v.get("transfers_with_window_drops")
    }
    if stalled:
        counts = "; ".join(
            f"{cfg}: {v['transfers_with_window_drops']} of {v['trials']}"
            for cfg, v in sorted(stalled.items())
        )
        lines += [
            "",
            "Transfers in which b dropped data beyond the window it had announced "
            "(MPTcpExtNoDSSInWindow; the kernel's stall with userspace TSO, "
            f"docs/line-rate.md, or data injected past the window): {counts}. Their "
            "goodput and connect times carry the stall.",
        ]
    return "\n".join(lines) + "\n"


def draw(run_dir: Path, headline: frozenset[str] | None = None) -> list[Path]:
    """Every figure and summary.md from the run folder's records (and its
    provenance.json for the caption); ``headline``: cells to outline (default: the
    attack experiment's headline cells)."""
    rows = records.read(run_dir / "records.csv")
    if not rows:
        raise ValueError(f"{run_dir}: no records.csv with trials")
    if headline is None:
        from experiments.run import HEADLINE

        headline = frozenset(HEADLINE)
    path = run_dir / "provenance.json"
    provenance = json.loads(path.read_text()) if path.exists() else None
    summary = records.summarize(rows)
    (run_dir / "summary.md").write_text(tables(summary) + "\n" + caption(provenance) + "\n")
    return (
        attack_success(summary, run_dir, provenance, headline)
        + confinement(summary, run_dir, provenance)
        + cost(rows, run_dir, provenance)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.figures", description=" ".join(__doc__.split("\n\n")[0].split())
    )
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
