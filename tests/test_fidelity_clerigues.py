"""stroke_mri_residual_unet3d against the values Clèrigues et al. (CMPB 2020) state, read from the parsed
``train.json`` and ``inference.json`` (the built object where there is one), never from a library default.

Each row is (section, what the paper states, how the config gives it, the stated value). Points the paper leaves
open (the network's details, Adadelta's rho, where the authors' code is the evidence) are not rows here: the paper
states no value for them."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import torch
from monai.bundle import ConfigParser

from strokezoo.bundle_info import bundles_dir
from strokezoo.metrics.grid_search import MIN_SIZES, THRESHOLDS

BUNDLE = "stroke_mri_residual_unet3d"


@cache
def config(name: str) -> ConfigParser:
    """The bundle's ``name`` config, parsed once (objects are built on first use and kept)."""
    parser = ConfigParser()
    parser.read_config(str(bundles_dir() / BUNDLE / "configs" / name))
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
    ("3.4", "batch of 16 patches", lambda: train("train#dataloader#batch_size"), 16),
    ("3.4", "Adadelta optimiser", lambda: type(train("optimizer")).__name__, "Adadelta"),
    ("3.2, Eq. 1", "focal loss, gamma = 2", lambda: (type(train("loss")).__name__, train("loss").gamma), ("FocalLoss", 2.0)),
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


@pytest.mark.parametrize("row", PAPER, ids=[f"{r[0]}-{r[1][:40]}" for r in PAPER])
def test_the_config_says_what_the_paper_states(row: Row):
    section, statement, read, stated = row
    assert read() == stated, (section, statement)


def test_the_rotations_turn_the_axial_plane():
    """The 90, 180 and 270 degree rotations of Sec. 3.3 turn array axes 0 and 1 and leave axis 2 alone, as a
    24x24x16 patch must: its third side is shorter than the other two."""
    rotations = [t for t in train("train#lesion_transforms").transforms if type(t).__name__ == "Rotate90d"]
    assert len(rotations) == 3 and all(tuple(t.rotator.spatial_axes) == (0, 1) for t in rotations)
