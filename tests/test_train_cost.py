"""``benchmarks/train_cost.py`` runs on a CPU at tiny size: a bundle's training stage measured for a few steps,
with its throughput, its data-wait share, the FLOPs of a step and the recipe's projection all consistent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_cost_measures_a_stage_and_projects_the_recipe(tmp_path, capsys):
    """The cross-attention bundle at CPU size on a small cohort, 2 steps after 1 left out: samples/s is the batch
    over the step time, the wait share lies in [0, 1), a step counts FLOPs, and the projected hours are the paper's
    600 epochs of the release's 43 training cases (3 of the 4 folds train) at that step time."""
    spec = importlib.util.spec_from_file_location("train_cost", REPO / "benchmarks" / "train_cost.py")
    train_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_cost)
    args = ["--device", "cpu", "--size", "cpu", "--steps", "2", "--warmup", "1", "--bundles", "stroke_mri_crossattention_unet2d"]
    (row,) = train_cost.main([*args, "--cases", "4", "--scale", "0.3", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert row["stage"] == "train.json" and row["steps_measured"] == 2 and row["batch"] == 8.0
    assert abs(row["samples_per_s"] - row["batch"] / row["step_s"]) / row["samples_per_s"] < 0.01
    assert 0 <= row["data_wait_share"] < 1 and row["step_tflop"] > 0 and row["achieved_tflops"] > 0
    assert row["epochs"] == 600 and row["release_cases"] == 43
    per_epoch = row["samples_per_epoch_at_release"]
    assert abs(row["projected_hours"] - 600 * per_epoch / 8 * row["step_s"] / 3600) <= 0.01 * row["projected_hours"] + 0.01
    assert "| stroke_mri_crossattention_unet2d | train.json |" in capsys.readouterr().out
