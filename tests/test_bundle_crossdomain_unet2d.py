"""stroke_dwi_crossdomain_unet2d: the variant overrides, two-channel targets, a real short training run on the
two-rater cohort that beats the untrained net, and per-modality masks on the input grid scored against R1 and R2."""

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

BUNDLE = "stroke_dwi_crossdomain_unet2d"
CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / BUNDLE / "configs"
CPU = cpu_overrides(BUNDLE)


@pytest.fixture(scope="module")
def two_rater_datalist(cohort, tmp_path_factory):
    data, _ = cohort("isles2022")
    datalist = tmp_path_factory.mktemp("crossdomain") / "datalist.json"
    build_datalist(data, datalist, layout="isles2022", folds=3)  # one case each: validation (0), test (1), training (2)
    return data, datalist


@pytest.mark.parametrize(
    "override,modalities,decoder_attention,encoder_attention",
    [
        (None, ["adc", "dwi"], True, False),
        ("dual_v2.json", ["adc", "dwi"], False, True),
        ("dual_v3.json", ["adc", "dwi"], True, True),
        ("unimodal_adc.json", ["adc"], True, False),
        ("unimodal_dwi.json", ["dwi"], True, False),
    ],
)
def test_variants_are_small_overrides_with_their_own_inputs_and_targets(
    override, modalities, decoder_attention, encoder_attention, two_rater_datalist, tmp_path
):
    data, datalist = two_rater_datalist
    files = [str(CONFIGS / "train.json"), str(CONFIGS / "two_rater.json")] + ([str(CONFIGS / override)] if override else [])
    wf = ConfigWorkflow(config_file=files, workflow_type="train", bundle_root=str(tmp_path), dataset_dir=str(data), datalist=str(datalist), **CPU)
    wf.initialize()
    assert not wf.check_properties()
    net = wf.parser.get_parsed_content("network_def")
    assert (net.modalities, net.decoder_attention, net.encoder_attention) == (len(modalities), decoder_attention, encoder_attention)
    # one input channel and one target channel per modality, in slices of the CPU size
    sample = wf.parser.get_parsed_content("train#dataset")[0]
    assert sample["image"].shape == sample["label"].shape == (len(modalities), CPU["image_size"], CPU["image_size"])


def test_targets_are_the_raters_masks_per_modality(two_rater_datalist, tmp_path):
    data, datalist = two_rater_datalist
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "two_rater.json")],
        workflow_type="train",
        bundle_root=str(tmp_path),
        dataset_dir=str(data),
        datalist=str(datalist),
        **CPU,
    )
    wf.initialize()
    val = wf.parser.get_parsed_content("validate#dataset")
    entries = {e["case_id"]: e for e in json.loads(datalist.read_text())["training"]}
    for item in val:
        e = entries[item["case_id"]]
        for c, key in enumerate(("label_r1_adc", "label_r1_dwi")):
            assert np.array_equal(np.asarray(item["label"][c]) > 0, np.asarray(nib.load(e[key]).dataobj) > 0)
    unimodal = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in ("train.json", "two_rater.json", "unimodal_dwi.json")],
        workflow_type="train",
        bundle_root=str(tmp_path),
        dataset_dir=str(data),
        datalist=str(datalist),
        **CPU,
    )
    unimodal.initialize()
    item = unimodal.parser.get_parsed_content("validate#dataset")[0]
    assert item["image"].shape[0] == item["label"].shape[0] == 1
    assert np.array_equal(np.asarray(item["label"][0]) > 0, np.asarray(nib.load(entries[item["case_id"]]["label_r1_dwi"]).dataobj) > 0)
    default = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"), workflow_type="train", bundle_root=str(tmp_path), dataset_dir=str(data), datalist=str(datalist), **CPU
    )
    default.initialize()
    item = default.parser.get_parsed_content("validate#dataset")[0]
    consensus = np.asarray(nib.load(entries[item["case_id"]]["label"]).dataobj) > 0
    assert all(np.array_equal(np.asarray(item["label"][c]) > 0, consensus) for c in range(2))  # ISLES 2022: one mask, both heads


