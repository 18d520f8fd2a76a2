"""stroke_ctp_pseudodwi_slnet2d: a real short end-to-end run on the synthetic ISLES 2018 cohort beats the untrained
networks (lesion Dice, pseudo-DWI PSNR), masks and pseudo-DWIs on the input grid, the paper's image-quality and
lesion-size tables, and one stage of the sequential variant that trains the generator alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import monai
import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from strokezoo.bundle_info import config_files, cpu_overrides

from conftest import bf16_fp32_mask_dice, fire_literal, infer_and_evaluate, readme_bundle_commands, tree_digest, untrained_checkpoint

BUNDLE = "stroke_ctp_pseudodwi_slnet2d"
CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / BUNDLE / "configs"
CPU = cpu_overrides(BUNDLE)


def test_end_to_end_training_beats_the_untrained_networks(trained, tmp_path):
    root, data, datalist = trained(BUNDLE)
    checkpoint = root / "models" / "fold0" / "model.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert {k.split(".")[0] for k in state} == {"extractor", "generator", "segmenter", "context_encoder"}
    served = torch.load(root / "models" / "model.pt", weights_only=True)  # what inference (and MONAI Label) reads
    assert served.keys() == state.keys() and all(torch.equal(served[k], v) for k, v in state.items())
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


def _workflow(root: Path, data: Path, datalist: Path, files: tuple[str, ...], kind: str = "train", **keys) -> ConfigWorkflow:
    run_id = "training" if kind == "train" else "evaluating"
    extra = {"train#random_transforms": [], "num_workers": 0} if kind == "train" else {"num_workers": 0}
    wf = ConfigWorkflow(
        config_file=config_files(BUNDLE, *files),
        workflow_type=kind,
        run_id=run_id,
        bundle_root=str(root),
        dataset_dir=str(data),
        datalist=str(datalist),
        **{**CPU, **extra, **keys},
    )
    wf.initialize()
    assert not wf.check_properties()
    return wf


def _run(wf: ConfigWorkflow) -> None:
    wf.run()
    wf.finalize()


def test_tables_3_and_4_train_the_segmenter_on_the_perfusion_maps_and_evaluate_it(cohort12, tmp_path):
    """maps.json: Table 3's U-Net row (batch norm, no SE, plain cross-entropy) trains a lone segmenter on the four
    perfusion maps F_o, with no synthesis network in the checkpoint; maps_inference.json writes its masks and
    evaluate.json scores them, without pseudo-DWI. Table 4's rows build the losses they name."""
    from strokezoo.losses import HardnessAwareGeneralizedDiceLoss, SegmentationLoss

    data, datalist = cohort12(BUNDLE)
    unet = {"network_def#norm": "batch", "network_def#squeeze_excitation": False}
    wf = _workflow(tmp_path, data, datalist, ("train.json", "maps.json"), epochs=1, cross_entropy="plain", overlap=None, **unet)
    assert isinstance(wf.parser.get_parsed_content("loss"), SegmentationLoss)
    _run(wf)
    checkpoint = tmp_path / "models" / "maps_fold0" / "model.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert {k.split(".")[0] for k in state} == {"encoder", "decoder", "head"}  # one U-Net: no synthesis network, no SE
    first_conv = next(v for k, v in state.items() if k.endswith("weight") and v.ndim == 4)
    assert first_conv.shape[1] == 4  # CBF, CBV, MTT, Tmax
    assert any(k.endswith("running_mean") for k in state) and not any("mean_weight" in k or k.startswith("se.") for k in state)
    assert not (tmp_path / "models" / "fold0").exists()  # the pipeline's checkpoint stays untouched

    ev = _workflow(tmp_path, data, datalist, ("inference.json", "evaluate.json", "maps_inference.json"), kind="inference", amp=False, **unet)
    _run(ev)
    out = tmp_path / "eval" / "maps"
    entries = [e for e in json.loads(datalist.read_text())["training"] if e["fold"] == 0]
    for e in entries:
        mask = nib.load(out / f"{e['case_id']}.nii.gz")
        assert mask.shape == nib.load(e["label"]).shape and mask.get_data_dtype() == np.uint8
    assert not (out / "pseudo_dwi").exists()
    summary = json.loads((out / "metrics_fold0" / "summary.json").read_text())
    assert summary["cases"] == len(entries) and "dice" in summary["metrics"] and "ssim" not in summary["metrics"]

    rows = {  # Table 4: (cross_entropy, overlap) -> the loss's terms
        "L_CE": ("plain", None),
        "L_DICE": (None, "dice"),
        "L_GD": (None, "generalized"),
        "L_HGD": (None, "hardness_aware"),
        "L_CE + L_HGD": ("plain", "hardness_aware"),
        "L_WCE + L_HGD": ("weighted", "hardness_aware"),
    }
    from monai.bundle import ConfigParser

    for row, (ce, overlap) in rows.items():
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "maps.json")])
        parser["cross_entropy"], parser["overlap"] = ce, overlap
        loss = parser.get_parsed_content("loss")
        assert loss.cross_entropy == ce, row
        terms = {None: type(None), "dice": monai.losses.DiceLoss, "generalized": monai.losses.GeneralizedDiceLoss}
        assert type(loss.overlap) is terms.get(overlap, HardnessAwareGeneralizedDiceLoss), row


