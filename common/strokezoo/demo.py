"""``make demo``: the whole data and evaluation path on synthetic cohorts, in a few minutes on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["run_demo", "train_bundle", "train_and_evaluate_bundle", "cpu_overrides", "config_files", "DemoBundle", "BUNDLES", "CPU_OVERRIDES"]

_STEPS = (
    # layout, rule, what the rule is
    ("isles2022", "adc", "ADC < 620e-6 mm^2/s"),
    ("isles2018", "rcbf", "CBF < 30 % of the healthy hemisphere (20-60 HU tissue)"),
)


#: CPU-sized training: a narrow net on 64x64 slices, a short schedule without augmentation, lr 1e-3 (at the
#: papers' 5e-3 the narrow net does not cross the 0.5 threshold within 40 epochs)
CPU_OVERRIDES = {"image_size": 64, "features": [8, 16, 32, 64, 128, 256], "batch_size": 8, "num_workers": 0, "warmup_epochs": 2, "learning_rate": 1e-3}

class DemoBundle(NamedTuple):
    """How the demo and the tests train a bundle on a synthetic cohort."""

    layout: str  #: release layout of its synthetic cohort
    overrides: tuple[str, ...] = ()  #: override files on top of its configs
    cpu: dict = {}  #: CPU-sized keys on top of :data:`CPU_OVERRIDES`
    stages: tuple[str, ...] = ("train.json",)  #: training configs, run in this order


#: The cross-domain net runs two encoders and two decoders over 29-slice volumes: five levels instead of six halve
#: its step time on a CPU, and lr 3e-3 lets it learn within the short run.
BUNDLES = {
    "stroke_mri_crossattention_unet2d": DemoBundle("isles2017"),
    "stroke_ct_boundary_attention_unet2d": DemoBundle("isles2018"),
    "stroke_dwi_crossdomain_unet2d": DemoBundle("isles2022", ("two_rater.json",), {"features": [8, 16, 32, 64, 128], "learning_rate": 3e-3}),
    # 3D patches: 8 base filters, 100 patches per case, dense inference every 8x8x4 voxels, lesions of the small
    # synthetic volumes (~100 voxels) kept by S_min 10
    "stroke_mri_residual_unet3d": DemoBundle("isles2015-siss", (), {"base_features": 8, "num_patches": 100, "batch_size": 16, "extraction_step": [8, 8, 4],
                                                                     "patch_batch_size": 256, "min_size": 10}),
    # two stages: a 2-layer, 32-wide transformer on 16x16-pixel patches (100 per case), then a 8...64-channel U-Net; a
    # third of the training patients held out, so that the small cohort's validation Dice is not one patient's
    "stroke_ctp_transformer_unet2d": DemoBundle("isles2018", (), {"patch_size": 16, "hidden_size": 32, "num_layers": 2, "num_heads": 4, "projected_length": 8,
                                                                   "mlp_dim": 64, "num_patches": 100, "patch_batch_size": 32, "features": [8, 16, 32, 64],
                                                                   "transformer_learning_rate": 1e-3, "unet_learning_rate": 0.05, "val_fraction": 0.3},
                                                ("train_transformer.json", "train.json")),
    # three five-level U-Nets of 8...128 channels, the paper's batch of 5, RMSprop 5e-3 (at the paper's 2e-3 the
    # narrow SLNet of a 10-epoch run still predicts a fifth of the slab); a third of the training patients held out
    "stroke_ctp_pseudodwi_slnet2d": DemoBundle("isles2018", (), {"unet_features": [8, 16, 32, 64, 128], "features": [8, 16, 32, 64, 128],
                                                                  "batch_size": 5, "learning_rate": 5e-3, "val_fraction": 0.3}),
}


def cpu_overrides(bundle: str) -> dict:
    """The CPU-sized config keys of ``bundle`` for the demo and the tests."""
    return {**CPU_OVERRIDES, **BUNDLES[bundle].cpu}


def config_files(bundle: str, *names: str) -> list[str]:
    """Paths of ``names`` in the bundle's configs/, followed by the bundle's demo override files."""
    configs = bundles_dir() / bundle / "configs"
    return [str(configs / n) for n in (*names, *BUNDLES[bundle].overrides)]


def bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (the demo runs from a clone)."""
    d = Path(__file__).resolve().parents[2] / "bundles"
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no bundles folder; the demo needs a clone of the repository")
    return d


def train_bundle(bundle: str, data: Path, datalist: Path, out: Path, epochs: int, val_fold: int = 0) -> Path:
    """Train ``bundle`` into ``out`` with its :func:`cpu_overrides`, no augmentation, for ``epochs`` on
    ``datalist`` (validation = ``val_fold``, every 5 epochs), running each of its training stages in turn; returns
    the best checkpoint of the last stage (``<ckpt_dir>/model.pt``)."""
    from monai.bundle import ConfigWorkflow

    for stage in BUNDLES[bundle].stages:
        train = ConfigWorkflow(config_file=config_files(bundle, stage), workflow_type="train", epochs=epochs, val_interval=min(5, epochs),
                               bundle_root=str(out), dataset_dir=str(data), datalist=str(datalist), val_fold=val_fold, fold=val_fold,
                               **{"train#random_transforms": []}, **cpu_overrides(bundle))
        train.initialize()
        train.run()
        train.finalize()
    return Path(train.parser.get_parsed_content("ckpt_dir")) / "model.pt"


