"""The leaderboard of ``strokezoo compare``: per method the test-split figures that ``strokezoo evaluate`` wrote,
a bootstrap confidence interval of the mean Dice, a paired Wilcoxon test against the stock baseline, and a plot of
the per-case Dice.

Every figure of a method's row is read from its ``summary.json`` and ``metrics.csv`` (the evaluation's own
output), never recomputed: the mean, SD (ddof 1), median and n of Dice, the mean lesion-wise F1, the median HD95
(over the cases with both masks non-empty, with its n) and the mean |ΔV| in mL.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from ..io.atomic import write_csv_atomic, write_text_atomic
from ..metrics.evaluate import fmt_metric

__all__ = ["bootstrap_ci", "paired_wilcoxon", "per_case_dice", "leaderboard_rows", "write_leaderboard", "COLUMNS"]

#: The columns of leaderboard.csv, in order.
COLUMNS = (
    "method",
    "kind",
    "status",
    "n",
    "dice_mean",
    "dice_sd",
    "dice_median",
    "dice_ci_low",
    "dice_ci_high",
    "lesion_f1_mean",
    "hd95_median",
    "hd95_n",
    "abs_volume_diff_ml_mean",
    "wilcoxon_p",
    "epochs",
    "train_seconds",
    "infer_seconds_per_volume",
    "error",
)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (NaNs dropped), with SciPy's
    ``scipy.stats.bootstrap``; ``(nan, nan)`` for fewer than two values."""
    x = np.asarray([v for v in values if not math.isnan(v)], float)
    if x.size < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test of paired per-case scores ``a`` against ``b`` (SciPy; exact for
    small samples without ties); NaN when no pair differs or a pair has a NaN."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or np.isnan(a).any() or np.isnan(b).any() or not np.any(a != b):
        return float("nan")
    return float(stats.wilcoxon(a, b).pvalue)


def per_case_dice(evaluation: Path) -> dict[str, float]:
    """``case_id -> dice`` from an evaluation's ``metrics.csv``."""
    with (evaluation / "metrics.csv").open() as f:
        return {row["case_id"]: float(row["dice"]) for row in csv.DictReader(f)}


def leaderboard_rows(results: list[dict], reference: str | None) -> list[dict]:
    """One row per method result (``name``, ``kind``, ``status``, and for a finished method its ``evaluation``
    folder and timings); ``wilcoxon_p`` pairs each method's per-case Dice with ``reference``'s on the same cases."""
    dice = {r["name"]: per_case_dice(Path(r["evaluation"])) for r in results if r["status"] == "done"}
    rows = []
    for r in results:
        row = {c: "" for c in COLUMNS} | {"method": r["name"], "kind": r["kind"], "status": r["status"], "error": r.get("error", "")}
        if r["status"] == "done":
            m = json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"]
            low, high = bootstrap_ci(list(dice[r["name"]].values()))
            p = float("nan")
            if reference in dice and r["name"] != reference:
                cases = sorted(set(dice[reference]) & set(dice[r["name"]]))  # the test cases (each method scored them all)
                p = paired_wilcoxon([dice[r["name"]][c] for c in cases], [dice[reference][c] for c in cases])
            row |= {
                "n": m["dice"]["n"],
                "dice_mean": m["dice"]["mean"],
                "dice_sd": m["dice"]["sd"],
                "dice_median": m["dice"]["median"],
                "dice_ci_low": low,
                "dice_ci_high": high,
                "lesion_f1_mean": m["lesion_f1"]["mean"],
                "hd95_median": m["hd95"]["median"],
                "hd95_n": m["hd95"]["n"],
                "abs_volume_diff_ml_mean": m["abs_volume_diff_ml"]["mean"],
                "wilcoxon_p": p,
                "epochs": _epochs(r.get("epochs")),
                "train_seconds": r.get("train_seconds", float("nan")),
                "infer_seconds_per_volume": r.get("infer_seconds_per_volume", float("nan")),
            }
        rows.append(row)
    return rows


def _epochs(epochs: int | list[int] | None) -> str:
    """The epochs a method completed: ``"40"``, ``"12+9"`` for a bundle's stages, ``""`` for an untrained method."""
    if epochs is None:
        return ""
    return "+".join(str(e) for e in epochs) if isinstance(epochs, list) else str(epochs)


def _f(x: float | None, digits: int = 3) -> str:
    return fmt_metric(None if x is None or (isinstance(x, float) and math.isnan(x)) else x, digits)


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if r["status"] == "done"]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * max(len(done), 1), 3.6), dpi=120)
    rng = np.random.default_rng(0)
    for i, r in enumerate(done):
        values = np.asarray(list(per_case_dice(Path(r["evaluation"])).values()), float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=14, alpha=0.8)
        ax.hlines(np.nanmean(values), i - 0.3, i + 0.3, color="black")
    ax.set_xticks(range(len(done)), [r["name"] for r in done], rotation=30, ha="right", fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("test Dice per case (bar: mean)")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def write_leaderboard(results: list[dict], reference: str | None, out: Path, preamble: Sequence[str] = ()) -> list[dict]:
    """``leaderboard.csv``, ``leaderboard.md`` (``preamble`` lines first: the cohort, the split, the commands,
    the seeds, the machine) and ``dice.png`` in ``out``; returns the rows."""
    rows = leaderboard_rows(results, reference)
    write_csv_atomic(rows, list(COLUMNS), out / "leaderboard.csv")
    if any(r["status"] == "done" for r in results):
        _plot(results, out / "dice.png")
    lines = [*preamble, ""]
    lines += [
        f"| method | kind | n | Dice mean ± SD | median | 95 % CI | lesion F1 | HD95 mm (n) | abs. ΔV mL | p vs {reference} | epochs | train s | infer s/vol |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] != "done":
            lines.append(f"| {r['method']} | {r['kind']} | failed: {r['error'].splitlines()[-1] if r['error'] else r['status']} |" + " |" * 10)
            continue
        lines.append(
            f"| {r['method']} | {r['kind']} | {r['n']} | {_f(r['dice_mean'])} ± {_f(r['dice_sd'])} | {_f(r['dice_median'])} | "
            f"{_f(r['dice_ci_low'])}–{_f(r['dice_ci_high'])} | {_f(r['lesion_f1_mean'])} | "
            f"{_f(r['hd95_median'], 1)} ({r['hd95_n']}) | {_f(r['abs_volume_diff_ml_mean'], 2)} | {_f(r['wilcoxon_p'], 3)} | "
            f"{r['epochs'] or '–'} | {r['train_seconds']:.0f} | {r['infer_seconds_per_volume']:.2f} |"
        )
    lines += ["", "![per-case test Dice](dice.png)" if (out / "dice.png").exists() else ""]
    write_text_atomic("\n".join(lines) + "\n", out / "leaderboard.md")
    return rows
