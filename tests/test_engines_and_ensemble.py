"""L1ErrorRate (Clèrigues 2020, Sec. 3.4) against a direct computation, and FoldEnsemble's averaged softmax."""

from __future__ import annotations

import pytest
import torch

from strokezoo.engines import L1ErrorRate, per_rank_batch
from strokezoo.networks import AsymmetricResidualUNet, FoldEnsemble


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
