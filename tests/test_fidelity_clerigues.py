"""stroke_mri_residual_unet3d against the values Clèrigues et al. (CMPB 2020) state, read from the parsed
``train.json`` and ``inference.json`` (the built object where there is one), never from a library default.

Each row is (section, what the paper states, how the config gives it, the stated value). Points the paper leaves
open, where the authors' released code is the evidence (the facts recorded in ../shared/papers/README.md: the
network's details, Adadelta's rho, normalisation, the brain test, S_min's connectivity), are the rows of
``AUTHORS_CODE``, checked the same way."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import torch
from monai.bundle import ConfigParser
from monai.losses import FocalLoss
from torch import nn

from strokezoo.bundle_info import bundles_dir
from strokezoo.metrics.grid_search import MIN_SIZES, THRESHOLDS

BUNDLE = "stroke_mri_residual_unet3d"


@cache
def config(*names: str) -> ConfigParser:
    """The bundle's configs ``names`` (later ones override), parsed once (objects are built on first use and kept)."""
    parser = ConfigParser()
    parser.read_config([str(bundles_dir() / BUNDLE / "configs" / name) for name in names])
    return parser


def train(key: str) -> Any:
    return config("train.json").get_parsed_content(key)


def infer(key: str) -> Any:
    return config("inference.json").get_parsed_content(key)


def lesion_augmentations() -> list[tuple[str, Any]]:
    """The lesion patches' augmentations (Sec. 3.3): (transform, its flip axis or its number of quarter turns)."""
    out = []
    for t in train("train#lesion_transforms").transforms:
        name = type(t).__name__
        out.append((name, int(t.flipper.spatial_axis) if name == "Flipd" else t.rotator.k if name == "Rotate90d" else None))
    return out


Row = tuple[str, str, Callable[[], Any], Any]

PAPER: list[Row] = [
    ("3.3, 3.4", "patches of 24x24x16 voxels", lambda: list(train("train#dataset#patch_size")), [24, 24, 16]),
    ("4.1", "10,000 patches per case", lambda: train("train#dataset#num_patches"), 10000),
    ("3.3", "half the patches centred on lesion", lambda: train("train#dataset#lesion_fraction"), 0.5),
    ("3.4", "batch of 16 patches", lambda: train("train#trainer#batch_size"), 16),
    ("3.4", "Adadelta optimiser", lambda: type(train("optimizer")).__name__, "Adadelta"),
    ("3.2, Eq. 1", "focal loss, gamma = 2", lambda: (isinstance(train("loss"), FocalLoss), train("loss").gamma), (True, 2.0)),
    ("3.2, Eq. 1", "one focal term per voxel, for its true class (averaged over voxels)", lambda: type(train("loss")).__name__, "VoxelFocalLoss"),
    ("3.2", "class weights alpha_0 = 0.25 (healthy), alpha_1 = 0.75 (lesion)", lambda: torch.as_tensor(train("loss").alpha).flatten().tolist(), [0.25, 0.75]),
    ("3.4", "early stopping with a patience of 8 epochs", lambda: train("validate#early_stop").patience, 8),
    ("Fig. 2", "4 resolution steps, 32 base filters", lambda: train("network_def").features, (32, 64, 128, 256)),
    (
        "3.3",
        "lesion patches: five operations, sagittal reflection and 90, 180, 270 degree rotations among them",
        lesion_augmentations,
        [("Identityd", None), ("Flipd", 0), ("Rotate90d", 1), ("Rotate90d", 2), ("Rotate90d", 3)],  # the fifth, identity: our reading
    ),
    ("3.5", "dense extraction step 4x4x1", lambda: list(infer("base_inferer").step), [4, 4, 1]),
    ("3.5", "the same 24x24x16 patches at inference", lambda: list(infer("base_inferer").patch_size), [24, 24, 16]),
    ("4.1", "4 folds", lambda: train("num_folds"), 4),
    ("4.1", "T_h searched from 0.1 to 0.9", lambda: (min(THRESHOLDS), max(THRESHOLDS)), (0.1, 0.9)),
    ("4.1", "S_min searched from 10 to 1000 voxels", lambda: (min(MIN_SIZES), max(MIN_SIZES)), (10, 1000)),
]


def modules(kind: type) -> list[nn.Module]:
    return [m for m in net().modules() if isinstance(m, kind)]


def load_step(kind: str, name: str = "train.json") -> Any:
    """The one transform of type ``kind`` among ``name``'s load transforms."""
    (t,) = [t for t in config(name).get_parsed_content("load_transforms") if type(t).__name__ == kind]
    return t


def net() -> nn.Module:
    return train("network_def")


def zscore() -> Any:
    """The image normaliser of train.json's load transforms."""
    return load_step("NormalizeIntensityd").normalizer


def dropout_places() -> list[list[str]]:
    return [[type(m).__name__ for m in block.units] for block in net().encoder]


UNIT, DROP = "PreActivationUnit", "Dropout3d"

