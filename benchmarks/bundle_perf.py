"""Every bundle through its own configs: training step time with the real loader against in-memory batches,
inference seconds per volume (pre- and post-processing included), and peak memory.

Each measurement runs in a fresh process (so that its peak memory is its own) on a synthetic cohort at the
release's grid (``scale=1``, written once under ``--data``):

* ``train``: the bundle's training config(s) as shipped (loader, workers, augmentation), one whole epoch (or
  ``--steps`` iterations), validation off. First the real loader, then the same trainer on one of those batches
  repeated in memory. Step time = (end of the last iteration - end of the first) / (steps - 1), so that the first
  iteration (worker start-up, kernel selection) is left out; ratio = real / in-memory (target ≤ 1.1). A whole
  epoch, because the workers run ahead of the trainer (prefetch): a cut epoch would charge it their head start.
  Also the loader alone (seconds per batch, worker start-up included, nothing else running); ``--loader-only``
  measures only that. On a CPU the workers and the network share the cores; on a GPU machine the ratio is about
  max(1, loader alone / in-memory step).
* ``infer``: the bundle's ``inference.json`` on ``--cases`` training cases with untrained weights, from the
  loader to the written masks. s/volume = time from the evaluator's start (after the checkpoint is loaded) to the
  last case's end, divided by the cases: the loader's workers pre-process the next cases while the network runs,
  so a median of per-case intervals would hide a heavy pre-processing. The first case alone is the latency of
  one study. ``--amp`` and ``--channels-last`` switch on the config's bf16 autocast and channels-last layout
  (the command line's flags are passed either way: without them, fp32).

Peak memory: the measuring process's peak resident set (``ru_maxrss``; loader workers are processes of their own)
and, on a GPU, ``torch.cuda.max_memory_allocated``.

``--size paper`` runs the configs' own (the papers') network sizes; ``--size cpu`` the CPU-sized networks of the
tests and ``make demo`` (``configs/smoke.json``, loader workers as shipped), whose fast steps are the harder
test of the loader.

    python benchmarks/bundle_perf.py --what train --size cpu
    python benchmarks/bundle_perf.py --what train --size paper --loader-only --steps 40
    python benchmarks/bundle_perf.py --what infer --size paper --cases 3 --amp --channels-last
    python benchmarks/bundle_perf.py --what infer --bundles stroke_mri_residual_unet3d --configs fast.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from strokezoo.bundle_info import BUNDLES, config_files, cpu_overrides

#: one line of a measuring process's stdout that carries its result
MARK = "BUNDLE_PERF "


def cohort(layout: str, root: Path, cases: int, scale: float = 1.0) -> tuple[Path, Path]:
    """The synthetic cohort of ``layout`` (written once) and its 4-fold datalist, at the release's grid (``scale``
    1) or a fraction of it."""
    from strokezoo.data.datalist import build_datalist
    from strokezoo.synth import synthesize_cohort

    name = f"{layout}-{cases}" + ("" if scale == 1.0 else f"-scale{scale:g}")
    data, datalist = root / name, root / f"{name}.json"
    if not datalist.is_file():
        synthesize_cohort(layout, data, cases=cases, seed=0, scale=scale, test_fraction=0.0)
        build_datalist(data, datalist, layout=layout, folds=4)
    return data, datalist


def peak_memory(device: torch.device) -> dict:
    out = {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if device.type == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def common_overrides(a: argparse.Namespace, out: Path, data: Path, datalist: Path) -> dict:
    size = {k: v for k, v in cpu_overrides(a.bundle).items() if k != "num_workers"} if a.size == "cpu" else {}
    return {
        "bundle_root": str(out),
        "dataset_dir": str(data),
        "datalist": str(datalist),
        "device": f"$torch.device('{a.device}')",
        **size,
        **{k: json.loads(v) for k, v in (o.split("=", 1) for o in a.set)},
    }


def measure_train(a: argparse.Namespace, out: Path, data: Path, datalist: Path) -> list[dict]:
    """One row per training stage of the bundle."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    device = torch.device(a.device)
    rows = []
    for stage in a.stages or BUNDLES[a.bundle].stages:
        overrides = {**common_overrides(a, out, data, datalist), "epochs": 1, "val_interval": 10**6, "warmup_epochs": 0, "progress_bar": False}
        wf = ConfigWorkflow(config_file=config_files(a.bundle, stage, *a.configs), workflow_type="train", **overrides)
        wf.initialize()
        p = wf.parser
        if "transformer_path" in p.config:  # a later stage reads an earlier stage's network: untrained weights do
            path = Path(p.get_parsed_content("transformer_path"))
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(p.get_parsed_content("transformer_def").state_dict(), path)
        t = time.perf_counter()
        trainer = p.get_parsed_content("train#trainer")
        loader = trainer.data_loader
        build_s = time.perf_counter() - t
        steps = min(a.steps, len(loader)) if a.steps else len(loader)
        if steps < 3:
            raise SystemExit(f"{a.bundle} {stage}: {len(loader)} batches per epoch; use a larger --train-cases")
        t = time.perf_counter()
        for _, _batch in zip(range(steps), loader):  # the loader alone, with nothing else running
            pass
        loader_only = (time.perf_counter() - t) / steps
        if a.loader_only:
            rows.append(
                {
                    "bundle": a.bundle,
                    "what": "loader",
                    "stage": stage,
                    "size": a.size,
                    "steps": steps,
                    "batches_per_epoch": len(loader),
                    "batch_shape": tuple(_batch["image"].shape),
                    "dataset_build_s": round(build_s, 1),
                    "loader_only_s": round(loader_only, 4),
                    "num_workers": loader.num_workers,
                    **peak_memory(device),
                }
            )
            wf.finalize()
            continue
        stamps: list[float] = []
        kept: dict = {}

        def stamp(engine) -> None:
            sync(device)
            stamps.append(time.perf_counter())

        trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: kept.setdefault("batch", e.state.batch))  # before decollation
        trainer.add_event_handler(Events.ITERATION_COMPLETED, stamp)
        trainer.state.epoch_length = steps
        trainer.run()
        real = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        stamps.clear()
        trainer.data_loader = [kept["batch"]] * steps
        trainer.run()
        memory = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        batch = kept["batch"]
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        shape = tuple(first["image"].shape) if isinstance(first, dict) else None
        rows.append(
            {
                "bundle": a.bundle,
                "what": "train",
                "stage": stage,
                "size": a.size,
                "steps": steps,
                "batches_per_epoch": len(loader),
                "batch_shape": shape,
                "dataset_build_s": round(build_s, 1),
                "step_real_s": round(real, 4),
                "step_memory_s": round(memory, 4),
                "loader_only_s": round(loader_only, 4),
                "ratio": round(real / memory, 3),
                "num_workers": loader.num_workers,
                **peak_memory(device),
            }
        )
        wf.finalize()
    return rows


