"""The measurements behind the fixes of the performance pass (docs/benchmarks.md, "Fixed in this pass"), side by side.

* ``precision``: one batch of 16 slices (224×224) through the cross-domain network (Dual V1, paper size): fp32, bf16
  autocast, channels-last, both.
* ``untracked``: a 64×32×32 TFA training patch through the transformer bundle's six sample transforms, with and
  without MONAI's metadata tracking (ms per sample).
* ``tfa_chunks``: the paper-size TFA transformer on 4096 token sequences in chunks of 256 … 4096, bf16 autocast.
* ``registration``: the mirror registration of a synthetic SISS FLAIR (230×230×153) with 20 % and 5 % of the voxels
  sampled; prints the seconds and the rigid transform's parameters.

Prints the best of ``--repeats`` after a warm-up.

    python benchmarks/pass_speed.py --device cpu
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def precision(device: torch.device, repeats: int) -> None:
    from strokezoo.networks import CrossDomainUNet

    net = CrossDomainUNet(in_channels=2).to(device).eval()
    x = torch.randn(16, 2, 224, 224, device=device)
    with torch.inference_mode():
        for name, amp, cl in (("fp32", False, False), ("bf16", True, False), ("fp32 channels-last", False, True), ("bf16 channels-last", True, True)):
            fmt = torch.channels_last if cl else torch.contiguous_format
            net.to(memory_format=fmt)
            xi = x.contiguous(memory_format=fmt)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                print(f"precision  cross-domain, 16 slices 224x224, {name}: {best(lambda: net(xi), repeats):.2f} s")


def untracked(repeats: int) -> None:
    from monai.data import set_track_meta
    from monai.transforms import Compose, EnsureTyped, RandFlipd, RandRotate90d, SqueezeDimd

    from strokezoo.transforms import CentralPixelsd

    t = Compose(
        [
            SqueezeDimd(["image", "label"], dim=-1),
            CentralPixelsd("label", size=2),
            RandFlipd("image", prob=0.5, spatial_axis=0),
            RandFlipd("image", prob=0.5, spatial_axis=1),
            RandRotate90d("image", prob=0.75, max_k=3),
            EnsureTyped(["image", "label"], track_meta=False),
        ]
    )
    sample = {"image": torch.randn(64, 32, 32, 1), "label": torch.zeros(1, 32, 32, 1)}

    def many() -> None:
        for _ in range(200):
            t(dict(sample))

    for tracked in (True, False):
        set_track_meta(tracked)
        print(f"untracked  TFA patch, six transforms, tracking {'on ' if tracked else 'off'}: {best(many, repeats) / 200 * 1e3:.2f} ms per sample")
    set_track_meta(True)


def tfa_chunks(device: torch.device, repeats: int) -> None:
    from strokezoo.networks import TFATransformer

    net = TFATransformer().to(device).eval()
    z = torch.randn(4096, 32, 128, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        for chunk in (256, 512, 1024, 4096):
            run = lambda c=chunk: [net.classify(z[i : i + c]) for i in range(0, len(z), c)]  # noqa: E731
            print(f"tfa_chunks 4096 sequences in chunks of {chunk}, bf16: {best(run, repeats):.2f} s")


def registration(repeats: int) -> None:
    from strokezoo.io.nifti import load_nifti
    from strokezoo.synth import synthesize_cohort
    from strokezoo.transforms.symmetric_modalities import mirror_transform

    with tempfile.TemporaryDirectory() as tmp:
        synthesize_cohort("isles2015-siss", tmp, cases=1, seed=0, scale=1.0, test_fraction=0.0)
        flair = next(p for p in sorted(Path(tmp).rglob("*Flair*.nii*")) if p.is_file())
        img = load_nifti(flair)
        volume, spacing = np.asarray(img.data, dtype=np.float32), img.zooms
        for sampling in (0.2, 0.05):
            seconds = best(lambda s=sampling: mirror_transform(volume, spacing, 0, sampling=s), repeats)
            params = np.round(np.asarray(mirror_transform(volume, spacing, 0, sampling=sampling).GetParameters()), 4)
            print(f"registration {volume.shape}, {sampling:.0%} of the voxels: {seconds:.1f} s, parameters {params.tolist()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--what", nargs="+", default=["precision", "untracked", "tfa_chunks", "registration"])
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})")
    for what in a.what:
        {
            "precision": lambda: precision(device, a.repeats),
            "untracked": lambda: untracked(a.repeats),
            "tfa_chunks": lambda: tfa_chunks(device, a.repeats),
            "registration": lambda: registration(1),
        }[what]()


if __name__ == "__main__":
    main()