def test_training_beats_the_untrained_net_on_both_modalities_and_both_raters(trained, tmp_path):
    root, data, datalist = trained(BUNDLE)
    ckpt = root / "models" / "model.pt"
    assert all(isinstance(v, torch.Tensor) for v in torch.load(ckpt, weights_only=True).values())

    untrained = untrained_checkpoint(BUNDLE, tmp_path / "untrained.pt")
    digest = tree_digest(data)
    # the shared short run (strokezoo.bundle_run.train_bundle) holds out only fold 0 (fold = val_fold = 0): score that fold
    after = infer_and_evaluate(BUNDLE, root, data, datalist, ckpt, tmp_path / "trained", amp=True, fold=0)
    bf16_fp32_mask_dice(BUNDLE, root, data, datalist, ckpt, tmp_path / "trained", tmp_path / "fp32", fold=0)
    before = infer_and_evaluate(BUNDLE, root, data, datalist, untrained, tmp_path / "untrained", as_a_user=False, fold=0)
    assert tree_digest(data) == digest

    def dice(s: dict, m: str, r: str) -> float:
        return s["metrics"][m][r]["dice"]["mean"]

    for r in ("R1", "R2"):  # R2 was never seen in training
        assert np.mean([dice(after, m, r) for m in ("adc", "dwi")]) > np.mean([dice(before, m, r) for m in ("adc", "dwi")]) + 0.1, (
            after["metrics"],
            before["metrics"],
        )
        assert dice(after, "dwi", r) > dice(before, "dwi", r) + 0.1
    assert set(after["agreement"]) >= {"kappa_adc_R1_R2", "kappa_dwi_R1_R2", "kappa_R1_adc_dwi", "kappa_R2_adc_dwi"}
    assert (tmp_path / "trained" / "metrics" / "bland_altman.png").exists()

    fold0 = [e for e in json.loads(datalist.read_text())["training"] if e["fold"] == 0]
    assert after["cases"] == len(fold0)
    for e in fold0:
        ref = nib.load(e["label"])
        for m in ("adc", "dwi"):
            for name, dtype in ((f"{e['case_id']}_{m}.nii.gz", np.uint8), (f"{e['case_id']}_{m}_prob.nii.gz", np.float32)):
                out = nib.load(tmp_path / "trained" / name)
                assert out.shape == ref.shape and np.allclose(out.affine, ref.affine, atol=1e-4) and out.get_data_dtype() == dtype
            assert set(np.unique(np.asarray(nib.load(tmp_path / "trained" / f"{e['case_id']}_{m}.nii.gz").dataobj))) <= {0, 1}


def test_the_evaluated_fold_is_held_out_of_training_and_validation(cohort12, tmp_path):
    """Gómez et al. (MICCAI 2023, Sec. 3) score a test set never seen in training or model selection: ``fold`` is
    left out of both, and ``evaluate.json`` scores exactly its cases."""
    data, datalist = cohort12(BUNDLE)
    entries = json.loads(datalist.read_text())["training"]
    files = [str(CONFIGS / "train.json"), str(CONFIGS / "two_rater.json")]
    train = ConfigWorkflow(config_file=files, workflow_type="train", bundle_root=str(tmp_path), dataset_dir=str(data), datalist=str(datalist), **CPU)
    assert (train.parser.get_parsed_content("val_fold"), train.parser.get_parsed_content("fold")) == (0, 1)
    trained_on = {e["case_id"] for e in train.parser.get_parsed_content("train#dataset#data")}
    selected_on = {e["case_id"] for e in train.parser.get_parsed_content("validate#dataset#data")}
    infer = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in ("inference.json", "evaluate.json", "two_rater.json")],
        workflow_type="inference",
        bundle_root=str(tmp_path),
        dataset_dir=str(data),
        datalist=str(datalist),
        **CPU,
    )
    scored = {e["case_id"] for e in infer.parser.get_parsed_content("entries")}
    assert scored == {e["case_id"] for e in entries if e["fold"] == 1} and scored
    assert not scored & (trained_on | selected_on) and not trained_on & selected_on
    assert trained_on | selected_on | scored == {e["case_id"] for e in entries}
    assert infer.parser.get("scores#folds") == ["@fold"] and infer.parser.get("finalize")[0] == "@scores"
