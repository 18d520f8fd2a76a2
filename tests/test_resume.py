"""Checkpoints that survive a kill: the best network and the training state, written atomically, and a real run
killed with SIGKILL mid-epoch that resumes to the planned number of epochs."""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from test_bundles import configs, small_training_setup

from strokezoo.bundle_info import cpu_overrides
from strokezoo.engines import ResumeCheckpoint, SaveBestNetwork

from conftest import bundle_run


def _training(tmp_path: Path, resume: bool, net=None):
    torch.manual_seed(0)
    net = net or torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    validator = Engine(lambda e, b: None)
    validator.state.best_metric, validator.state.best_metric_epoch = -1.0, -1

    def step(engine, batch):
        opt.zero_grad()
        loss = net(batch).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    trainer = Engine(step)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: sched.step())
    handler = ResumeCheckpoint(tmp_path / "last.pt", net, opt, sched, validator=validator, resume=resume)
    handler.attach(trainer)
    return trainer, net, opt, sched, validator


def test_resume_checkpoint_restores_every_part_of_the_training_state(tmp_path):
    data = [torch.randn(4, 3) for _ in range(5)]
    trainer, net, opt, sched, validator = _training(tmp_path, resume=False)

    @trainer.on(Events.EPOCH_COMPLETED)
    def validated(engine):  # registered after the saver: its value of epoch 2 is saved at epoch 3
        validator.state.best_metric, validator.state.best_metric_epoch = 0.5 + engine.state.epoch, engine.state.epoch

    trainer.run(data, max_epochs=3)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (state["epoch"], state["iteration"]) == (3, 15)
    assert (state["best_metric"], state["best_metric_epoch"]) == (2.5, 2)

    fresh, net2, opt2, sched2, validator2 = _training(tmp_path, resume=True, net=torch.nn.Linear(3, 1))
    seen = []
    fresh.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(e.state.epoch))
    fresh.add_event_handler(
        Events.STARTED,
        lambda e: seen.append(
            (
                "loaded",
                e.state.epoch,
                [p.clone() for p in net2.parameters()],
                copy.deepcopy(opt2.state_dict()),
                sched2.get_last_lr(),
                validator2.state.best_metric,
            )
        ),
    )
    fresh.run(data, max_epochs=5)
    loaded = seen[0]
    assert loaded[1] == 3 and all(torch.equal(a, b) for a, b in zip(loaded[2], state["network"].values()))
    assert torch.equal(loaded[3]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert loaded[4] == pytest.approx([0.1 * 0.5**3]) and loaded[5] == 2.5
    assert seen[1:] == [4, 5]  # epochs 1-3 are not run again
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 5


def test_the_best_network_is_saved_only_on_a_new_best(tmp_path):
    net = torch.nn.Linear(2, 1)
    scores = iter([0.3, 0.2, 0.6])
    validator = Engine(lambda e, b: None)
    validator.state.best_metric, validator.state.best_metric_epoch, validator.state.key_metric_name = -1.0, -1, "val_mean_dice"

    @validator.on(Events.EPOCH_COMPLETED)
    def compare(engine):  # what MONAI's Workflow does before the handlers run
        score = next(scores)
        if score > engine.state.best_metric:
            engine.state.best_metric, engine.state.best_metric_epoch = score, engine.state.epoch

    SaveBestNetwork(tmp_path / "model.pt", net).attach(validator)
    saved = []
    validator.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: saved.append((tmp_path / "model.pt").stat().st_ino if (tmp_path / "model.pt").exists() else None)
    )
    with torch.no_grad():
        validator.add_event_handler(Events.EPOCH_STARTED, lambda e: net.weight.fill_(float(e.state.epoch)))
        validator.run([0], max_epochs=3)
    assert saved[0] is not None and saved[1] == saved[0] and saved[2] != saved[1]  # epochs 1 and 3 are new bests (a replaced file is a new inode)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].flatten().tolist() == [3.0, 3.0]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind


def test_a_training_run_killed_mid_epoch_resumes_to_the_planned_epochs(tmp_path, cohort):
    """A real ``train.json`` run, SIGKILLed during an epoch's iterations, then run again with ``--resume True``."""
    bundle, epochs = "stroke_mri_crossattention_unet2d", 4
    data, datalist, folds = small_training_setup(bundle, cohort, tmp_path)
    root = tmp_path / "bundle"
    keys = {"config_file": configs(bundle) / "train.json", "bundle_root": root, "dataset_dir": data, "datalist": datalist, "epochs": epochs}
    keys |= {"val_interval": 1, "resume": True, "progress_bar": False}
    cmd = [sys.executable, *bundle_run(None, {**keys, **folds, **cpu_overrides(bundle), "batch_size": 2})]
    last = root / "models" / "last.pt"
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    killed_in, lines = None, []
    deadline = time.monotonic() + 300
    for line in first.stdout:  # the StatsHandler logs every iteration: "Epoch: 2/4, Iter: 1/9 -- train_loss: ..."
        lines.append(line)
        m = re.search(r"Epoch: (\d+)/\d+, Iter: 1/(\d+)", line)
        if m and int(m.group(1)) >= 2 and int(m.group(2)) > 1:
            killed_in = int(m.group(1))
            os.kill(first.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(lines[-30:])
    first.wait(timeout=60)
    assert killed_in is not None and first.returncode == -signal.SIGKILL, "".join(lines[-30:])
    assert torch.load(last, weights_only=True)["epoch"] == killed_in - 1  # the epoch in progress was lost, nothing else
    assert not [p for p in (root / "models").iterdir() if p.name.startswith(".")]  # no temporary file left behind

    second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert f"resumed after epoch {killed_in - 1} of {epochs}" in log
    started = sorted({int(e) for e in re.findall(r"Epoch: (\d+)/\d+, Iter:", log)})
    assert started == list(range(killed_in, epochs + 1))
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == epochs and state["best_metric_epoch"] >= 1
    assert torch.load(root / "models" / "model.pt", weights_only=True)  # the best network, a plain state dict
