"""The two Gómez 2023 thesis bundles: the APIS and ablation overrides, a real short training run that beats the
untrained net, and inference on the input grid. Properties, metadata and DDP: test_bundles.py."""

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

from conftest import bf16_fp32_mask_dice, infer_and_evaluate, tree_digest, untrained_checkpoint

REPO = Path(__file__).resolve().parents[1]
BUNDLES = ("stroke_mri_crossattention_unet2d", "stroke_ct_boundary_attention_unet2d")


def configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


def test_apis_override_reads_the_apis_layout(tmp_path, cohort):
    data, _ = cohort("apis")
    datalist = tmp_path / "datalist.json"
    build_datalist(data, datalist, layout="apis", folds=2)
    bundle = "stroke_ct_boundary_attention_unet2d"
    files = [str(configs(bundle) / "train.json"), str(configs(bundle) / "apis.json")]
    wf = ConfigWorkflow(
        config_file=files, workflow_type="train", bundle_root=str(tmp_path), dataset_dir=str(data), datalist=str(datalist), **cpu_overrides(bundle)
    )
    wf.initialize()
    assert not wf.check_properties()
    assert wf.parser.get_parsed_content("network_def").encoder.blocks[0].conv1.conv.in_channels == 1  # NCCT only
    sample = wf.parser.get_parsed_content("train#dataset")[0]
    assert sample["image"].shape == (1, 64, 64) and set(sample["label"].unique().tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("override,attention,supervision", [("unet.json", False, False), ("unet_cw.json", False, False), ("unet_cw_ds.json", False, True)])
def test_ablation_overrides(bundle, override, attention, supervision, tmp_path):
    files = [str(configs(bundle) / "train.json"), str(configs(bundle) / override)]
    wf = ConfigWorkflow(config_file=files, workflow_type="train", bundle_root=str(tmp_path))
    wf.initialize()
    net = wf.parser.get_parsed_content("network_def")
    assert net.cross_attention is attention and net.deep_supervision is supervision
    loss = wf.parser.get_parsed_content("loss")
    assert (loss.loss.class_weights is None) is (override == "unet.json")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_training_beats_the_untrained_net_and_inference_is_on_the_input_grid(bundle, trained, tmp_path):
    root, data, datalist = trained(bundle)
    ckpt = root / "models" / "model.pt"
    state = torch.load(ckpt, weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())

    untrained = untrained_checkpoint(bundle, tmp_path / "untrained.pt")
    digest = tree_digest(data)
    dice_trained = infer_and_evaluate(bundle, root, data, datalist, ckpt, tmp_path / "trained", amp=True)["metrics"]["dice"]["mean"]
    bf16_fp32_mask_dice(bundle, root, data, datalist, ckpt, tmp_path / "trained", tmp_path / "fp32")
    dice_untrained = infer_and_evaluate(bundle, root, data, datalist, untrained, tmp_path / "untrained", as_a_user=False)["metrics"]["dice"]["mean"]
    assert tree_digest(data) == digest
    assert dice_trained > dice_untrained + 0.1, (dice_trained, dice_untrained)

    entries = [e for e in json.loads(datalist.read_text())["training"] if e["fold"] == 0]
    for e in entries:
        ref = nib.load(e["label"])
        for name, dtype in ((f"{e['case_id']}.nii.gz", np.uint8), (f"{e['case_id']}_prob.nii.gz", np.float32)):
            out = nib.load(tmp_path / "trained" / name)
            assert out.shape == ref.shape and np.allclose(out.affine, ref.affine, atol=1e-4)
            assert out.get_data_dtype() == dtype
        mask = np.asarray(nib.load(tmp_path / "trained" / f"{e['case_id']}.nii.gz").dataobj)
        assert set(np.unique(mask)) <= {0, 1}


def test_the_boundary_bundle_merges_the_lesion_classes_before_thresholding_as_its_metadata_says():
    """p = (0.40, 0.30, 0.30): background by the three-class argmax, lesion by the bundle's rule 1 - p(background) > 0.5,
    in inference and in validation alike; the metadata states the rule the code applies."""
    from monai.bundle import ConfigParser

    bundle = "stroke_ct_boundary_attention_unet2d"
    assert "1 - p(background) > threshold" in json.loads((configs(bundle) / "metadata.json").read_text())["pred_classes"]
    probs = torch.tensor([0.40, 0.30, 0.30]).reshape(3, 1, 1, 1)
    logits = torch.log(probs)  # softmax(log p) = p
    assert int(probs.argmax()) == 0
    for name, key in (("inference.json", "lesion_probability"), ("train.json", "validate#lesion_transforms#2")):
        parser = ConfigParser()
        parser.read_config(str(configs(bundle) / name))
        merge = parser.get_parsed_content(key)
        lesion = merge({"pred": torch.softmax(logits, 0)})["pred"]
        assert torch.allclose(lesion, torch.tensor(0.60).reshape(1, 1, 1, 1)) and bool(lesion > 0.5), name
