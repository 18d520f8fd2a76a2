"""stroke_mri_residual_unet3d: the SPES override, the fold-ensemble step, a real short training run on the synthetic
SISS cohort that beats the untrained net, and masks on the input grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from strokezoo.bundle_info import cpu_overrides
from strokezoo.data.datalist import build_datalist

from conftest import bf16_fp32_mask_dice, fire_literal, infer_and_evaluate, readme_bundle_commands, tree_digest, untrained_checkpoint

BUNDLE = "stroke_mri_residual_unet3d"
CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / BUNDLE / "configs"
CPU = cpu_overrides(BUNDLE)


def test_spes_override_takes_seven_modalities_and_their_symmetric_copies(cohort, tmp_path):
    data, _ = cohort("isles2015-spes")
    datalist = tmp_path / "datalist.json"
    build_datalist(data, datalist, layout="isles2015-spes", folds=3)
    digest = tree_digest(data)
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "spes.json")],
        workflow_type="train",
        bundle_root=str(tmp_path),
        dataset_dir=str(data),
        datalist=str(datalist),
        **{**CPU, "num_patches": 10},
    )
    wf.initialize()
    assert not wf.check_properties()
    assert wf.parser.get_parsed_content("network_def").input_conv.in_channels == 14
    sample = wf.parser.get_parsed_content("train#dataset")[0]
    assert sample["image"].shape == (14, 24, 24, 16) and sample["label"].shape == (1, 24, 24, 16)
    assert tree_digest(data) == digest  # the symmetric cache went to bundle_root, not into the dataset
    assert any((tmp_path / "cache" / "symmetric").rglob("*.nii.gz"))


def test_training_beats_the_untrained_net_and_the_folds_make_one_ensemble(trained, tmp_path):
    root, data, datalist = trained(BUNDLE)
    ckpt = root / "models" / "fold0" / "model.pt"
    fold = torch.load(ckpt, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in fold.values())
    served = torch.load(root / "models" / "model.pt", weights_only=True)  # the folds trained so far: fold 0 alone
    assert served.keys() == {f"folds.0.{k}" for k in fold} and all(torch.equal(served[f"folds.0.{k}"], v) for k, v in fold.items())
    digest = tree_digest(data)
    after = infer_and_evaluate(BUNDLE, root, data, datalist, ckpt, tmp_path / "trained", amp=True)
    bf16_fp32_mask_dice(BUNDLE, root, data, datalist, ckpt, tmp_path / "trained", tmp_path / "fp32")
    before = infer_and_evaluate(BUNDLE, root, data, datalist, untrained_checkpoint(BUNDLE, tmp_path / "untrained.pt"), tmp_path / "untrained", as_a_user=False)
    assert tree_digest(data) == digest
    assert after["metrics"]["dice"]["mean"] > before["metrics"]["dice"]["mean"] + 0.1, (after["metrics"]["dice"], before["metrics"]["dice"])
    for e in (e for e in json.loads(datalist.read_text())["training"] if e["fold"] == 0):
        ref = nib.load(e["label"])
        for name, dtype in ((f"{e['case_id']}.nii.gz", np.uint8), (f"{e['case_id']}_prob.nii.gz", np.float32)):
            out = nib.load(tmp_path / "trained" / name)
            assert out.shape == ref.shape and np.allclose(out.affine, ref.affine, atol=1e-4) and out.get_data_dtype() == dtype

    # the whole-volume fast mode (fast.json): same grid, Dice close to the exact dense patch mode
    fast = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in ("inference.json", "evaluate.json", "fast.json")],
        workflow_type="inference",
        bundle_root=str(root),
        dataset_dir=str(data),
        datalist=str(datalist),
        ckpt_path=str(ckpt),
        output_dir=str(tmp_path / "fast"),
        metrics_dir=str(tmp_path / "fast" / "metrics"),
        **CPU,
    )
    fast.initialize()
    fast.run()
    fast.finalize()
    dice_fast = json.loads((tmp_path / "fast" / "metrics" / "summary.json").read_text())["metrics"]["dice"]["mean"]
    assert abs(dice_fast - after["metrics"]["dice"]["mean"]) < 0.1, (dice_fast, after["metrics"]["dice"]["mean"])

    # ensemble.json turns fold checkpoints into the one checkpoint inference.json loads (here: fold 0 only)
    def ensemble(**overrides) -> None:
        wf = ConfigWorkflow(config_file=str(CONFIGS / "ensemble.json"), workflow_type="infer", bundle_root=str(root), **overrides)
        wf.initialize()
        wf.run()

    ensemble(ensemble_folds=[0])
    infer = ConfigWorkflow(
        config_file=str(CONFIGS / "inference.json"),
        workflow_type="inference",
        bundle_root=str(root),
        dataset_dir=str(data),
        datalist=str(datalist),
        ensemble_folds=[0],
        **CPU,
    )
    infer.initialize()
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    infer.parser.get_parsed_content("network_def").load_state_dict(state)  # strict: every key of the one fold, nothing else
    with pytest.raises(RuntimeError) as err:
        ensemble()  # folds 1-3 were never trained
    assert "fold checkpoints missing" in str(err.value.__cause__)


def test_the_readme_testing_command_reads_the_released_testing_folder(cohort, tmp_path, monkeypatch):
    """The README's test-set command, ``--config_file "['configs/inference.json','configs/postprocessing.json']"
    --dataset_dir /data/SISS2015_Testing --datalist testing_datalist.json`` from the bundle folder: the testing release
    (no OT masks) becomes a datalist of its own beside the configs, every case is inferred, and the grid-searched
    pair of the override file replaces the config's."""
    import shutil

    from strokezoo.data.layouts import modality_of

    data, _ = cohort("isles2015-siss")
    testing = tmp_path / "SISS2015_Testing"
    shutil.copytree(data, testing)
    for p in list(testing.rglob("*.nii*")):
        if modality_of(p) == "label":
            p.unlink()
    bundle = tmp_path / "bundle"
    shutil.copytree(CONFIGS.parent, bundle, ignore=shutil.ignore_patterns("models", "eval", "datalist.json", "cache"))
    (bundle / "configs" / "postprocessing.json").write_text(json.dumps({"threshold": 0.4, "min_size": 50}, indent=4))
    readme = (CONFIGS.parent / "docs" / "README.md").read_text()
    assert (
        "--config_file \"['configs/inference.json','configs/postprocessing.json']\" --dataset_dir /data/SISS2015_Testing --datalist testing_datalist.json"
    ) in readme
    monkeypatch.chdir(bundle)
    wf = ConfigWorkflow(
        config_file=["configs/inference.json", "configs/postprocessing.json"],
        workflow_type="inference",
        dataset_dir=str(testing),
        datalist="testing_datalist.json",
    )
    entries = wf.parser.get_parsed_content("entries")
    listed = json.loads((bundle / "testing_datalist.json").read_text())
    assert not listed["training"] and len(listed["testing"]) == len(entries) == 3
    assert all("label" not in e and {"flair", "dwi"} <= set(e) for e in entries)
    assert (wf.parser.get_parsed_content("threshold"), wf.parser.get_parsed_content("min_size")) == (0.4, 50)


