"""stroke_ctp_transformer_unet2d: a real short run of both training stages on the synthetic ISLES 2018 cohort
beats untrained models (the TFA map separates core from the rest; the whole method's Dice), masks and TFA maps on
the input grid, the Threshold baseline scored beside the model, the second stage's config and the fold ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow
from sklearn.metrics import roc_auc_score

from strokezoo.bundle_info import config_files, cpu_overrides

from conftest import bf16_fp32_mask_dice, infer_and_evaluate, tree_digest, untrained_checkpoint

BUNDLE = "stroke_ctp_transformer_unet2d"
CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / BUNDLE / "configs"
CPU = cpu_overrides(BUNDLE)


def tfa_auc(out: Path, entries: list[dict]) -> float:
    """ROC AUC of the saved TFA maps of ``entries`` against their reference cores, all voxels pooled."""
    scores, labels = [], []
    for e in entries:
        scores.append(np.asarray(nib.load(out / f"{e['case_id']}_tfa.nii.gz").dataobj, np.float32).ravel())
        labels.append(np.asarray(nib.load(e["label"]).dataobj).ravel() > 0)
    return float(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))


def stage_b_workflow(root: Path, data: Path, datalist: Path, **keys) -> ConfigWorkflow:
    """Stage B's training config (train.json) at CPU size, without loader workers, initialised on ``root``."""
    wf = ConfigWorkflow(
        config_file=config_files(BUNDLE, "train.json"),
        workflow_type="train",
        bundle_root=str(root),
        dataset_dir=str(data),
        datalist=str(datalist),
        **{**CPU, "num_workers": 0, **keys},
    )
    wf.initialize()
    return wf


def test_both_stages_beat_untrained_models(trained, tmp_path, monkeypatch):
    root, data, datalist = trained(BUNDLE)
    fold = root / "models" / "fold0"
    for name in ("transformer.pt", "model.pt"):
        assert all(isinstance(v, torch.Tensor) for v in torch.load(fold / name, weights_only=True).values())
    served = torch.load(root / "models" / "model.pt", weights_only=True)  # fold 0's two parts: the folds trained so far
    for part, name in (("transformer", "transformer.pt"), ("unet", "model.pt")):
        trained_part = torch.load(fold / name, weights_only=True)
        assert all(torch.equal(served[f"folds.0.{part}.{k}"], v) for k, v in trained_part.items()), part
    assert not any(k.startswith("folds.1.") for k in served)
    digest = tree_digest(data)
    after = infer_and_evaluate(BUNDLE, root, data, datalist, fold / "model.pt", tmp_path / "trained", save_tfa=True, amp=True)
    bf16_fp32_mask_dice(BUNDLE, root, data, datalist, fold / "model.pt", tmp_path / "trained", tmp_path / "fp32")
    untrained_transformer = untrained_checkpoint(BUNDLE, tmp_path / "untrained_transformer.pt", "train_transformer.json")
    before = infer_and_evaluate(
        BUNDLE,
        root,
        data,
        datalist,
        untrained_checkpoint(BUNDLE, tmp_path / "untrained.pt"),
        tmp_path / "untrained",
        as_a_user=False,
        save_tfa=True,
        transformer_path=str(untrained_transformer),
    )
    assert tree_digest(data) == digest

    entries = [e for e in json.loads(datalist.read_text())["training"] if e["fold"] == 0]
    auc_after, auc_before = tfa_auc(tmp_path / "trained", entries), tfa_auc(tmp_path / "untrained", entries)
    assert auc_after > 0.75 and auc_after > auc_before + 0.15, (auc_after, auc_before)
    dice_after, dice_before = after["metrics"]["dice"]["mean"], before["metrics"]["dice"]["mean"]
    assert dice_after > dice_before, (dice_after, dice_before)

    # the Threshold baseline (TFA >= threshold_baseline, 0.5: the paper gives none) is scored beside the model
    cut = json.loads((CONFIGS / "evaluate.json").read_text())["threshold_baseline"]
    assert cut == 0.5
    threshold = json.loads((tmp_path / "trained" / "metrics" / "threshold" / "summary.json").read_text())
    assert threshold["cases"] == after["cases"] == len(entries)
    for e in entries:
        ref = nib.load(e["label"])
        for name, dtype in ((f"{e['case_id']}.nii.gz", np.uint8), (f"{e['case_id']}_tfa.nii.gz", np.float32), (f"threshold/{e['case_id']}.nii.gz", np.uint8)):
            out = nib.load(tmp_path / "trained" / name)
            assert out.shape == ref.shape and np.allclose(out.affine, ref.affine, atol=1e-4) and out.get_data_dtype() == dtype, name
        tfa = np.asarray(nib.load(tmp_path / "trained" / f"{e['case_id']}_tfa.nii.gz").dataobj)
        baseline = np.asarray(nib.load(tmp_path / "trained" / "threshold" / f"{e['case_id']}.nii.gz").dataobj)
        assert tfa.min() >= 0.0 and tfa.max() <= 1.0 and np.array_equal(baseline > 0, tfa >= cut)  # AsDiscreted(threshold=cut)

    # the second stage's config again, once its transformer exists (on one training and one validation case: each
    # volume's TFA map is made as the datasets are built). The smoke run above computed and kept those maps, so a
    # second run with the same settings and part-A weights reads every one back; another TFA step, or other part-A
    # weights, compute them anew.
    from strokezoo.transforms import tfa_inputs

    computed = []
    real_tfa_map = tfa_inputs.tfa_map
    monkeypatch.setattr(tfa_inputs, "tfa_map", lambda *args, **kwargs: computed.append(1) or real_tfa_map(*args, **kwargs))

    def stage_b_maps_computed(**keys) -> int:
        computed.clear()
        wf = stage_b_workflow(root, data, datalist, **{"train#dataset#data": "$@split[0][:1]", "validate#dataset#data": "$@split[1][:1]", **keys})
        assert not wf.check_properties()
        wf.parser.get_parsed_content("train#dataset")
        wf.parser.get_parsed_content("validate#dataset")
        return len(computed)

    assert stage_b_maps_computed() == 0
    step = json.loads((CONFIGS / "inference.json").read_text())["tfa_step"]
    assert stage_b_maps_computed(tfa_step=2 * step) == 2
    assert stage_b_maps_computed(transformer_path=str(untrained_transformer)) == 2

    # ensemble.json joins each fold's two checkpoints into the one that inference.json loads (here: fold 0 only)
    ens = ConfigWorkflow(config_file=str(CONFIGS / "ensemble.json"), workflow_type="infer", bundle_root=str(root), ensemble_folds=[0])
    ens.initialize()
    ens.run()
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
    infer.parser.get_parsed_content("network_def").load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))  # strict


def test_stage_b_refuses_to_start_without_its_transformer(cohort12, tmp_path):
    data, datalist = cohort12(BUNDLE)
    wf = stage_b_workflow(tmp_path, data, datalist)
    try:
        wf.parser.get_parsed_content("train#deterministic_transforms")
    except Exception as e:  # MONAI wraps the error of the component it instantiates
        chain = [e]
        while chain[-1].__cause__ is not None:
            chain.append(chain[-1].__cause__)
        assert any("transformer checkpoint not found" in str(c) and "fold0" in str(c) for c in chain), chain
    else:
        raise AssertionError("stage B started without a transformer")
