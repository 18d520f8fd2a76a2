"""The two Gómez 2023 bundles: config properties, metadata, network in/out, a real short training run that
beats the untrained net, and inference on the input grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out

from strokezoo.data.datalist import build_datalist
from strokezoo.data.synth import synthesize_cohort
from strokezoo.demo import CPU_OVERRIDES as CPU, train_bundle

from conftest import tree_digest

REPO = Path(__file__).resolve().parents[1]
BUNDLES = {
    "stroke_mri_crossattention_unet2d": "isles2017",
    "stroke_ct_boundary_attention_unet2d": "isles2018",
}


def configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


@pytest.fixture(scope="module")
def cohort12(tmp_path_factory):
    """``cohort12(bundle)`` -> (dataset_root, datalist) of a 12-case cohort of the bundle's layout, 4 folds."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(bundle: str):
        if bundle not in made:
            tmp = tmp_path_factory.mktemp(f"{bundle}_data")
            layout = BUNDLES[bundle]
            data = tmp / "data"
            synthesize_cohort(layout, data, cases=12, seed=3, scale=0.4, difficulty=0.0, workers=1, test_fraction=0.0)
            datalist = tmp / "datalist.json"
            build_datalist(data, datalist, layout=layout, folds=4)
            made[bundle] = (data, datalist)
        return made[bundle]

    return get


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cohort12):
    """``trained(bundle)`` -> (bundle_root, dataset_root, datalist) after a short training run, cached."""
    done: dict[str, tuple[Path, Path, Path]] = {}

    def get(bundle: str):
        if bundle not in done:
            data, datalist = cohort12(bundle)
            digest = tree_digest(data)
            root = tmp_path_factory.mktemp(bundle) / "bundle"
            train_bundle(bundle, data, datalist, root, epochs=40)
            assert tree_digest(data) == digest, "training wrote into the dataset root"
            done[bundle] = (root, data, datalist)
        return done[bundle]

    return get


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("config,kind", [("train.json", "train"), ("inference.json", "inference")])
def test_check_properties(bundle, config, kind, tmp_path, cohort):
    data, _ = cohort(BUNDLES[bundle])
    datalist = tmp_path / "datalist.json"
    build_datalist(data, datalist, layout=BUNDLES[bundle], folds=2)
    wf = ConfigWorkflow(config_file=str(configs(bundle) / config), workflow_type=kind, meta_file=str(configs(bundle) / "metadata.json"),
                        logging_file=str(configs(bundle) / "logging.conf"), bundle_root=str(tmp_path), dataset_dir=str(data),
                        datalist=str(datalist), datalist_split="training", num_workers=0)
    wf.initialize()
    assert not wf.check_properties()


def test_apis_override_reads_the_apis_layout(tmp_path, cohort):
    data, _ = cohort("apis")
    datalist = tmp_path / "datalist.json"
    build_datalist(data, datalist, layout="apis", folds=2)
    bundle = "stroke_ct_boundary_attention_unet2d"
    files = [str(configs(bundle) / "train.json"), str(configs(bundle) / "apis.json")]
    wf = ConfigWorkflow(config_file=files, workflow_type="train", bundle_root=str(tmp_path), dataset_dir=str(data), datalist=str(datalist), **CPU)
    wf.initialize()
    assert not wf.check_properties()
    assert wf.parser.get_parsed_content("network_def").encoder.blocks[0].conv1.conv.in_channels == 1  # NCCT only
    sample = wf.parser.get_parsed_content("train#dataset")[0]
    assert sample["image"].shape == (1, 64, 64) and set(sample["label"].unique().tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.filterwarnings("ignore:No hash value provided")  # the schema is our own file in the repo
@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_and_network_in_out(bundle, tmp_path):
    verify_metadata(meta_file=str(configs(bundle) / "metadata.json"), filepath=str(REPO / "bundles" / "metadata_schema.json"))
    verify_net_in_out(net_id="network_def", meta_file=str(configs(bundle) / "metadata.json"),
                      config_file=str(configs(bundle) / "inference.json"), device="cpu", n=1, any=1)


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

    def evaluate_with(checkpoint: Path, out: Path) -> float:
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
               f"['{configs(bundle) / 'inference.json'}','{configs(bundle) / 'evaluate.json'}']",
               "--bundle_root", str(root), "--dataset_dir", str(data), "--datalist", str(datalist),
               "--ckpt_path", str(checkpoint), "--output_dir", str(out), "--image_size", "64",
               "--features", "[8,16,32,64,128,256]", "--save_probabilities", "True", "--num_workers", "0"]
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
        return json.loads((out / "metrics" / "summary.json").read_text())["metrics"]["dice"]["mean"]

    torch.manual_seed(0)
    wf = ConfigWorkflow(config_file=str(configs(bundle) / "train.json"), workflow_type="train", bundle_root=str(tmp_path), **CPU)
    untrained = tmp_path / "untrained.pt"
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), untrained)
    digest = tree_digest(data)
    dice_trained = evaluate_with(ckpt, tmp_path / "trained")
    dice_untrained = evaluate_with(untrained, tmp_path / "untrained")
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


@pytest.mark.parametrize("bundle", BUNDLES)
def test_multi_gpu_config_runs_two_processes_on_cpu(bundle, tmp_path, cohort12):
    """``multi_gpu_train.json`` with torchrun: DDP over two CPU processes (gloo), one epoch."""
    data, datalist = cohort12(bundle)
    val_fold = 0
    root = tmp_path / "bundle"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "monai.bundle", "run", "--config_file", f"['{configs(bundle) / 'train.json'}','{configs(bundle) / 'multi_gpu_train.json'}']",
           "--bundle_root", str(root), "--dataset_dir", str(data), "--datalist", str(datalist), "--val_fold", str(val_fold), "--epochs", "1"]
    for k, v in CPU.items():
        cmd += [f"--{k}", json.dumps(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    if r.returncode != 0 and "terminate called without an active exception" in r.stderr:
        # Seen once in CI, not reproduced since: a gloo worker aborting at teardown while the other test
        # worker starved the two cores. One retry; any other failure, or a second abort, fails the test.
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # saved without the DDP wrapper