AUTHORS_CODE: list[Row] = [
    ("SUNETx4", "one Dropout3d(0.2) per encoder block on levels 2-4, between its two units", dropout_places, [[UNIT, UNIT]] + [[UNIT, DROP, UNIT]] * 3),
    ("SUNETx4", "dropout rate 0.2", lambda: sorted({m.p for m in modules(nn.Dropout3d)}), [0.2]),
    (
        "SUNETx4",
        "downsampling: BN -> PReLU -> 3x3x3 conv, stride 2, concatenated with the max-pool",
        lambda: [
            (type(d.conv[0].N).__name__, type(d.conv[0].A).__name__, d.conv[1].kernel_size, d.conv[1].stride, type(d.pool).__name__)
            for d in train("network_def").down
        ],
        [("BatchNorm3d", "PReLU", (3, 3, 3), (2, 2, 2), "MaxPool3d")] * 3,
    ),
    (
        "SUNETx4",
        "output: one 3x3x3 convolution to 2 channels, no BN, no PReLU",
        lambda: (type(train("network_def").head).__name__, train("network_def").head.kernel_size, train("network_def").head.out_channels),
        ("Conv3d", (3, 3, 3), 2),
    ),
    ("SUNETx4", "PReLU: one slope per channel", lambda: all(m.num_parameters > 1 for m in modules(nn.PReLU)), True),
    ("SUNETx4", "PReLU slopes initialised at 0", lambda: sorted({float(v) for m in modules(nn.PReLU) for v in m.weight.detach()}), [0.0]),
    ("SUNETx4", "batch norm momentum 0.01, eps 1e-3", lambda: sorted({(m.momentum, m.eps) for m in modules(nn.BatchNorm3d)}), [(0.01, 1e-3)]),
    ("run_crossval.py", "Adadelta with rho 0.95", lambda: train("optimizer").defaults["rho"], 0.95),
    (
        "data",
        "each modality z-scored with its whole-volume mean and SD",
        lambda: (load_step("NormalizeIntensityd").normalizer.channel_wise, load_step("NormalizeIntensityd").normalizer.nonzero),
        (True, False),
    ),
    ("data", "S_min removes scipy.ndimage.label components: 6-connectivity", lambda: infer("connectivity"), 1),
    ("data", "PPV counts 0 on an empty prediction", lambda: config("inference.json", "evaluate.json").get_parsed_content("empty_precision"), "zero"),
]


@pytest.mark.parametrize("row", PAPER, ids=[f"{r[0]}-{r[1][:40]}" for r in PAPER])
def test_the_config_says_what_the_paper_states(row: Row):
    section, statement, read, stated = row
    assert read() == stated, (section, statement)


@pytest.mark.parametrize("row", AUTHORS_CODE, ids=[f"{r[0]}-{r[1][:40]}" for r in AUTHORS_CODE])
def test_where_the_paper_is_silent_the_config_follows_the_authors_code(row: Row):
    section, statement, read, stated = row
    assert read() == stated, (section, statement)


def test_the_brain_and_the_mirror_come_from_a_named_modality_dwi_for_spes():
    """SPES lists CBF first, whose asymmetry is the lesion itself; the authors' SPES order puts DWI first, and both the
    brain mask and the mirror registration are estimated on it. SISS keeps its first modality, FLAIR."""
    cases = ((["train.json"], "flair"), (["train.json", "spes.json"], "dwi"), (["inference.json"], "flair"), (["inference.json", "spes.json"], "dwi"))
    for files, reference in cases:
        parser = config(*files)
        steps = {type(t).__name__: t for t in parser.get_parsed_content("load_transforms")}
        assert steps["SymmetricModalitiesd"].reference_key == reference and steps["SymmetricModalitiesd"].registration == "rigid", files
        if files[0] == "train.json":  # healthy patches are drawn from that modality's mask ...
            assert tuple(steps["BrainMaskd"].keys) == (reference,), files
            assert parser.get("train#dataset#brain_key") == parser.get("validate#dataset#brain_key") == steps["BrainMaskd"].name
        else:  # ... and the dense inferer centres patches in the same modality's mask, from its input channel
            channel = parser.get_parsed_content("base_inferer").brain_channel
            assert parser.get_parsed_content("image_keys")[channel] == reference, files


def test_the_rotations_turn_the_axial_plane():
    """The 90, 180 and 270 degree rotations of Sec. 3.3 turn array axes 0 and 1 and leave axis 2 alone, as a
    24x24x16 patch must: its third side is shorter than the other two."""
    rotations = [t for t in train("train#lesion_transforms").transforms if type(t).__name__ == "Rotate90d"]
    assert len(rotations) == 3 and all(tuple(t.rotator.spatial_axes) == (0, 1) for t in rotations)


def test_the_authors_early_stopping_override_watches_the_evaluated_fold(tmp_path):
    """train.json stops on 10 % of the training folds' patients, never the evaluated fold; the labelled override
    authors_early_stopping.json restores the authors' scheme: every other fold's patient trains, the fold stops."""
    import json

    entries = [{"case_id": f"c{i}", "patient_id": f"p{i}", "fold": i % 4, "flair": f"c{i}_flair.nii.gz", "label": f"c{i}_ot.nii.gz"} for i in range(28)]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"root": str(tmp_path), "training": entries, "testing": []}))
    splits = {}
    for files in (("train.json",), ("train.json", "authors_early_stopping.json")):
        parser = ConfigParser()
        parser.read_config([str(bundles_dir() / BUNDLE / "configs" / f) for f in files])
        parser["datalist_path"] = str(datalist)
        parser["fold"] = 1
        train_set, val_set = parser.get_parsed_content("split")
        splits[files[-1]] = ({e["case_id"] for e in train_set}, {e["case_id"] for e in val_set})
    fold1 = {f"c{i}" for i in range(28) if i % 4 == 1}
    others = {f"c{i}" for i in range(28)} - fold1
    ours_train, ours_val = splits["train.json"]
    assert ours_val and not ours_val & fold1 and ours_train | ours_val == others and len(ours_val) == 2  # 10 % of 21 patients, at least 1
    assert splits["authors_early_stopping.json"] == (others, fold1)
