"""The evidence behind docs/leaderboard.md's notes on the bundles, on `strokezoo compare`'s cohorts and splits
(12 patients, or 24 for ``crossattention``, seed 3, at difficulty 0, the cohorts those notes were measured on).

``recipes``: the CT boundary bundle trained with each CPU recipe (training keys over configs/smoke.json; epochs),
without augmentation as the recipe was chosen, printing the best validation Dice (fold 1, what chose the recipe)
and the held-out test Dice (fold 0).

``transformer``: the CTP transformer trained for each number of epochs, without and with its own augmentation (what
``strokezoo compare`` now does), printing the best validation Dice of part B, the test Dice, and the share of each
test study that its TFA map thresholded at 0.5 (the paper's Threshold baseline) and part B mark as core, beside
the share the reference marks.

``physics``: what the cohorts show the methods. ISLES 2018 (test and validation folds): per study, the median
peak enhancement (frame maximum minus the mean of the first two frames) of the core and of the rest of the brain in
the CTP source series, and the per-pixel ROC AUC of that enhancement for core against brain, raw and after a 2.5 mm
in-plane Gaussian smoothing. ISLES 2022 (every study): the share of lesion voxels and of other brain voxels with
ADC < 620e-6 mm^2/s, the clinical rule's cut.

``crossattention``: the ISLES 2017 comparison with 24 patients (6 test studies; every method, as ``strokezoo
compare --cohort isles2017 --cases 24``), printing its leaderboard, then the cross-attention bundle with each CPU
setting of :data:`CA_SETTINGS` over configs/smoke.json on that split (with its own augmentation, as the comparison
trains it), printing the best validation Dice (fold 1) and the test Dice (fold 0); the network of the thesis's plain
min-max on each test study as it is and with its TTP map clipped at its 99.9th percentile; then the stock BasicUNet of the
comparison on the bundle's three inputs (ADC, TTP, Tmax) and on the cohort's six, on the same split and budget.

``pseudodwi``: the pseudo-DWI bundle on the ISLES 2018 comparison at its budget; per test study the core's size and
slices, the core's median over the brain's (on the core's slices) in the generated pseudo-DWI and in the real DWI,
the segmenter's highest lesion probability in the core and elsewhere, and the Dice.

``widths``: the cross-validated comparison's first split (16 patients, seed 7, difficulty 0.5; test = fold 0,
validation = fold 1), where the stock BasicUNet (first level 32 channels, native slice size) beats the bundles'
CPU-sized networks (first level 8, 64 x 64 slices). Each of :data:`WIDTH_SETTINGS` (wider networks, larger slices) over the bundle's
configs/smoke.json, printing the best validation Dice and the test Dice: does the width or the slice size explain
the gap? ``--bundles`` picks the bundles (default: both).

``stacking``: is part B of the CTP transformer trained on TFA maps better than those it meets at test time? The
transformer of the ISLES 2018 comparison (40 epochs, its own augmentation), then per study of part B's training
split, its validation split and the test fold: the ROC AUC of the TFA map for core pixels against the other pixels
of the slab, and the share of the slab with TFA >= 0.5 against the share that is core. Part B learns from the
training split's maps (the paper does not say whose maps part B trains on; the bundle uses the frozen transformer of
the same fold on its own training cases).

``partb``: part B of the CTP transformer with each network, on the ISLES 2018 comparison's split at its budget
(12 patients, difficulty 0, with its own augmentation): MONAI's ``DynUNet`` (``configs/unet_strided.json``) and the
paper's max-pooling U-Net as shipped, printing part B's best validation Dice, the test Dice (fold 0), and per test
study the share that part B marks as core beside the reference's. ``--epochs`` gives the budgets.

Usage:
    python benchmarks/compare_evidence.py partb --out DIR [--epochs 10 40]
    python benchmarks/compare_evidence.py stacking --out DIR
    python benchmarks/compare_evidence.py widths --out DIR [--bundles stroke_dwi_crossdomain_unet2d]
    python benchmarks/compare_evidence.py recipes --out DIR
    python benchmarks/compare_evidence.py transformer --out DIR [--epochs 40]
    python benchmarks/compare_evidence.py physics --out DIR
    python benchmarks/compare_evidence.py crossattention --out DIR
    python benchmarks/compare_evidence.py pseudodwi --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from monai.bundle import ConfigParser

from strokezoo.bundle_info import config_files, cpu_overrides
from strokezoo.compare import COHORTS, compare, inference_workflow
from strokezoo.compare.stock import infer_stock, train_stock
from strokezoo.data.datalist import select_entries
from strokezoo.metrics.evaluate import evaluate

CT = "stroke_ct_boundary_attention_unet2d"
TRANSFORMER = "stroke_ctp_transformer_unet2d"
PSEUDODWI = "stroke_ctp_pseudodwi_slnet2d"

#: the bundles' smoke runs without their augmentation, as the CT boundary recipes were compared
NO_AUGMENTATION = {"train#random_transforms": []}

#: (label, training keys, epochs) of the CT boundary recipes compared on the validation fold
RECIPES = [
    ("batch 8, lr 1e-3", {"batch_size": 8, "learning_rate": 0.001}, 40),
    ("batch 8, lr 2e-3", {"batch_size": 8, "learning_rate": 0.002}, 40),
    ("batch 4, lr 1e-3", {"batch_size": 4, "learning_rate": 0.001}, 40),
    ("batch 4, lr 2e-3", {"batch_size": 4, "learning_rate": 0.002}, 40),
    ("batch 8, lr 1e-3, 80 epochs", {"batch_size": 8, "learning_rate": 0.001}, 80),
]


CROSSATTENTION = "stroke_mri_crossattention_unet2d"

#: (label, training keys) of the cross-attention bundle's CPU settings tried on the 24-patient ISLES 2017 split
CA_SETTINGS = [
    ("as shipped: the thesis's plain min-max (64 x 64, batch 8, lr 1e-3)", {}),
    ("configs/percentile.json (99.9th percentile, clipped)", {"max_percentile": 99.9}),
    ("lr 5e-4", {"learning_rate": 0.0005}),
    ("lr 2e-3", {"learning_rate": 0.002}),
    ("batch 4, lr 2e-3", {"batch_size": 4, "learning_rate": 0.002}),
    ("96 x 96 slices", {"image_size": 96}),
    ("128 x 128 slices", {"image_size": 128}),
]


def _cohort(out: Path) -> str:
    """The comparison's ISLES 2018 cohort (12 patients, seed 3), synthesised once into ``out/cohort``."""
    compare("isles2018", "threshold_rcbf", "cpu", str(out / "cohort"), progress=False, difficulty=0.0)
    return str(out / "cohort" / "datalist.json")


