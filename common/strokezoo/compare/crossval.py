"""Patient-level K-fold cross-validation for ``strokezoo compare --folds K``.

The cohort's datalist has K patient-level folds. Split k tests fold k, selects each method's network on fold
(k + 1) mod K and trains on the other K − 2 folds, so every patient is a test patient exactly once and the fold that
picks a checkpoint is never the one it is scored on. Each split runs as a single-split comparison of its own
(:func:`strokezoo.compare.protocol.run_split`, resumed per split and method). :func:`pool_splits` then gathers each
method's test masks of the K splits into one folder and scores them in one ``strokezoo evaluate`` run over the
whole cohort, so the leaderboard's n is every study.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..io.atomic import write_json_atomic
from ..metrics.evaluate import evaluate, find_prediction

__all__ = ["cv_splits", "pool_splits"]


def cv_splits(folds: int, test_fold: int = 0, val_fold: int = 1) -> list[tuple[int, int]]:
    """``(test fold, validation fold)`` of each split: ``folds`` 1 is the one split ``(test_fold, val_fold)``;
    ``folds`` K ≥ 3 gives split k = ``(k, (k + 1) mod K)``, training on the remaining K − 2 folds."""
    if folds == 1:
        if test_fold == val_fold:
            raise ValueError(f"the test fold and the validation fold must differ (both {test_fold})")
        return [(test_fold, val_fold)]
    if folds < 3:
        raise ValueError(f"--folds {folds}: cross-validation needs at least 3 folds (test, validation, training), or 1 for one split")
    return [(k, (k + 1) % folds) for k in range(folds)]


def _epochs(per_split: list) -> int | str | list:
    """The epochs of a pooled method: the splits' common value, else each split's, joined by slashes."""
    if all(e == per_split[0] for e in per_split):
        return per_split[0]
    return " / ".join("+".join(map(str, e)) if isinstance(e, list) else str(e) for e in per_split)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def pool_splits(per_split: list[list[dict]], test_folds: list[list[str]], full_dl: Path, out: Path) -> list[dict]:
    """One result per method from its results in each split (``per_split[k]``, whose test case ids are
    ``test_folds[k]``): a method that failed in any split fails, with each split's error; else its test masks of all
    splits are linked into ``out/methods/<name>/test_predictions`` and scored together by ``strokezoo evaluate``
    over every fold of ``full_dl`` into ``out/methods/<name>/evaluation`` (kept, with ``result.json``, until a split's
    result changes). Timings are summed over the splits
    (training) or averaged per volume (inference); ``best_val_dice`` lists each split's."""
    pooled = []
    for i, first in enumerate(per_split[0]):
        name = first["name"]
        runs = [split[i] for split in per_split]
        if any(r["name"] != name for r in runs):
            raise RuntimeError(f"the splits ran different methods: {[r['name'] for r in runs]}")
        result = {"name": name, "kind": first["kind"], "status": "failed", "splits": [r["key"] for r in runs]}
        failed = [(k, r) for k, r in enumerate(runs) if r["status"] != "done"]
        method_dir = out / "methods" / name
        record = method_dir / "result.json"
        if not failed and record.is_file():  # pooled before from the same split results
            previous = json.loads(record.read_text())
            if previous.get("splits") == result["splits"] and previous.get("status") == "done":
                pooled.append(previous)
                continue
        if failed:
            result["error"] = "; ".join(f"split {k}: {r.get('error', r['status'])}" for k, r in failed)
            pooled.append(result)
            write_json_atomic(result, record)
            continue
        pred = method_dir / "test_predictions"
        staging = method_dir / "test_predictions.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for r, cases in zip(runs, test_folds):
            for case in cases:
                source = find_prediction(Path(r["predictions"]), case)
                _link(source, staging / source.name)
        shutil.rmtree(pred, ignore_errors=True)
        staging.rename(pred)
        evaluation = method_dir / "evaluation"
        scored = evaluate(pred, full_dl, evaluation)
        expected = sum(len(c) for c in test_folds)
        if scored["failures"] or scored["cases"] != expected:
            result["error"] = f"{scored['cases']} of {expected} studies scored: {scored['failures']}"
        else:
            volumes = [len(c) for c in test_folds]
            result |= {
                "status": "done",
                "predictions": str(pred),
                "evaluation": str(evaluation),
                "train_seconds": sum(r.get("train_seconds", 0.0) for r in runs),
                "infer_seconds_per_volume": sum(r["infer_seconds_per_volume"] * n for r, n in zip(runs, volumes)) / max(sum(volumes), 1),
            }
            if "best_val_dice" in first:
                result["best_val_dice"] = [r["best_val_dice"] for r in runs]
            if "epochs" in first:
                result["epochs"] = _epochs([r["epochs"] for r in runs])
            if "members" in first:
                result["members"] = first["members"]
        write_json_atomic(result, record)
        pooled.append(result)
    return pooled
