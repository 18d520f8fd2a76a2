"""``make demo``: the whole data and evaluation path on synthetic cohorts, in a few minutes on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["run_demo"]

_STEPS = (
    # layout, rule, what the rule is
    ("isles2022", "adc", "ADC < 620e-6 mm^2/s"),
    ("isles2018", "rcbf", "CBF < 30 % of the healthy hemisphere (20-60 HU tissue)"),
)


def run_demo(out: str = "demo_output", cases: int = 8, scale: float = 1.0) -> Path:
    """Run synth -> datalist -> threshold rule -> evaluate -> show for each cohort; returns the report path."""
    from .baselines import predict_datalist
    from .data.atomic import write_text_atomic
    from .data.datalist import build_datalist
    from .data.synth import synthesize_cohort
    from .metrics.evaluate import evaluate
    from .visualize import show_case

    out = Path(out)
    lines = ["# strokezoo demo", "", "Synthetic cohorts (not clinical data), default difficulty; clinical threshold rules as the trivial predictor.", ""]
    lines += ["| cohort | rule | cases | Dice mean (median) | HD95 mm | lesion F1 | abs. vol. diff. mL | synth s |", "|---|---|---|---|---|---|---|---|"]
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
            f"{m['hd95']['median'] or float('nan'):.1f} | {m['lesion_f1']['mean']:.3f} | {m['abs_volume_diff_ml']['mean']:.1f} | {s['seconds']:.0f} |"
        )
        print(f"{layout}: done in {time.perf_counter() - t0:.0f} s")
    lines += ["", "HD95 is the median over cases with both masks non-empty. Per-case tables: evaluation/<cohort>/metrics.csv; montages: *.png."]
    report = out / "report.md"
    write_text_atomic("\n".join(lines) + "\n", report)
    return report