def recipes(out: Path) -> None:
    datalist = _cohort(out)
    print("| CT boundary recipe | epochs | best validation Dice (fold 1) | test Dice (fold 0) |\n|---|---|---|---|")
    for i, (label, keys, epochs) in enumerate(RECIPES):
        trained = {**keys, **NO_AUGMENTATION}
        _, results = compare("isles2018", CT, "cpu", str(out / f"recipe{i}"), epochs=epochs, datalist=datalist, overrides=trained, progress=False)
        r = results[0]
        if r["status"] != "done":
            raise SystemExit(f"{label}: {r['error']}")
        test = json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"]["dice"]["mean"]
        print(f"| {label} | {epochs} | {r['best_val_dice']:.3f} | {test:.3f} |", flush=True)


def transformer(out: Path, epochs: list[int]) -> None:
    datalist = _cohort(out)
    print(
        "| epochs | augmentation | part B best validation Dice | test Dice | case | reference core | TFA >= 0.5 | part B |\n|---|---|---|---|---|---|---|---|"
    )
    for e in epochs:
        for augmented, keys in (("no", NO_AUGMENTATION), ("its own", {})):
            run = out / f"transformer{e}_{'augmented' if keys == {} else 'plain'}"
            r, pred, dice = _run_transformer(run, e, datalist, keys, f"{e} epochs, {augmented} augmentation")
            for entry in select_entries(datalist, "training", folds=[0]):
                masks = {"ref": entry["label"], "tfa": pred / "threshold" / f"{entry['case_id']}.nii.gz", "b": pred / f"{entry['case_id']}.nii.gz"}
                share = {name: _marked_share(path) for name, path in masks.items()}
                row = [str(e), augmented, f"{r['best_val_dice']:.3f}", f"{dice:.3f}", entry["case_id"], f"{share['ref']:.2%}"]
                print("| " + " | ".join([*row, f"{share['tfa']:.1%}", f"{share['b']:.1%}"]) + " |", flush=True)


