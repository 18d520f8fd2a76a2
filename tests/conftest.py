"""Shared fixtures: small synthetic cohorts of every release layout, generated once per test session."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from strokezoo.bundle_info import BUNDLES, config_files, cpu_overrides
from strokezoo.data.datalist import build_datalist
from strokezoo.data.layouts import LAYOUTS
from strokezoo.synth import synthesize_cohort

SMALL = {"cases": 3, "seed": 7, "scale": 0.3, "workers": 1}


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """``cohort(layout)`` -> (root, summary) of a 3-case, scale-0.3 cohort, cached per session."""
    made: dict[str, tuple[Path, dict]] = {}

    def get(layout: str) -> tuple[Path, dict]:
        if layout not in made:
            root = tmp_path_factory.mktemp(layout)
            made[layout] = (root, synthesize_cohort(layout, root, **SMALL))
        return made[layout]

    return get


def tree_digest(root: Path) -> str:
    """Hash of every file's path, size and bytes under ``root``: proves that nothing was written there."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


ALL_LAYOUTS = sorted(LAYOUTS)


#: matrix-size factor of a bundle's 12-case cohort where it is not 0.4
COHORT12_SCALE: dict[str, float] = {"stroke_ctp_transformer_unet2d": 0.3, "stroke_mri_residual_unet3d": 0.3}


@pytest.fixture(scope="session")
def cohort12(tmp_path_factory):
    """``cohort12(bundle)`` -> (dataset_root, datalist) of a 12-case cohort of the bundle's layout, 4 folds, at scale
    0.4 (:data:`COHORT12_SCALE`: smaller for a bundle whose tests need it)."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(bundle: str):
        if bundle not in made:
            tmp = tmp_path_factory.mktemp(f"{bundle}_data")
            layout = BUNDLES[bundle][0]
            data = tmp / "data"
            synthesize_cohort(layout, data, cases=12, seed=3, scale=COHORT12_SCALE.get(bundle, 0.4), difficulty=0.0, workers=1, test_fraction=0.0)
            datalist = tmp / "datalist.json"
            build_datalist(data, datalist, layout=layout, folds=4)
            made[bundle] = (data, datalist)
        return made[bundle]

    return get


def bundle_run(run_id: str | None, keys: dict) -> list[str]:
    """``-m monai.bundle run [run_id] --key value ...``, as a user types it: paths, strings and numbers as they are,
    booleans as fire reads them (``True``), lists and dicts as JSON. Prepend the interpreter (or torchrun)."""
    flags = []
    for k, v in keys.items():
        flags += [f"--{k}", json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)]
    return ["-m", "monai.bundle", "run", *([run_id] if run_id else []), *flags]


REPO = Path(__file__).resolve().parents[1]


def strokezoo_cli(*args) -> subprocess.CompletedProcess:
    """``strokezoo ARGS`` run in this process (:func:`strokezoo.cli.main` under that ``sys.argv``), its stdout, stderr
    and exit status captured as a subprocess's would be (an uncaught exception: its traceback on stderr, status 1).
    The same code path as the installed command, without a second interpreter and its 6 s of imports (MONAI's);
    ``test_cli.py::test_the_installed_command_runs_as_a_process`` runs the command itself."""
    import contextlib
    import io
    import traceback
    import warnings
    from unittest import mock

    from strokezoo import cli

    argv = ["strokezoo", *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), mock.patch.object(sys, "argv", argv), warnings.catch_warnings():
        warnings.simplefilter("default")  # as the interpreter shows them: each once per place, on stderr
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: err.write(
            warnings.formatwarning(message, category, filename, lineno, line)
        )
        try:
            cli.main()
        except SystemExit as e:
            if isinstance(e.code, str):
                err.write(e.code + "\n")
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception:  # noqa: BLE001 - as the interpreter would: the traceback, status 1
            err.write(traceback.format_exc())
            code = 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def bundle_cache(tmp_path_factory):
    """``bundle_cache(root)`` makes ``<root>/cache`` a link to one folder of the session (shared by the pytest-xdist
    workers), so that the bundle roots of a session share their caches: the mirrored modalities of
    ``SymmetricModalitiesd``, keyed by the images' content and written atomically, so the workers' identical cohorts
    are registered once in all, not by every run that reads them."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "bundle_cache"
    shared.mkdir(exist_ok=True)

    def link(root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / "cache").symlink_to(shared, target_is_directory=True)
        return root

    return link


def train_as_a_user(bundle: str, data: Path, datalist: Path, root: Path, epochs: int) -> None:
    """Train ``bundle`` as docs/bundles.md says for a first try, in a copy of the bundle folder (``root``, the working
    directory): ``python -m monai.bundle run training --config_file "['configs/<stage>', ..., 'configs/smoke.json']"``
    for each training stage in turn (with the bundle's smoke override files), adding only ``--dataset_dir``, the
    datalist, the epochs and what :func:`strokezoo.bundle_run.train_bundle` sets (validation fold 0 every 5 epochs, no
    augmentation)."""
    import shutil

    shutil.copytree(REPO / "bundles" / bundle, root, ignore=shutil.ignore_patterns("models", "eval", "cache", "datalist.json"), dirs_exist_ok=True)
    for stage in BUNDLES[bundle].stages:
        files = [f"configs/{stage}", *(f"configs/{o}" for o in BUNDLES[bundle].overrides), "configs/smoke.json"]
        keys = {"config_file": files, "dataset_dir": data, "datalist": datalist, "epochs": epochs, "val_interval": min(5, epochs)}
        cmd = [sys.executable, *bundle_run("training", {**keys, "val_fold": 0, "fold": 0, "train#random_transforms": []})]
        r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr[-3000:]}"


