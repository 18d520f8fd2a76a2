"""stroke_ctp_pseudodwi_slnet2d: a real short end-to-end run on the synthetic ISLES 2018 cohort beats the untrained
networks (lesion Dice, pseudo-DWI PSNR), masks and pseudo-DWIs on the input grid, the paper's image-quality and
lesion-size tables, and one stage of the sequential variant that trains the generator alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from strokezoo.bundle_info import config_files, cpu_overrides

from conftest import bf16_fp32_mask_dice, infer_and_evaluate, tree_digest, untrained_checkpoint

BUNDLE = "stroke_ctp_pseudodwi_slnet2d"
CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / BUNDLE / "configs"
CPU = cpu_overrides(BUNDLE)


def test_end_to_end_training_beats_the_untrained_networks(trained, tmp_path):
    root, data, datalist = trained(BUNDLE)
    checkpoint = root / "models" / "fold0" / "model.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert {k.split(".")[0] for k in state} == {"extractor", "generator", "segmenter", "context_encoder"}
    digest = tree_digest(data)
    after = infer_and_evaluate(BUNDLE, root, data, datalist, checkpoint, tmp_path / "trained", amp=True)
    bf16_fp32_mask_dice(BUNDLE, root, data, datalist, checkpoint, tmp_path / "trained", tmp_path / "fp32")
    before = infer_and_evaluate(BUNDLE, root, data, datalist, untrained_checkpoint(BUNDLE, tmp_path / "untrained.pt"), tmp_path / "untrained", as_a_user=False)
    assert tree_digest(data) == digest

    m_after, m_before = after["metrics"], before["metrics"]
    assert m_after["dice"]["mean"] > 0.15 and m_after["dice"]["mean"] > m_before["dice"]["mean"] + 0.1, (m_after["dice"], m_before["dice"])
    assert m_after["psnr"]["mean"] > m_before["psnr"]["mean"], (m_after["psnr"], m_before["psnr"])
    assert {"ssim", "psnr", "ssim_lesion", "psnr_lesion"} <= set(m_after)
    groups = after["size_groups"]
    assert list(groups) == ["< 10 mL", "10–50 mL", "> 50 mL"] and sum(g["cases"] for g in groups.values()) == after["cases"]

    entries = [e for e in json.loads(datalist.read_text())["training"] if e["fold"] == 0]
    assert after["cases"] == len(entries)
    for e in entries:
        ref = nib.load(e["label"])
        for name, dtype in ((f"{e['case_id']}.nii.gz", np.uint8), (f"pseudo_dwi/{e['case_id']}.nii.gz", np.float32)):
            out = nib.load(tmp_path / "trained" / name)
            assert out.shape == ref.shape and np.allclose(out.affine, ref.affine, atol=1e-4) and out.get_data_dtype() == dtype, name
        mask = np.asarray(nib.load(tmp_path / "trained" / f"{e['case_id']}.nii.gz").dataobj)
        prob = np.asarray(nib.load(tmp_path / "trained" / f"{e['case_id']}_prob.nii.gz").dataobj)  # --save_probabilities True
        assert 0.0 <= prob.min() and prob.max() <= 1.0 and np.array_equal(prob > 0.5, mask > 0)

    # sequential variant, second stage: from the end-to-end checkpoint, one epoch of the generator alone
    stage = tmp_path / "sequential"
    shutil.copytree(root / "models", stage / "models")
    wf = ConfigWorkflow(
        config_file=config_files(BUNDLE, "train.json", "sequential.json"),
        workflow_type="train",
        bundle_root=str(stage),
        dataset_dir=str(data),
        datalist=str(datalist),
        epochs=1,
        train_parts=["generator"],
        **{"train#random_transforms": [], **CPU, "num_workers": 0},
    )
    wf.initialize()
    assert not wf.check_properties()
    assert wf.parser.get_parsed_content("key_metric_name") == "val_psnr_pseudo_dwi"
    wf.run()
    wf.finalize()
    trained_state = torch.load(stage / "models" / "fold0" / "model.pt", weights_only=True)
    changed = {k.split(".")[0] for k, v in trained_state.items() if not torch.equal(v, state[k])}
    assert changed == {"generator", "context_encoder"}, changed


def test_the_table_6_override_trains_on_every_fold(tmp_path):
    """full_training.json: the whole training set (every fold) minus the held-out validation patients, its model in
    models/all; train.json alone leaves fold k out entirely."""
    from monai.bundle import ConfigParser

    entries = [
        {"case_id": f"c{i}", "patient_id": f"p{i // 2}", "fold": (i // 2) % 4, "ctp": f"c{i}_ctp.nii.gz", "dwi": f"c{i}_dwi.nii.gz", "label": f"c{i}_ot.nii.gz"}
        for i in range(40)
    ]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"root": str(tmp_path), "training": entries, "testing": []}))
    splits = {}
    for files in (("train.json",), ("train.json", "full_training.json")):
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / f) for f in files])
        parser["datalist_path"], parser["fold"], parser["bundle_root"] = str(datalist), 2, str(tmp_path)
        train_set, val_set = parser.get_parsed_content("split")
        splits[files[-1]] = ({e["case_id"] for e in train_set}, {e["case_id"] for e in val_set}, parser.get_parsed_content("ckpt_dir"))
    every = {e["case_id"] for e in entries}
    fold2 = {e["case_id"] for e in entries if e["fold"] == 2}
    train_set, val_set, ckpt = splits["full_training.json"]
    assert train_set | val_set == every and not train_set & val_set and val_set  # every fold, validation held out
    assert {e["patient_id"] for e in entries if e["case_id"] in val_set}.isdisjoint({e["patient_id"] for e in entries if e["case_id"] in train_set})
    assert ckpt == str(tmp_path / "models" / "all")
    fold_train, fold_val, fold_ckpt = splits["train.json"]
    assert not (fold_train | fold_val) & fold2 and fold_ckpt == str(tmp_path / "models" / "fold2")
