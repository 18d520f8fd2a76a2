"""The three Gómez bundles against the values their papers state, read from the parsed ``train.json`` (the built
object where there is one: the optimiser, the scheduler, the loss, the network, the transforms), never from a library
default. Thesis: S. Gómez, MSc thesis, UIS 2023, Sec. 5.1–5.3; MICCAI: Gómez et al., MICCAI 2023, Sec. 2.2–2.3.

Each row is (where the paper states it, what it states, how the config gives it). The bundles' READMEs list the
same rows in their fidelity tables, with the choices the papers leave open."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from monai.bundle import ConfigParser

from strokezoo.bundle_info import bundles_dir


@cache
def train_config(bundle: str) -> ConfigParser:
    """The bundle's train.json, parsed once (objects are built on first use and kept)."""
    parser = ConfigParser()
    parser.read_config(str(bundles_dir() / bundle / "configs" / "train.json"))
    return parser


def built(p: ConfigParser, key: str) -> Any:
    return p.get_parsed_content(key)


def transform(p: ConfigParser, key: str, name: str) -> Any:
    """The one transform of class ``name`` in the list ``key``."""
    (found,) = [t for t in built(p, key) if type(t).__name__ == name]
    return found


def deg(radians: float) -> float:
    return round(math.degrees(radians), 6)


def random_transforms(p: ConfigParser) -> list[Any]:
    """The training's random transforms, each ``Compose`` among them opened."""
    from monai.transforms import Compose

    def flat(ts):
        return [x for t in ts for x in (flat(t.transforms) if isinstance(t, Compose) else [t])]

    return flat(built(p, "train#random_transforms"))


def augmentations(p: ConfigParser) -> list[str]:
    return [type(t).__name__ for t in random_transforms(p)]


def rotation_degrees(p: ConfigParser) -> list[float]:
    (rotation,) = [t for t in random_transforms(p) if type(t).__name__ == "RandRotated"]
    return [deg(r) for r in rotation.rand_rotate.range_x]


def min_max(p: ConfigParser) -> tuple[float, float]:
    scaler = transform(p, "load_transforms", "ScaleIntensityd").scaler
    return scaler.minv, scaler.maxv


def min_max_from_percentiles(p: ConfigParser) -> tuple[float, float, float, float, bool]:
    """(lower percentile, upper percentile, b_min, b_max, per channel) of the cross-attention bundle's min-max
    scaling: from each volume's minimum (percentile 0) to its maximum (100); configs/percentile.json, a variant,
    moves the upper end (:func:`test_the_min_max_scaling_is_the_thesis_s_and_the_percentile_variant_clips`)."""
    scaler = transform(p, "load_transforms", "ScaleIntensityRangePercentilesd").scaler
    return scaler.lower, scaler.upper, scaler.b_min, scaler.b_max, scaler.channel_wise


def slice_size(p: ConfigParser) -> list[int]:
    return list(transform(p, "load_transforms", "Resized").resizer.spatial_size[:2])


def flip_axes(p: ConfigParser) -> list[int]:
    return sorted(int(t.flipper.spatial_axis) for t in random_transforms(p) if type(t).__name__ == "RandFlipd")


Row = tuple[str, str, Callable[[ConfigParser], Any], Any]

W = [0.03, 0.045, 0.05, 0.125, 0.25, 0.5]  # thesis Sec. 5.2
# brightness, contrast, elastic, grid and optical distortions
THESIS_AUGMENTATIONS = {"RandShiftIntensityd", "RandScaleIntensityd", "Rand2DElasticd", "RandGridDistortiond", "RandOpticalDistortiond"}

# the schedule, optimiser and augmentation of thesis Sec. 5.2, which Sec. 5.3 applies to the CT bundle too
THESIS_TRAINING: list[Row] = [
    ("5.2", "AdamW optimiser", lambda p: type(built(p, "optimizer")).__name__, "AdamW"),
    ("5.2", "initial learning rate 5e-3", lambda p: built(p, "optimizer").defaults["lr"], 5e-3),
    ("5.2", "weight decay 1e-5", lambda p: built(p, "optimizer").defaults["weight_decay"], 1e-5),
    ("5.2", "600 epochs", lambda p: built(p, "lr_scheduler").t_total, 600),
    ("5.2", "linear warm-up over the first 90 epochs", lambda p: built(p, "lr_scheduler").warmup_steps, 90),
    ("5.2", "then cosine decay (510 epochs)", lambda p: type(built(p, "lr_scheduler")).__name__, "WarmupCosineSchedule"),
    ("5.2", "batch size 32", lambda p: built(p, "train#trainer#batch_size"), 32),
    ("5.2", "six processing levels", lambda p: len(built(p, "network_def").features), 6),
    ("5.2", "deep supervision weights W = {0.03, 0.045, 0.05, 0.125, 0.25, 0.5}", lambda p: sorted(built(p, "loss").weights), sorted(W)),
    ("5.2", "finer outputs weigh more (0.5 on the full-resolution output)", lambda p: built(p, "loss").weights[0], 0.5),
    ("5.2", "rotations between -7 and 7 degrees", rotation_degrees, [-7.0, 7.0]),
    ("5.2", "flips along the horizontal and vertical axes", flip_axes, [0, 1]),
    (
        "5.2",
        "brightness, contrast, elastic, grid and optical distortions",
        lambda p: THESIS_AUGMENTATIONS <= set(augmentations(p)),
        True,
    ),
    ("5.1", "slices resized to 224x224", slice_size, [224, 224]),
]

