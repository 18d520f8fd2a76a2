"""Training images/s and inference seconds per volume of the 2D slice networks at the papers' sizes (224×224).

* ``attention``: the cross-attention U-Net of Gómez 2023 (six levels, 32…1024, deep supervision), on an
  ISLES 2018-like 256×256×8 slab (5 channels, 3 classes) and an ISLES 2017-like 192×192×24 volume (3 channels);
* ``crossdomain``: the dual ADC/DWI network of Gómez et al. MICCAI 2023 (Dual V1), on an ISLES 2022-like
  112×112×73 ADC+DWI study.

Inference is the bundles' path for one volume: 2D network over every axial slice (MONAI ``SliceInferer``),
including resizing to 224×224 and back and the activation. Training is one optimiser step (forward, the
bundle's loss, backward, AdamW) on in-memory batches of 224×224 slices. Prints medians of repeated runs.

    python benchmarks/unet2d_speed.py --device cpu --nets attention crossdomain
    python benchmarks/unet2d_speed.py --device cuda --bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from monai.inferers import SliceInferer
from monai.losses import DeepSupervisionLoss, FocalLoss
from torch.nn import functional as F

from strokezoo.losses import ClassWeightMapLoss, MultiSegmentationLoss
from strokezoo.networks import CrossAttentionUNet, CrossDomainUNet


def attention_case(c: int, classes: int):
    """The cross-attention U-Net and its deep-supervision loss (MRI: focal + CW; CT: CE + CW, 3 classes)."""
    base = FocalLoss(gamma=2.0, reduction="none") if classes == 1 else FocalLoss(gamma=0.0, use_softmax=True, to_onehot_y=True, reduction="none")
    loss = DeepSupervisionLoss(ClassWeightMapLoss(base, [0.3, 0.7] if classes == 1 else [0.7, 2.0, 7.0]), weights=[0.5, 0.25, 0.125, 0.05, 0.045, 0.03])
    return CrossAttentionUNet(in_channels=c, out_channels=classes), loss, 1


def crossdomain_case(c: int, classes: int):
    """The dual ADC/DWI network and the multi-segmentation loss (Eq. 1): one binary target per modality."""
    loss = MultiSegmentationLoss(ClassWeightMapLoss(FocalLoss(gamma=2.0, alpha=0.25, reduction="none"), [1.0, 3.0]))
    return CrossDomainUNet(in_channels=c), loss, c


#: net -> {volume: ((channels, H, W, D), classes)}, the builder of (network, loss, target channels), paper batch
NETS = {
    "attention": (
        {"isles2018-like 256x256x8, 5 ch, 3 classes": ((5, 256, 256, 8), 3), "isles2017-like 192x192x24, 3 ch, 1 class": ((3, 192, 192, 24), 1)},
        attention_case,
        32,
    ),
    "crossdomain": ({"isles2022-like 112x112x73, ADC+DWI, 2 outputs": ((2, 112, 112, 73), 1)}, crossdomain_case, 16),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--nets", nargs="+", choices=sorted(NETS), default=sorted(NETS))
    ap.add_argument("--batch", type=int, default=None, help="training batch (default: the paper's, 32 or 16)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"bf16 {a.bf16}, channels_last {a.channels_last}, torch {torch.__version__}"
    )
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    for net_name in a.nets:
        volumes, build, paper_batch = NETS[net_name]
        batch = a.batch or paper_batch
        for name, ((c, h, w, d), classes) in volumes.items():
            net, loss_fn, targets = build(c, classes)
            net = net.to(device, memory_format=fmt)
            inferer = SliceInferer(roi_size=(224, 224), spatial_dim=2, sw_batch_size=32, progress=False)
            volume = torch.rand(1, c, h, w, d, device=device)

            def infer():
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
                    x = F.interpolate(volume, size=(224, 224, d), mode="trilinear", align_corners=False)
                    y = inferer(x, net.eval())
                    y = torch.sigmoid(y) if classes == 1 else torch.softmax(y, 1)
                    F.interpolate(y.float(), size=(h, w, d), mode="trilinear", align_corners=False)

            t_inf = timed(infer, device, a.repeats)
            opt = torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=1e-5)
            x = torch.rand(batch, c, 224, 224, device=device).contiguous(memory_format=fmt)
            y = (torch.rand(batch, targets, 224, 224, device=device) > 0.99).float() * (1 if classes == 1 else 2)

            def step():
                net.train()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
                    outs = net(x)
                loss = loss_fn([o.float() for o in outs] if isinstance(outs, list) else outs.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t_step = timed(step, device, a.repeats)
            peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
            print(
                f"{name}: inference {statistics.median(t_inf):.3f} s/volume; training {batch / statistics.median(t_step):.1f} images/s "
                f"(step {statistics.median(t_step):.3f} s, batch {batch}){peak}"
            )


if __name__ == "__main__":
    main()
