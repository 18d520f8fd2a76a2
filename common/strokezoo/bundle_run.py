"""Training a bundle's stages and scoring it on a held-out fold, as ``make demo``, ``strokezoo compare`` and the
benchmarks run it: each stage through MONAI's ``ConfigWorkflow`` with the bundle's CPU-sized overrides, outputs
under a folder of the caller's (``bundle_root``), the configs read from the repository's bundle."""

from __future__ import annotations

import json
from pathlib import Path

from .bundle_info import BUNDLES, config_files, cpu_overrides

__all__ = ["train_and_evaluate_bundle", "train_bundle"]


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
