"""What a paper's training recipe costs: each bundle's training stages run through their own configs for a fixed
number of steps, on one device, and what that projects to for the paper's whole recipe on the real release.

Per stage it prints one JSON line and, at the end, a Markdown table:

* ``samples_per_s``: training samples (slices, patches or volumes, as the stage samples) per second, over the
  measured steps (the first ``--warmup`` steps left out: kernel selection, workers starting);
* ``data_wait_share``: the share of step time spent waiting for the loader's next batch;
* ``peak_gpu_gb`` (on a GPU) and ``peak_rss_gb``;
* ``step_tflop``: the FLOPs of one training step (forward and backward), counted once by
  ``torch.utils.flop_counter.FlopCounterMode``; ``achieved_tflops`` that divided by the step time, and against
  ``--peak-tflops`` (the device's dense peak for the dtype that runs, e.g. 989 for an H100 SXM in bf16, 67 in fp32
  without TF32) the share of the hardware's limit;
* ``projected_hours``: the stage's configured epochs (the paper's) x the steps an epoch takes at the release's size
  x the measured step time. An epoch's samples at the release's size = this cohort's samples per training case x
  the release's training cases (:data:`RELEASE_CASES`) x the share of cases the stage trains on. Validation is not
  counted.

The synthetic cohort has the release's grids (``--scale 1``, the default; a smaller scale for a quick check). ``--size paper`` runs the configs' network sizes;
``--size cpu`` the CPU-sized ones (``configs/smoke.json``) of the tests. A later stage that reads an earlier stage's
network (the CTP transformer's part B) gets untrained weights: the time does not depend on them.

    python benchmarks/train_cost.py --device cuda:0 --out /tmp/train_cost                 # every bundle, paper size
    python benchmarks/train_cost.py --device cpu --size cpu --steps 4 --bundles stroke_mri_crossattention_unet2d --cases 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_perf import cohort, common_overrides, peak_memory, sync  # noqa: E402

from strokezoo.bundle_info import BUNDLES, config_files  # noqa: E402

#: training cases of each release a bundle trains on (the releases' own counts)
RELEASE_CASES = {"isles2022": 250, "isles2018": 94, "isles2017": 43, "isles2015-siss": 28, "apis": 60}


def _batch_size(batch) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return len(first["image"]) if isinstance(first, dict) else len(first)


def measure(bundle: str, stage: str, a: argparse.Namespace, out: Path, data: Path, datalist: Path, cases: int) -> dict:
    """One stage's row (module docstring)."""
    from monai.bundle import ConfigWorkflow
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device(a.device)
    overrides = {**common_overrides(a, out, data, datalist), "val_interval": 10**6, "progress_bar": False}
    wf = ConfigWorkflow(config_file=config_files(bundle, stage), workflow_type="train", **overrides)
    wf.initialize()
    p = wf.parser
    epochs = int(p.get_parsed_content("epochs"))
    if "transformer_path" in p.config:  # part B reads part A's network: untrained weights cost the same
        path = Path(p.get_parsed_content("transformer_path"))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(p.get_parsed_content("transformer_def").state_dict(), path)
    trainer = p.get_parsed_content("train#trainer")  # a step is the trainer's own iteration (custom trainers too)
    loader = trainer.data_loader
    trained_cases = len({e["case_id"] for e in loader.dataset.data}) if hasattr(loader.dataset, "data") else cases
    steps = a.warmup + a.steps
    waits, totals, samples = [], [], 0
    flops = None
    trainer.network.train()
    batches = iter(loader)
    for i in range(steps):
        sync(device)
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        t1 = time.perf_counter()
        if flops is None:  # counted once, on the first step (forward, backward and the optimiser's step)
            with FlopCounterMode(display=False) as counter:
                trainer._iteration(trainer, batch)
            flops = counter.get_total_flops()
        else:
            trainer._iteration(trainer, batch)
        sync(device)
        t2 = time.perf_counter()
        if i >= a.warmup:
            waits.append(t1 - t0)
            totals.append(t2 - t0)
            samples += _batch_size(batch)
    step_s = sum(totals) / len(totals)
    batch_size = samples / len(totals)
    per_case = len(loader.dataset) / max(trained_cases, 1)
    layout = p.get_parsed_content("layout")
    share = trained_cases / cases
    epoch_samples = per_case * RELEASE_CASES.get(layout, cases) * share
    achieved = flops / step_s / 1e12
    row = {
        "bundle": bundle,
        "stage": stage,
        "size": a.size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": round(batch_size, 1),
        "steps_measured": len(totals),
        "step_s": round(step_s, 4),
        "samples_per_s": round(samples / sum(totals), 2),
        "data_wait_share": round(sum(waits) / sum(totals), 3),
        "step_tflop": round(flops / 1e12, 4),
        "achieved_tflops": round(achieved, 3),
        "share_of_peak": round(achieved / a.peak_tflops, 4) if a.peak_tflops else None,
        "epochs": epochs,
        "release_cases": RELEASE_CASES.get(layout, cases),
        "samples_per_epoch_at_release": round(epoch_samples),
        "projected_hours": round(epochs * epoch_samples / batch_size * step_s / 3600, 2),
        **peak_memory(device),
    }
    wf.finalize()
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", default=",".join(BUNDLES), help="comma-separated (default: every bundle)")
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=("paper", "cpu"), default="paper")
    ap.add_argument("--steps", type=int, default=20, help="steps measured, after --warmup")
    ap.add_argument("--warmup", type=int, default=3, help="steps left out first (at least 1: the FLOP count runs there)")
    ap.add_argument("--cases", type=int, default=8, help="synthetic training cases")
    ap.add_argument("--scale", type=float, default=1.0, help="their grid's size against the release's (1: the release's)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak for the dtype that runs")
    ap.add_argument("--data", default="/tmp/strokezoo_train_cost_data", help="where the synthetic cohorts are kept")
    ap.add_argument("--out", default="/tmp/strokezoo_train_cost")
    ap.add_argument("--set", action="append", default=[], help="KEY=JSON config override, for every stage")
    a = ap.parse_args(argv)
    rows = []
    for bundle in a.bundles.split(","):
        a.bundle = bundle  # common_overrides reads it
        data, datalist = cohort(BUNDLES[bundle].layout, Path(a.data), a.cases, a.scale)
        for stage in BUNDLES[bundle].stages:
            row = measure(bundle, stage, a, Path(a.out) / bundle / Path(stage).stem, data, datalist, a.cases)
            print(json.dumps(row), flush=True)
            rows.append(row)
    columns = ["bundle", "stage", "batch", "samples_per_s", "data_wait_share", "peak_gpu_gb", "achieved_tflops", "share_of_peak", "projected_hours"]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return rows


if __name__ == "__main__":
    main()
