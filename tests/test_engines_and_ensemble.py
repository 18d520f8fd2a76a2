"""L1ErrorRate (Clèrigues 2020, Sec. 3.4) against a direct computation, and FoldEnsemble's averaged softmax."""

from __future__ import annotations

import pytest
import torch

from strokezoo.engines import L1ErrorRate, SaveBestNetwork, per_rank_batch
from strokezoo.networks import AsymmetricResidualUNet, FoldEnsemble, ServedEnsemble, fold_part
from strokezoo.networks.fold_ensemble import member_part


def test_l1_plus_error_rate_over_batches_and_decollated_lists():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(6, 2, 4, 4, 3), 1)
    labels = (torch.rand(6, 1, 4, 4, 3) > 0.7).float()
    metric = L1ErrorRate()
    metric.update((probs[:4], labels[:4]))
    metric.update((list(probs[4:]), list(labels[4:])))  # MONAI's decollated engine output
    l1 = (probs[:, 1] - labels[:, 0]).abs().mean()
    err = (probs.argmax(1) != labels[:, 0].long()).float().mean()
    assert metric.compute() == pytest.approx(float(l1 + err), rel=1e-6)
    metric.reset()
    with pytest.raises(ValueError, match="at least one"):
        metric.compute()


def test_fold_ensemble_softmax_is_the_mean_of_the_folds_and_loads_fold_checkpoints(tmp_path):
    torch.manual_seed(1)
    folds = [AsymmetricResidualUNet(in_channels=2, base_features=4, levels=2).eval() for _ in range(3)]
    paths = []
    for k, net in enumerate(folds):
        paths.append(tmp_path / f"fold{k}.pt")
        torch.save(net.state_dict(), paths[-1])
    ensemble = FoldEnsemble(AsymmetricResidualUNet(in_channels=2, base_features=4, levels=2), num_folds=3).eval()
    ensemble.load_state_dict(FoldEnsemble.state_dict_from_folds(paths))
    x = torch.randn(2, 2, 8, 8, 4)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(net(x), 1) for net in folds]).mean(0)
        assert torch.allclose(torch.softmax(ensemble(x), 1), expected, atol=1e-6)


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AsymmetricResidualUNet(in_channels=2, base_features=4, levels=2).eval()


def test_the_served_ensemble_is_the_folds_trained_so_far_and_loads_whatever_its_member_count(tmp_path):
    """Training writes models/model.pt as the ensemble of the fold folders that hold a checkpoint; an ensemble
    built for four folds takes a one-fold checkpoint (MONAI Label's /train) and then infers as that fold alone."""
    models = tmp_path / "models"
    nets = {k: _net(k) for k in (0, 2)}
    for k, net in nets.items():
        (models / f"fold{k}").mkdir(parents=True)
        torch.save(net.state_dict(), models / f"fold{k}" / "model.pt")
    (models / "fold1").mkdir()  # a fold folder without its checkpoint is not a trained fold
    served = ServedEnsemble(models, models / "model.pt")
    assert served.folds() == [0, 2]
    x = torch.randn(1, 2, 8, 8, 4)
    ensemble = FoldEnsemble(_net(9), num_folds=4).eval()
    ensemble.load_state_dict(torch.load(served(), weights_only=True))
    assert len(ensemble.folds) == 2
    with torch.no_grad():
        expected = torch.stack([torch.softmax(n(x), 1) for n in nets.values()]).mean(0)
        assert torch.allclose(torch.softmax(ensemble(x), 1), expected, atol=1e-6)
    (models / "fold2" / "model.pt").unlink()
    ensemble.load_state_dict(torch.load(served(), weights_only=True))
    with torch.no_grad():
        assert len(ensemble.folds) == 1 and torch.allclose(ensemble(x).exp(), torch.softmax(nets[0](x), 1), atol=1e-6)
    state = torch.load(models / "model.pt", weights_only=True)
    with pytest.raises(ValueError, match="holds folds 0 to n-1"):
        ensemble.load_state_dict({k.replace("folds.0.", "folds.3.", 1): v for k, v in state.items()})
    with pytest.raises(FileNotFoundError, match="no fold checkpoint to serve"):
        ServedEnsemble(tmp_path / "empty", tmp_path / "out.pt")()