def test_table_2_fh_star_trains_the_synthesis_without_l_e_then_a_cross_entropy_unet(cohort12, tmp_path):
    """fh_star.json after sequential.json: the first run trains the extractor and the generator with L_g alone (β 0,
    so L_e is 0 and the extractor learns through the generator), the second a U-Net segmenter (batch norm, no SE)
    with the plain cross-entropy on the frozen synthesis; each keeps the networks it does not train."""
    data, datalist = cohort12(BUNDLE)
    files = ("train.json", "sequential.json", "fh_star.json")
    wf = _workflow(tmp_path, data, datalist, files, epochs=1, train_parts=["extractor", "generator"])
    assert wf.parser.get_parsed_content("key_metric_name") == "val_psnr_pseudo_dwi"
    network = wf.parser.get_parsed_content("network")
    initial = {k: v.clone() for k, v in network.state_dict().items()}
    losses = []
    wf.parser.get_parsed_content("train#trainer").add_event_handler(
        monai.engines.IterationEvents.LOSS_COMPLETED, lambda e: losses.append(dict(e.loss_function.terms))
    )
    _run(wf)
    assert losses and all(t["loss_e"] == 0.0 and t["loss_g"] > 0 and "loss_s" not in t for t in losses)
    checkpoint = tmp_path / "models" / "fh_star_fold0" / "model.pt"
    synthesis = torch.load(checkpoint, weights_only=True)
    changed = {k.split(".")[0] for k, v in synthesis.items() if v.is_floating_point() and not torch.equal(v, initial[k])}
    assert changed == {"extractor", "generator", "context_encoder"}, changed
    assert any(k.startswith("segmenter.") and k.endswith("running_mean") for k in synthesis)
    assert not any(k.startswith("segmenter.se.") or (k.startswith("segmenter.") and "mean_weight" in k) for k in synthesis)

    wf = _workflow(tmp_path, data, datalist, files, epochs=1, train_parts=["segmenter"])
    assert wf.parser.get_parsed_content("key_metric_name") == "val_mean_dice"
    loss = wf.parser.get_parsed_content("loss").segmentation
    assert (loss.cross_entropy, loss.overlap) == ("plain", None)
    _run(wf)
    segmented = torch.load(checkpoint, weights_only=True)
    changed = {k.split(".")[0] for k, v in segmented.items() if v.is_floating_point() and not torch.equal(v, synthesis[k])}
    assert changed == {"segmenter"}, changed


