"""The stock MONAI baselines of ``strokezoo compare``: what a user would train instead of a published method.

MONAI's ``BasicUNet`` and ``DynUNet`` with its default widths, ``DiceCELoss`` and Adam at 1e-3 (:data:`LEARNING_RATE`), z-scored inputs and
the random flips and intensity scaling and shifting of MONAI's tutorials, configured as those tutorials do and not
tuned here. The 2D cohorts train on axial slices (every slice, as the 2D bundles do) and infer slice by slice; the
3D cohort (ISLES 2015 SISS) trains on 64 × 64 × 32 patches drawn half on the lesion, half off
(``RandCropByPosNegLabeld``, 4 per volume) and infers by sliding window. The network of the best validation Dice
is kept, as in the bundles. They train and infer on the first CUDA device where there is one, as the bundles'
configs do.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset, MetaTensor, list_data_collate
from monai.inferers import SliceInferer, SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.metrics import compute_dice
from monai.networks.nets import BasicUNet, DynUNet
from monai.transforms import (
    Compose,
    ConcatItemsd,
    EnsureTyped,
    NormalizeIntensityd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)
from monai.utils import set_determinism
from torch import nn

from ..data.slices import SliceDataset
from ..networks.slnet import pad_to_multiple
from ..transforms import LoadModalitiesd, SaveCased

__all__ = ["STOCK", "stock_network", "train_stock", "infer_stock"]

#: The stock networks, by the name the comparison gives them.
STOCK = ("basicunet", "dynunet")

PATCH_3D = (64, 64, 32)

#: Adam's learning rate: 1e-3, as MONAI's 2D segmentation tutorial trains its UNet. At 1e-4 (its 3D spleen tutorial's)
#: the stock nets learnt little or nothing in the CPU budget at difficulty 0.5 (benchmarks/stock_budget.py;
#: docs/leaderboard.md)
LEARNING_RATE = 1e-3


def _device() -> torch.device:
    """The first CUDA device where there is one, else the CPU (the bundles' ``device`` key)."""
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


class _Padded(nn.Module):
    """``net`` on inputs zero-padded to a multiple of ``divisor`` and cropped back (DynUNet needs divisible sizes)."""

    def __init__(self, net: nn.Module, divisor: int = 16) -> None:
        super().__init__()
        self.net, self.divisor = net, divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, crop = pad_to_multiple(x, self.divisor)
        return self.net(padded)[crop]


def stock_network(name: str, spatial_dims: int, in_channels: int) -> nn.Module:
    """``BasicUNet`` (MONAI's default features) or a five-level ``DynUNet`` (3-kernels, strides 2, instance norm,
    MONAI's defaults otherwise), 2 output classes, padded to their divisor for any input size."""
    if name == "basicunet":
        return _Padded(BasicUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=2))
    if name == "dynunet":
        strides = [[1] * spatial_dims] + [[2] * spatial_dims] * 4
        net = DynUNet(spatial_dims, in_channels, 2, kernel_size=[[3] * spatial_dims] * 5, strides=strides, upsample_kernel_size=strides[1:])
        return _Padded(net)
    raise ValueError(f"unknown stock network {name!r}; choose from {STOCK}")


def _volume_transform(keys: Sequence[str], with_label: bool) -> Compose:
    load = [*keys, "label"] if with_label else list(keys)
    return Compose(
        [
            LoadModalitiesd(load),
            ConcatItemsd(list(keys), "image"),
            NormalizeIntensityd("image", nonzero=True, channel_wise=True),
            EnsureTyped(["image", "label"] if with_label else "image", dtype=torch.float32),
        ]
    )


def _augment() -> list:
    """MONAI's tutorial augmentations: a left-right flip, intensity scaling and shifting."""
    return [
        RandFlipd(["image", "label"], prob=0.5, spatial_axis=0),
        RandScaleIntensityd("image", factors=0.1, prob=1.0),
        RandShiftIntensityd("image", offsets=0.1, prob=1.0),
    ]


def _inferer(spatial_dims: int):
    if spatial_dims == 2:
        return SliceInferer(roi_size=(-1, -1), spatial_dim=2, sw_batch_size=16, progress=False)
    return SlidingWindowInferer(roi_size=PATCH_3D, sw_batch_size=4, overlap=0.25)


