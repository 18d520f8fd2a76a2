"""DensePatchInferer against the per-patch loop it replaces (Clèrigues et al. 2020, Sec. 3.5)."""

from __future__ import annotations

import pytest
import torch

from strokezoo.inferers import DensePatchInferer, patch_centres
from strokezoo.networks import AsymmetricResidualUNet

PATCH = (8, 8, 4)


def naive_loop(image: torch.Tensor, net, patch=PATCH, step=(2, 2, 1), brain: torch.Tensor | None = None) -> torch.Tensor:
    """One patch at a time: zero-pad, cut the patch centred on each grid voxel, softmax, add, count, average."""
    c, *size = image.shape
    lo = [p // 2 for p in patch]
    padded = torch.zeros(c, *(s + p - 1 for s, p in zip(size, patch)))
    padded[:, lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = image
    acc = torch.zeros(2, *padded.shape[1:])
    cnt = torch.zeros(padded.shape[1:])
    for x in range(0, size[0], step[0]):
        for y in range(0, size[1], step[1]):
            for z in range(0, size[2], step[2]):
                if brain is not None and not brain[x, y, z]:
                    continue
                box = (slice(x, x + patch[0]), slice(y, y + patch[1]), slice(z, z + patch[2]))
                acc[(slice(None), *box)] += torch.softmax(net(padded[(slice(None), *box)][None]), 1)[0]
                cnt[box] += 1
    crop = tuple(slice(b, b + s) for b, s in zip(lo, size))
    acc, cnt = acc[(slice(None), *crop)], cnt[crop]
    out = acc / cnt.clamp_min(1)
    out[0][cnt == 0] = 1.0
    return out


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return AsymmetricResidualUNet(in_channels=3, base_features=4, levels=3).eval()


@pytest.mark.parametrize("with_brain", [True, False])
def test_equals_the_per_patch_loop(net, with_brain):
    torch.manual_seed(1)
    image = torch.randn(3, 13, 11, 6)
    brain = torch.ones(13, 11, 6, dtype=torch.uint8)
    brain[:3] = 0  # outside the brain; the image's values there play no part in the test
    with torch.no_grad():
        ref = naive_loop(image, net, brain=brain if with_brain else None)
        inferer = DensePatchInferer(PATCH, (2, 2, 1), batch_size=7)
        out = (inferer(image[None], net, brain=brain[None, None]) if with_brain else inferer(image[None], net))[0]
    assert out.shape == (2, 13, 11, 6)
    assert (out - ref).abs().max() < 1e-5
    assert torch.allclose(out.sum(0), torch.ones(13, 11, 6), atol=1e-5)  # probabilities, also where uncovered


def test_centres_follow_the_step_and_the_brain_mask():
    brain = torch.ones(10, 9, 3)
    brain[0] = 0
    c = patch_centres((10, 9, 3), (4, 4, 1))
    assert len(c) == 3 * 3 * 3 and set(c[:, 0].tolist()) == {0, 4, 8}
    kept = patch_centres((10, 9, 3), (4, 4, 1), brain)
    assert len(kept) == 2 * 3 * 3 and 0 not in kept[:, 0].tolist()
    with pytest.raises(ValueError, match="no patch centre"):
        DensePatchInferer((8, 8, 4))(torch.zeros(1, 1, 8, 8, 4), lambda x: x, brain=torch.zeros(1, 1, 8, 8, 4))
    with pytest.raises(ValueError, match="brain masks of shape"):
        DensePatchInferer((8, 8, 4))(torch.zeros(1, 1, 8, 8, 4), lambda x: x, brain=torch.ones(1, 1, 8, 8, 5))


def test_metatensor_in_metatensor_out(net):
    from monai.data import MetaTensor

    affine = torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))
    image = MetaTensor(torch.rand(1, 3, 8, 8, 4) + 0.1, affine=affine)
    with torch.no_grad():
        out = DensePatchInferer(PATCH, (4, 4, 2))(image, net)
    assert isinstance(out, MetaTensor) and out.shape == (1, 2, 8, 8, 4) and torch.equal(out.affine, affine)


def test_without_a_mask_the_reference_channel_gives_the_same_brain(net):
    """A call without ``brain=`` (MONAI Label's) with ``brain_channel``: the mask comes from that channel of the
    z-scored input, and equals the mask of the image as released, so the probabilities are the evaluator's."""
    from strokezoo.transforms import brain_mask

    torch.manual_seed(3)
    raw = torch.zeros(3, 13, 11, 6)
    raw[:, 3:11, 2:9, 1:5] = torch.rand(3, 8, 7, 4) * 300 + 50  # a zero background around the "brain"
    z = (raw - raw.mean((1, 2, 3), keepdim=True)) / raw.std((1, 2, 3), keepdim=True)  # the bundle's per-channel z-score
    brain = torch.as_tensor(brain_mask(raw[1].numpy()))
    assert torch.equal(brain, raw[1] > 0)
    with torch.no_grad():
        given = DensePatchInferer(PATCH, (2, 2, 1))(z[None], net, brain=brain[None, None])
        derived = DensePatchInferer(PATCH, (2, 2, 1), brain_channel=1)(z[None], net)
        everywhere = DensePatchInferer(PATCH, (2, 2, 1))(z[None], net)
    assert torch.allclose(derived, given, atol=1e-6) and not torch.allclose(everywhere, given, atol=1e-3)