#: bundle -> (cohort, [(label, training keys)]): the CPU size as shipped, wider (the cross-domain bundle's two
#: encoders and decoders twice, the cross-attention bundle four times: the cost grows with the square), and for the
#: cross-attention bundle the 128 x 128 slices its validation fold preferred on the 24-patient split
WIDTH_SETTINGS = {
    "stroke_dwi_crossdomain_unet2d": (
        "isles2022",
        [("as shipped (8...128, 64 x 64)", {}), ("2x wider (16...256, 64 x 64)", {"features": [16, 32, 64, 128, 256]})],
    ),
    CROSSATTENTION: (
        "isles2017",
        [
            ("as shipped (8...256, 64 x 64)", {}),
            ("4x wider (32...1024, 64 x 64)", {"features": [32, 64, 128, 256, 512, 1024]}),
            ("128 x 128 slices (8...256)", {"image_size": 128}),
        ],
    ),
}


def widths(out: Path, bundles: list[str]) -> None:
    print("| bundle | setting | best validation Dice (fold 1) | test Dice (fold 0) | train s |\n|---|---|---|---|---|", flush=True)
    for bundle in bundles:
        cohort, settings = WIDTH_SETTINGS[bundle]
        base = out / f"cohort_{cohort}"
        compare(cohort, f"threshold_{COHORTS[cohort][0]}", "cpu", str(base), cases=16, seed=7, progress=False)  # synthesises it once
        for i, (label, keys) in enumerate(settings):
            _, results = compare(cohort, bundle, "cpu", str(out / f"{bundle}_{i}"), datalist=str(base / "datalist.json"), overrides=keys, progress=False)
            r = results[0]
            if r["status"] != "done":
                raise SystemExit(f"{bundle}, {label}: {r['error']}")
            test = json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"]["dice"]["mean"]
            print(f"| {bundle} | {label} | {r['best_val_dice']:.3f} | {test:.3f} | {r['train_seconds']:.0f} |", flush=True)


def crossattention(out: Path) -> None:
    report, _ = compare("isles2017", "all", "cpu", str(out / "cohort24"), cases=24, progress=False, difficulty=0.0)
    print(Path(report).read_text())
    datalist = str(out / "cohort24" / "datalist.json")
    print("| cross-attention setting | best validation Dice (fold 1) | test Dice (fold 0) |\n|---|---|---|")
    for i, (label, keys) in enumerate(CA_SETTINGS):
        _, results = compare("isles2017", CROSSATTENTION, "cpu", str(out / f"setting{i}"), datalist=datalist, overrides=keys, progress=False)
        r = results[0]
        if r["status"] != "done":
            raise SystemExit(f"{label}: {r['error']}")
        test = json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"]["dice"]["mean"]
        print(f"| {label} | {r['best_val_dice']:.3f} | {test:.3f} |", flush=True)
    _clipped_ttp(Path(datalist), out / "setting0" / "methods" / CROSSATTENTION, out / "clipped_ttp")
    print("\n| stock BasicUNet's inputs | best validation Dice (fold 1) | test Dice (fold 0) |\n|---|---|---|")
    inputs = ConfigParser.load_config_files(config_files(CROSSATTENTION, "train.json"))["modalities"]  # the paper's three
    for keys in (tuple(inputs), COHORTS["isles2017"][1]):
        val, test = _basicunet_on(Path(datalist), keys, out / f"basicunet_{'_'.join(keys)}")
        print(f"| {', '.join(keys)} | {val:.3f} | {test:.3f} |", flush=True)


