"""``make demo``: the whole data and evaluation path on synthetic cohorts, in a few minutes on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .bundle_info import BUNDLES
from .bundle_run import train_and_evaluate_bundle

__all__ = ["run_demo"]

_STEPS = (
    # layout, rule, what the rule is
    ("isles2022", "adc", "ADC < 620e-6 mm^2/s"),
    ("isles2018", "rcbf", "CBF < 30 % of the healthy hemisphere (20-60 HU tissue)"),
)


def run_demo(out: str = "demo_output", cases: int = 8, scale: float = 1.0, epochs: int | None = None) -> Path:
    """Run synth -> datalist -> threshold rule -> evaluate -> show for each cohort, then train and evaluate each bundle
    for ``epochs`` (default: its ``smoke_epochs``); returns the report path."""
    from .baselines import predict_datalist
    from .data.datalist import build_datalist
    from .io.atomic import write_text_atomic
    from .metrics.evaluate import evaluate, fmt_metric
    from .synth import synthesize_cohort
    from .visualize import show_case

    out = Path(out)
    lines = ["# strokezoo demo", "", "Synthetic cohorts (not clinical data), default difficulty; clinical threshold rules as the trivial predictor.", ""]
    lines += [
        "| cohort | rule | cases | Dice mean (median) | HD95 mm median (n) | lesion F1 | abs. vol. diff. mL | synth s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for layout, rule, text in _STEPS:
        t0 = time.perf_counter()
        data = out / "data" / layout
        s = synthesize_cohort(layout, data, cases=cases, seed=0, scale=scale)
        dl = out / f"{layout}_datalist.json"
        build_datalist(data, dl, layout=layout, folds=4)
        predict_datalist(str(dl), rule, str(out / "predictions" / layout))
        summary = evaluate(out / "predictions" / layout, dl, out / "evaluation" / layout)
        m = summary["metrics"]
        largest = max(s["rows"], key=lambda r: r["lesion_ml"])["case_id"]
        training = json.loads(dl.read_text())["training"]
        first = next((e for e in training if e["case_id"] == largest), training[0])
        image = Path(first["adc"] if "adc" in first else first["ct"])
        case_dir = image.parents[2] if layout == "isles2022" else image.parents[1]  # BIDS sub-*/ses/dwi or case/token
        show_case(case_dir, out / f"{layout}_{first['case_id']}.png", label=first["label"])
        lines.append(
            f"| {layout} | {text} | {summary['cases']} | {m['dice']['mean']:.3f} ({m['dice']['median']:.3f}) | "
            f"{fmt_metric(m['hd95']['median'], 1)} ({m['hd95']['n']}) | {m['lesion_f1']['mean']:.3f} | "
            f"{m['abs_volume_diff_ml']['mean']:.1f} | {s['seconds']:.0f} |"
        )
        print(f"{layout}: done in {time.perf_counter() - t0:.0f} s")
    lines += [
        "",
        "Means over all cases (n = cases) unless a count follows in brackets. HD95 is the median over the cases with both masks non-empty. "
        "Per-case tables and each evaluation's conventions: evaluation/<cohort>/metrics.csv, summary.json; montages: *.png.",
    ]
    lines += [
        "",
        "## Bundles, trained briefly on synthetic cohorts (CPU-sized: each bundle's configs/smoke.json)",
        "",
        "Held-out test fold (fold 0 of 4 patient-level folds: never trained on, not used to pick the checkpoint, which the "
        "best Dice on fold 1 picks); 3D metrics on each case's own grid. Blue: prediction, red: reference.",
        "",
        "| bundle | cohort | epochs | test cases | Dice mean (median) | precision (n) | recall (n) | HD95 mm median (n) | train+eval s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for bundle, (layout, *_) in BUNDLES.items():
        t0 = time.perf_counter()
        data = out / "data" / f"{layout}_bundles"
        synthesize_cohort(layout, data, cases=12, seed=3, scale=0.4 * scale, difficulty=0.0, test_fraction=0.0)
        dl = out / f"{bundle}_datalist.json"
        build_datalist(data, dl, layout=layout, folds=4)
        summary = train_and_evaluate_bundle(bundle, data, dl, out / "bundles" / bundle, epochs or BUNDLES[bundle].epochs)
        first = next(e for e in json.loads(dl.read_text())["training"] if e["fold"] == 0)
        image = Path(next(first[k] for k in ("adc", "ct", "flair", "cbf") if k in first))
        case_dir = image.parents[2] if layout == "isles2022" else image.parents[1]
        # per-modality, per-rater tables (cross-domain bundle) or one table
        tables = (
            {f"{m.upper()} vs {r}": t for m, per_rater in summary["metrics"].items() for r, t in per_rater.items()}
            if "raters" in summary
            else {"": summary["metrics"]}
        )
        baseline = out / "bundles" / bundle / "eval" / "metrics" / "threshold" / "summary.json"
        if baseline.is_file():  # the CTP transformer's Threshold baseline (TFA >= 0.5, our choice), reported beside the model
            tables["Threshold: TFA ≥ 0.5, our choice"] = json.loads(baseline.read_text())["metrics"]
        if "raters" in summary:  # one mask per modality: R1's masks and the per-modality predictions on their panels
            label = {m: first[next(iter(summary["raters"].values())).format(modality=m)] for m in summary["modalities"]}
            pred = {m: str(out / "bundles" / bundle / "eval" / f"{first['case_id']}_{m}.nii.gz") for m in summary["modalities"]}
        else:
            label, pred = first["label"], str(out / "bundles" / bundle / "eval" / f"{first['case_id']}.nii.gz")
        show_case(case_dir, out / f"{bundle}_{first['case_id']}.png", label=label, pred=pred)
        seconds = time.perf_counter() - t0
        for what, m in tables.items():
            lines.append(
                f"| {bundle}{f' ({what})' if what else ''} | {layout} | {epochs or BUNDLES[bundle].epochs} | {summary['cases']} | "
                f"{fmt_metric(m['dice']['mean'])} ({fmt_metric(m['dice']['median'])}) | "
                f"{fmt_metric(m['precision']['mean'])} ({m['precision']['n']}) | {fmt_metric(m['recall']['mean'])} ({m['recall']['n']}) | "
                f"{fmt_metric(m['hd95']['median'], 1)} ({m['hd95']['n']}) | {seconds:.0f} |"
            )
        print(f"{bundle}: done in {time.perf_counter() - t0:.0f} s")
    report = out / "report.md"
    write_text_atomic("\n".join(lines) + "\n", report)
    return report