def train_and_evaluate_bundle(bundle: str, data: Path, datalist: Path, out: Path, epochs: int, val_fold: int = 0) -> dict:
    """:func:`train_bundle`, then infer the validation fold into ``out/eval`` and score it with the bundle's
    evaluate.json; returns the evaluation summary."""
    from monai.bundle import ConfigWorkflow

    train_bundle(bundle, data, datalist, out, epochs, val_fold)
    common = dict(bundle_root=str(out), dataset_dir=str(data), datalist=str(datalist), val_fold=val_fold, fold=val_fold,
                  metrics_dir=str(out / "eval" / "metrics"), **cpu_overrides(bundle))
    infer = ConfigWorkflow(config_file=config_files(bundle, "inference.json", "evaluate.json"), workflow_type="inference", **common)
    infer.initialize()
    infer.run()
    infer.finalize()
    return json.loads((out / "eval" / "metrics" / "summary.json").read_text())


def run_demo(out: str = "demo_output", cases: int = 8, scale: float = 1.0, epochs: int = 40) -> Path:
    """Run synth -> datalist -> threshold rule -> evaluate -> show for each cohort; returns the report path."""
    from .baselines import predict_datalist
    from .data.atomic import write_text_atomic
    from .data.datalist import build_datalist
    from .data.synth import synthesize_cohort
    from .metrics.evaluate import evaluate, fmt_metric
    from .visualize import show_case

    out = Path(out)
    lines = ["# strokezoo demo", "", "Synthetic cohorts (not clinical data), default difficulty; clinical threshold rules as the trivial predictor.", ""]
    lines += ["| cohort | rule | cases | Dice mean (median) | HD95 mm median (n) | lesion F1 | abs. vol. diff. mL | synth s |", "|---|---|---|---|---|---|---|---|"]
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
            f"{fmt_metric(m['hd95']['median'], 1)} ({m['hd95']['n']}) | {m['lesion_f1']['mean']:.3f} | {m['abs_volume_diff_ml']['mean']:.1f} | {s['seconds']:.0f} |"
        )
        print(f"{layout}: done in {time.perf_counter() - t0:.0f} s")
    lines += ["", "Means over all cases (n = cases) unless a count follows in brackets. HD95 is the median over the cases with both masks non-empty. "
              "Per-case tables and each evaluation's conventions: evaluation/<cohort>/metrics.csv, summary.json; montages: *.png."]
    lines += ["", f"## Bundles, trained briefly on synthetic cohorts ({epochs} epochs, CPU-sized: {CPU_OVERRIDES}, per bundle: strokezoo.demo.BUNDLES)", "",
              "Validation fold of 4 patient-level folds; 3D metrics on each case's own grid. Blue: prediction, red: reference.", "",
              "| bundle | cohort | val. cases | Dice mean (median) | precision (n) | recall (n) | HD95 mm median (n) | train+eval s |", "|---|---|---|---|---|---|---|---|"]
    for bundle, (layout, *_) in BUNDLES.items():
        t0 = time.perf_counter()
        data = out / "data" / f"{layout}_bundles"
        synthesize_cohort(layout, data, cases=12, seed=3, scale=0.4 * scale, difficulty=0.0, test_fraction=0.0)
        dl = out / f"{bundle}_datalist.json"
        build_datalist(data, dl, layout=layout, folds=4)
        summary = train_and_evaluate_bundle(bundle, data, dl, out / "bundles" / bundle, epochs)
        first = next(e for e in json.loads(dl.read_text())["training"] if e["fold"] == 0)
        image = Path(next(first[k] for k in ("adc", "ct", "flair", "cbf") if k in first))
        case_dir = image.parents[2] if layout == "isles2022" else image.parents[1]
        # per-modality, per-rater tables (cross-domain bundle) or one table
        tables = {f"{m.upper()} vs {r}": t for m, per_rater in summary["metrics"].items() for r, t in per_rater.items()} if "raters" in summary else {"": summary["metrics"]}
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
                f"| {bundle}{f' ({what})' if what else ''} | {layout} | {summary['cases']} | {fmt_metric(m['dice']['mean'])} ({fmt_metric(m['dice']['median'])}) | "
                f"{fmt_metric(m['precision']['mean'])} ({m['precision']['n']}) | {fmt_metric(m['recall']['mean'])} ({m['recall']['n']}) | "
                f"{fmt_metric(m['hd95']['median'], 1)} ({m['hd95']['n']}) | {seconds:.0f} |"
            )
        print(f"{bundle}: done in {time.perf_counter() - t0:.0f} s")
    report = out / "report.md"
    write_text_atomic("\n".join(lines) + "\n", report)
    return report
