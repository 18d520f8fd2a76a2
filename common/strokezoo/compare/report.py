"""The leaderboard of ``strokezoo compare``: per method the test-split figures that ``strokezoo evaluate`` wrote,
a bootstrap confidence interval of the mean Dice, a paired Wilcoxon test against the stock baseline with Holm's
correction over the cohort's methods, whether each bundle clears the two bars (its cohort's rule, and the stock
baseline − 0.05), and a plot of the per-case Dice.

The stock baseline is the reference of the tests and the bar only if it learnt: a trained method whose best
validation Dice is below :data:`FAILED_TO_LEARN` in any split, or whose mean test Dice is, is reported as failed to
learn and is never used as a bar; BasicUNet is the reference, else DynUNet, else there is none.

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

__all__ = ["bootstrap_ci", "paired_wilcoxon", "holm", "learned", "per_case_dice", "leaderboard_rows", "write_leaderboard", "COLUMNS"]

#: the stock baselines in the order they serve as the reference and the bar
REFERENCES = ("basicunet", "dynunet")

#: a trained method whose best validation Dice (in any split) or mean test Dice is below this learnt nothing
FAILED_TO_LEARN = 0.05

#: a bundle reaches the bar when its mean test Dice is at least the reference's minus this
BAR_MARGIN = 0.05

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
    "wilcoxon_p_holm",
    "reference",
    "learned",
    "beats_rule",
    "reaches_bar",
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


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (one family; NaNs are left out of it and stay NaN): the i-th
    smallest of m p-values becomes max over j ≤ i of min(1, (m − j + 1) p_(j))."""
    p = np.asarray(pvalues, float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = order.size, 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def learned(result: dict, dice_mean: float | None) -> bool | None:
    """Whether a method learnt: ``None`` for an untrained one (a rule, an ensemble: no ``best_val_dice``); else
    False when its best validation Dice in any split, or its mean test Dice ``dice_mean``, is below
    :data:`FAILED_TO_LEARN`."""
    if "best_val_dice" not in result:
        return None
    best = result["best_val_dice"]
    per_split = best if isinstance(best, list) else [best]
    return min(per_split) >= FAILED_TO_LEARN and dice_mean is not None and dice_mean >= FAILED_TO_LEARN


def per_case_dice(evaluation: Path) -> dict[str, float]:
    """``case_id -> dice`` from an evaluation's ``metrics.csv``."""
    with (evaluation / "metrics.csv").open() as f:
        return {row["case_id"]: float(row["dice"]) for row in csv.DictReader(f)}


def leaderboard_rows(results: list[dict]) -> list[dict]:
    """One row per method result (``name``, ``kind``, ``status``, and for a finished method its ``evaluation``
    folder and timings). ``reference``: the first stock baseline of :data:`REFERENCES` that learnt; ``wilcoxon_p``
    pairs each method's per-case Dice with the reference's on the same cases, ``wilcoxon_p_holm`` is that p after
    Holm's correction over the cohort's methods; ``beats_rule`` and ``reaches_bar`` (bundles only) compare its mean
    Dice with the rule's and with the reference's − :data:`BAR_MARGIN`."""
    dice = {r["name"]: per_case_dice(Path(r["evaluation"])) for r in results if r["status"] == "done"}
    summaries = {r["name"]: json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"] for r in results if r["status"] == "done"}
    learnt = {r["name"]: learned(r, summaries[r["name"]]["dice"]["mean"]) for r in results if r["status"] == "done"}
    reference = next((s for s in REFERENCES if learnt.get(s)), None)
    rule = next((r["name"] for r in results if r["kind"] == "clinical rule" and r["status"] == "done"), None)
    rows = []
    for r in results:
        row = {c: "" for c in COLUMNS} | {"method": r["name"], "kind": r["kind"], "status": r["status"], "error": r.get("error", "")}
        if r["status"] == "done":
            m = summaries[r["name"]]
            low, high = bootstrap_ci(list(dice[r["name"]].values()))
            p = float("nan")
            if reference and r["name"] != reference:
                cases = sorted(set(dice[reference]) & set(dice[r["name"]]))  # the test cases (each method scored them all)
                p = paired_wilcoxon([dice[r["name"]][c] for c in cases], [dice[reference][c] for c in cases])
            mean = m["dice"]["mean"]
            bundle = r["kind"].startswith("bundle")
            row |= {
                "n": m["dice"]["n"],
                "dice_mean": mean,
                "dice_sd": m["dice"]["sd"],
                "dice_median": m["dice"]["median"],
                "dice_ci_low": low,
                "dice_ci_high": high,
                "lesion_f1_mean": m["lesion_f1"]["mean"],
                "hd95_median": m["hd95"]["median"],
                "hd95_n": m["hd95"]["n"],
                "abs_volume_diff_ml_mean": m["abs_volume_diff_ml"]["mean"],
                "wilcoxon_p": p,
                "reference": reference or "",
                "learned": {None: "", True: "yes", False: "no"}[learnt[r["name"]]],
                "beats_rule": _yes(mean > summaries[rule]["dice"]["mean"]) if bundle and rule else "",
                "reaches_bar": _yes(mean >= summaries[reference]["dice"]["mean"] - BAR_MARGIN) if bundle and reference else "",
                "epochs": _epochs(r.get("epochs")),
                "train_seconds": r.get("train_seconds", float("nan")),
                "infer_seconds_per_volume": r.get("infer_seconds_per_volume", float("nan")),
            }
        rows.append(row)
    tested = [row for row in rows if row["wilcoxon_p"] != ""]
    for row, adjusted in zip(tested, holm([row["wilcoxon_p"] for row in tested])):
        row["wilcoxon_p_holm"] = adjusted
    return rows


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _epochs(epochs: int | list[int] | None) -> str:
    """The epochs a method completed: ``"40"``, ``"12+9"`` for a bundle's stages, ``""`` for an untrained method."""
    if epochs is None:
        return ""
    if isinstance(epochs, str):  # the splits of a cross-validation, each its own
        return epochs
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


def _verdicts(rows: list[dict]) -> list[str]:
    """The lines under the table: which stock baseline is the reference and bar (or that none learnt), and per bundle
    whether it beats the rule and reaches the bar."""
    done = [r for r in rows if r["status"] == "done"]
    reference = next((r["reference"] for r in done if r["reference"]), "")
    failed = [r["method"] for r in done if r["learned"] == "no"]
    lines = []
    if failed:
        lines.append(f"- failed to learn (best validation Dice or mean test Dice below {FAILED_TO_LEARN}): {', '.join(failed)}; never a bar")
    if reference:
        ref = next(r for r in done if r["method"] == reference)
        lines.append(f"- reference of the paired tests and bar: {reference} (mean Dice {_f(ref['dice_mean'])}; bar {_f(ref['dice_mean'] - BAR_MARGIN)})")
    else:
        lines.append("- no stock baseline learnt: no paired tests, no bar")
    for r in done:
        if r["kind"].startswith("bundle"):
            rule = "beats the rule" if r["beats_rule"] == "yes" else ("does not beat the rule" if r["beats_rule"] == "no" else "no rule")
            bar = {"yes": "reaches the bar", "no": "falls short of the bar", "": "no bar"}[r["reaches_bar"]]
            lines.append(f"- {r['method']}: {rule}; {bar}")
    return lines


def write_leaderboard(results: list[dict], out: Path, preamble: Sequence[str] = ()) -> list[dict]:
    """``leaderboard.csv``, ``leaderboard.md`` (``preamble`` lines first: the cohort, the design, the commands,
    the seeds, the machine) and ``dice.png`` in ``out``; returns the rows."""
    rows = leaderboard_rows(results)
    write_csv_atomic(rows, list(COLUMNS), out / "leaderboard.csv")
    if any(r["status"] == "done" for r in results):
        _plot(results, out / "dice.png")
    reference = next((r["reference"] for r in rows if r["reference"]), None)
    lines = [
        *preamble,
        f"- per method: mean ± SD, median and the 95 % percentile-bootstrap CI of the mean of the per-study test Dice (10,000 resamples, seed 0); "
        f"p: paired two-sided Wilcoxon signed-rank test of the per-study Dice against {reference or 'a stock baseline that learnt (none did)'}, "
        "Holm-corrected over the cohort's methods",
        "",
        "| method | kind | n | Dice mean ± SD | median | 95 % CI | lesion F1 | HD95 mm (n) | abs. ΔV mL | "
        f"p vs {reference or '–'} (Holm) | epochs | train s | infer s/vol |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] != "done":
            lines.append(f"| {r['method']} | {r['kind']} | failed: {r['error'].splitlines()[-1] if r['error'] else r['status']} |" + " |" * 10)
            continue
        kind = f"{r['kind']}, failed to learn" if r["learned"] == "no" else r["kind"]
        p = r["wilcoxon_p_holm"] if r["wilcoxon_p_holm"] != "" else float("nan")
        lines.append(
            f"| {r['method']} | {kind} | {r['n']} | {_f(r['dice_mean'])} ± {_f(r['dice_sd'])} | {_f(r['dice_median'])} | "
            f"{_f(r['dice_ci_low'])}–{_f(r['dice_ci_high'])} | {_f(r['lesion_f1_mean'])} | "
            f"{_f(r['hd95_median'], 1)} ({r['hd95_n']}) | {_f(r['abs_volume_diff_ml_mean'], 2)} | {_f(p, 3)} | "
            f"{r['epochs'] or '–'} | {r['train_seconds']:.0f} | {r['infer_seconds_per_volume']:.2f} |"
        )
    lines += ["", *_verdicts(rows)]
    lines += ["", "![per-case test Dice](dice.png)" if (out / "dice.png").exists() else ""]
    write_text_atomic("\n".join(lines) + "\n", out / "leaderboard.md")
    return rows
