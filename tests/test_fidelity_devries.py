"""stroke_ctp_transformer_unet2d against the values de Vries et al. (MIDL 2021, Sec. 2) state, read from the parsed
``train_transformer.json`` (part A) and ``train.json`` (part B), the built object where there is one, never from a
library default. Each row is (section, what the paper states, how the config gives it, the stated value)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from monai.bundle import ConfigParser

from strokezoo.bundle_info import bundles_dir

BUNDLE = "stroke_ctp_transformer_unet2d"


@cache
def config(name: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(bundles_dir() / BUNDLE / "configs" / name))
    return parser


def part_a(key: str) -> Any:
    return config("train_transformer.json").get_parsed_content(key)


def part_b(key: str) -> Any:
    return config("train.json").get_parsed_content(key)


def downsamplings() -> int:
    """The 2x2 max-poolings a 64 x 64 slice passes through in part B's built network (no strided convolution)."""
    import torch
    from torch import nn

    net, pooled = part_b("network_def").eval(), []
    assert not [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    hooks = [m.register_forward_hook(lambda m, i, o: pooled.append(o.shape[-1])) for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return len(pooled)


def first_conv_inputs() -> int:
    from torch import nn

    return next(m for m in part_b("network_def").modules() if isinstance(m, nn.Conv2d)).in_channels


def attention_heads() -> set[int]:
    return {layer.attn.num_heads for layer in part_a("network_def").layers}


def redraw() -> tuple[str, str, str]:
    """Random healthy centres, and the handler that draws each epoch's patches (read unbuilt: it holds the dataset)."""
    (handler,) = [h for h in config("train_transformer.json").get("train#handlers") if "RedrawPatches" in h.get("_target_", "")]
    return part_a("train#dataset#healthy_sampling"), handler["_target_"], handler["dataset"]


Row = tuple[str, str, Callable[[], Any], Any]

PAPER: list[Row] = [
    ("2", "every series resampled to 32 frames (T = 32)", lambda: part_a("frames"), 32),
    ("2", "patches of H = W = 32 pixels", lambda: part_a("patch_size"), 32),
    ("2", "C = 2 channels: the scan and its flipped, registered copy", lambda: part_a("network_def").in_channels, 2),
    (
        "2",
        "each 2048-value patch-frame projected to 128",
        lambda: (part_a("network_def").frame_embedding.weight[0].numel(), part_a("hidden_size")),
        (2048, 128),
    ),
    (
        "2",
        "a learned classification embedding and 33 x 128 positional embeddings",
        lambda: tuple(part_a("network_def").position_embedding.shape[1:]),
        (33, 128),
    ),
    ("2", "Linformer with 8 heads and 12 layers", lambda: (attention_heads(), len(part_a("network_def").layers)), ({8}, 12)),
    ("2", "the class token classifies the 4 central pixels (2 classes)", lambda: part_a("network_def").head.out_features, 2),
    ("2", "patches evenly distributed across infarct and non-infarct", lambda: part_a("train#dataset#lesion_fraction"), 0.5),
    ("2", "patches randomly selected (every epoch)", redraw, ("random", "strokezoo.engines.RedrawPatches", "@train::dataset")),  # (MONAI stores "#" as "::")
    ("2", "150 epochs", lambda: part_a("epochs"), 150),
    ("2", "cross-entropy loss", lambda: type(part_a("loss")).__name__, "CrossEntropyLoss"),
    ("2", "Adam with a decaying learning rate", lambda: (type(part_a("optimizer")).__name__, type(part_a("lr_scheduler")).__name__), ("Adam", "ExponentialLR")),
    ("2", "a U-Net with three down-sampling layers", downsamplings, 3),
    ("2", "inputs: attention map, first CTP frame, maximum intensity frame", first_conv_inputs, 3),
    ("2", "SGD with momentum", lambda: (type(part_b("optimizer")).__name__, part_b("optimizer").defaults["momentum"] > 0), ("SGD", True)),
    (
        "2",
        "generalized Dice loss (over background and core)",
        lambda: (type(part_b("loss")).__name__, part_b("loss").include_background),
        ("GeneralizedDiceLoss", True),
    ),
    ("2", "4-fold cross-validation", lambda: (part_a("num_folds"), part_b("num_folds")), (4, 4)),
]


@pytest.mark.parametrize("row", PAPER, ids=[f"{r[0]}-{r[1][:40]}" for r in PAPER])
def test_the_config_says_what_the_paper_states(row: Row):
    section, statement, read, stated = row
    assert read() == stated, (section, statement)


@pytest.mark.parametrize("config", ["train.json", "inference.json"])
def test_part_b_is_the_paper_s_traditional_u_net_three_max_poolings_on_three_inputs(config):
    """Part B's "traditional" U-Net with three down-sampling layers, in training and in inference: the project's
    CrossAttentionUNet without gates or deep supervision, which down-samples by 2x2 max-pooling only
    (``configs/unet_strided.json``, a comparison variant, is MONAI's DynUNet with stride-2 convolutions)."""
    import torch
    from torch import nn

    parser = ConfigParser()
    parser.read_config(str(bundles_dir() / BUNDLE / "configs" / config))
    net = parser.get_parsed_content("unet_def").eval()
    pooled = []
    for m in net.modules():
        if isinstance(m, nn.MaxPool2d):
            m.register_forward_hook(lambda module, inputs, output: pooled.append(tuple(output.shape[-2:])))
    assert not [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]  # no strided down-sampling
    assert net.cross_attention is False and net.deep_supervision is False
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)  # [TFA, CT, MI] in, background and core out
    assert pooled == [(32, 32), (16, 16), (8, 8)]  # three 2x2 max-poolings
    if config == "train.json":
        assert parser.get("network_def") == "@unet_def"  # what stage B trains
    else:
        assert parser.get("fold_net#unet") == "@unet_def"  # what each fold's model runs