def test_the_readme_cross_validation_commands_parse_as_written(cohort, tmp_path, monkeypatch):
    """Each training and cross-validation command of the README, as written (data folder aside), from a copy of the
    bundle folder: its config files exist and merge, every override names a key, and the split it trains or
    evaluates on is the one the README says (the authors' scheme: the evaluated fold)."""
    import ast
    import shutil

    data, _ = cohort("isles2015-siss")
    bundle = tmp_path / "bundle"
    shutil.copytree(CONFIGS.parent, bundle, ignore=shutil.ignore_patterns("models", "eval", "datalist.json", "cache"))
    monkeypatch.chdir(bundle)
    commands = [c for c in readme_bundle_commands(BUNDLE) if "/data/SISS2015_Training" in c]
    assert len(commands) == 3  # training, cross-validation maps, the authors' early stopping
    for argv in commands:
        workflow, rest = argv[4], argv[5:]
        args = dict(zip(rest[::2], rest[1::2]))
        assert all(k.startswith("--") for k in args) and len(rest) % 2 == 0, argv
        files = args.pop("--config_file")
        files = ast.literal_eval(files) if files.startswith("[") else files
        assert all(Path(f).is_file() for f in ([files] if isinstance(files, str) else files)), files
        overrides = {k[2:]: fire_literal(v) for k, v in args.items()}
        assert overrides.pop("dataset_dir") == "/data/SISS2015_Training"
        wf = ConfigWorkflow(config_file=files, workflow_type="train" if workflow == "training" else "inference", dataset_dir=str(data), **overrides)
        for key in overrides:
            assert key in wf.parser.get(), (argv, key)  # an override of a key the config lacks would be silently ignored
        wf.initialize()  # (check_properties would build the datasets: test_bundles.py checks the properties)
        folds = {e["fold"] for e in json.loads(Path(wf.parser.get_parsed_content("datalist_path")).read_text())["training"]}
        if workflow == "training":
            train_set, val_set = wf.parser.get_parsed_content("split")
            train_folds, val_folds = {e["fold"] for e in train_set}, {e["fold"] for e in val_set}
            if "authors_early_stopping" in str(files):
                assert (train_folds, val_folds) == (folds - {0}, {0}), argv
            else:  # validation patients drawn from the training folds: fold 0 never seen
                assert train_folds | val_folds == folds - {0} and 0 not in val_folds, argv
        else:
            assert {e["fold"] for e in wf.parser.get_parsed_content("entries")} == {0} and wf.parser.get_parsed_content("amp") is False
            assert wf.parser.get_parsed_content("save_probabilities") is True


