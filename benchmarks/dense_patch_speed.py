"""Dense patch inference (Clèrigues 2020, Sec. 3.5): batched ``DensePatchInferer`` against the batch-1 loop.

An ISLES 2015 SISS-sized volume (230×230×154, 8 channels = 4 modalities and their symmetric copies) with
an ellipsoidal brain mask and the paper-size network (4 levels, 32 base filters), patches
24×24×16 every 4×4×1 voxels. Both ways are timed on the same patches; on a CPU the full volume takes too long
for the loop, so ``--patches`` limits both to the first N brain centres and the full-volume time is
extrapolated from the measured rate (said so in the output). Prints medians of repeated runs.

    python benchmarks/dense_patch_speed.py --device cpu --patches 256
    python benchmarks/dense_patch_speed.py --device cuda --patches 0          # 0: the whole volume
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from strokezoo.inferers import DensePatchInferer, patch_centres
from strokezoo.networks import AsymmetricResidualUNet

SHAPE = (230, 230, 154)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--patches", type=int, default=256, help="brain patch centres to time (0: all of them)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    net = AsymmetricResidualUNet(in_channels=8).to(device).eval()
    grid = torch.stack(torch.meshgrid(*(torch.linspace(-1, 1, s) for s in SHAPE), indexing="ij"))
    brain = ((grid / torch.tensor([0.75, 0.85, 0.8])[:, None, None, None]) ** 2).sum(0) < 1
    volume = torch.rand(8, *SHAPE) * brain
    centres = patch_centres(SHAPE, (4, 4, 1), brain)
    total = len(centres)
    n = total if a.patches <= 0 else min(a.patches, total)
    # the first n centres lie in a slab of x; crop the volume around it so both ways see the same patches
    x_hi = int(centres[n - 1, 0]) + 1
    crop = volume[:, : x_hi + 12].contiguous()
    keep = torch.zeros_like(crop[0], dtype=torch.bool)
    keep[tuple(centres[:n].T)] = True  # the brain mask of the crop: only the chosen centres
    crop, keep = crop.to(device), keep.to(device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"torch {torch.__version__}; volume {SHAPE}x8, {total} brain patch centres, timing {n}"
    )
    inferer = DensePatchInferer(batch_size=a.batch)
    padded = torch.nn.functional.pad(crop, (8, 7, 12, 11, 12, 11))
    chosen = patch_centres(crop.shape[1:], (4, 4, 1), keep)

    def batched():
        with torch.no_grad():
            inferer(crop[None], net, brain=keep[None, None])

    def loop():
        with torch.no_grad():
            for c in chosen.tolist():
                torch.softmax(net(padded[None, :, c[0] : c[0] + 24, c[1] : c[1] + 24, c[2] : c[2] + 16]), 1)

    rates = {}
    for name, fn in (("batched", batched), ("batch-1 loop", loop)):
        fn()
        times = []
        for _ in range(a.repeats):
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        rates[name] = len(chosen) / med
        print(
            f"{name}: {med:.3f} s for {len(chosen)} patches = {rates[name]:.0f} patches/s -> "
            f"{'measured' if n == total else 'extrapolated'} {total / rates[name]:.1f} s/volume"
        )
    print(f"speed-up batched / loop: {rates['batched'] / rates['batch-1 loop']:.1f}x")


if __name__ == "__main__":
    main()
