"""Validation Dice of one bundle after a short CPU training run on the demo's synthetic cohort.

The cohort and run are ``make demo``'s (12 cases, seed 3, scale 0.4, difficulty 0; 4 patient-level folds; fold 0
trained with the bundle's configs/smoke.json and scored with its evaluate.json), repeated for each number of epochs
given, so that a change to a method can be judged by the same short runs before and after it.

Usage: python benchmarks/short_training.py BUNDLE [--epochs 2 10] [--out DIR] [--train-set KEY=JSON ...]

``--train-set`` overrides a training config key (the value read as JSON), e.g. to set one choice back and see what
it does: ``--train-set optimizer#rho=0.9`` or ``--train-set 'network_def#norm=["batch", {"momentum": 0.1, "eps": 0.001}]'``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from strokezoo.bundle_info import BUNDLES
from strokezoo.bundle_run import train_and_evaluate_bundle
from strokezoo.data.datalist import build_datalist
from strokezoo.synth import synthesize_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", choices=sorted(BUNDLES))
    parser.add_argument("--epochs", type=int, nargs="+", default=None, help="default: the bundle's smoke_epochs")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--train-set", nargs="*", default=[], metavar="KEY=JSON", help="training config overrides")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.train_set)}
    layout = BUNDLES[args.bundle].layout
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        data = out / "data"
        synthesize_cohort(layout, data, cases=12, seed=3, scale=0.4, difficulty=0.0, test_fraction=0.0)
        datalist = out / "datalist.json"
        build_datalist(data, datalist, layout=layout, folds=4)
        print(f"| {args.bundle} | epochs | val. cases | Dice mean | Dice median | baseline Dice mean | train+eval s |")
        print("|---|---|---|---|---|---|---|")
        for epochs in args.epochs or [BUNDLES[args.bundle].epochs]:
            t0 = time.perf_counter()
            summary = train_and_evaluate_bundle(args.bundle, data, datalist, out / f"epochs{epochs}", epochs, train_overrides=overrides)
            dice = summary["metrics"]["dice"]
            baseline = out / f"epochs{epochs}" / "eval" / "metrics" / "threshold" / "summary.json"
            base = f"{json.loads(baseline.read_text())['metrics']['dice']['mean']:.3f}" if baseline.is_file() else "-"
            print(f"| | {epochs} | {summary['cases']} | {dice['mean']:.3f} | {dice['median']:.3f} | {base} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
