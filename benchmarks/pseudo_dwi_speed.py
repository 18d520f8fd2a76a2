"""Pseudo-DWI framework of Wang et al. (MedIA 2020) at the paper's size: one end-to-end training step and the
inference of one volume.

The framework (``PseudoDWISLNet``: extractor and generator U-Nets of 64…1024 channels, SLNet, context encoder, about
96 M parameters) on 256×256 ISLES 2018 slices of 11 channels (4 maps, MIP, 6 CTA frames). Training: one RMSprop step
of the whole Eq. 15 loss on a batch of ``--batch`` slices (the paper: 5). Inference: a ``--slices``-slice volume
(ISLES 2018 averages 5.34), slice batches of 4, plus the perfusion-stage transform (Eqs. 1-3) of a 48-frame series.
Prints medians of ``--repeats``.

    python benchmarks/pseudo_dwi_speed.py --device cpu --repeats 3
    python benchmarks/pseudo_dwi_speed.py --device cuda --repeats 10 --amp
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from monai.inferers import SliceInferer
from tfa_map_speed import median_time  # noqa: E402  (sibling script: run from the repository root)

from strokezoo.losses import PseudoDWILoss
from strokezoo.networks import ContextEncoder, PseudoDWISLNet, SLNet, xavier_init
from strokezoo.transforms import PerfusionFeaturesd, lesion_weight_map


def framework() -> PseudoDWISLNet:
    plain = dict(norm="batch", squeeze_excitation=False)
    return xavier_init(PseudoDWISLNet(SLNet(6, 1, **plain), SLNet(6, 1, **plain), SLNet(1, 2), ContextEncoder()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--slices", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    net = framework().to(device)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"{params:.2f} M parameters, amp {'bf16' if a.amp else 'off'}"
    )

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if a.amp else contextlib.nullcontext()

    label = torch.zeros(a.batch, 1, 256, 256)
    label[:, :, 100:140, 90:150] = 1
    target = {
        "label": label.to(device),
        "dwi": (0.3 + 0.5 * label + 0.05 * torch.rand_like(label)).to(device),
        "weight": torch.as_tensor(lesion_weight_map(label[:, 0].numpy()))[:, None].to(device),
    }
    x = torch.randn(a.batch, 11, 256, 256, device=device)
    loss_fn = PseudoDWILoss()
    opt = torch.optim.RMSprop(net.parameters(), lr=2e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(net(x, reference=target["dwi"]), target)
        loss.backward()
        opt.step()

    net.train()
    t = median_time(step, device, a.repeats)
    print(f"training step, batch {a.batch} x 256x256: {t:.3f} s ({a.batch / t:.1f} slices/s)")
    if device.type == "cuda":
        print(f"peak memory (training): {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")

    net.eval()
    volume = torch.randn(1, 11, 256, 256, a.slices, device=device)
    inferer = SliceInferer(roi_size=(-1, -1), spatial_dim=2, sw_batch_size=4, progress=False)

    def infer():
        with torch.no_grad(), autocast():
            inferer(volume, net)

    t_net = median_time(infer, device, a.repeats)
    series = torch.rand(48, 256, 256, a.slices) * 100
    t_features = median_time(lambda: PerfusionFeaturesd("ctp")({"ctp": series}), torch.device("cpu"), a.repeats)
    print(f"inference, {a.slices}-slice volume: network {t_net:.3f} s, perfusion features (CPU) {t_features:.3f} s, total {t_net + t_features:.3f} s")


if __name__ == "__main__":
    main()
