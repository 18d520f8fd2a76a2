"""``strokezoo evaluate-raters``: per-modality predictions against several raters (Gómez et al., MICCAI 2023, Sec. 3).

A model that segments the lesion as each modality shows it (ADC, DWI) writes one mask per modality,
``<case_id>_<modality>.nii.gz``. Each is scored against every rater's annotation of that modality (Dice,
precision, sensitivity and the rest of :data:`~.segmentation.METRICS`: Table 1 of the paper, which trains on
rater R1 and also scores against R2). The raters' own agreement is measured as in Fig. 2: voxel-wise Cohen's
kappa between the two raters per modality, and between the two modalities per rater, with the Landis–Koch
level of each case. Fig. 4's Bland–Altman analysis compares, case by case, the raters' Dice with each other
(the reference agreement) and the model's Dice against a rater: ``mean = (model + reference) / 2``,
``difference = model − reference``, bias and 95 % limits of agreement (bias ± 1.96 SD).

Rater keys are templates of datalist keys: ``{"R1": "label_r1_{modality}", "R2": "label_r2_{modality}"}`` for
the two-rater layout (docs/datasets.md); ``{"R1": "label"}`` scores both outputs against one mask (ISLES 2022),
and then there is no inter-rater analysis. A case annotated by some of the raters only (the paper's training
cases have R1 alone) is scored against those it has, and enters the inter-rater analysis only with the first two.

The paper's t-tests (Sec. 4): paired over cases, on Dice, per modality and rater (``scipy.stats.ttest_rel``,
two-sided): the model against the inter-rater Dice (does the model agree with a rater as the raters agree with each
other), and, with ``compare`` (other models' prediction folders by name), the model against each other model.

Writes ``metrics.csv`` (case × modality × rater), ``agreement.csv``, ``bland_altman.csv`` and ``bland_altman.png``
(with two raters), ``t_tests.csv``, ``summary.json`` and ``report.md``; cases that cannot be scored are listed and
make the command exit non-zero, after the others are scored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data.datalist import load_datalist_entries, select_entries
from ..errors import InputError
from ..io.atomic import atomic_path, write_csv_atomic, write_json_atomic, write_text_atomic
from ..io.nifti import load_nifti, same_grid
from .agreement import KAPPA_LEVELS, cohen_kappa, kappa_level
from .evaluate import conventions, conventions_line, fmt_metric, summarize
from .segmentation import METRICS, segmentation_metrics

__all__ = ["evaluate_raters", "bland_altman", "paired_t_test", "TWO_RATERS"]

#: the two-rater layout's datalist keys (docs/datasets.md)
TWO_RATERS = {"R1": "label_r1_{modality}", "R2": "label_r2_{modality}"}


def bland_altman(model: Sequence[float], reference: Sequence[float]) -> dict[str, float | int | None]:
    """Bias (mean of ``model − reference``), its SD (ddof=1) and the 95 % limits of agreement; NaN pairs skipped."""
    a, b = np.asarray(model, np.float64), np.asarray(reference, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if d.size == 0:
        return {"bias": None, "sd": None, "loa_low": None, "loa_high": None, "n": 0}
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "n": int(d.size)}


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | None]:
    """Two-sided paired t-test of ``a`` against ``b`` (``scipy.stats.ttest_rel``), NaN pairs skipped: the mean
    difference, t, p and n (t and p None under 2 pairs, or when every difference is the same)."""
    from scipy.stats import ttest_rel

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out: dict = {"mean_difference": float((x - y).mean()) if x.size else None, "t": None, "p": None, "n": int(x.size)}
    if x.size >= 2 and np.ptp(x - y) > 1e-9:
        r = ttest_rel(x, y)
        out["t"], out["p"] = float(r.statistic), float(r.pvalue)
    return out


def _prediction(folder: Path, case_id: str, modality: str) -> Path:
    for name in (f"{case_id}_{modality}.nii.gz", f"{case_id}_{modality}.nii"):
        if (folder / name).is_file():
            return folder / name
    raise InputError(folder / f"{case_id}_{modality}.nii.gz", f"no {modality} prediction for this case")


def _plot(pairs: list[dict], stats: dict, modalities: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(modalities), figsize=(5 * len(modalities), 4), squeeze=False)
    for ax, m in zip(axes[0], modalities):
        for rater, colour in zip(stats[m], ("tab:red", "tab:blue", "tab:green", "tab:orange")):
            pts = [p for p in pairs if p["modality"] == m and p["rater"] == rater]
            ax.scatter([p["mean"] for p in pts], [p["difference"] for p in pts], s=14, color=colour, label=f"model vs {rater}")
            s = stats[m][rater]
            if s["bias"] is not None:
                ax.axhline(s["bias"], color=colour, lw=1)
                for lim in (s["loa_low"], s["loa_high"]):
                    ax.axhline(lim, color=colour, lw=0.8, ls="--")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_title(f"{m.upper()}: model Dice vs inter-rater Dice")
        ax.set_xlabel("mean of the two Dice scores")
        ax.set_ylabel("model − inter-rater Dice")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def evaluate_raters(
    pred: str | os.PathLike,
    ref: str | os.PathLike,
    out: str | os.PathLike,
    modalities: Sequence[str] = ("adc", "dwi"),
    raters: Mapping[str, str] | None = None,
    split: str = "training",
    folds: Sequence[int] | None = None,
    empty_precision: str = "nan",
    compare: Mapping[str, str] | None = None,
) -> dict:
    """Score ``pred/<case_id>_<modality>.nii.gz`` against every rater of ``ref`` (a datalist); returns the
    summary (also written to ``out``). ``raters`` maps a rater's name to a datalist-key template with
    ``{modality}`` (default :data:`TWO_RATERS`); ``compare`` maps other models' names to their prediction
    folders, for the paired t-tests."""
    pred, out = Path(pred), Path(out)
    conv = conventions(empty_precision)
    compare = {str(k): Path(v) for k, v in (compare or {}).items()}
    raters = dict(TWO_RATERS if raters is None else raters)
    modalities = list(modalities)
    if not pred.is_dir():
        raise InputError(pred, "prediction folder does not exist")
    if not raters or not modalities:
        raise ValueError("at least one rater and one modality are needed")
    entries = load_datalist_entries(ref, split) if folds is None else select_entries(ref, split, folds=list(folds))
    names = list(raters)
    rows, agreement, pairs, failures = [], [], [], []
    others: list[dict] = []  # the compared models' Dice, case × modality × rater
    for e in entries:
        cid = e.get("case_id", "?")
        try:
            refs = {}
            for r, template in raters.items():
                for m in modalities:
                    key = template.format(modality=m)
                    if key in e:
                        refs[r, m] = load_nifti(e[key], "label")
            present = [r for r in names if all((r, m) in refs for m in modalities)]
            if not present:
                raise InputError(ref, f"case {cid} has no rater's masks ({', '.join(t.format(modality=modalities[0]) for t in raters.values())}, ...)")
            case_rows, case_pairs, case_others = [], [], []
            agree: dict = {"case_id": cid}
            paired = len(names) >= 2 and names[0] in present and names[1] in present
            for m in modalities:
                p_vol = load_nifti(_prediction(pred, cid, m), "label")
                other_vols = {k: load_nifti(_prediction(folder, cid, m), "label") for k, folder in compare.items()}
                for r in present:
                    diff = same_grid(p_vol, refs[r, m], 1e-3)
                    if diff:
                        raise InputError(p_vol.path, f"prediction is not on the grid of rater {r}'s {m} mask: {diff}")
                    case_rows.append(
                        {"case_id": cid, "modality": m, "rater": r, **segmentation_metrics(p_vol.data, refs[r, m].data, refs[r, m].zooms, empty_precision)}
                    )
                    for k, vol in other_vols.items():
                        diff = same_grid(vol, refs[r, m], 1e-3)
                        if diff:
                            raise InputError(vol.path, f"prediction of {k} is not on the grid of rater {r}'s {m} mask: {diff}")
                        case_others.append(
                            {
                                "case_id": cid,
                                "modality": m,
                                "rater": r,
                                "model": k,
                                "dice": segmentation_metrics(vol.data, refs[r, m].data, refs[r, m].zooms)["dice"],
                            }
                        )
                if paired:
                    a, b = refs[names[0], m], refs[names[1], m]
                    agree[f"kappa_{m}_{names[0]}_{names[1]}"] = cohen_kappa(a.data, b.data)
                    reference = segmentation_metrics(a.data, b.data, a.zooms)["dice"]
                    agree[f"dice_{m}_{names[0]}_{names[1]}"] = reference
                    for row in case_rows[-len(present) :]:
                        model = row["dice"]
                        case_pairs.append(
                            {
                                "case_id": cid,
                                "modality": m,
                                "rater": row["rater"],
                                "dice_model": model,
                                "dice_raters": reference,
                                "mean": (model + reference) / 2,
                                "difference": model - reference,
                            }
                        )
            if len(modalities) >= 2:
                m0, m1 = modalities[:2]
                for r in present:
                    if raters[r].format(modality=m0) != raters[r].format(modality=m1):
                        agree[f"kappa_{r}_{m0}_{m1}"] = cohen_kappa(refs[r, m0].data, refs[r, m1].data)
            rows += case_rows
            pairs += case_pairs
            others += case_others
            agreement.append(agree)
        except (InputError, ValueError) as err:
            failures.append({"case_id": cid, "error": str(err)})
            print(f"cannot evaluate {cid}: {err}", file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(rows, ["case_id", "modality", "rater", *METRICS], out / "metrics.csv")
    table = {m: {r: summarize([x for x in rows if x["modality"] == m and x["rater"] == r], list(METRICS)) for r in names} for m in modalities}
    kappa_keys = sorted({k for a in agreement for k in a if k.startswith("kappa_")})
    dice_keys = sorted({k for a in agreement for k in a if k.startswith("dice_")})
    if kappa_keys:
        write_csv_atomic(agreement, ["case_id", *kappa_keys, *dice_keys], out / "agreement.csv")
    levels = {k: {name: sum(kappa_level(a[k]) == name for a in agreement if k in a) for name in ["poor", *(n for _, n in KAPPA_LEVELS)]} for k in kappa_keys}
    ba: dict = {}
    if pairs:
        ba = {
            m: {
                r: bland_altman(
                    [p["dice_model"] for p in pairs if p["modality"] == m and p["rater"] == r],
                    [p["dice_raters"] for p in pairs if p["modality"] == m and p["rater"] == r],
                )
                for r in names
            }
            for m in modalities
        }
        write_csv_atomic(pairs, ["case_id", "modality", "rater", "dice_model", "dice_raters", "mean", "difference"], out / "bland_altman.csv")
        _plot(pairs, ba, modalities, out / "bland_altman.png")
    t_tests = []
    for m in modalities:
        for r in names:
            if pairs:
                sel = [p for p in pairs if p["modality"] == m and p["rater"] == r]
                t_tests.append(
                    {
                        "modality": m,
                        "rater": r,
                        "model": "this model",
                        "against": "inter-rater Dice",
                        **paired_t_test([p["dice_model"] for p in sel], [p["dice_raters"] for p in sel]),
                    }
                )
            mine = {x["case_id"]: x["dice"] for x in rows if x["modality"] == m and x["rater"] == r}
            for k in compare:
                theirs = {x["case_id"]: x["dice"] for x in others if x["modality"] == m and x["rater"] == r and x["model"] == k}
                both = sorted(set(mine) & set(theirs))
                t_tests.append(
                    {"modality": m, "rater": r, "model": "this model", "against": k, **paired_t_test([mine[c] for c in both], [theirs[c] for c in both])}
                )
    if t_tests:
        write_csv_atomic(t_tests, ["modality", "rater", "model", "against", "mean_difference", "t", "p", "n"], out / "t_tests.csv")
    summary = {
        "datalist": str(ref),
        "predictions": str(pred),
        "split": split,
        "folds": None if folds is None else list(folds),
        "cases": len(agreement),
        "raters": raters,
        "modalities": modalities,
        "conventions": conv,
        "metrics": table,
        "t_tests": t_tests,
        "compared": {k: str(v) for k, v in compare.items()},
        "agreement": summarize(agreement, kappa_keys + dice_keys),
        "kappa_levels": levels,
        "bland_altman": ba,
        "failures": failures,
    }
    write_json_atomic(summary, out / "summary.json")

    lines = [
        f"# Evaluation of {pred} against raters {', '.join(names)}",
        "",
        f"{len(agreement)} cases scored, {len(failures)} failed (split '{split}'"
        + (f", folds {list(folds)}" if folds is not None else "")
        + "). 3D metrics on each reference grid; mean ± SD over the n cases that gave a value.",
        "",
        conventions_line(conv),
        "",
        "| modality | rater | Dice | precision | sensitivity | HD95 mm | n (Dice / precision / HD95) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in modalities:
        for r in names:
            s = table[m][r]
            cell = lambda k, d=2: f"{fmt_metric(s[k]['mean'], d)} ± {fmt_metric(s[k]['sd'], d)}"  # noqa: E731
            lines.append(
                f"| {m.upper()} | {r} | {cell('dice')} | {cell('precision')} | {cell('recall')} | {cell('hd95', 1)} "
                f"| {s['dice']['n']} / {s['precision']['n']} / {s['hd95']['n']} |"
            )
    if kappa_keys:
        lines += [
            "",
            "## Agreement of the references (voxel-wise Cohen's kappa)",
            "",
            "| pair | mean | " + " | ".join(["poor", *(n for _, n in KAPPA_LEVELS)]) + " |",
            "|---|---|" + "---|" * (len(KAPPA_LEVELS) + 1),
        ]
        for k in kappa_keys:
            lines.append(
                f"| {k[len('kappa_') :]} | {fmt_metric(summary['agreement'][k]['mean'], 2)} | " + " | ".join(str(v) for v in levels[k].values()) + " |"
            )
    if ba:
        lines += [
            "",
            "## Bland–Altman: model Dice against the inter-rater Dice (bland_altman.png)",
            "",
            "| modality | model vs | bias | limits of agreement | n |",
            "|---|---|---|---|---|",
        ]
        for m in modalities:
            for r in names:
                s = ba[m][r]
                lines.append(f"| {m.upper()} | {r} | {fmt_metric(s['bias'])} | {fmt_metric(s['loa_low'])} … {fmt_metric(s['loa_high'])} | {s['n']} |")
    if t_tests:
        lines += [
            "",
            "## Paired t-tests on Dice (two-sided, over the cases both scored)",
            "",
            "| modality | rater | model vs | mean difference | t | p | n |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in t_tests:
            lines.append(
                f"| {t['modality'].upper()} | {t['rater']} | {t['against']} | {fmt_metric(t['mean_difference'])} | {fmt_metric(t['t'], 2)} "
                f"| {fmt_metric(t['p'], 4)} | {t['n']} |"
            )
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f['case_id']}: {f['error']}" for f in failures]
    write_text_atomic("\n".join(lines) + "\n", out / "report.md")
    return summary