def test_preprocessing_keeps_the_brain_and_the_z_scores_under_offsets_stray_voxels_and_noise(cohort, tmp_path):
    """train.json's load transforms (mirror copies off: test_symmetric_modalities.py covers them) on a synthetic SISS
    case as released and on copies with a background offset, negative stray voxels, and a noisy background: the
    brain mask (from the named reference modality, before scaling) and the per-channel whole-volume z-scores hold.
    Before, the brain was "first channel > 0" after (x - min) / (p99.5 - min) scaling: one voxel at -5 made the
    whole background brain."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    data, _ = cohort("isles2015-siss")
    datalist = tmp_path / "datalist.json"
    build_datalist(data, datalist, layout="isles2015-siss", folds=3)
    entry = json.loads(datalist.read_text())["training"][0]
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser["symmetric_modalities"] = False
    preprocess = Compose(parser.get_parsed_content("load_transforms"))
    modalities = parser.get_parsed_content("modalities")
    raw = {m: np.asarray(nib.load(entry[m]).dataobj, dtype=np.float32) for m in modalities}
    rng = np.random.default_rng(0)

    def variant(name: str, change) -> dict:
        out = dict(entry)
        for m in modalities:
            img = nib.load(entry[m])
            out[m] = str(tmp_path / name / f"{m}.nii.gz")
            Path(out[m]).parent.mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(change(raw[m].copy()).astype(np.float32), img.affine), out[m])
        return preprocess(out)

    def stray(v):
        v[0, 0, 0] = v[-1, 3, 2] = -5.0
        return v

    clean = preprocess(dict(entry))
    brain = clean["brain"][0].numpy().astype(bool)
    assert np.array_equal(brain, raw["flair"] > 0)  # a clean zero background: the authors' test, voxel for voxel
    expected = np.stack([(raw[m] - raw[m].mean()) / raw[m].std() for m in modalities])
    assert np.allclose(clean["image"].numpy(), expected, atol=1e-4)
    offset = variant("offset", lambda v: v + 100.0)
    assert np.array_equal(offset["brain"][0].numpy().astype(bool), brain) and np.allclose(offset["image"].numpy(), clean["image"].numpy(), atol=1e-4)
    assert np.array_equal(variant("stray", stray)["brain"][0].numpy().astype(bool), brain)
    noisy = variant("noisy", lambda v: v + rng.normal(0.0, 0.02 * raw["flair"].max(), v.shape))
    assert (noisy["brain"][0].numpy().astype(bool) != brain).mean() < 0.005
