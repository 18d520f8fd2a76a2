"""Stacked studies (``strokezoo stack``) and ``LoadModalitiesd``, which reads them or the modality files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged

from strokezoo.data.datalist import build_datalist
from strokezoo.data.stacked import channel_slices, stack_case, stacked_keys
from strokezoo.errors import InputError
from strokezoo.transforms import LoadModalitiesd

from conftest import strokezoo_cli, tree_digest


def test_channel_slices_give_one_channel_per_volume_and_the_rest_to_the_series():
    assert channel_slices(["adc", "ttp", "tmax"], 3, "s.nii.gz") == {"adc": slice(0, 1), "ttp": slice(1, 2), "tmax": slice(2, 3)}
    assert channel_slices(["ctp", "cbf", "tmax"], 45, "s.nii.gz") == {"ctp": slice(0, 43), "cbf": slice(43, 44), "tmax": slice(44, 45)}
    with pytest.raises(InputError, match=r"s.nii.gz: has 4 channels; expected 3"):
        channel_slices(["adc", "ttp", "tmax"], 4, "s.nii.gz")
    with pytest.raises(InputError, match="need at least 3"):
        channel_slices(["ctp", "cbf", "tmax"], 2, "s.nii.gz")
    with pytest.raises(ValueError, match="at most one series"):
        channel_slices(["ctp", "pwi"], 10, "s.nii.gz")


def _case(tmp_path, shapes: dict[str, tuple], affine=None, seed=0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    affine = np.diag([0.9, 0.9, 5.0, 1.0]) if affine is None else affine
    paths = {}
    for k, shape in shapes.items():
        p = tmp_path / f"{k}.nii.gz"
        nib.save(nib.Nifti1Image(rng.uniform(1, 100, shape).astype(np.float32), affine), str(p))
        paths[k] = str(p)
    return paths


def test_a_stack_loads_to_the_same_tensors_as_the_modality_files(tmp_path):
    files = _case(tmp_path, {"ctp": (12, 10, 4, 7), "cbf": (12, 10, 4), "tmax": (12, 10, 4)})
    keys = ["ctp", "cbf", "tmax"]
    study = stack_case(files, keys, tmp_path / "out" / "case_7.nii.gz")
    assert nib.load(str(study)).shape == (12, 10, 4, 9) and stacked_keys(study) == keys
    direct = LoadImaged(keys, image_only=True, ensure_channel_first=True)(files)
    for given in (files, {"image": str(study)}):
        got = LoadModalitiesd(keys)(given)
        for k in keys:
            assert got[k].shape == direct[k].shape, k
            assert torch.equal(got[k].as_tensor(), direct[k].as_tensor()), k
            assert np.allclose(got[k].affine, direct[k].affine), k
    assert LoadModalitiesd(keys)({"image": str(study)})["case_id"] == "case_7"  # named after the file
    assert LoadModalitiesd(keys)({"image": str(study), "case_id": "given"})["case_id"] == "given"


def test_a_stack_made_for_another_bundle_or_of_the_wrong_size_is_refused_by_name(tmp_path):
    files = _case(tmp_path, {"adc": (8, 8, 3), "dwi": (8, 8, 3), "tmax": (8, 8, 3)})
    study = stack_case(files, ["adc", "dwi"], tmp_path / "out" / "c.nii.gz")
    with pytest.raises(InputError, match=r"c.nii.gz: is a stack of adc, dwi; this bundle reads adc, tmax"):
        LoadModalitiesd(["adc", "tmax"])({"image": str(study)})
    foreign = tmp_path / "foreign.nii.gz"  # a multi-channel NIfTI that strokezoo did not write: only its size is checked
    nib.save(nib.Nifti1Image(np.ones((8, 8, 3, 4), np.float32), np.eye(4)), str(foreign))
    with pytest.raises(InputError, match=r"foreign.nii.gz: has 4 channels; expected 3"):
        LoadModalitiesd(["adc", "dwi", "tmax"])({"image": str(foreign)})
    with pytest.raises(KeyError, match=r"missing: tmax.*or one stacked NIfTI under 'image'"):
        LoadModalitiesd(["adc", "dwi", "tmax"])({"adc": files["adc"], "dwi": files["dwi"]})


def test_a_stack_beside_its_own_label_file_loads_as_monai_label_hands_it_to_training(tmp_path):
    """MONAI Label's bundle trainer gives ``{"image": stack, "label": file}``: the label comes from its file, every
    other key from the stack, by the name its header records (a stack may hold more keys than a config reads)."""
    files = _case(tmp_path, {"ctp": (8, 8, 3, 5), "cbf": (8, 8, 3), "dwi": (8, 8, 3), "label": (8, 8, 3)})
    study = stack_case(files, ["ctp", "cbf", "dwi"], tmp_path / "out" / "s.nii.gz")
    direct = LoadModalitiesd(["ctp", "cbf", "dwi", "label"])(files)
    for keys, allow in ((["ctp", "cbf", "dwi", "label"], False), (["cbf", "label"], False), (["ctp", "cbf", "tmax", "dwi", "label"], True)):
        got = LoadModalitiesd(keys, allow_missing_keys=allow)({"image": str(study), "label": files["label"]})
        assert "tmax" not in got and got["case_id"] == "s"
        for k in keys:
            if k != "tmax":
                assert torch.equal(got[k].as_tensor(), direct[k].as_tensor()), k
    with pytest.raises(InputError, match=r"s.nii.gz: is a stack of ctp, cbf, dwi; this bundle reads cbf, tmax from it \(missing: tmax"):
        LoadModalitiesd(["cbf", "tmax", "label"])({"image": str(study), "label": files["label"]})


def test_stacking_refuses_modalities_off_the_grid_or_missing(tmp_path):
    files = _case(tmp_path, {"adc": (8, 8, 3)})
    moved = np.diag([0.9, 0.9, 5.0, 1.0])
    moved[0, 3] = 2.0  # a real 2 mm shift
    (tmp_path / "b").mkdir()
    shifted = _case(tmp_path / "b", {"dwi": (8, 8, 3)}, affine=moved)
    with pytest.raises(InputError, match=r"dwi.nii.gz: affine differs .* by up to 2 mm"):
        stack_case({**files, **shifted}, ["adc", "dwi"], tmp_path / "out.nii.gz")
    with pytest.raises(InputError, match=r"no file for dwi"):
        stack_case(files, ["adc", "dwi"], tmp_path / "out.nii.gz")
    with pytest.raises(InputError, match="refusing to write over it"):
        stack_case(files, ["adc"], files["adc"])
    assert not (tmp_path / "out.nii.gz").exists()


def test_stack_command_keeps_going_and_lists_the_failures(tmp_path, cohort):
    import shutil

    source, _ = cohort("isles2017")
    data = tmp_path / "data"
    shutil.copytree(source, data)
    cases = build_datalist(data, tmp_path / "datalist.json", layout="isles2017", folds=3)["training"]
    broken = cases[1]
    nib.save(nib.Nifti1Image(np.ones((5, 5, 2), np.float32), np.eye(4)), broken["ttp"])  # off the case's grid
    before = tree_digest(data)
    r = strokezoo_cli("stack", data, "--bundle", "stroke_mri_crossattention_unet2d", "--out", tmp_path / "studies")
    assert r.returncode == 1, r.stderr
    assert f"{broken['case_id']}: {broken['ttp']}: shape (5, 5, 2) differs" in r.stderr
    written = sorted(p.name for p in (tmp_path / "studies").iterdir())
    assert written == sorted(f"{c['case_id']}.nii.gz" for c in cases if c is not broken)
    assert tree_digest(data) == before  # nothing under the input root changed
    inside = strokezoo_cli("stack", data, "--bundle", "stroke_mri_crossattention_unet2d", "--out", data / "studies")
    assert inside.returncode == 2 and "is inside the input folder" in inside.stderr


def test_a_training_stack_holds_what_training_reads_and_inference_reads_it_too(tmp_path, cohort):
    """``strokezoo stack --training``: the pseudo-DWI bundle learns from the DWI, which its inference does not read;
    its training stack holds it after the inference inputs, and both configs' loaders take their channels by name."""
    from monai.bundle import ConfigParser

    from strokezoo.bundle_info import bundle_folder, inference_keys, training_keys

    bundle = "stroke_ctp_pseudodwi_slnet2d"
    assert training_keys(bundle) == [*inference_keys(bundle), "dwi"]
    assert training_keys("stroke_mri_crossattention_unet2d") == inference_keys("stroke_mri_crossattention_unet2d")
    data, _ = cohort("isles2018")
    r = strokezoo_cli("stack", data, "--bundle", bundle, "--out", tmp_path / "studies", "--training")
    failed = [line.strip() for line in r.stderr.splitlines() if line.startswith("  ")]
    assert r.returncode == 1 and failed and all(f.startswith("test_case_") and "no file for dwi" in f for f in failed), r.stderr  # no DWI: not for training
    case = build_datalist(data, tmp_path / "datalist.json", layout="isles2018", folds=3)["training"][0]
    study = tmp_path / "studies" / f"{case['case_id']}.nii.gz"
    assert stacked_keys(study) == training_keys(bundle)
    configs = bundle_folder(bundle) / "configs"
    for name, loader in (("inference.json", "preprocessing#transforms"), ("train.json", "volume_transforms")):
        parser = ConfigParser()
        parser.read_config(str(configs / name))
        load = parser.get_parsed_content(f"{loader}#0")
        assert isinstance(load, LoadModalitiesd), name
        got = load({"image": str(study), "label": case["label"]})
        direct = load({k: case[k] for k in load.keys if k in case})
        for k in load.keys:
            if k in direct:
                assert torch.equal(got[k].as_tensor(), direct[k].as_tensor()), (name, k)