PAPER: dict[str, list[Row]] = {
    "stroke_mri_crossattention_unet2d": [
        *THESIS_TRAINING,
        ("5.2", "focal loss", lambda p: type(built(p, "pixel_loss")).__name__, "FocalLoss"),
        ("5.2", "class weights w0 = 0.3 (non-lesion), w1 = 0.7 (lesion)", lambda p: built(p, "loss").loss.class_weights, [0.3, 0.7]),
        ("5.2", "one output map, sigmoid-activated", lambda p: (built(p, "out_channels"), built(p, "pixel_loss").use_softmax), (1, False)),
        ("6, Table 1", "best input: ADC + TTP + Tmax", lambda p: built(p, "modalities"), ["adc", "ttp", "tmax"]),
        ("5.1", "min-max normalisation per volume, to [0, 1]", min_max_from_percentiles, (0, 100, 0.0, 1.0, True)),
    ],
    "stroke_ct_boundary_attention_unet2d": [
        *THESIS_TRAINING,
        ("5.3", "an extra class for the lesion boundary (three classes)", lambda p: built(p, "network_def").head.conv.out_channels, 3),
        ("5.3", "class weights C = {0.7, 2.0, 7.0}", lambda p: built(p, "loss").loss.class_weights, [0.7, 2.0, 7.0]),
        ("5.3", "cross-entropy instead of the focal loss", lambda p: (built(p, "pixel_loss").gamma, built(p, "pixel_loss").use_softmax), (0.0, True)),
        ("5.3", "volumes normalised (the min-max of Sec. 5.1)", min_max, (0.0, 1.0)),
    ],
    "stroke_dwi_crossdomain_unet2d": [
        ("2.3", "AdamW optimiser", lambda p: type(built(p, "optimizer")).__name__, "AdamW"),
        ("2.3", "learning rate 5e-3", lambda p: built(p, "optimizer").defaults["lr"], 5e-3),
        ("2.3", "decay 1e-5", lambda p: built(p, "optimizer").defaults["weight_decay"], 1e-5),
        ("2.3", "300 epochs", lambda p: built(p, "lr_scheduler").t_total, 300),
        ("2.3", "linear warm-up over the first 90 epochs, then 210 of cosine decay", lambda p: built(p, "lr_scheduler").warmup_steps, 90),
        ("2.3", "batch size 16", lambda p: built(p, "train#trainer#batch_size"), 16),
        ("2.3", "32, 64, 128, 256, 512 filters and 1024 in the bottleneck", lambda p: list(built(p, "network_def").features), [32, 64, 128, 256, 512, 1024]),
        ("2.3", "focal loss gamma = 2", lambda p: built(p, "pixel_loss").gamma, 2.0),
        ("2.2 Eq. 1, 2.3", "alpha = 0.25, one factor on every term", lambda p: (built(p, "loss").loss.scale, built(p, "pixel_loss").alpha), (0.25, None)),
        ("2.3", "class weight map: 1 for non-lesion, 3 for lesion voxels", lambda p: built(p, "loss").loss.class_weights, [1.0, 3.0]),
        ("2.2 Eq. 1", "one loss term per modality (ADC and DWI)", lambda p: built(p, "modalities"), ["adc", "dwi"]),
        ("2.3", "studies resized to 224x224", slice_size, [224, 224]),
        ("2.3", "rotations (range not stated: the thesis's 7 degrees)", rotation_degrees, [-7.0, 7.0]),
        (
            "2.3",
            "brightness, contrast, flips, rotations, elastic, grid and optical distortions",
            lambda p: {"RandFlipd", "RandRotated"} | THESIS_AUGMENTATIONS <= set(augmentations(p)),
            True,
        ),
    ],
}

CASES = [pytest.param(bundle, row, id=f"{bundle}-{row[0]}-{row[1][:40]}") for bundle, rows in PAPER.items() for row in rows]


