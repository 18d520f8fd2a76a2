"""Which CPU budget lets the stock baselines of ``strokezoo compare`` learn at the synthetic default difficulty?

For each cohort and seed: a cohort of ``--cases`` synthetic patients at ``--difficulty`` (scale 0.4, 4 patient-level
folds; test = fold 0, validation = fold 1, training = the rest, as ``strokezoo compare --folds 1``), then the stock
BasicUNet and DynUNet trained with each (learning rate, epochs) of ``--settings``, printing per run the best
validation Dice (fold 1, what would choose the setting), the held-out test Dice (fold 0), and the seconds. One
JSON line per run goes to ``OUT/runs.jsonl``; a run already there is not repeated, so an interrupted sweep resumes.

Usage:
    python benchmarks/stock_budget.py --out DIR --cohorts isles2022,isles2018 --seeds 3,5 \\
        --settings 1e-4:20,1e-3:20,1e-3:40
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from strokezoo.compare import COHORTS
from strokezoo.compare.stock import infer_stock, train_stock
from strokezoo.data.datalist import build_datalist, select_entries
from strokezoo.metrics.evaluate import evaluate
from strokezoo.synth import synthesize_cohort


def _cohort(cohort: str, seed: int, cases: int, difficulty: float, out: Path) -> Path:
    datalist = out / "datalist.json"
    if not datalist.is_file():
        synthesize_cohort(cohort, out / "data", cases=cases, seed=seed, scale=0.4, difficulty=difficulty, test_fraction=0.0)
        build_datalist(out / "data", datalist, layout=cohort, folds=4)
    return datalist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cohorts", default="isles2022")
    ap.add_argument("--seeds", default="3")
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--difficulty", type=float, default=0.5)
    ap.add_argument("--networks", default="basicunet,dynunet")
    ap.add_argument("--settings", default="1e-4:20,1e-3:20", help="comma-separated learning_rate:epochs")
    args = ap.parse_args()
    log = args.out / "runs.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    done = {json.dumps(r["run"]) for r in map(json.loads, log.read_text().splitlines())} if log.is_file() else set()
    print("| cohort | seed | network | lr | epochs | best val. Dice | test Dice | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for cohort in args.cohorts.split(","):
        _, keys, dims, _ = COHORTS[cohort]
        for seed in map(int, args.seeds.split(",")):
            where = args.out / f"{cohort}_seed{seed}_d{args.difficulty:g}"
            datalist = _cohort(cohort, seed, args.cases, args.difficulty, where)
            train = select_entries(datalist, "training", folds=[2, 3])
            val = select_entries(datalist, "training", folds=[1])
            test = select_entries(datalist, "training", folds=[0])
            for setting in args.settings.split(","):
                lr, epochs = float(setting.split(":")[0]), int(setting.split(":")[1])
                for net in args.networks.split(","):
                    run = {"cohort": cohort, "seed": seed, "cases": args.cases, "difficulty": args.difficulty, "net": net, "lr": lr, "epochs": epochs}
                    if json.dumps(run) in done:
                        continue
                    run_dir = where / f"{net}_lr{lr:g}_e{epochs}"
                    trained = train_stock(net, train, val, keys, dims, run_dir, epochs, seed=seed, learning_rate=lr)
                    infer_stock(net, run_dir / "model.pt", test, keys, dims, run_dir / "test")
                    scored = evaluate(run_dir / "test", datalist, run_dir / "evaluation", folds=[0])
                    test_dice = scored["metrics"]["dice"]["mean"]
                    record = {"run": run, "best_val_dice": trained["best_val_dice"], "test_dice": test_dice, "train_seconds": trained["train_seconds"]}
                    with log.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    done.add(json.dumps(run))
                    print(
                        f"| {cohort} | {seed} | {net} | {lr:g} | {epochs} | {trained['best_val_dice']:.3f} | {test_dice:.3f} | "
                        f"{trained['train_seconds']:.0f} |",
                        flush=True,
                    )
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    print("\nmean test Dice per (network, lr, epochs) over the cohorts and seeds run:")
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["run"]["net"], r["run"]["lr"], r["run"]["epochs"]), []).append(r["test_dice"])
    for (net, lr, epochs), values in sorted(groups.items()):
        print(f"  {net} lr {lr:g} {epochs} epochs: {np.mean(values):.3f} (n = {len(values)} runs, min {np.min(values):.3f})")


if __name__ == "__main__":
    main()