@pytest.fixture(scope="session")
def trained(tmp_path_factory, cohort12, bundle_cache):
    """``trained(bundle)`` -> (bundle_root, dataset_root, datalist) after the bundle's smoke run (its ``smoke_epochs``)
    with ``python -m monai.bundle run training`` from the bundle's folder (:func:`train_as_a_user`), cached."""
    done: dict[str, tuple[Path, Path, Path]] = {}

    def get(bundle: str):
        if bundle not in done:
            data, datalist = cohort12(bundle)
            digest = tree_digest(data)
            root = bundle_cache(tmp_path_factory.mktemp(bundle) / "bundle")
            train_as_a_user(bundle, data, datalist, root, epochs=BUNDLES[bundle].epochs)
            assert tree_digest(data) == digest, "training wrote into the dataset root"
            done[bundle] = (root, data, datalist)
        return done[bundle]

    return get


#: Seconds the longest tests took in one `make test` run (2 cores), by test (a parametrised test's own id, else its
#: function). Only the order of the run depends on them: started first, they do not leave one worker busy long after the other ran out of tests.
LONGEST_TESTS_S = {
    "test_both_stages_beat_untrained_models": 133,
    "test_training_beats_the_untrained_net_and_the_folds_make_one_ensemble": 88,
    "test_end_to_end_training_beats_the_untrained_networks": 85,
    "test_training_beats_the_untrained_net_on_both_modalities_and_both_raters": 77,
    "test_training_beats_the_untrained_net_and_inference_is_on_the_input_grid[stroke_ct_boundary_attention_unet2d]": 67,
    "test_multi_gpu_config_runs_two_processes_on_cpu[stroke_ctp_transformer_unet2d]": 65,
    "test_training_beats_the_untrained_net_and_inference_is_on_the_input_grid[stroke_mri_crossattention_unet2d]": 62,
    "test_demo_writes_report": 58,
    "test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal[stroke_mri_residual_unet3d]": 39,
    "test_multi_gpu_config_runs_two_processes_on_cpu[stroke_ctp_pseudodwi_slnet2d]": 35,
    "test_multi_gpu_config_runs_two_processes_on_cpu[stroke_mri_residual_unet3d]": 34,
    "test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal[stroke_ctp_transformer_unet2d]": 33,
    "test_an_exported_zip_passes_the_model_zoo_premerge_checks": 27,
    "test_an_enhanced_multi_frame_study_segments_to_the_mask_of_its_single_frame_twin": 15,
    "test_an_anonymised_siemens_study_segments_and_its_seg_reads_back": 14,
    "test_multi_gpu_config_runs_two_processes_on_cpu[stroke_ct_boundary_attention_unet2d]": 24,
    "test_weights_download_by_hash_and_bundle_download_and_load": 19,
    "test_a_training_run_killed_mid_epoch_resumes_to_the_planned_epochs": 16,
    "test_segment_from_dicom_writes_the_mask_on_the_series_grid_and_a_seg_of_it[stroke_ctp_transformer_unet2d]": 14,
    "test_exported_bundle_runs_inference_without_strokezoo": 13,
    "test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal[stroke_dwi_crossdomain_unet2d]": 12,
    "test_a_training_run_shows_a_progress_bar_and_logs_to_tensorboard_and_mlflow": 12,
    "test_a_tiny_comparison_scores_every_method_as_strokezoo_evaluate_does": 10,
    "test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal[stroke_ct_boundary_attention_unet2d]": 10,
    "test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal[stroke_ctp_pseudodwi_slnet2d]": 10,
    "test_the_readme_command_runs_as_written": 10,
    "test_table_2_fh_star_trains_the_synthesis_without_l_e_then_a_cross_entropy_unet": 9,
    "test_cohort_statistics": 9,
    "test_the_check_environment_has_no_strokezoo": 9,
    "test_the_evaluated_fold_is_held_out_of_training_and_validation": 8,
    "test_difficulty_lowers_the_threshold_rule": 8,
    "test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal[stroke_mri_crossattention_unet2d]": 8,
}


