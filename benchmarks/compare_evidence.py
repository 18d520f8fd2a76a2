"""The evidence behind docs/leaderboard.md's notes on the ISLES 2018 bundles, on `strokezoo compare`'s cohort and split.

``recipes``: the CT boundary bundle trained with each CPU recipe (training keys over configs/smoke.json; epochs),
printing the best validation Dice (fold 1, what chose the recipe) and the held-out test Dice (fold 0).

``tfa``: for a finished comparison, the share of each test study that the CTP transformer's TFA map thresholded at
0.5 (the paper's Threshold baseline) and its part B mark as core, beside the share the reference marks.

Usage:
    python benchmarks/compare_evidence.py recipes --out DIR
    python benchmarks/compare_evidence.py tfa --out DIR [--epochs 10 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from strokezoo.compare import compare
from strokezoo.data.datalist import select_entries

CT = "stroke_ct_boundary_attention_unet2d"
TRANSFORMER = "stroke_ctp_transformer_unet2d"

#: (label, training keys, epochs) of the CT boundary recipes compared on the validation fold
RECIPES = [
    ("batch 8, lr 1e-3", {"batch_size": 8, "learning_rate": 0.001}, 40),
    ("batch 8, lr 2e-3", {"batch_size": 8, "learning_rate": 0.002}, 40),
    ("batch 4, lr 1e-3", {"batch_size": 4, "learning_rate": 0.001}, 40),
    ("batch 4, lr 2e-3", {"batch_size": 4, "learning_rate": 0.002}, 40),
    ("batch 8, lr 1e-3, 80 epochs", {"batch_size": 8, "learning_rate": 0.001}, 80),
]


def _cohort(out: Path) -> str:
    """The comparison's ISLES 2018 cohort (12 patients, seed 3), synthesised once into ``out/cohort``."""
    compare("isles2018", "threshold_rcbf", "cpu", str(out / "cohort"), progress=False)
    return str(out / "cohort" / "datalist.json")


def recipes(out: Path) -> None:
    datalist = _cohort(out)
    print("| CT boundary recipe | epochs | best validation Dice (fold 1) | test Dice (fold 0) |\n|---|---|---|---|")
    for i, (label, keys, epochs) in enumerate(RECIPES):
        _, results = compare("isles2018", CT, "cpu", str(out / f"recipe{i}"), epochs=epochs, datalist=datalist, overrides=keys, progress=False)
        r = results[0]
        if r["status"] != "done":
            raise SystemExit(f"{label}: {r['error']}")
        test = json.loads((Path(r["evaluation"]) / "summary.json").read_text())["metrics"]["dice"]["mean"]
        print(f"| {label} | {epochs} | {r['best_val_dice']:.3f} | {test:.3f} |", flush=True)


def tfa(out: Path, epochs: list[int]) -> None:
    datalist = _cohort(out)
    print("| epochs | case | reference core | TFA >= 0.5 | part B | part B test Dice |\n|---|---|---|---|---|---|")
    for e in epochs:
        _, results = compare("isles2018", TRANSFORMER, "cpu", str(out / f"transformer{e}"), epochs=e, datalist=datalist, progress=False)
        if results[0]["status"] != "done":
            raise SystemExit(f"{e} epochs: {results[0]['error']}")
        pred = Path(results[0]["predictions"])
        dice = json.loads((Path(results[0]["evaluation"]) / "summary.json").read_text())["metrics"]["dice"]["mean"]
        for entry in select_entries(datalist, "training", folds=[0]):
            masks = {"ref": entry["label"], "tfa": pred / "threshold" / f"{entry['case_id']}.nii.gz", "b": pred / f"{entry['case_id']}.nii.gz"}
            share = {name: float((np.asarray(nib.load(path).dataobj) > 0).mean()) for name, path in masks.items()}
            print(f"| {e} | {entry['case_id']} | {share['ref']:.2%} | {share['tfa']:.1%} | {share['b']:.1%} | {dice:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("recipes", "tfa"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    args = parser.parse_args()
    recipes(args.out) if args.what == "recipes" else tfa(args.out, args.epochs)


if __name__ == "__main__":
    main()
