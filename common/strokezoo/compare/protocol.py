"""``strokezoo compare``: one cohort, every method on the same patient-level splits with the same budget.

With ``folds`` K ≥ 3 the comparison is a K-fold cross-validation (:mod:`strokezoo.compare.crossval`): each of the K
splits below is run in turn, and every study of the cohort is a test study once. With ``folds`` 1 it is one split.

The cohort's datalist has patient-level folds. In a split, fold ``test_fold`` is the test split: its patients are written out of
the datalist that training reads, so no method sees them in training or model selection. Fold ``val_fold`` is the
validation split, the rest is training, for every method:

* each bundle of the cohort, run by its own configs (training stages, with the bundle's own augmentation, then
  ``inference.json`` with ``evaluate.json``'s checkpoint loading) with split overrides that are checked against the
  parsed configs;
* the stock MONAI baselines (:mod:`strokezoo.compare.stock`), on the same inputs, with MONAI's standard
  augmentation;
* the cohort's clinical threshold rule (:mod:`strokezoo.baselines`), where it has one;
* on a cohort that several bundles share, their ensemble: the mean of the lesion probabilities of the bundles
  that write one, thresholded at 0.5.

Every trained method gets the same epochs (:data:`COHORTS`, or ``epochs``).

Every method's test masks are scored by :func:`strokezoo.metrics.evaluate.evaluate`; the leaderboard reads its
output (:mod:`strokezoo.compare.report`). A method that fails is reported with its error and the others go on.
Finished methods are not run again: each keeps ``result.json`` keyed on its settings, the seed, the datalist and what
it depends on (a bundle's configs, the stock baselines' code, an ensemble's members).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..bundle_info import BUNDLES, bundle_split, bundles_dir, comparison_overrides, config_files, cpu_overrides, split_overrides, variant_keys
from ..io.atomic import write_json_atomic

__all__ = ["COHORTS", "SIZES", "SCALE", "DIFFICULTY", "compare", "run_split", "methods_of", "split_overrides", "bundle_split", "inference_workflow"]

#: cohort (release layout) -> (clinical threshold rule or None, stock baselines' input modalities, spatial dims,
#: the epochs every method trains at ``--size cpu``: the 2D cohorts' budgets run in minutes on 2 CPU cores; SISS's
#: 3D patches make each epoch long)
COHORTS = {
    "isles2018": ("rcbf", ("ct", "cbf", "cbv", "mtt", "tmax"), 2, 40),
    "isles2022": ("adc", ("dwi", "adc"), 2, 20),
    "isles2017": ("adc", ("adc", "mtt", "rcbf", "rcbv", "tmax", "ttp"), 2, 25),
    "isles2015-siss": (None, ("flair", "t1", "t2", "dwi"), 3, 2),
}

#: ``smoke``: the CPU-sized configs (configs/smoke.json), 1 epoch by default; ``cpu``: the same with a bundle's
#: configs/cpu.json on top where it has one (a comparison size: smoke.json also sizes the tests and the demo), every
#: method for the cohort's epochs (:data:`COHORTS`); ``paper``: the configs as shipped, for a GPU, at the same epochs unless
#: ``epochs`` is given.
SIZES = ("smoke", "cpu", "paper")

#: the synthetic cohorts' matrix-size factor, and their default difficulty (the generator's default: noise, bias
#: field and lesion contrast that leave room for learned methods; docs/synthetic.md)
SCALE = 0.4
DIFFICULTY = 0.5


def methods_of(cohort: str) -> list[tuple[str, str]]:
    """``(name, kind)`` of every method that runs on ``cohort``: its bundles (each with the paper's defaults), their
    variants (``<bundle>+<override config>``: a deviation from the paper, run with that config's keys on top), the
    stock baselines, its rule and, with several bundles, their ensemble."""
    from .stock import STOCK

    rule = COHORTS[cohort][0]
    bundles = [(b, "bundle") for b, info in BUNDLES.items() if info.layout == cohort]
    variants = [(f"{b}+{Path(v).stem}", "bundle variant") for b, _ in bundles for v in BUNDLES[b].variants]
    methods = [*bundles, *variants, *((s, "stock MONAI") for s in STOCK)]
    if rule:
        methods.append((f"threshold_{rule}", "clinical rule"))
    if len(bundles) > 1:
        methods.append(("ensemble", "ensemble of the bundles"))
    return methods


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: metadata.json's fields that describe a bundle without changing what it computes: editing them (a version bump,
#: a changelog line, the smoke run's epochs, which the comparison does not use) keeps a bundle's stored results
DESCRIPTIVE_METADATA = (
    "version", "changelog", "authors", "copyright", "references", "description", "task", "intended_use", "data_source",
    "eval_metrics", "image_classes", "label_classes", "pred_classes", "monai_version", "pytorch_version", "numpy_version",
    "required_packages_version", "optional_packages_version", "smoke_epochs", "schema",
)  # fmt: skip


def _files_key(paths: list[Path]) -> str:
    """What a run read from ``paths``: each file's bytes, and of a ``metadata.json`` all but its
    :data:`DESCRIPTIVE_METADATA`."""

    def content(p: Path) -> str:
        if p.name != "metadata.json":
            return hashlib.sha256(p.read_bytes()).hexdigest()
        meta = {k: v for k, v in json.loads(p.read_text()).items() if k not in DESCRIPTIVE_METADATA}
        return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()

    return _key(*((p.name, content(p)) for p in paths))


def _run_bundle(
    bundle: str,
    data: Path,
    train_dl: Path,
    full_dl: Path,
    out: Path,
    size: str,
    epochs: int,
    test_fold: int,
    val_fold: int,
    split: tuple,
    overrides: dict,
    minutes: float | None = None,
) -> dict:
    from ..bundle_run import train_bundle

    cpu = cpu_overrides(bundle) if size != "paper" else {}
    if size == "cpu":  # the bundle's comparison size over its smoke size, where it has one (configs/cpu.json)
        overrides = {**comparison_overrides(bundle), **overrides}
    common = {"bundle_root": str(out), "dataset_dir": str(data), **cpu}
    keys = {k: v for stage in BUNDLES[bundle].stages for k, v in split_overrides(bundle, stage, test_fold, val_fold).items()}
    for stage in BUNDLES[bundle].stages:
        seen = bundle_split(bundle, stage, {**common, "datalist": str(train_dl), "val_fold": val_fold, **keys, **overrides})
        if seen != split:
            raise RuntimeError(f"{bundle} ({stage}) would train on {sorted(seen[0])} and validate on {sorted(seen[1])}, not the comparison's split")
    t0 = time.perf_counter()
    _, best_val, completed = train_bundle(
        bundle, data, train_dl, out, epochs, val_fold, {**keys, **overrides}, cpu=size != "paper", augment=True, minutes=minutes
    )
    train_seconds = time.perf_counter() - t0
    pred = out / "test_predictions"
    infer = inference_workflow(bundle, {**common, **overrides}, full_dl, test_fold, val_fold, pred)
    t0 = time.perf_counter()
    infer.initialize()
    infer.run()
    infer.finalize()
    cases = len(infer.parser.get_parsed_content("entries"))
    infer_seconds = (time.perf_counter() - t0) / max(cases, 1)
    per_modality = sorted(pred.glob("*_dwi.nii.gz"))
    if per_modality and not any((pred / p.name.replace("_dwi.nii.gz", ".nii.gz")).exists() for p in per_modality):
        # one mask per modality (the cross-domain bundle): the DWI's is the one of the cohort's label (the DWI lesion)
        scored = out / "test_masks"
        scored.mkdir(exist_ok=True)
        for p in per_modality:
            target = scored / p.name.replace("_dwi.nii.gz", ".nii.gz")
            if not target.exists():
                os.link(p, target)
        pred = scored
    result = {"predictions": str(pred), "train_seconds": train_seconds, "infer_seconds_per_volume": infer_seconds, "best_val_dice": best_val}
    return result | {"epochs": completed[0] if len(completed) == 1 else completed}


def inference_workflow(bundle: str, keys: dict, full_dl: Path, test_fold: int, val_fold: int, pred: Path):
    """``bundle``'s inference workflow (``inference.json`` with ``evaluate.json``'s checkpoint loading) over the test
    fold of ``full_dl`` into ``pred``, in fp32, writing lesion probabilities where it can. ``keys``: what training
    was given besides the split (the CPU-sized keys, the comparison's ``overrides``); those inference.json also
    defines (a slice size, the widths) are set, so that the network and its pre-processing are the ones trained,
    and the training-only ones are left out."""
    from monai.bundle import ConfigWorkflow

    infer_keys = {
        "datalist": str(full_dl),
        "fold": test_fold,
        "entries": f"$strokezoo.data.datalist.select_entries(@datalist_path, 'training', folds=[{test_fold}])",
        "output_dir": str(pred),
        "amp": False,
        "finalize": ["$@input_check.report()"],
    }
    infer = ConfigWorkflow(config_file=config_files(bundle, "inference.json", "evaluate.json"), workflow_type="inference", **infer_keys)
    for k, v in keys.items():
        if k.split("#")[0] in infer.parser.config:
            infer.parser[k] = v
    if "save_probabilities" in infer.parser:
        infer.parser["save_probabilities"] = True
    if "val_fold" in infer.parser:
        infer.parser["val_fold"] = val_fold
    return infer


def _run_stock(
    name: str, cohort: str, train_dl: Path, full_dl: Path, out: Path, epochs: int, seed: int, test_fold: int, val_fold: int, minutes: float | None = None
) -> dict:
    from ..data.datalist import select_entries
    from .stock import infer_stock, train_stock

    _, keys, dims, _ = COHORTS[cohort]
    train = select_entries(train_dl, "training", exclude_folds=[val_fold])
    val = select_entries(train_dl, "training", folds=[val_fold])
    trained = train_stock(name, train, val, keys, dims, out, epochs, seed=seed, minutes=minutes)
    pred = out / "test_predictions"
    per_volume = infer_stock(name, out / "model.pt", select_entries(full_dl, "training", folds=[test_fold]), keys, dims, pred)
    return {"predictions": str(pred), "infer_seconds_per_volume": per_volume, **{k: trained[k] for k in ("train_seconds", "best_val_dice", "epochs")}}


def _run_rule(rule: str, full_dl: Path, out: Path) -> dict:
    from ..baselines import predict_datalist

    pred = out / "test_predictions"
    t0 = time.perf_counter()
    written, failures = predict_datalist(str(full_dl), rule, str(pred))
    if failures:
        raise RuntimeError(f"the {rule} rule failed on {failures}")
    return {"predictions": str(pred), "train_seconds": 0.0, "infer_seconds_per_volume": (time.perf_counter() - t0) / max(written, 1)}


def _run_ensemble(members: list[dict], case_ids: list[str], out: Path) -> dict:
    """The mean of the members' ``<case>_prob.nii.gz`` on each test case, > 0.5, on the first member's grid."""
    import nibabel as nib

    from ..io.nifti import save_nifti

    with_prob = [m for m in members if all((Path(m["raw_predictions"]) / f"{c}_prob.nii.gz").is_file() for c in case_ids)]
    if len(with_prob) < 2:
        raise RuntimeError(f"fewer than two bundles wrote lesion probabilities ({[m['name'] for m in with_prob]})")
    pred = out / "test_predictions"
    t0 = time.perf_counter()
    for c in case_ids:
        images = [nib.load(Path(m["raw_predictions"]) / f"{c}_prob.nii.gz") for m in with_prob]
        mean = np.mean([np.asarray(i.dataobj, np.float32) for i in images], 0)
        save_nifti((mean > 0.5).astype(np.uint8), images[0].affine, pred / f"{c}.nii.gz", np.uint8)
    return {
        "predictions": str(pred),
        "members": [m["name"] for m in with_prob],
        "train_seconds": sum(m["train_seconds"] for m in with_prob),
        "infer_seconds_per_volume": sum(m["infer_seconds_per_volume"] for m in with_prob) + (time.perf_counter() - t0) / len(case_ids),
    }


def _machine() -> str:
    import monai
    import torch

    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    versions = f"Python {platform.python_version()}, torch {torch.__version__}, MONAI {monai.__version__}"
    return f"{platform.platform()}, {os.cpu_count()} logical CPUs{gpu}, {versions}"


def _cohort(
    cohort: str, out: Path, cases: int, seed: int, difficulty: float, folds: int, dataset_dir: str | None, datalist: str | None
) -> tuple[Path, Path, dict]:
    """The dataset root, the datalist with its patient-level folds, and that datalist's content: a user's
    ``datalist`` read in place, else one built in ``out`` from ``dataset_dir`` or from a synthetic cohort. What
    ``out`` was made from is kept in ``out/cohort.json``; a call that asks ``out`` for another cohort is refused."""
    from ..data.datalist import build_datalist
    from ..synth import synthesize_cohort

    datalist_folds = 4 if folds == 1 else folds
    full_dl = Path(datalist or out / "datalist.json")
    if datalist:
        if not full_dl.is_file():
            raise FileNotFoundError(f"{datalist}: no such datalist")
    else:
        made = {"cohort": cohort, "folds": datalist_folds}
        made |= {"dataset_dir": str(Path(dataset_dir).resolve())} if dataset_dir else {"cases": cases, "seed": seed, "scale": SCALE, "difficulty": difficulty}
        record = out / "cohort.json"
        if record.is_file() and (before := json.loads(record.read_text())) != made:
            changed = {k: (before.get(k), v) for k, v in made.items() if before.get(k) != v}
            raise ValueError(f"{out} holds another cohort ({', '.join(f'{k} {a} there, {b} asked' for k, (a, b) in changed.items())}); choose another --out")
        if not full_dl.is_file():
            data = Path(dataset_dir or out / "data")
            if not dataset_dir:
                synthesize_cohort(cohort, data, cases=cases, seed=seed, scale=SCALE, difficulty=difficulty, test_fraction=0.0)
            build_datalist(data, full_dl, layout=cohort, folds=datalist_folds)
        write_json_atomic(made, record)
    listed = json.loads(full_dl.read_text())
    data = Path(listed.get("root") or full_dl.parent)  # the dataset root the datalist names
    return data, full_dl, listed


def run_split(
    cohort: str,
    names: list[str],
    size: str,
    budget: int,
    seed: int,
    data: Path,
    full_dl: Path,
    out: Path,
    test_fold: int,
    val_fold: int,
    overrides: dict | None = None,
    minutes: float | None = None,
    progress: bool = True,
) -> list[dict]:
    """Every method of ``names`` on one split of ``full_dl`` (test = ``test_fold``, validation = ``val_fold``, training =
    the other folds), each in ``out/methods/<name>``, its test masks scored by ``strokezoo evaluate``. A method that
    finished with the same settings (its ``result.json`` key) is not run again; one that fails is recorded with its
    error and the others go on."""
    from tqdm import tqdm

    from ..data.datalist import select_entries
    from ..metrics.evaluate import evaluate

    available = dict(methods_of(cohort))
    listed = json.loads(full_dl.read_text())
    train_dl = out / "train_datalist.json"
    write_json_atomic({**listed, "training": [e for e in listed["training"] if e["fold"] != test_fold]}, train_dl)
    test_ids = [e["case_id"] for e in select_entries(full_dl, "training", folds=[test_fold])]
    split = (
        {e["case_id"] for e in select_entries(train_dl, "training", exclude_folds=[val_fold])},
        {e["case_id"] for e in select_entries(train_dl, "training", folds=[val_fold])},
    )
    data_key = hashlib.sha256(full_dl.read_bytes()).hexdigest()[:16]
    results: list[dict] = []
    order = sorted(names, key=lambda m: m == "ensemble")  # the ensemble after its members
    for name in tqdm(order, desc=f"compare {cohort}, test fold {test_fold}", disable=not progress):
        kind = available[name]
        run_dir = out / "methods" / name
        # what the result depends on: a bundle's configs, the stock baselines' code, an ensemble's members
        depends = {
            "bundle": lambda: _files_key(sorted((bundles_dir() / name / "configs").glob("*.json"))),
            "bundle variant": lambda: _files_key(sorted((bundles_dir() / name.split("+")[0] / "configs").glob("*.json"))),
            "stock MONAI": lambda: _files_key([Path(__file__).with_name("stock.py")]),
            "ensemble of the bundles": lambda: [r["key"] for r in results if r["kind"] == "bundle" and r["status"] == "done"],
        }.get(kind, lambda: None)()
        settings = (size, budget, overrides, "own augmentation") if kind.startswith("bundle") else (size, budget)
        if minutes:
            settings = (*settings, {"minutes": minutes})
        key = _key(name, *settings, seed, test_fold, val_fold, data_key, depends)
        record = run_dir / "result.json"
        if record.is_file():
            previous = json.loads(record.read_text())
            if previous.get("key") == key and previous.get("status") == "done":
                results.append(previous)
                continue
        result = {"name": name, "kind": kind, "key": key, "status": "failed"}
        try:
            if kind.startswith("bundle"):
                bundle, _, variant = name.partition("+")
                keys = {**(overrides or {}), **(variant_keys(bundle, f"{variant}.json") if variant else {})}
                ran = _run_bundle(bundle, data, train_dl, full_dl, run_dir, size, budget, test_fold, val_fold, split, keys, minutes)
            elif kind == "stock MONAI":
                ran = _run_stock(name, cohort, train_dl, full_dl, run_dir, budget, seed, test_fold, val_fold, minutes)
            elif kind == "clinical rule":
                ran = _run_rule(name.removeprefix("threshold_"), full_dl, run_dir)
            else:
                done = [r for r in results if r["kind"] == "bundle" and r["status"] == "done"]
                members = [dict(r, raw_predictions=str(Path(r["evaluation"]).parent / "test_predictions")) for r in done]
                ran = _run_ensemble(members, test_ids, run_dir)
            evaluation = run_dir / "evaluation"
            scored = evaluate(ran["predictions"], full_dl, evaluation, folds=[test_fold])
            if scored["failures"] or scored["cases"] != len(test_ids):
                raise RuntimeError(f"{scored['cases']} of {len(test_ids)} test cases scored: {scored['failures']}")
            result |= ran | {"status": "done", "evaluation": str(evaluation)}
        except Exception as err:  # noqa: BLE001 - a failed method is reported, and the others go on
            result["error"] = "".join(traceback.format_exception_only(type(err), err)).strip()
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
        write_json_atomic(result, record)
        results.append(result)
    return results


def compare(
    cohort: str = "isles2018",
    methods: str | list[str] = "all",
    size: str = "cpu",
    out: str = "compare_output",
    epochs: int | None = None,
    cases: int = 12,
    seed: int = 3,
    test_fold: int = 0,
    val_fold: int = 1,
    progress: bool = True,
    dataset_dir: str | None = None,
    datalist: str | None = None,
    overrides: dict | None = None,
    minutes: float | None = None,
    folds: int = 1,
    difficulty: float = DIFFICULTY,
) -> tuple[Path, list[dict]]:
    """Synthesise ``cohort`` (``cases`` patients, ``seed``, at ``difficulty``), or take a real dataset in its release
    layout (``dataset_dir``) or a datalist with patient-level folds (``datalist``, read in place), run ``methods``
    (``"all"`` or names from :func:`methods_of`) on one split or, with ``folds`` K ≥ 3, on each split of a K-fold
    cross-validation (:mod:`strokezoo.compare.crossval`: every study a test study once, the K splits' masks scored
    together), and write ``out/leaderboard.md``, ``.csv`` and ``dice.png``. ``folds`` 1: one split, test =
    ``test_fold``, validation = ``val_fold``, of a 4-fold datalist. Returns the leaderboard's path and the method
    results (a failed method has ``status`` ``"failed"`` and its ``error``; a trained one its ``best_val_dice``).
    ``overrides``: training config keys given to every bundle (e.g. another CPU recipe; part of the resume key).
    ``minutes``: a wall-clock budget per trained method besides the epochs (part of the resume key): each validates
    after every epoch and stops at the end of the first epoch past it (a bundle's stages share it equally); the
    epochs still set the schedules' length, and each method's result records the epochs it completed."""
    from .crossval import cv_splits, pool_splits
    from .report import write_leaderboard

    if cohort not in COHORTS:
        raise ValueError(f"unknown cohort {cohort!r}; choose from {sorted(COHORTS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {SIZES}")
    splits = cv_splits(folds, test_fold, val_fold)
    available = dict(methods_of(cohort))
    names = list(available) if methods == "all" else ([m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods))
    unknown = [m for m in names if m not in available]
    if unknown:
        raise ValueError(f"{unknown} do not run on {cohort}; choose from {list(available)}")
    out = Path(out)
    data, full_dl, listed = _cohort(cohort, out, cases, seed, difficulty, folds, dataset_dir, datalist)
    present = {e.get("fold") for e in listed.get("training", [])}
    needed = {f for s in splits for f in s}
    if folds > 1 and present != needed:
        raise ValueError(f"{full_dl}: {folds}-fold cross-validation needs the training entries in folds 0 to {folds - 1}, not {sorted(present, key=str)}")
    if not needed <= present:
        raise ValueError(f"{full_dl}: its training entries need folds {test_fold} (test) and {val_fold} (validation)")
    budget = epochs or (1 if size == "smoke" else COHORTS[cohort][3])
    per_split, test_ids = [], []
    for t, v in splits:
        split_out = out if folds == 1 else out / f"split{t}"
        per_split.append(run_split(cohort, names, size, budget, seed, data, full_dl, split_out, t, v, overrides, minutes, progress))
        test_ids.append([e["case_id"] for e in listed["training"] if e["fold"] == t])
    results = per_split[0] if folds == 1 else pool_splits(per_split, test_ids, full_dl, out)

    command = "strokezoo " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "strokezoo" else f"strokezoo.compare.compare({cohort!r}, ...)"
    n = len(listed["training"])
    if folds == 1:
        design = (
            f"- split: test = fold {test_fold} ({len(test_ids[0])} studies, never seen in training or model selection), "
            f"validation = fold {val_fold}, training = the other folds; n = {len(test_ids[0])} test studies"
        )
    else:
        design = (
            f"- design: {folds}-fold patient-level cross-validation. Split k tests fold k, keeps each method's network of the best "
            f"Dice on fold k + 1 (mod {folds}) and trains on the other {folds - 2}; every study is a test study once, and the "
            f"{folds} splits' test masks are scored together: n = {n} studies"
        )
    preamble = [f"# strokezoo compare: {cohort}", ""]
    if not (dataset_dir or datalist):
        preamble += ["Synthetic cohort: it ranks methods on synthetic physics, not on patients.", ""]
    preamble += [
        (
            f"- cohort: {cases} synthetic patients (seed {seed}, scale {SCALE}, difficulty {difficulty:g}), {n} studies, "
            f"{4 if folds == 1 else folds} patient-level folds"
            if not (dataset_dir or datalist)
            else f"- cohort: `{full_dl}` ({n} studies, patient-level folds)"
        ),
        design,
        f"- size: {size}; epochs: {budget} for every trained method (each stage of a bundle that trains in stages)"
        + (
            f", and at most {minutes:g} min of wall-clock each (validation after every epoch; stopped at the first epoch end past it, "
            "a bundle's stages sharing it equally; the epochs completed are in the table)"
            if minutes
            else ""
        ),
        f"- command: `{command}`",
        f"- machine: {_machine()}",
    ]
    ensemble = next((r for r in results if r["name"] == "ensemble" and r["status"] == "done"), None)
    if ensemble:
        preamble.append(f"- ensemble: mean lesion probability of {', '.join(ensemble['members'])}, > 0.5")
    write_leaderboard(results, out, preamble)
    return out / "leaderboard.md", results