def _clipped_ttp(datalist: Path, run: Path, out: Path) -> None:
    """The network trained with the thesis's plain min-max (``run``) on each test study as it is and with only its
    TTP map clipped at its own 99.9th percentile (a copy in ``out``; the inputs are never written): the test Dice
    per study, as ``strokezoo evaluate`` scores it."""
    entries = select_entries(datalist, "training", folds=[0])
    clipped = []
    for e in entries:
        img = nib.load(e["ttp"])
        ttp = np.asarray(img.dataobj, np.float32)
        path = out / "inputs" / f"{e['case_id']}_ttp.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.minimum(ttp, np.percentile(ttp, 99.9)), img.affine), path)
        clipped.append({**e, "ttp": str(path)})
    root = json.loads(datalist.read_text())["root"]
    keys = {"bundle_root": str(run), "dataset_dir": root, **cpu_overrides(CROSSATTENTION), "max_percentile": 100}
    infer = inference_workflow(CROSSATTENTION, keys, datalist, 0, 1, out / "predictions")
    infer.parser["entries"] = clipped
    infer.initialize()
    infer.run()
    infer.finalize()
    evaluate(str(out / "predictions"), datalist, out / "evaluation", folds=[0])
    dice = {
        r["case_id"]: float(r["dice"]) for r in csv.DictReader((out / "evaluation" / "metrics.csv").open()) if r["case_id"] in {e["case_id"] for e in entries}
    }
    before = {r["case_id"]: float(r["dice"]) for r in csv.DictReader((run / "evaluation" / "metrics.csv").open()) if r["case_id"] in dice}
    print("\n| test study (plain min-max network) | TTP max / 99.9th percentile | Dice as it is | Dice, TTP clipped |\n|---|---|---|---|")
    for e in entries:
        ttp = np.asarray(nib.load(e["ttp"]).dataobj, np.float32)
        ratio = ttp.max() / np.percentile(ttp, 99.9)
        print(f"| {e['case_id']} | {ratio:.2f} | {before[e['case_id']]:.3f} | {dice[e['case_id']]:.3f} |", flush=True)


def _basicunet_on(datalist: Path, keys: tuple[str, ...], out: Path, epochs: int = 25) -> tuple[float, float]:
    """The comparison's stock BasicUNet (seed 3, the cohort's epochs) on the inputs ``keys`` of the same split:
    its best validation Dice (fold 1) and its test Dice (fold 0)."""
    train = select_entries(datalist, "training", exclude_folds=[0, 1])
    trained = train_stock("basicunet", train, select_entries(datalist, "training", folds=[1]), keys, 2, out, epochs, seed=3)
    infer_stock("basicunet", out / "model.pt", select_entries(datalist, "training", folds=[0]), keys, 2, out / "test_predictions")
    evaluate(str(out / "test_predictions"), datalist, out / "evaluation", folds=[0])
    test = json.loads((out / "evaluation" / "summary.json").read_text())["metrics"]["dice"]["mean"]
    return trained["best_val_dice"], test


