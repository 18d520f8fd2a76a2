"""stroke_ctp_pseudodwi_slnet2d against the values Wang et al. (MedIA 2020) state, read from the parsed ``train.json``
(the built object where there is one), never from a library default. Each row is (section, what the paper states,
how the config gives it, the stated value)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from monai.bundle import ConfigParser
from torch import nn

from strokezoo.bundle_info import bundles_dir

BUNDLE = "stroke_ctp_pseudodwi_slnet2d"


@cache
def config(*overrides: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(bundles_dir() / BUNDLE / "configs" / name) for name in ("train.json", *overrides)])
    return parser


def train(key: str) -> Any:
    return config().get_parsed_content(key)


def step(kind: str, key: str = "volume_transforms") -> Any:
    """The one transform of type ``kind`` in the list ``key``."""
    (t,) = [t for t in train(key) if type(t).__name__ == kind]
    return t


def first_conv_inputs(part: str) -> int:
    return next(m for m in getattr(train("network_def"), part).modules() if isinstance(m, nn.Conv2d)).in_channels


def module_kinds(part: str | nn.Module) -> set[str]:
    """The module types of a part of train.json's framework, or of a network."""
    net = getattr(train("network_def"), part) if isinstance(part, str) else part
    return {type(m).__name__ for m in net.modules()}


Row = tuple[str, str, Callable[[], Any], Any]

PAPER: list[Row] = [
    ("3.1, Eqs. 2-3", "perfusion stage from K = 5 consecutive derivatives", lambda: step("PerfusionFeaturesd").k, 5),
    ("3.1, 4.1", "the perfusion stage down-sampled to C_e = 6 frames", lambda: (step("PerfusionFeaturesd").frames, first_conv_inputs("extractor")), (6, 6)),
    ("3.2, Eq. 6", "gamma = 1.2 weighs the contextual term", lambda: train("loss").gamma, 1.2),
    (
        "3.2, Eq. 9, 4.1",
        "lesion weight w = 1.5, distance D = 50",
        lambda: (step("LesionWeightMapd", "train#slice_targets").w, step("LesionWeightMapd", "train#slice_targets").d),
        (1.5, 50.0),
    ),
    ("3.4, Eq. 15, 4.1", "alpha = 1.0, beta = 1.0", lambda: (train("loss").alpha, train("loss").beta), (1.0, 1.0)),
    ("3.4", "end-to-end: extractor, generator and segmenter trained together", lambda: train("loss").parts, ("extractor", "generator", "segmenter")),
    (
        "4.2",
        "local split of 65 / 6 / 23 scans: about a quarter tested, 6 of the other 71 for validation",
        lambda: (train("num_folds"), train("val_fraction")),
        (4, 0.085),
    ),
    ("4.1", "RMSprop", lambda: type(train("optimizer")).__name__, "RMSprop"),
    ("4.1", "learning rate 0.002", lambda: train("optimizer").defaults["lr"], 0.002),
    (
        "4.1",
        "reduced by a factor of 0.2 after 180 of 300 epochs",
        lambda: (dict(train("lr_scheduler").milestones), train("lr_scheduler").gamma, train("epochs")),
        ({180: 1}, 0.2, 300),
    ),
    ("4.1", "batch of 5", lambda: (train("batch_size"), config().get("train#trainer#batch_size")), (5, "@batch_size")),
    ("4.1", "Xavier initialisation of every network", lambda: config().get("network").startswith("$strokezoo.networks.xavier_init(@network_def)"), True),
    (
        "4.1",
        "DWI scaled to (0, 1) by its minimum and 99th percentile",
        lambda: (step("ScaleIntensityRangePercentilesd").scaler.lower, step("ScaleIntensityRangePercentilesd").scaler.upper),
        (0, 99),
    ),
    (
        "3.3",
        "SLNet: switchable normalization and squeeze-and-excitation",
        lambda: {"SwitchableNorm", "ChannelSELayer"} <= module_kinds("segmenter") and "BatchNorm2d" not in module_kinds("segmenter"),
        True,
    ),
    (
        "3.1-3.2",
        "the feature extractor and generator are plain U-Nets (batch norm, no SE)",
        lambda: [{"SwitchableNorm", "ChannelSELayer"} & module_kinds(p) for p in ("extractor", "generator")],
        [set(), set()],
    ),
    ("3.2", "the generator takes the 4 perfusion maps, F_l and F_h", lambda: first_conv_inputs("generator"), 6),
]


@pytest.mark.parametrize("row", PAPER, ids=[f"{r[0]}-{r[1][:40]}" for r in PAPER])
def test_the_config_says_what_the_paper_states(row: Row):
    section, statement, read, stated = row
    assert read() == stated, (section, statement)


def maps(key: str) -> Any:
    return config("maps.json").get_parsed_content(key)


def fh_star(key: str) -> Any:
    return config("sequential.json", "fh_star.json").get_parsed_content(key)


#: The ablations (maps.json: Tables 3 and 4; fh_star.json: Table 2's F_h* row), read from train.json with them.
ABLATIONS: list[Row] = [
    (
        "4.2, Tables 3-4",
        "SLNet alone, on F_o = [CBF, CBV, MTT, Tmax]",
        lambda: (type(maps("network_def")).__name__, maps("image_keys")),
        ("SLNet", ["cbf", "cbv", "mtt", "tmax"]),
    ),
    (
        "4.2, Table 4",
        "SLNet (SN and SE) under the losses of Table 4",
        lambda: module_kinds(maps("network_def")) & {"SwitchableNorm", "BatchNorm2d", "ChannelSELayer"},
        {"SwitchableNorm", "ChannelSELayer"},
    ),
    (
        "4.2, Table 4",
        "the proposed L_WCE + L_HGD is the default row",
        lambda: (maps("loss").cross_entropy, type(maps("loss").overlap).__name__),
        ("weighted", "HardnessAwareGeneralizedDiceLoss"),
    ),
    ("4.2, Table 2", "F_h*: the extractor trained without L_e (beta 0)", lambda: fh_star("loss").beta, 0.0),
    ("4.2, Table 2", "the synthesis trained with L_g first", lambda: fh_star("loss").parts, ("extractor", "generator")),
    (
        "4.2, Table 2",
        "then a UNet trained with the standard cross-entropy",
        lambda: (
            module_kinds(fh_star("network_def#segmenter")) & {"SwitchableNorm", "BatchNorm2d", "ChannelSELayer"},
            fh_star("loss").segmentation.cross_entropy,
            fh_star("loss").segmentation.overlap,
        ),
        ({"BatchNorm2d"}, "plain", None),
    ),
]


@pytest.mark.parametrize("row", ABLATIONS, ids=[f"{r[0]}-{r[1][:40]}" for r in ABLATIONS])
def test_the_ablation_configs_say_what_the_paper_ran(row: Row):
    section, statement, read, stated = row
    assert read() == stated, (section, statement)