@pytest.mark.parametrize("bundle,row", CASES)
def test_the_config_says_what_the_paper_states(bundle: str, row: Row):
    section, statement, read, stated = row
    value = read(train_config(bundle))
    if isinstance(stated, float):
        assert value == pytest.approx(stated, rel=1e-9), (section, statement, value)
    else:
        assert value == stated, (section, statement, value)


def test_the_rows_are_not_library_defaults():
    """A row that a library default would satisfy proves nothing about the config: each of these keys is set in
    train.json itself (the optimiser's lr and weight decay, the scheduler's steps, the loss weights)."""
    for bundle in PAPER:
        raw = train_config(bundle).config
        assert {"lr", "weight_decay"} <= set(raw["optimizer"]) and {"warmup_steps", "t_total"} <= set(raw["lr_scheduler"]), bundle
        assert "class_weights" in raw["loss"]["loss"], bundle


@pytest.mark.parametrize("bundle", PAPER)
def test_every_epoch_of_the_warm_up_learns(bundle: str):
    """The linear warm-up (thesis Sec. 5.2, MICCAI Sec. 2.3) starts at lr / warmup_epochs, not at 0 (MONAI's
    default, which spent the first epoch at lr = 0), rises linearly, reaches the stated lr at the end of the warm-up
    and then decays (epoch-level steps, as train.json's LrScheduleHandler takes them)."""
    p = ConfigParser()
    p.read_config(str(bundles_dir() / bundle / "configs" / "train.json"))
    p["network_def"]["features"] = [4, 4, 4, 4, 4, 4]  # the schedule does not depend on the widths
    scheduler, lr, warmup = p.get_parsed_content("lr_scheduler"), p.get_parsed_content("learning_rate"), p.get_parsed_content("warmup_epochs")
    rates = []
    for _ in range(warmup + 2):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(lr / warmup)
    steps = [b - a for a, b in zip(rates[:warmup], rates[1 : warmup + 1])]
    assert all(s > 0 for s in steps) and max(steps) == pytest.approx(min(steps))
    assert rates[warmup] == pytest.approx(lr) and rates[warmup + 1] < lr


def _scaler(name: str, variant: str | None = None) -> Any:
    """The cross-attention bundle's min-max scaling in config ``name``, with override config ``variant`` on top."""
    configs = bundles_dir() / "stroke_mri_crossattention_unet2d" / "configs"
    p = ConfigParser()
    p.read_config([str(configs / name), *([str(configs / variant)] if variant else [])])
    return transform(p, "load_transforms" if name == "train.json" else "preprocessing#transforms", "ScaleIntensityRangePercentilesd")


@pytest.mark.parametrize("name", ["train.json", "inference.json"])
def test_the_min_max_scaling_is_the_thesis_s_and_the_percentile_variant_clips(name: str):
    """By default (thesis Sec. 5.1) each channel is scaled by its plain min-max, equal to MONAI's ScaleIntensityd,
    in training and inference alike. The variant configs/percentile.json (a deviation, a leaderboard row of its own)
    scales each channel from its minimum to its 99.9th percentile and clips: one voxel of 67 s in a TTP map whose
    other voxels reach 25 s then no longer squeezes them into the lower third of [0, 1] (a synthetic ISLES 2017
    study with such an outlier got no lesion at all; docs/leaderboard.md)."""
    import numpy as np
    import torch
    from monai.transforms import ScaleIntensityd

    rng = np.random.default_rng(0)
    image = np.stack([rng.uniform(0, 25, (20, 20, 8)), rng.uniform(400, 2600, (20, 20, 8))]).astype(np.float32)
    image[0, 3, 4, 5] = 67.0  # the outlier, in channel 0 only
    plain = ScaleIntensityd("image", minv=0.0, maxv=1.0, channel_wise=True)({"image": torch.as_tensor(image)})["image"]
    default = np.asarray(_scaler(name)({"image": torch.as_tensor(image)})["image"])
    np.testing.assert_allclose(default, np.asarray(plain), atol=1e-6)
    assert np.median(default[0]) < 0.25  # the outlier squeezes the plain min-max

    variant = _scaler(name, "percentile.json")
    assert variant.scaler.upper == 99.9
    scaled = np.asarray(variant({"image": torch.as_tensor(image)})["image"])
    for c in range(2):
        low, high = image[c].min(), np.percentile(image[c], 99.9)  # numpy's linear interpolation, as MONAI's
        np.testing.assert_allclose(scaled[c], np.clip((image[c] - low) / (high - low), 0, 1), atol=1e-6)
    assert np.median(scaled[0]) > 0.45