def measure_infer(a: argparse.Namespace, out: Path, data: Path, datalist: Path) -> list[dict]:
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    device = torch.device(a.device)
    wf = ConfigWorkflow(
        config_file=config_files(a.bundle, "inference.json", *a.configs),
        workflow_type="inference",
        output_dir=str(out / "eval"),
        amp=a.amp,
        channels_last=a.channels_last,
        entries=f"$strokezoo.data.datalist.select_entries(@datalist_path, 'training')[:{a.cases}]",
        **common_overrides(a, out, data, datalist),
    )
    wf.initialize()
    p = wf.parser
    ckpt = Path(p.get_parsed_content("ckpt_path"))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(p.get_parsed_content("network").state_dict(), ckpt)  # untrained weights: the time does not depend on them
    evaluator = p.get_parsed_content("evaluator")
    stamps: list[float] = []
    shapes: list[tuple] = []

    def stamp(engine) -> None:
        sync(device)
        stamps.append(time.perf_counter())
        img = engine.state.batch["image"] if isinstance(engine.state.batch, dict) else engine.state.batch[0]["image"]
        shapes.append(tuple(img.shape[1:]))

    evaluator.add_event_handler(Events.EPOCH_STARTED, lambda e: stamps.append(time.perf_counter()))
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, stamp)
    evaluator.run()
    wf.finalize()
    per_case = [b - a_ for a_, b in zip(stamps, stamps[1:])]
    written = sorted(q.name for q in (out / "eval").rglob("*.nii.gz"))
    if len(per_case) != a.cases or not written:
        raise SystemExit(f"{a.bundle}: {len(per_case)} of {a.cases} cases ran, {len(written)} files written")
    return [
        {
            "bundle": a.bundle,
            "what": "infer",
            "configs": a.configs,
            "size": a.size,
            "amp": a.amp,
            "channels_last": a.channels_last,
            "cases": a.cases,
            "input_shape": shapes[0],
            "s_per_volume": round(sum(per_case) / len(per_case), 2),
            "first_case_s": round(per_case[0], 2),
            "per_case_s": [round(x, 2) for x in per_case],
            "files_written": len(written),
            **peak_memory(device),
        }
    ]