def pytest_collection_modifyitems(config, items):
    """Share the longest tests out before the run starts: pytest-xdist's worksteal hands each of the ``-n`` workers a
    contiguous share of the collected tests (then idle workers steal from the end of the others' queues), so the
    shares are built longest-first onto the least-loaded worker, equal in count, and laid end to end."""
    # the workers collect and order the tests (the controller only hands them out), and pytest-xdist clears their
    # --numprocesses; the count it tells them is in the environment
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    seconds = {id(item): LONGEST_TESTS_S.get(item.name, LONGEST_TESTS_S.get(getattr(item, "originalname", item.name), 0)) for item in items}
    ordered = sorted(items, key=lambda item: -seconds[id(item)])
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    size = -(-len(items) // workers)
    for item in ordered:
        k = min((k for k in range(workers) if len(shares[k]) < size), key=lambda k: load[k])
        shares[k].append(item)
        load[k] += seconds[id(item)]
    items[:] = [item for share in shares for item in share]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    """With pytest-xdist, two workers share the two CI cores: more torch threads than cores makes every
    conv step wait on the others (many times slower), so each worker computes on one thread, and so does every
    process it starts (``python -m monai.bundle run``, ``strokezoo``, torchrun's ranks), through OMP_NUM_THREADS."""
    import torch

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
    yield


def untrained_checkpoint(bundle: str, path: Path, config: str = "train.json") -> Path:
    """Save the CPU-sized network of ``bundle``'s ``config``, freshly initialised (seed 0), as a state dict at ``path``."""
    import torch
    from monai.bundle import ConfigWorkflow

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    wf = ConfigWorkflow(config_file=config_files(bundle, config), workflow_type="train", bundle_root=str(path.parent), **cpu_overrides(bundle))
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), path)
    return path