def _train_loader(entries: list[dict], keys: Sequence[str], spatial_dims: int) -> DataLoader:
    prep = _volume_transform(keys, with_label=True)
    if spatial_dims == 2:
        dataset = SliceDataset(entries, volume_transform=prep, transform=Compose(_augment()), keys=("image", "label"))
        return DataLoader(dataset, batch_size=16, shuffle=True, num_workers=0)
    crop = [
        SpatialPadd(["image", "label"], spatial_size=PATCH_3D),
        RandCropByPosNegLabeld(["image", "label"], label_key="label", spatial_size=PATCH_3D, pos=1, neg=1, num_samples=4),
    ]
    dataset = Dataset(entries, transform=Compose([*prep.transforms, *crop, *_augment()]))
    return DataLoader(dataset, batch_size=2, shuffle=True, num_workers=0, collate_fn=list_data_collate)


def _onehot(mask: torch.Tensor) -> torch.Tensor:
    return torch.cat([~mask, mask], 1).float()


def _validation_dice(net: nn.Module, volumes: list[dict], spatial_dims: int, device: torch.device) -> float:
    inferer, scores = _inferer(spatial_dims), []
    net.eval()
    with torch.no_grad():
        for v in volumes:
            pred = inferer(v["image"][None].to(device), net).argmax(1, keepdim=True).cpu() > 0
            label = v["label"][None] > 0
            scores.append(float(compute_dice(_onehot(pred), _onehot(label), include_background=False, ignore_empty=False).mean()))
    net.train()
    return float(np.mean(scores)) if scores else float("nan")


def train_stock(
    name: str,
    train: list[dict],
    val: list[dict],
    keys: Sequence[str],
    spatial_dims: int,
    out: Path,
    epochs: int,
    seed: int = 0,
    val_interval: int = 5,
    minutes: float | None = None,
    learning_rate: float = LEARNING_RATE,
) -> dict:
    """Train stock network ``name`` on the ``train`` entries, validating on ``val`` every ``val_interval`` epochs
    and at the end; the best network's weights go to ``out/model.pt``. ``minutes``: a wall-clock budget too: it
    validates after every epoch and stops at the end of the first epoch past the budget, as the bundles do
    (:class:`strokezoo.engines.WallClockBudget`). Returns the seconds taken, the epochs completed and the best
    validation Dice (``best_val_dice``)."""
    set_determinism(seed)
    t0 = time.perf_counter()
    device = _device()
    net = stock_network(name, spatial_dims, len(keys)).to(device)
    loader = _train_loader(train, keys, spatial_dims)
    prep = _volume_transform(keys, with_label=True)
    volumes = [prep(dict(e)) for e in val]
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    best, best_state = -1.0, copy.deepcopy(net.state_dict())
    start, epoch = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(batch["image"].to(device)), batch["label"].to(device))
            loss.backward()
            optimizer.step()
        if minutes or epoch % val_interval == 0 or epoch == epochs:
            dice = _validation_dice(net, volumes, spatial_dims, device)
            if dice > best:
                best, best_state = dice, copy.deepcopy(net.state_dict())
        if minutes and time.perf_counter() - start >= minutes * 60:
            break
    out.mkdir(parents=True, exist_ok=True)
    torch.save(best_state, out / "model.pt")
    set_determinism(None)
    return {"train_seconds": time.perf_counter() - t0, "epochs": epoch, "best_val_dice": best}


def infer_stock(name: str, checkpoint: Path, entries: list[dict], keys: Sequence[str], spatial_dims: int, out: Path) -> float:
    """Masks (``<case_id>.nii.gz``, uint8) and lesion probabilities (``<case_id>_prob.nii.gz``) of the stock network
    on each entry, on its input grid; returns the seconds per volume."""
    device = _device()
    net = stock_network(name, spatial_dims, len(keys))
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    net.to(device).eval()
    prep, inferer = _volume_transform(keys, with_label=False), _inferer(spatial_dims)
    save_mask, save_prob = SaveCased("pred", out, dtype="uint8"), SaveCased("prob", out, postfix="_prob", dtype="float32")
    t0 = time.perf_counter()
    with torch.no_grad():
        for e in entries:
            d = prep(dict(e))
            prob = torch.softmax(inferer(d["image"][None].to(device), net), 1)[0, 1:2].cpu()
            affine = d["image"].affine
            save_mask({"pred": MetaTensor((prob > 0.5).float(), affine=affine), "case_id": e["case_id"]})
            save_prob({"prob": MetaTensor(prob, affine=affine), "case_id": e["case_id"]})
    return (time.perf_counter() - t0) / max(len(entries), 1)
