"""TFA map (de Vries 2021, Sec. 2): batched ``strokezoo.networks.tfa_map`` against the per-patch loop, and the
whole method (transformer, then U-Net) per volume.

A 256×256 ISLES 2018 slice of 64 channels (32 frames and their mirrored copy) and the paper-size transformer (12
Linformer layers, 8 heads, 128-d tokens, 32×32-pixel patches), a patch every 2 pixels: 16,384 patches per slice.
Both ways are timed on the same rows of the slice; ``--rows`` limits the slice to that many rows (0: the whole
slice) and the per-slice time is extrapolated from the measured rate (said so in the output). Then the fold
model's U-Net (64…512 channels) per ``--slices``-slice volume, and with ``--rows 0`` the whole fold model
(``TFAUNet``: TFA, then U-Net). Prints medians.

    python benchmarks/tfa_map_speed.py --device cpu --rows 4
    python benchmarks/tfa_map_speed.py --device cuda --rows 0
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from monai.networks.nets import DynUNet
from torch.nn import functional as F

from strokezoo.networks import TFATransformer, TFAUNet, tfa_map, tfa_padding


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device: torch.device, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=int, default=4, help="slice rows to time (0: all 256)")
    ap.add_argument("--batch", type=int, default=4096, help="patches per transformer batch")
    ap.add_argument("--slices", type=int, default=8, help="slices of the volume for the whole-method time")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    net = TFATransformer().to(device).eval()
    size, step, p = 256, 2, net.patch_size
    rows = size if a.rows <= 0 else a.rows
    part = torch.rand(1, 64, rows, size, device=device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"torch {torch.__version__}; slice {size}x{size}x64, timing {rows} rows = {-(-rows // step) * (size // step)} of {(size // step) ** 2} patches"
    )

    top, bottom, _ = tfa_padding(rows, p, step)
    left, right, _ = tfa_padding(size, p, step)
    padded = F.pad(part, (left, right, top, bottom))

    def batched():
        tfa_map(net, part, step, a.batch)

    def loop():
        with torch.no_grad():
            for i in range(0, rows, step):
                for j in range(0, size, step):
                    torch.softmax(net(padded[:, :, i : i + p, j : j + p]), dim=1)

    n = -(-rows // step) * (size // step)
    rates = {}
    for name, fn in (("batched", batched), ("per-patch loop", loop)):
        med = median_time(fn, device, a.repeats)
        rates[name] = n / med
        print(
            f"TFA {name}: {med:.3f} s for {n} patches = {rates[name]:.0f} patches/s -> "
            f"{'measured' if rows == size else 'extrapolated'} {(size // step) ** 2 / rates[name]:.2f} s/slice"
        )
    print(f"speed-up batched / loop: {rates['batched'] / rates['per-patch loop']:.1f}x")

    unet = DynUNet(
        2, 3, 2, kernel_size=[3] * 4, strides=[1, 2, 2, 2], upsample_kernel_size=[2] * 3, filters=[64, 128, 256, 512], norm_name="batch", act_name="relu"
    ).to(device)
    unet.eval()
    model = TFAUNet(net, unet, step, a.batch).to(device).eval()
    volume = torch.rand(a.slices, 64, size, size, device=device)
    inputs = torch.rand(a.slices, 3, size, size, device=device)  # [TFA, CT, MI] of every slice

    def stage_b():
        with torch.no_grad():
            unet(inputs)

    med = median_time(stage_b, device, a.repeats)
    print(f"part B (U-Net on [TFA, CT, MI]): {med:.2f} s per {a.slices}-slice volume ({med / a.slices:.3f} s/slice)")

    def whole():
        with torch.no_grad():
            for z in range(a.slices):
                model(volume[z : z + 1])

    if a.rows <= 0:
        med = median_time(whole, device, a.repeats)
        print(f"one fold model (TFA + U-Net): {med:.2f} s per {a.slices}-slice volume ({med / a.slices:.3f} s/slice); four-fold vote: ~{4 * med:.2f} s")
    else:
        print("whole-method time: run with --rows 0")


if __name__ == "__main__":
    main()