def stacking(out: Path) -> None:
    datalist = _cohort(out)
    run = out / "stacking"
    _, results = compare("isles2018", TRANSFORMER, "cpu", str(run), datalist=datalist, progress=False)
    r = results[0]
    if r["status"] != "done":
        raise SystemExit(r["error"])
    root = Path(r["evaluation"]).parent
    keys = {"bundle_root": str(root), "dataset_dir": json.loads(Path(datalist).read_text())["root"], "datalist": str(run / "train_datalist.json")}
    keys |= {**cpu_overrides(TRANSFORMER), "fold": 0, "num_workers": 0}
    parser = ConfigParser()
    parser.read_config(config_files(TRANSFORMER, "train.json"))
    for k, v in keys.items():
        parser[k] = v
    parser["split"] = f"$[{_SELECT}, exclude_folds=[1]), {_SELECT}, folds=[1])]"  # as compare's split_overrides
    prepare = parser.get_parsed_content("train#deterministic_transforms")
    train, val = parser.get_parsed_content("split")
    groups = {"part B training": train, "validation": val, "test": select_entries(datalist, "training", folds=[0])}
    print("| split | study | TFA AUC, core vs slab | TFA >= 0.5 share | core share |\n|---|---|---|---|---|")
    summary = {}
    for group, entries in groups.items():
        aucs = []
        for e in entries:
            d = prepare(dict(e))
            tfa, core = np.asarray(d["image"][0]).ravel(), np.asarray(d["label"][0]).ravel() > 0
            if core.any():
                aucs.append(_auc(tfa[core], tfa[~core]))
            print(f"| {group} | {e['case_id']} | {aucs[-1] if core.any() else float('nan'):.3f} | {np.mean(tfa >= 0.5):.3f} | {core.mean():.4f} |", flush=True)
        summary[group] = (np.median(aucs), len(aucs))
    print("\n| split | median TFA AUC (studies with core) |\n|---|---|")
    for group, (median, n) in summary.items():
        print(f"| {group} | {median:.3f} (n = {n}) |")


_SELECT = "strokezoo.data.datalist.select_entries(@datalist_path, 'training'"

#: part B's networks compared by ``partb``: label -> the override config over the shipped one (None: as shipped)
PART_B = {"DynUNet (configs/unet_strided.json)": "unet_strided.json", "the paper's max-pooling U-Net (as shipped)": None}


def partb(out: Path, epochs: list[int]) -> None:
    from strokezoo.bundle_info import variant_keys

    datalist = _cohort(out)
    print("| part B | epochs | best validation Dice | test Dice | case | reference core | part B |\n|---|---|---|---|---|---|---|")
    for e in epochs:
        for i, (label, variant) in enumerate(PART_B.items()):
            keys = variant_keys(TRANSFORMER, variant) if variant else {}
            r, pred, dice = _run_transformer(out / f"partb{i}_{e}", e, datalist, keys, f"{label}, {e} epochs")
            for entry in select_entries(datalist, "training", folds=[0]):
                ref, b = _marked_share(entry["label"]), _marked_share(pred / f"{entry['case_id']}.nii.gz")
                print(f"| {label} | {e} | {r['best_val_dice']:.3f} | {dice:.3f} | {entry['case_id']} | {ref:.2%} | {b:.2%} |", flush=True)


def _run_transformer(run: Path, epochs: int, datalist: str, overrides: dict, what: str) -> tuple[dict, Path, float]:
    """The CTP transformer on the comparison's split with ``overrides``: its result, its test predictions' folder and
    its mean test Dice; ``what`` names the run in the error that stops the script when it fails."""
    _, results = compare("isles2018", TRANSFORMER, "cpu", str(run), epochs=epochs, datalist=datalist, overrides=overrides, progress=False)
    r = results[0]
    if r["status"] != "done":
        raise SystemExit(f"{what}: {r['error']}")
    return r, Path(r["predictions"]), json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"]["dice"]["mean"]


def _marked_share(path) -> float:
    """The share of a mask's voxels that are marked."""
    return float((np.asarray(nib.load(str(path)).dataobj) > 0).mean())


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC of ``positive`` scoring above ``negative`` (the Mann-Whitney U statistic over the pairs)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative)))