def one(a: argparse.Namespace) -> None:
    torch.manual_seed(0)
    layout, what = BUNDLES[a.bundle].layout, a.what[0]
    data, datalist = cohort(layout, Path(a.data), a.train_cases if what == "train" else max(a.cases, 4))
    with tempfile.TemporaryDirectory(prefix=f"perf-{a.bundle}-") as tmp:
        rows = (measure_train if what == "train" else measure_infer)(a, Path(tmp), data, datalist)
    for r in rows:
        r["device"] = torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
        print(MARK + json.dumps(r), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", nargs="+", default=sorted(BUNDLES), choices=sorted(BUNDLES))
    ap.add_argument("--what", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    ap.add_argument("--size", default="paper", choices=["paper", "cpu"])
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=0, help="training iterations timed per loader (0: one whole epoch)")
    ap.add_argument("--cases", type=int, default=3, help="cases inferred")
    ap.add_argument("--train-cases", type=int, default=8, help="patients of the training cohort")
    ap.add_argument("--stages", nargs="*", default=[], help="train: only these training configs (e.g. train_transformer.json)")
    ap.add_argument("--loader-only", action="store_true", help="train: time the loader alone, no training step")
    ap.add_argument("--amp", action="store_true", help="inference: bf16 autocast (config key amp)")
    ap.add_argument("--channels-last", action="store_true", help="inference: channels-last layout (config key channels_last)")
    ap.add_argument("--configs", nargs="*", default=[], help="config files of the bundle merged on top (e.g. fast.json)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="config overrides, e.g. ensemble_folds=[0]")
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "strokezoo-bench"), help="where the synthetic cohorts are kept")
    ap.add_argument("--out", default=None, help="append the result rows (JSON lines) to this file")
    ap.add_argument("--bundle", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.bundle:
        one(a)
        return
    failed = []
    for what in a.what:
        for bundle in a.bundles:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--bundle", bundle, "--what", what]
            t = time.perf_counter()
            run = subprocess.run(cmd, capture_output=True, text=True)
            rows = [json.loads(line[len(MARK) :]) for line in run.stdout.splitlines() if line.startswith(MARK)]
            if run.returncode or not rows:
                failed.append(f"{bundle} {what}: exit {run.returncode}\n{run.stderr[-3000:]}")
                print(f"FAILED {bundle} {what} (exit {run.returncode})", flush=True)
                continue
            for r in rows:
                r["wall_s"] = round(time.perf_counter() - t, 1)
                print(json.dumps(r), flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(r) + "\n")
    if failed:
        print("\n\n".join(failed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