def test_a_missing_fold_part_is_written_from_the_served_ensemble_and_a_present_one_is_kept(tmp_path):
    """Part B of the CTP transformer reads its fold's part A; an exported bundle has only models/model.pt."""
    from strokezoo.networks import TFATransformer, TFAUNet

    def fold_net(seed):
        torch.manual_seed(seed)
        transformer = TFATransformer(in_channels=2, frames=8, patch_size=4, hidden_size=8, num_layers=1, num_heads=2, projected_length=4, mlp_dim=8)
        return TFAUNet(transformer=transformer, unet=torch.nn.Conv2d(3, 2, 1))

    served = tmp_path / "models" / "model.pt"
    served.parent.mkdir()
    ensemble = FoldEnsemble(fold_net(0), num_folds=2)
    ensemble.folds[1].load_state_dict(fold_net(1).state_dict())
    torch.save(ensemble.state_dict(), served)
    part = tmp_path / "models" / "fold1" / "transformer.pt"
    assert fold_part(part, served, "transformer", member=1) == str(part)
    loaded = torch.load(part, weights_only=True)
    assert loaded.keys() == ensemble.folds[1].transformer.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in ensemble.folds[1].transformer.state_dict().items())
    before = part.read_bytes()
    fold_part(part, served, "transformer", member=0)  # present: kept as it is
    assert part.read_bytes() == before
    assert member_part(served, "transformer", member=5) == {}
    missing = tmp_path / "models" / "fold5" / "transformer.pt"
    assert fold_part(missing, served, "transformer", member=5) == str(missing) and not missing.exists()


def test_save_best_network_serves_after_each_new_best_only(tmp_path):
    calls = []

    class State:
        best_metric_epoch, epoch, best_metric, key_metric_name = 1, 1, 0.5, "val_mean_dice"

    class Engine:
        state, network = State(), torch.nn.Linear(2, 2)

    handler = SaveBestNetwork(tmp_path / "fold0" / "model.pt", then=lambda: calls.append("served") or "models/model.pt")
    handler(Engine())
    assert (tmp_path / "fold0" / "model.pt").is_file() and calls == ["served"]
    Engine.state.epoch = 2  # not a new best
    handler(Engine())
    assert calls == ["served"]


def test_hand_trainer_lets_early_stopping_on_the_validator_stop_the_trainer():
    """The residual bundle's early stopping runs on the validator; HandTrainer (in the trainer's handlers) gives it
    the trainer, which it stops after ``patience`` validations without improvement."""
    from ignite.engine import Engine, Events
    from monai.handlers import EarlyStopHandler

    from strokezoo.engines import HandTrainer

    scores = iter([0.3, 0.4, 0.5])  # the validation error grows worse after the first
    validator = Engine(lambda engine, batch: None)

    @validator.on(Events.EPOCH_COMPLETED)
    def _score(engine):
        engine.state.metrics["val_l1_error"] = next(scores)

    early_stop = EarlyStopHandler(patience=2, score_function=lambda engine: -engine.state.metrics["val_l1_error"], epoch_level=True)
    early_stop.attach(validator)
    trainer = Engine(lambda engine, batch: validator.run([0]))
    HandTrainer([early_stop]).attach(trainer)
    trainer.run([0], max_epochs=10)
    assert trainer.state.epoch == 3  # best at epoch 1, two worse validations, stopped
    with pytest.raises(TypeError, match="handlers without set_trainer"):
        HandTrainer([object()])


def test_per_rank_batch_keeps_the_global_batch_and_refuses_an_unequal_share():
    """The Gómez bundles' multi_gpu_train.json: 4 ranks of a batch-32 config load 8 each (one step sees 32, the
    thesis's batch); one process outside DDP loads the whole batch (the two-rank case runs in the multi-GPU test);
    5 over 2 ranks is refused."""
    assert per_rank_batch(32, 4) == 8 and per_rank_batch(16, 1) == 16
    assert per_rank_batch(16) == 16
    with pytest.raises(ValueError, match="batch_size 5 cannot be shared equally by 2 processes"):
        per_rank_batch(5, 2)