def physics(out: Path) -> None:
    from scipy import ndimage

    datalist = _cohort(out)
    print("| study | fold | core pixels | core enhancement HU | brain enhancement HU | AUC raw | AUC 2.5 mm |\n|---|---|---|---|---|---|---|")
    for entry in select_entries(datalist, "training", folds=[0, 1]):
        img = nib.load(entry["ctp"])
        series = np.asarray(img.dataobj, np.float32)
        series = series.reshape(*series.shape[:3], -1)
        core = np.asarray(nib.load(entry["label"]).dataobj) > 0
        if not core.any():
            continue
        base = series[..., :2].mean(-1)
        brain = (base > 10) & (base < 80)  # tissue on the non-contrast frames: no air, bone or vessels
        enhancement = series.max(-1) - base
        zooms = img.header.get_zooms()
        smooth = ndimage.gaussian_filter(enhancement, (2.5 / zooms[0], 2.5 / zooms[1], 0))
        c, b = core & brain, brain & ~core
        row = [entry["case_id"], str(entry["fold"]), str(int(core.sum())), f"{np.median(enhancement[c]):.1f}", f"{np.median(enhancement[b]):.1f}"]
        print("| " + " | ".join([*row, f"{_auc(-enhancement[c], -enhancement[b]):.2f}", f"{_auc(-smooth[c], -smooth[b]):.2f}"]) + " |", flush=True)
    compare("isles2022", "threshold_adc", "cpu", str(out / "cohort2022"), progress=False, difficulty=0.0)
    lesion, other = [], []
    for entry in select_entries(str(out / "cohort2022" / "datalist.json"), "training"):
        adc = np.asarray(nib.load(entry["adc"]).dataobj, np.float32)
        ref = np.asarray(nib.load(entry["label"]).dataobj) > 0
        if ref.any():
            lesion.append(float((adc[ref] < 620).mean()))
        other.append(float((adc[(adc > 0) & ~ref] < 620).mean()))
    print(f"\nISLES 2022: lesion voxels with ADC < 620: median {np.median(lesion):.0%} ({min(lesion):.0%}-{max(lesion):.0%}); ", end="")
    print(f"other brain voxels: at most {max(other):.2%}")


def pseudodwi(out: Path) -> None:
    """The pseudo-DWI bundle's test studies at the comparison's budget: what its generator shows and what its
    segmenter marks, per study."""
    datalist = _cohort(out)
    _, results = compare("isles2018", PSEUDODWI, "cpu", str(out / "pseudodwi"), datalist=datalist, progress=False)
    r = results[0]
    if r["status"] != "done":
        raise SystemExit(r["error"])
    pred = Path(r["predictions"])
    print(
        "| study | core voxels | core slices | pseudo-DWI core / brain | DWI core / brain | p max in core | p max elsewhere | Dice |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    scored = {row["case_id"]: row["dice"] for row in csv.DictReader((Path(r["evaluation"]) / "metrics.csv").open()) if row["case_id"].startswith("case")}
    for entry in select_entries(datalist, "training", folds=[0]):
        core = np.asarray(nib.load(entry["label"]).dataobj) > 0
        prob = np.asarray(nib.load(pred / f"{entry['case_id']}_prob.nii.gz").dataobj, np.float32)
        pseudo = np.asarray(nib.load(pred / "pseudo_dwi" / f"{entry['case_id']}.nii.gz").dataobj, np.float32)
        dwi = np.asarray(nib.load(entry["dwi"]).dataobj, np.float32)
        slices = np.unique(np.nonzero(core)[2])
        brain = np.zeros_like(core)
        brain[..., slices] = np.asarray(nib.load(entry["cbf"]).dataobj)[..., slices] > 0  # the core's slices
        brain &= ~core
        ratio = [f"{np.median(v[core]) / np.median(v[brain]):.2f}" for v in (pseudo, dwi)]
        row = [entry["case_id"], str(int(core.sum())), f"{len(slices)} of {core.shape[2]}", *ratio, f"{prob[core].max():.3f}", f"{prob[~core].max():.3f}"]
        print("| " + " | ".join([*row, f"{float(scored[entry['case_id']]):.3f}"]) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("recipes", "transformer", "physics", "crossattention", "pseudodwi", "widths", "stacking", "partb"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, nargs="+", default=[40])
    parser.add_argument("--bundles", default=",".join(WIDTH_SETTINGS))
    args = parser.parse_args()
    {
        "recipes": lambda: recipes(args.out),
        "transformer": lambda: transformer(args.out, args.epochs),
        "physics": lambda: physics(args.out),
        "crossattention": lambda: crossattention(args.out),
        "pseudodwi": lambda: pseudodwi(args.out),
        "widths": lambda: widths(args.out, args.bundles.split(",")),
        "stacking": lambda: stacking(args.out),
        "partb": lambda: partb(args.out, args.epochs),
    }[args.what]()


if __name__ == "__main__":
    main()
