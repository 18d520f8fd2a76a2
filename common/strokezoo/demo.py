"""``make demo``: the whole data and evaluation path on synthetic cohorts, in a few minutes on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .bundle_info import BUNDLES, config_files, cpu_overrides

__all__ = ["run_demo", "train_bundle", "train_and_evaluate_bundle"]

_STEPS = (
    # layout, rule, what the rule is
    ("isles2022", "adc", "ADC < 620e-6 mm^2/s"),
    ("isles2018", "rcbf", "CBF < 30 % of the healthy hemisphere (20-60 HU tissue)"),
)


def train_bundle(
    bundle: str,
    data: Path,
    datalist: Path,
    out: Path,
    epochs: int,
    val_fold: int = 0,
    overrides: dict | None = None,
    cpu: bool = True,
    augment: bool = False,
    minutes: float | None = None,
) -> tuple[Path, float, list[int]]:
    """Train ``bundle`` into ``out`` for ``epochs`` on ``datalist`` (validation = ``val_fold``, every 5 epochs),
    running each of its training stages in turn, with its :func:`cpu_overrides` (``cpu``; else the configs as
    shipped), its own augmentation only if ``augment`` (the smoke runs of the demo and the tests go without: fewer
    epochs reach their margin), then ``overrides`` (config keys of training only). ``minutes``: a wall-clock budget
    too, shared equally by the stages: each validates after every epoch and stops at the end of the first epoch past
    its share (:class:`strokezoo.engines.WallClockBudget`; ``epochs`` still sets the schedules' length). Returns the
    best checkpoint of the last stage (``<ckpt_dir>/model.pt``), that stage's best validation metric and the epochs
    each stage completed."""
    from monai.bundle import ConfigWorkflow

    from .engines import WallClockBudget

    stages = BUNDLES[bundle].stages
    completed = []
    for stage in stages:
        keys = {
            "epochs": epochs,
            "val_interval": 1 if minutes else min(5, epochs),
            "bundle_root": str(out),
            "dataset_dir": str(data),
            "datalist": str(datalist),
            "val_fold": val_fold,
            "fold": val_fold,
            **({} if augment else {"train#random_transforms": []}),
            **(cpu_overrides(bundle) if cpu else {}),
            **(overrides or {}),
        }
        train = ConfigWorkflow(config_file=config_files(bundle, stage), workflow_type="train", **keys)
        train.initialize()
        trainer = train.parser.get_parsed_content("train#trainer")
        if minutes:
            WallClockBudget(minutes * 60 / len(stages)).attach(trainer)
        train.run()
        train.finalize()
        completed.append(int(trainer.state.epoch))
    best = float(train.parser.get_parsed_content("validate#evaluator").state.best_metric)
    return Path(train.parser.get_parsed_content("ckpt_dir")) / "model.pt", best, completed


def train_and_evaluate_bundle(
    bundle: str, data: Path, datalist: Path, out: Path, epochs: int, test_fold: int = 0, val_fold: int = 1, train_overrides: dict | None = None
) -> dict:
    """:func:`train_bundle` (with ``train_overrides``) on the folds of ``datalist`` other than ``test_fold`` and
    ``val_fold``, keeping the checkpoint of the best metric on ``val_fold``; then infer the held-out ``test_fold``
    (never trained on, never used to pick the checkpoint; its patients are not in the datalist training reads) into
    ``out/eval`` and score it with the bundle's evaluate.json; returns the evaluation summary."""
    from monai.bundle import ConfigWorkflow

    from .bundle_info import split_overrides
    from .io.atomic import write_json_atomic

    listed = json.loads(Path(datalist).read_text())
    train_dl = out / "train_datalist.json"
    write_json_atomic({**listed, "training": [e for e in listed["training"] if e["fold"] != test_fold]}, train_dl)
    split = {k: v for stage in BUNDLES[bundle].stages for k, v in split_overrides(bundle, stage, test_fold, val_fold).items()}
    train_bundle(bundle, data, train_dl, out, epochs, val_fold, {**split, **(train_overrides or {})})
    common = dict(
        bundle_root=str(out),
        dataset_dir=str(data),
        datalist=str(datalist),
        val_fold=test_fold,  # the fold evaluate.json scores, by either name
        fold=test_fold,
        metrics_dir=str(out / "eval" / "metrics"),
        **cpu_overrides(bundle),
    )
    infer = ConfigWorkflow(config_file=config_files(bundle, "inference.json", "evaluate.json"), workflow_type="inference", **common)
    infer.initialize()
    infer.run()
    infer.finalize()
    return json.loads((out / "eval" / "metrics" / "summary.json").read_text())


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
