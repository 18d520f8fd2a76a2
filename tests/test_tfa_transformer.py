"""The CTP transformer of de Vries et al. (MIDL 2021, Sec. 2): token shapes, parameter count by hand, Linformer
attention against plain attention, the TFA map against the per-patch loop, the two-stage fold model and its vote
ensemble, temporal resampling and the central-pixel target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.nets import DynUNet
from torch.nn import functional as F

from strokezoo.networks import FoldEnsemble, TFATransformer, TFAUNet, tfa_map, unet_inputs, write_fold_ensemble
from strokezoo.networks.blocks import LinformerSelfAttention
from strokezoo.transforms import central_pixels_target, temporal_resample


def small_transformer(**kw) -> TFATransformer:
    torch.manual_seed(0)
    args = dict(in_channels=2, frames=4, patch_size=8, hidden_size=16, num_layers=2, num_heads=4, projected_length=3, mlp_dim=32, dropout_rate=0.0)
    return TFATransformer(**{**args, **kw}).eval()


def test_paper_tokens_are_33_by_128():
    net = TFATransformer().eval()  # paper: 32x32 pixels x 32 frames x 2 channels, 128-d tokens, 12 Linformer layers, 8 heads
    x = torch.randn(3, 64, 32, 32)
    frame_tokens = net.embed(x).flatten(0, 2)
    assert frame_tokens.shape == (3, 32, 128)
    assert net.tokens(frame_tokens).shape == (3, 33, 128)
    assert net.position_embedding.shape == (1, 33, 128) and len(net.layers) == 12
    assert net(x).shape == (3, 2)


def test_parameter_count_matches_the_hand_count():
    d, n, k, m, layers, patch, c, classes = 128, 33, 16, 512, 12, 32, 2, 2
    embedding = patch * patch * c * d + d  # one linear map of a flattened 32x32x2 frame patch (2048 -> 128)
    cls_and_positions = d + n * d
    per_layer = (2 * d) + (3 * d * d) + (2 * n * k) + (d * d + d) + (2 * d) + (d * m + m + m * d + d)  # LN, QKV, E and F, out, LN, MLP
    head = 2 * d + d * classes + classes  # final LN, classifier
    expected = embedding + cls_and_positions + layers * per_layer + head
    net = TFATransformer(hidden_size=d, projected_length=k, mlp_dim=m, num_layers=layers)
    assert sum(p.numel() for p in net.parameters()) == expected == 2_654_466


def test_linformer_attention_with_identity_projections_is_plain_attention():
    torch.manual_seed(1)
    attn = LinformerSelfAttention(hidden_size=16, seq_len=5, num_heads=4, projected_length=5).eval()
    with torch.no_grad():
        attn.key_projection.copy_(torch.eye(5))
        attn.value_projection.copy_(torch.eye(5))
    x = torch.randn(2, 5, 16)
    q, k, v = attn.qkv(x).view(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    reference = attn.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(attn(x), reference, atol=1e-6, rtol=1e-5)
    # with k < n the keys and values are mixed along the sequence: the output changes
    short = LinformerSelfAttention(hidden_size=16, seq_len=5, num_heads=4, projected_length=2)
    assert short(x).shape == (2, 5, 16)


@pytest.mark.parametrize("step", [2, 1, 4])
def test_tfa_map_equals_the_per_patch_loop(step):
    net = small_transformer()
    series = torch.rand(2, 8, 13, 11)
    fast = tfa_map(net, series, step=step, batch_size=17)
    assert fast.shape == (2, 1, 13, 11)
    p = net.patch_size
    before = p // 2 - step // 2
    padded = F.pad(series, (before, p, before, p))
    slow = torch.empty_like(fast)
    with torch.no_grad():
        for b in range(2):
            for i in range(0, 13, step):
                for j in range(0, 11, step):
                    patch = padded[b : b + 1, :, i : i + p, j : j + p]  # its central step x step block is pixel (i, j) on
                    slow[b, 0, i : i + step, j : j + step] = torch.softmax(net(patch), dim=1)[0, 1]
    assert (fast - slow).abs().max() < 1e-5


def test_fold_model_outputs_unet_logits_and_the_tfa_map():
    net = small_transformer()
    torch.manual_seed(2)
    unet = DynUNet(2, 3, 2, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2], filters=[4, 8, 8, 8], norm_name="batch").eval()
    model = TFAUNet(net, unet, step=2).eval()
    x = torch.rand(2, 8, 13, 11)  # not a multiple of 8: padded for the U-Net, cropped back
    with torch.no_grad():
        out = model(x)
        tfa = tfa_map(net, x, 2)
        inputs = unet_inputs(x, tfa, frames=4)
        logits = unet(F.pad(inputs, (0, 5, 0, 3)))[..., :13, :11]
    assert out.shape == (2, 3, 13, 11)
    torch.testing.assert_close(out[:, 2:], tfa)
    torch.testing.assert_close(out[:, :2], logits)
    torch.testing.assert_close(inputs[:, 1], x[:, 0])  # CT: the first frame of the series, not of its mirrored copy
    torch.testing.assert_close(inputs[:, 2], x[:, :4].amax(1))  # MI: the maximum over the series' frames


def test_under_bf16_autocast_the_u_net_runs_in_float32_when_asked():
    """``unet_fp32``: inside a bf16 autocast region the transformer runs in bf16 and the U-Net in float32, on the
    float32 copy of its inputs; its logits then equal an fp32 U-Net's on those inputs. Without the flag the U-Net
    runs in bf16 too."""
    net = small_transformer()
    torch.manual_seed(2)
    unet = DynUNet(2, 3, 2, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2], filters=[4, 8, 8, 8], norm_name="batch").eval()
    x = torch.rand(2, 8, 16, 16)
    seen = []
    unet.register_forward_hook(lambda module, args, out: seen.append((args[0].dtype, out.dtype)))
    for flag, dtype in ((True, torch.float32), (False, torch.bfloat16)):
        seen.clear()
        model = TFAUNet(net, unet, step=2, unet_fp32=flag).eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert len(seen) == 1 and seen[0][1] == dtype, (flag, seen)
        if flag:
            assert seen[0][0] == torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = TFAUNet(net, unet, step=2, unet_fp32=True).eval()(x)
        tfa = tfa_map(net, x, 2)
    assert out.dtype == torch.float32
    with torch.no_grad():
        expected = unet(unet_inputs(x, tfa.float(), frames=4))
    torch.testing.assert_close(out[:, :2], expected)


class Fixed(torch.nn.Module):
    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.out


def test_vote_ensemble_majority_ties_to_background_and_averages_the_tfa():
    ens = FoldEnsemble(Fixed(torch.zeros(1)), num_folds=4, combine="vote", auxiliary_channels=1)
    # 4 folds x 3 pixels: logits (background, core) and a TFA channel; votes for core: 3, 2, 1
    votes = [[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]]
    for net, v, t in zip(ens.folds, votes, [0.2, 0.4, 0.6, 0.8]):
        core = torch.tensor(v, dtype=torch.float32)
        net.out = torch.stack([1 - core, core, torch.full((3,), t)])[None]
    out = ens(torch.zeros(1))
    shares = torch.softmax(out[:, :2], dim=1)[0, 1]
    torch.testing.assert_close(shares, torch.tensor([0.75, 0.5, 0.25]))
    assert out[0, :2].argmax(0).tolist() == [1, 0, 0]  # a 2-2 tie is no majority
    torch.testing.assert_close(out[0, 2], torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="combine"):
        FoldEnsemble(Fixed(torch.zeros(1)), combine="median")


def test_ensemble_checkpoint_from_the_parts_of_each_fold(tmp_path):
    folds = []
    for k in range(2):
        net = small_transformer()
        unet = DynUNet(2, 3, 2, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2], filters=[4, 8, 8])
        torch.nn.init.constant_(unet.output_block.conv.conv.weight, float(k))
        torch.save(net.state_dict(), tmp_path / f"t{k}.pt")
        torch.save(unet.state_dict(), tmp_path / f"u{k}.pt")
        folds.append({"transformer": tmp_path / f"t{k}.pt", "unet": tmp_path / f"u{k}.pt"})
    write_fold_ensemble(folds, tmp_path / "model.pt")
    ens = FoldEnsemble(TFAUNet(net, unet), num_folds=2, combine="vote", auxiliary_channels=1)
    ens.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))  # strict
    assert float(ens.folds[1].unet.output_block.conv.conv.weight.mean()) == 1.0
    with pytest.raises(FileNotFoundError, match="fold checkpoints missing"):
        write_fold_ensemble([{"transformer": tmp_path / "t0.pt", "unet": tmp_path / "none.pt"}], tmp_path / "x.pt")


def test_temporal_resampling_to_32_frames():
    t = np.linspace(0.0, 1.0, 28)
    curve = np.exp(-(((t - 0.4) / 0.15) ** 2))  # a bolus passage
    series = torch.as_tensor(np.broadcast_to(curve[:, None, None, None], (28, 2, 3, 2)).copy(), dtype=torch.float32)
    up = temporal_resample(series, 32)
    assert up.shape == (32, 2, 3, 2)
    np.testing.assert_allclose(up[:, 0, 0, 0].numpy(), np.interp(np.linspace(0, 1, 32), t, curve), atol=1e-5)  # linear, ends kept
    long = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 1, 1, 1)), dtype=torch.float32) + 5.0
    down = temporal_resample(long, 32)
    assert down.shape == (32, 1, 1, 1)
    assert abs(float(down.mean()) - float(long.mean())) < 0.1 and float(down.std()) < 0.8 * float(long.std())  # smoothed, not sub-sampled
    same = torch.rand(32, 2, 2, 2)
    assert torch.equal(temporal_resample(same, 32), same)


def test_central_pixels_target_is_the_share_of_infarct():
    label = torch.zeros(1, 8, 8, 1)
    label[0, 3, 3] = label[0, 3, 4] = label[0, 4, 3] = 1  # 3 of the 4 central pixels (rows and columns 3, 4)
    label[0, 0, 0] = 1  # not central
    torch.testing.assert_close(central_pixels_target(label), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(central_pixels_target(torch.zeros(1, 8, 8)), torch.tensor([1.0, 0.0]))


def test_tfa_inputs_are_computed_once_per_key_and_again_when_a_setting_or_the_weights_change(tmp_path, monkeypatch):
    """With a cache folder, part B's [TFA, CT, MI] volume of a series is computed once: a second transform with the
    same weights and settings (a second run, another rank) reads it back, equal; a changed step, new part-A weights
    or other voxels compute it anew."""
    from strokezoo.transforms import TFAInputsd
    from strokezoo.transforms import tfa_inputs as module

    calls = []
    real = module.tfa_map

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "tfa_map", counted)
    settings = dict(in_channels=2, frames=4, patch_size=4, hidden_size=16, num_layers=1, num_heads=2, mlp_dim=8, projected_length=4)
    torch.manual_seed(0)
    weights = tmp_path / "transformer.pt"
    torch.save(TFATransformer(**settings).state_dict(), weights)
    series = {"image": torch.rand(8, 12, 12, 3), "case_id": "case1"}

    def run(step=2, checkpoint=weights, data=series):
        transform = TFAInputsd("image", TFATransformer(**settings), checkpoint, step=step, cache_dir=tmp_path / "cache")
        return transform(dict(data))["image"]

    first = run()
    assert len(calls) == 1 and len(list((tmp_path / "cache").glob("case1-*.pt"))) == 1
    again = run()
    assert len(calls) == 1 and torch.equal(again, first)  # read back, not recomputed
    assert torch.equal(run(data={**series, "case_id": "case1-stacked"}), first) and len(calls) == 1  # same voxels, another name
    run(step=4)
    assert len(calls) == 2  # another step
    torch.manual_seed(1)
    torch.save(TFATransformer(**settings).state_dict(), tmp_path / "retrained.pt")
    run(checkpoint=tmp_path / "retrained.pt")
    assert len(calls) == 3  # new part-A weights
    run(data={"image": series["image"] + 0.5, "case_id": "case1"})
    assert len(calls) == 4 and len(list((tmp_path / "cache").glob("case1-*.pt"))) == 4
    uncached = TFAInputsd("image", TFATransformer(**settings), weights, step=2)(dict(series))["image"]
    assert torch.allclose(uncached, first)