def test_the_readme_ablation_commands_and_settings_parse_as_written(tmp_path, monkeypatch):
    """The README's ablation commands as written (data folder aside), from a copy of the bundle folder, and the
    training command with each row's settings from its table: the files exist and merge, every override names a key
    of the merged config, and each row builds the network and the loss it names (Table 3's four networks, Table 4's
    six losses, Table 2's two synthesis runs)."""
    import ast
    import re
    import shlex

    from monai.bundle import ConfigParser

    bundle = tmp_path / "bundle"
    shutil.copytree(CONFIGS.parent, bundle, ignore=shutil.ignore_patterns("models", "eval", "datalist.json", "cache"))
    monkeypatch.chdir(bundle)
    commands = [c for c in readme_bundle_commands(BUNDLE) if any(f in c[c.index("--config_file") + 1] for f in ("maps", "fh_star"))]
    readme = (CONFIGS.parent / "docs" / "README.md").read_text()
    table = dict(re.findall(r"^\| (Table \d[^|]*?) \| `([^|]*)` \|$", readme, re.M))
    maps_command = next(c for c in commands if c[4] == "training" and "maps.json" in c[6])
    rows = {row: [*maps_command[:7], "--dataset_dir", "/data/ISLES2018/TRAINING", *shlex.split(s)] for row, s in table.items()}
    assert len(commands) == 6 and len(rows) == 8, (commands, list(rows))

    built = {}
    for name, argv in [*((" ".join(c), c) for c in commands), *rows.items()]:
        workflow, rest = argv[4], argv[5:]
        args = dict(zip(rest[::2], rest[1::2]))
        assert all(k.startswith("--") for k in args) and len(rest) % 2 == 0, argv
        files = ast.literal_eval(args.pop("--config_file"))
        assert all(Path(f).is_file() for f in files), files
        overrides = {k[2:]: fire_literal(v) for k, v in args.items()}
        assert overrides.pop("dataset_dir") == "/data/ISLES2018/TRAINING"
        parser = ConfigParser()
        parser.read_config(files)
        for key, value in overrides.items():
            assert key in parser, (name, key)  # an override of a key the config lacks would be silently ignored
            parser[key] = value
        for key, value in CPU.items():  # the CPU widths: the networks' kinds are what is checked
            parser[key] = value
        if workflow == "training":
            # the segmenter alone (the synthesis networks are the same in every row)
            seg = parser.get_parsed_content("network_def#segmenter" if "network_def#segmenter" in parser else "network_def")
            loss = parser.get_parsed_content("loss")
            kinds = {type(m).__name__ for m in seg.modules()} & {"SwitchableNorm", "BatchNorm2d", "ChannelSELayer"}
            seg_loss = getattr(loss, "segmentation", loss)
            built[name] = (tuple(sorted(kinds)), seg_loss.cross_entropy, type(seg_loss.overlap).__name__, getattr(loss, "beta", None))
        else:
            assert parser.get_parsed_content("ckpt_path").endswith("model.pt") and "eval" in parser.get_parsed_content("output_dir")

    sln, unet = ("ChannelSELayer", "SwitchableNorm"), ("BatchNorm2d",)
    assert built["Table 3, UNet"] == (unet, "plain", "NoneType", None)
    assert built["Table 3, SLNet w/o SE"] == (("SwitchableNorm",), "plain", "NoneType", None)
    assert built["Table 3, SLNet w/o SN"] == (("BatchNorm2d", "ChannelSELayer"), "plain", "NoneType", None)
    assert built["Table 3, SLNet; Table 4, L_CE"] == (sln, "plain", "NoneType", None)
    assert built["Table 4, L_DICE"] == (sln, None, "DiceLoss", None)
    assert built["Table 4, L_GD"] == (sln, None, "GeneralizedDiceLoss", None)
    assert built["Table 4, L_HGD"] == (sln, None, "HardnessAwareGeneralizedDiceLoss", None)
    assert built["Table 4, L_CE + L_HGD"] == (sln, "plain", "HardnessAwareGeneralizedDiceLoss", None)
    fh_star = [v for k, v in built.items() if "fh_star.json" in k]
    assert fh_star and all(v == (unet, "plain", "NoneType", 0.0) for v in fh_star), fh_star