def infer_and_evaluate(bundle: str, root: Path, data: Path, datalist: Path, checkpoint: Path, out: Path, as_a_user: bool = True, **extra) -> dict:
    """Run the bundle's inference.json + evaluate.json (and its demo overrides) on the validation fold with the
    CPU-sized network (``extra``: more config keys); returns the summary. ``as_a_user``: with ``python -m monai.bundle
    run evaluating`` in a subprocess, as a user would; otherwise the same ``monai.bundle.run("evaluating", ...)`` in
    this process (for the runs a test compares against: an untrained net, the fp32 twin of a bf16 run), which spares
    a second interpreter start and its imports."""
    keys = {"config_file": config_files(bundle, "inference.json", "evaluate.json"), "bundle_root": root, "dataset_dir": data, "datalist": datalist}
    keys |= {"ckpt_path": checkpoint, "output_dir": out, "metrics_dir": out / "metrics", "save_probabilities": True, "num_workers": 0}
    keys |= {**cpu_overrides(bundle), **extra}
    if as_a_user:
        subprocess.run([sys.executable, *bundle_run("evaluating", keys)], check=True, capture_output=True, cwd=out.parent)
    else:
        from monai.bundle import run

        run("evaluating", **{k: str(v) if isinstance(v, Path) else v for k, v in keys.items()})
    return json.loads((out / "metrics" / "summary.json").read_text())


def bf16_fp32_mask_dice(bundle: str, root: Path, data: Path, datalist: Path, checkpoint: Path, bf16_out: Path, out: Path, **extra) -> float | None:
    """For a bundle whose inference may default to bf16 (``amp`` not false in its inference.json): the Dice between the
    masks of a bf16 inference already written to ``bf16_out`` (``amp`` True) and an fp32 run of the same weights on the
    same cases into ``out`` (``amp`` False), pooled over every mask (the uint8 files at the top of the output folders),
    which must be at least 0.99 (the rule: a bundle whose bf16 masks agree with fp32 below Dice 0.99 defaults to
    fp32). Printed, so that ``pytest -s`` shows each bundle's figure. A bundle that defaults to fp32 has nothing to
    check (None): its fp32 run is not made."""
    import nibabel as nib
    import numpy as np

    default = json.loads((Path(config_files(bundle, "inference.json")[0])).read_text())["amp"]
    if default is False:
        print(f"{bundle}: inference defaults to fp32; no bf16 default to check")
        return None
    infer_and_evaluate(bundle, root, data, datalist, checkpoint, out, as_a_user=False, amp=False, **extra)
    inter = total = 0
    masks = sorted(p.name for p in out.glob("*.nii.gz") if nib.load(p).get_data_dtype() == np.uint8)
    assert masks and masks == sorted(p.name for p in bf16_out.glob("*.nii.gz") if nib.load(p).get_data_dtype() == np.uint8)
    for name in masks:
        a, b = (np.asarray(nib.load(d / name).dataobj) > 0 for d in (bf16_out, out))
        inter, total = inter + int((a & b).sum()), total + int(a.sum() + b.sum())
    dice = 1.0 if total == 0 else 2 * inter / total
    print(f"bf16 vs fp32 masks of {bundle}: Dice {dice:.4f} over {len(masks)} masks; default amp {default!r}")
    assert dice >= 0.99, f"{bundle}: bf16 masks agree with fp32 to Dice {dice:.4f} < 0.99, yet amp defaults to {default!r}"
    return dice


def readme_bundle_commands(bundle: str) -> list[list[str]]:
    """The ``python -m monai.bundle run`` commands of a bundle README's bash blocks (loop bodies with ``$k`` as 0),
    split as the shell splits them."""
    import re
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "bundles" / bundle / "docs" / "README.md").read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()]
    commands = []
    for line in lines:
        line = re.sub(r"^for k in [0-9 ]+; do (.*); done$", r"\1", line.strip()).replace("$k", "0")
        if line.startswith("python -m monai.bundle run"):
            commands.append(shlex.split(line))
    return commands


def fire_literal(text: str):
    """A command-line value as ``monai.bundle run`` (fire) reads it: a Python literal where it is one, else the text."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
