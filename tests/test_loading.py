"""One loading path: every bundle's training, inference and evaluation configs read a file into the same tensor.

Per bundle, the load transform of each training stage and of ``inference.json`` (+ ``evaluate.json``) is taken from
the parsed config and run on one synthetic case written as plain files, as a stacked study, with the series stored
5-D ``(x, y, z, 1, t)`` and with the DWI stored as two volumes (b0, b1000). Each tensor is compared with the file's
voxels read independently by nibabel.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from strokezoo.bundle_info import BUNDLES, config_files
from strokezoo.data.modalities import MODALITIES, MULTI_VOLUME_KEYS, kind_of
from strokezoo.data.stacked import stack_case

SHAPE = (8, 7, 4)
FRAMES = 5
LOADER = "strokezoo.transforms.LoadModalitiesd"


def _loader_ids(node, at: str = "") -> list[str]:
    """Config ids of every LoadModalitiesd item in a raw config."""
    found = []
    if isinstance(node, dict):
        if node.get("_target_") == LOADER:
            found.append(at)
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return found
    for k, v in items:
        found += _loader_ids(v, f"{at}#{k}" if at else str(k))
    return found


def _loaders(files: list[str]) -> list:
    parser = ConfigParser()
    parser.read_config(files)
    ids = _loader_ids(parser.get())
    assert ids, f"{files}: no {LOADER} item"
    return [parser.get_parsed_content(i) for i in ids]


def _write(path, data: np.ndarray, affine: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def _case(tmp_path, keys: set[str]) -> tuple[dict, dict]:
    """Files of ``keys`` and their voxels as channel-first arrays (the expected tensors)."""
    rng = np.random.default_rng(0)
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    files, expected = {}, {}
    for k in sorted(keys):
        kind = kind_of(k)
        if kind == "series":
            data = rng.uniform(1, 100, (*SHAPE, FRAMES)).astype(np.float32)
            expected[k] = np.moveaxis(data, -1, 0)
        elif kind == "label":
            data = (rng.uniform(size=SHAPE) > 0.7).astype(np.uint8)
            expected[k] = data[None].astype(np.float32)
        else:
            data = rng.uniform(1, 100, SHAPE).astype(np.float32)
            expected[k] = data[None]
        files[k] = _write(tmp_path / f"{k}.nii.gz", data, affine)
    return files, expected


def _variants(tmp_path, files: dict) -> dict:
    """The same case with every series stored 5-D and the DWI stored as two volumes (b0 first, the b1000 last)."""
    out = dict(files)
    for k, f in files.items():
        img = nib.load(f)
        data = np.asarray(img.dataobj)
        if kind_of(k) == "series":
            out[k] = _write(tmp_path / f"{k}_5d.nii.gz", data[:, :, :, None, :], img.affine)
        elif k in MULTI_VOLUME_KEYS:
            out[k] = _write(tmp_path / f"{k}_2vol.nii.gz", np.stack([data * 0.5 + 1, data], axis=-1), img.affine)
    return out


def _assert_loads(loader, entry: dict, expected: dict, what: str) -> None:
    got = loader(dict(entry))
    for k in loader.keys:
        t = torch.as_tensor(got[k])
        assert tuple(t.shape) == expected[k].shape, f"{what}: {k} has shape {tuple(t.shape)}, expected {expected[k].shape}"
        np.testing.assert_array_equal(t.numpy(), expected[k], err_msg=f"{what}: {k}")


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_training_and_inference_read_every_form_of_a_case_into_the_same_tensors(tmp_path, bundle):
    info = BUNDLES[bundle]
    train = [(stage, loader) for stage in info.stages for loader in _loaders(config_files(bundle, stage))]
    infer = _loaders(config_files(bundle, "inference.json"))
    evaluate = _loaders(config_files(bundle, "inference.json", "evaluate.json"))
    loaders = [*((f"training ({s})", ld) for s, ld in train), *(("inference", ld) for ld in infer), *(("evaluation", ld) for ld in evaluate)]
    keys = {k for _, ld in loaders for k in ld.keys}
    files, expected = _case(tmp_path, keys)
    variants = _variants(tmp_path, files)
    for what, loader in loaders:
        entry = {k: files[k] for k in loader.keys if k in files}
        _assert_loads(loader, entry, expected, f"{bundle} {what}, plain files")
        _assert_loads(loader, {k: variants[k] for k in entry}, expected, f"{bundle} {what}, 5-D series / 2-volume DWI")
    for loader in infer:  # a stacked study (strokezoo stack; MONAI Label's single image) gives the same tensors
        study = stack_case({k: variants[k] for k in loader.keys}, list(loader.keys), tmp_path / "study.nii.gz")
        _assert_loads(loader, {"image": str(study)}, expected, f"{bundle} inference, stacked study")


def test_datalist_and_input_check_are_one_case_checker(tmp_path):
    """``strokezoo datalist`` accepts what a bundle's input check accepts (a two-volume DWI) and refuses a bad file
    with the same words."""
    from strokezoo.data.checks import check_entry
    from strokezoo.data.datalist import check_case
    from strokezoo.data.layouts import CaseFiles

    files, _ = _case(tmp_path, {"dwi", "adc", "label"})
    files = _variants(tmp_path, files)
    assert nib.load(files["dwi"]).shape == (*SHAPE, 2)
    case = CaseFiles("sub-1", "sub-1", images={"dwi": files["dwi"], "adc": files["adc"]}, labels={"label": files["label"]})
    assert check_case(case, "isles2022") == [] and check_entry(files, ["dwi", "adc", "label"]) == []
    bad = np.asarray(nib.load(files["adc"]).dataobj).copy()
    bad[0, 0, 0] = np.nan
    case.images["adc"] = files["adc"] = _write(tmp_path / "adc_nan.nii.gz", bad, np.diag([0.9, 0.9, 3.0, 1.0]))
    by_datalist, by_bundle = check_case(case, "isles2022"), check_entry(files, ["dwi", "adc", "label"])
    assert by_datalist == by_bundle and len(by_bundle) == 1 and "adc_nan.nii.gz" in by_bundle[0] and "NaN" in by_bundle[0]


def test_layouts_name_only_registered_modalities():
    from strokezoo.data.layouts import LAYOUTS, Layout

    assert {k for layout in LAYOUTS.values() for k in layout.tokens.values()} <= set(MODALITIES)
    with pytest.raises(ValueError, match=r"\['swi'\] are not in strokezoo.data.modalities.MODALITIES"):
        Layout("x", {"swi": "swi"}, ("swi",))
    with pytest.raises(KeyError, match="unknown modality key 'swi'"):
        kind_of("swi")
    assert kind_of("label_r2_adc") == "label" and kind_of("ctp") == "series" and kind_of("adc") == "image"


def test_the_loader_says_nothing_about_monais_dicom_readers(caplog, recwarn):
    """With pydicom installed (a dependency, for ``strokezoo segment``), MONAI's LoadImage builds its
    NvImgCodecPydicomReader too, which warns and logs on each construction; the bundles' loader reads NIfTI and keeps
    them quiet (and MONAI still picks NibabelReader for a NIfTI file)."""
    import logging

    import pydicom  # noqa: F401 - the condition of the warnings

    from strokezoo.transforms import LoadModalitiesd

    with caplog.at_level(logging.WARNING):
        loader = LoadModalitiesd(["adc"]).loader
    assert not [w for w in recwarn if "NvImgCodec" in str(w.message)] and "nvImageCodec" not in caplog.text
    assert type(loader.readers[-1]).__name__ == "NibabelReader"
