"""``strokezoo compare``: one split for every method, the test patients never seen in training or model selection,
a leaderboard whose every figure is what ``strokezoo evaluate`` wrote, statistics that match independent
computations, failures reported while the others go on, and finished methods not run again."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from strokezoo.compare import bootstrap_ci, bundle_split, compare, inference_workflow, methods_of, paired_wilcoxon, split_overrides
from strokezoo.compare import stock as stock_module

REPO = Path(__file__).resolve().parents[1]

BUNDLE = "stroke_dwi_crossdomain_unet2d"


def _exact_wilcoxon_p(a, b) -> float:
    """Two-sided exact p of the signed-rank statistic by enumerating every sign assignment (no ties, no zeros)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    observed = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    stats = [
        min(sum(r for r, s in zip(ranks, signs) if s), sum(r for r, s in zip(ranks, signs) if not s)) for signs in itertools.product([0, 1], repeat=d.size)
    ]
    return float(np.mean([s <= observed for s in stats]))


def test_wilcoxon_and_bootstrap_against_independent_computations():
    rng = np.random.default_rng(4)
    a = rng.uniform(0.2, 0.9, 9)
    b = a - rng.uniform(0.01, 0.3, 9) * rng.choice([-1, 1], 9, p=[0.25, 0.75])
    assert paired_wilcoxon(a, b) == pytest.approx(_exact_wilcoxon_p(a, b), rel=1e-9)
    assert math.isnan(paired_wilcoxon(a, a)) and math.isnan(paired_wilcoxon([0.1, float("nan")], [0.2, 0.3]))

    low, high = bootstrap_ci(a)
    draws = rng.choice(a, size=(20_000, a.size)).mean(1)  # an independent percentile bootstrap of the mean
    assert low == pytest.approx(np.percentile(draws, 2.5), abs=0.01) and high == pytest.approx(np.percentile(draws, 97.5), abs=0.01)
    assert low < a.mean() < high
    assert all(math.isnan(x) for x in bootstrap_ci([0.5]))


def test_every_cohort_lists_its_bundles_the_stock_baselines_and_its_rule():
    assert [m for m, _ in methods_of("isles2018")] == [
        "stroke_ct_boundary_attention_unet2d",
        "stroke_ctp_pseudodwi_slnet2d",
        "stroke_ctp_transformer_unet2d",
        "stroke_ctp_transformer_unet2d+unet_strided",  # part B as a strided DynUNet, not the paper (configs/unet_strided.json)
        "basicunet",
        "dynunet",
        "threshold_rcbf",
        "ensemble",
    ]
    assert [m for m, _ in methods_of("isles2015-siss")] == ["stroke_mri_residual_unet3d", "basicunet", "dynunet"]  # no ADC: no rule
    # the paper's default, then its deviation as a row of its own (configs/percentile.json on top)
    assert methods_of("isles2017")[:2] == [("stroke_mri_crossattention_unet2d", "bundle"), ("stroke_mri_crossattention_unet2d+percentile", "bundle variant")]


def test_each_bundle_trains_and_validates_on_the_comparison_split(tmp_path):
    """For every bundle and stage, the split overrides give exactly the comparison's training and validation
    patients, read from the parsed configs, whichever way the bundle splits (a validation fold, or a fraction)."""
    from strokezoo.bundle_info import BUNDLES, cpu_overrides

    entries = [{"case_id": f"c{i}", "patient_id": f"p{i // 2}", "fold": (i // 2) % 4, "label": f"c{i}_ot.nii.gz"} for i in range(24)]
    train_dl = tmp_path / "train_datalist.json"  # the test fold (0) is not in the training datalist
    train_dl.write_text(json.dumps({"root": str(tmp_path), "training": [e for e in entries if e["fold"] != 0], "testing": []}))
    expected = ({e["case_id"] for e in entries if e["fold"] in (2, 3)}, {e["case_id"] for e in entries if e["fold"] == 1})
    for bundle, info in BUNDLES.items():
        for stage in info.stages:
            keys = {"bundle_root": str(tmp_path), "dataset_dir": str(tmp_path), "datalist": str(train_dl), **cpu_overrides(bundle)}
            assert bundle_split(bundle, stage, {**keys, **split_overrides(bundle, stage, 0, 1)}) == expected, (bundle, stage)
            # without the overrides the bundle splits otherwise (or finds no validation fold): the check would catch
            # overrides that did nothing
            try:
                own = bundle_split(bundle, stage, keys)
            except RuntimeError:
                own = None
            assert own != expected, (bundle, stage)

    # a datalist without the test or the validation fold is refused by name, before any method runs
    two_folds = tmp_path / "two_folds.json"
    two_folds.write_text(json.dumps({"root": str(tmp_path), "training": [e for e in entries if e["fold"] in (0, 2)], "testing": []}))
    with pytest.raises(ValueError, match=r"two_folds.json: its training entries need folds 0 \(test\) and 1 \(validation\)"):
        compare("isles2018", "threshold_rcbf", "smoke", str(tmp_path / "out"), datalist=str(two_folds), progress=False)
    assert not (tmp_path / "out").exists()


def test_the_test_fold_is_inferred_with_the_network_and_slices_that_were_trained(tmp_path):
    """Training keys that inference.json also reads (the CPU widths, a slice size the comparison overrides) reach
    the test fold's inference; training-only ones (the learning rate, the augmentation list) do not enter it."""
    from strokezoo.bundle_info import cpu_overrides, variant_keys

    bundle = "stroke_mri_crossattention_unet2d"
    keys = {"bundle_root": str(tmp_path), **cpu_overrides(bundle), "image_size": 96, "learning_rate": 0.5, "train#random_transforms": []}
    keys |= variant_keys(bundle, "percentile.json")  # the variant row's keys reach inference too
    infer = inference_workflow(bundle, keys, tmp_path / "datalist.json", 0, 1, tmp_path / "pred")
    parser = infer.parser
    (resize,) = [t for t in parser.get_parsed_content("preprocessing#transforms") if type(t).__name__ == "Resized"]
    assert list(resize.resizer.spatial_size[:2]) == [96, 96]
    (scale,) = [t for t in parser.get_parsed_content("preprocessing#transforms") if type(t).__name__ == "ScaleIntensityRangePercentilesd"]
    assert scale.scaler.upper == 99.9
    assert parser["network_def"]["features"] == "@features" and parser.get_parsed_content("features") == cpu_overrides(bundle)["features"]
    assert "learning_rate" not in parser.config and "train" not in parser.config
    assert parser["output_dir"] == str(tmp_path / "pred") and parser["amp"] is False and parser["save_probabilities"] is True


def test_a_tiny_comparison_scores_every_method_as_strokezoo_evaluate_does(cohort12, tmp_path, monkeypatch):
    data, full = cohort12(BUNDLE)
    out = tmp_path / "cmp"
    digest = hashlib.sha256(full.read_bytes()).hexdigest()
    real_train = stock_module.train_stock

    def failing_dynunet(name, *args, **kwargs):  # a failure before any training
        if name == "dynunet":
            raise RuntimeError("out of memory (simulated)")
        return real_train(name, *args, **kwargs)

    monkeypatch.setattr(stock_module, "train_stock", failing_dynunet)
    import strokezoo.bundle_run as runner

    real_bundle_train, bundle_runs = runner.train_bundle, []

    def recorded(*args, **kwargs):  # what the bundle was trained with
        bundle_runs.append(kwargs)
        return real_bundle_train(*args, **kwargs)

    monkeypatch.setattr(runner, "train_bundle", recorded)
    methods = f"{BUNDLE},basicunet,dynunet,threshold_adc"
    # the session's cohort; a wall-clock budget too short for more than the first of two epochs
    report, results = compare("isles2022", methods, "smoke", str(out), epochs=2, progress=False, datalist=str(full), minutes=1e-6)

    status = {r["name"]: r["status"] for r in results}
    assert status == {BUNDLE: "done", "basicunet": "done", "dynunet": "failed", "threshold_adc": "done"}
    assert "out of memory (simulated)" in next(r["error"] for r in results if r["name"] == "dynunet")
    assert all(0.0 <= r["best_val_dice"] <= 1.0 for r in results if r["name"] in (BUNDLE, "basicunet"))
    # one budget for every trained method (2 epochs or the minutes: each stopped after its first epoch, validated);
    # the bundle with its own augmentation, as the stock nets have MONAI's
    assert {r["name"]: r["epochs"] for r in results if r["status"] == "done" and "epochs" in r} == {BUNDLE: 1, "basicunet": 1}
    assert [(run.get("augment"), run.get("minutes")) for run in bundle_runs] == [(True, 1e-6)]
    text = report.read_text()
    assert "dynunet | stock MONAI | failed: RuntimeError: out of memory (simulated)" in text and "fold 0" in text
    assert f"- {BUNDLE}: " in text  # its verdict on the two bars
    assert (out / "dice.png").stat().st_size > 0

    test_ids = {e["case_id"] for e in json.loads(full.read_text())["training"] if e["fold"] == 0}
    trained_on = {e["case_id"] for e in json.loads((out / "train_datalist.json").read_text())["training"]}
    assert test_ids and not test_ids & trained_on

    with (out / "leaderboard.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert {m: rows[m]["epochs"] for m in (BUNDLE, "basicunet", "threshold_adc")} == {BUNDLE: "1", "basicunet": "1", "threshold_adc": ""}
    for r in results:
        if r["status"] != "done":
            continue
        summary = json.loads((out / "methods" / r["name"] / "evaluation" / "summary.json").read_text())
        m, row = summary["metrics"], rows[r["name"]]
        assert summary["cases"] == len(test_ids) == int(row["n"])
        for column, (metric, stat) in {
            "dice_mean": ("dice", "mean"),
            "dice_sd": ("dice", "sd"),
            "dice_median": ("dice", "median"),
            "lesion_f1_mean": ("lesion_f1", "mean"),
            "hd95_median": ("hd95", "median"),
            "abs_volume_diff_ml_mean": ("abs_volume_diff_ml", "mean"),
        }.items():
            value = m[metric][stat]
            assert (row[column] == "" and value is None) or float(row[column]) == pytest.approx(value, rel=1e-5, abs=1e-9), (r["name"], column)
        with (out / "methods" / r["name"] / "evaluation" / "metrics.csv").open() as f:
            dice = {c["case_id"]: float(c["dice"]) for c in csv.DictReader(f)}
        assert set(dice) == test_ids
        if r["name"] != "basicunet":
            with (out / "methods" / "basicunet" / "evaluation" / "metrics.csv").open() as f:
                reference = {c["case_id"]: float(c["dice"]) for c in csv.DictReader(f)}
            cases = sorted(test_ids)
            # BasicUNet is the reference only if it learnt (a one-epoch smoke run may not): else no test, no bar
            basic = next(x for x in results if x["name"] == "basicunet")
            learnt = basic["best_val_dice"] >= 0.05 and float(rows["basicunet"]["dice_mean"]) >= 0.05
            assert row["reference"] == ("basicunet" if learnt else "") and rows["basicunet"]["learned"] == ("yes" if learnt else "no")
            expected = paired_wilcoxon([dice[c] for c in cases], [reference[c] for c in cases]) if learnt else float("nan")
            assert float(row["wilcoxon_p"] or "nan") == pytest.approx(expected, rel=1e-5, nan_ok=True), r["name"]

    # finished methods are not run again; the failed one is
    stamps = {p: p.stat().st_mtime_ns for p in (out / "methods").rglob("model.pt")}
    attempts = []
    monkeypatch.setattr(stock_module, "train_stock", lambda name, *a, **k: attempts.append(name) or failing_dynunet(name, *a, **k))
    _, again = compare("isles2022", methods, "smoke", str(out), epochs=2, progress=False, datalist=str(full), minutes=1e-6)
    assert len(stamps) == 2 and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert attempts == ["dynunet"] and {r["name"]: r["status"] for r in again} == status
    assert hashlib.sha256(full.read_bytes()).hexdigest() == digest and not list(data.rglob("*_prob.nii.gz"))  # inputs untouched


def test_the_stock_networks_take_any_slice_or_volume_size():
    import torch

    for name in ("basicunet", "dynunet"):
        net = stock_module.stock_network(name, 2, 5).eval()
        assert net(torch.randn(2, 5, 50, 38)).shape == (2, 2, 50, 38)
        net = stock_module.stock_network(name, 3, 4).eval()
        assert net(torch.randn(1, 4, 20, 18, 17)).shape == (1, 2, 20, 18, 17)


def test_holm_against_a_worked_example_and_its_definition():
    from strokezoo.compare import holm

    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4 x 0.005, 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 0.3, 7)
    adjusted = holm([*p, float("nan")])
    assert math.isnan(adjusted[-1])
    order = np.argsort(p)
    for rank, i in enumerate(order):  # the definition: the running maximum of (m - j) p_(j) over j <= rank, capped at 1
        assert adjusted[i] == pytest.approx(min(1.0, max((7 - j) * p[order[j]] for j in range(rank + 1))))


def test_a_stock_baseline_that_learnt_nothing_is_marked_and_never_the_bar():
    from strokezoo.compare import learned

    assert learned({"name": "threshold_adc"}, 0.4) is None
    assert learned({"best_val_dice": [0.6, 0.7, 0.5]}, 0.4) is True
    assert learned({"best_val_dice": [0.6, 0.0, 0.5]}, 0.4) is False  # one split's network marked nothing useful
    assert learned({"best_val_dice": 0.6}, 0.01) is False


def test_cv_splits_test_each_fold_once_and_never_select_on_it():
    from strokezoo.compare import cv_splits

    assert cv_splits(1) == [(0, 1)] and cv_splits(1, 2, 3) == [(2, 3)]
    splits = cv_splits(5)
    assert sorted(t for t, _ in splits) == list(range(5)) and all(t != v for t, v in splits)
    for bad in (0, 2):
        with pytest.raises(ValueError, match="at least 3 folds"):
            cv_splits(bad)


def test_a_cross_validated_comparison_tests_every_study_once_and_pools_the_splits(cohort12, tmp_path, monkeypatch):
    """``--folds 4`` on a 4-fold cohort: each split's stock net trains on two folds and selects on the next fold,
    never on its test fold; the pooled leaderboard has n = every study, and its mean and Holm p are those of the
    splits' per-study figures; a second call runs nothing again, and a split whose result is gone runs alone."""
    from strokezoo.compare import holm

    _, full = cohort12(BUNDLE)
    entries = json.loads(full.read_text())["training"]
    fold_of = {e["case_id"]: e["fold"] for e in entries}
    real_train, seen = stock_module.train_stock, []

    def recorded(name, train, val, *args, **kwargs):
        seen.append(({fold_of[e["case_id"]] for e in train}, {fold_of[e["case_id"]] for e in val}))
        return real_train(name, train, val, *args, **kwargs)

    monkeypatch.setattr(stock_module, "train_stock", recorded)
    # a narrow BasicUNet: the protocol is under test here, not the network (four splits on two cores)
    from monai.networks.nets import BasicUNet

    narrow = lambda name, dims, channels: stock_module._Padded(BasicUNet(dims, channels, 2, features=(4, 4, 8, 8, 16, 4)))  # noqa: E731
    monkeypatch.setattr(stock_module, "stock_network", narrow)
    out = tmp_path / "cv"
    report, results = compare("isles2022", "basicunet,threshold_adc", "smoke", str(out), progress=False, datalist=str(full), folds=4)
    assert [r["status"] for r in results] == ["done", "done"]
    assert seen == [({(k + 2) % 4, (k + 3) % 4}, {(k + 1) % 4}) for k in range(4)]

    per_split = {}
    for k in range(4):
        with (out / f"split{k}" / "methods" / "basicunet" / "evaluation" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert {r["case_id"] for r in rows} == {c for c, fold in fold_of.items() if fold == k}
        per_split |= {r["case_id"]: float(r["dice"]) for r in rows}
    with (out / "leaderboard.csv").open() as f:
        board = {r["method"]: r for r in csv.DictReader(f)}
    assert int(board["basicunet"]["n"]) == int(board["threshold_adc"]["n"]) == len(entries) == len(per_split)
    assert float(board["basicunet"]["dice_mean"]) == pytest.approx(np.mean(list(per_split.values())), abs=1e-6)
    with (out / "methods" / "threshold_adc" / "evaluation" / "metrics.csv").open() as f:
        rule = {r["case_id"]: float(r["dice"]) for r in csv.DictReader(f)}
    cases = sorted(rule)
    reference = board["threshold_adc"]["reference"]
    learnt = board["basicunet"]["learned"]
    assert learnt in ("yes", "no") and (reference == "basicunet") == (learnt == "yes")
    if reference:
        p = paired_wilcoxon([rule[c] for c in cases], [per_split[c] for c in cases])
        assert float(board["threshold_adc"]["wilcoxon_p_holm"]) == pytest.approx(holm([p])[0], nan_ok=True)
    text = report.read_text()
    assert "4-fold patient-level cross-validation" in text and f"n = {len(entries)} studies" in text

    seen.clear()
    compare("isles2022", "basicunet,threshold_adc", "smoke", str(out), progress=False, datalist=str(full), folds=4)
    assert seen == []
    (out / "split2" / "methods" / "basicunet" / "result.json").unlink()
    compare("isles2022", "basicunet,threshold_adc", "smoke", str(out), progress=False, datalist=str(full), folds=4)
    assert seen == [({0, 1}, {3})]

    with pytest.raises(ValueError, match="5-fold cross-validation needs the training entries in folds 0 to 4"):
        compare("isles2022", "threshold_adc", "smoke", str(tmp_path / "cv5"), progress=False, datalist=str(full), folds=5)


def test_an_output_folder_is_not_reused_for_another_cohort(tmp_path, monkeypatch):
    import strokezoo.compare.protocol as protocol

    made = []
    monkeypatch.setattr("strokezoo.synth.synthesize_cohort", lambda *a, **k: made.append(k))
    monkeypatch.setattr("strokezoo.data.datalist.build_datalist", lambda *a, **k: None)
    record = tmp_path / "cohort.json"
    record.write_text(json.dumps({"cohort": "isles2022", "folds": 4, "cases": 16, "seed": 3, "scale": 0.4, "difficulty": 0.0}))
    with pytest.raises(ValueError, match=r"holds another cohort \(difficulty 0.0 there, 0.5 asked\)"):
        protocol._cohort("isles2022", tmp_path, 16, 3, 0.5, 4, None, None)
    assert not made


@pytest.mark.parametrize("size", ["cpu", "smoke"])
def test_the_cpu_size_adds_a_bundle_s_comparison_config(tmp_path, monkeypatch, size):
    """``--size cpu`` trains (and infers) a bundle with its configs/cpu.json over smoke.json, where it has one; the
    smoke size does not."""
    import strokezoo.bundle_run as runner
    from strokezoo.bundle_info import comparison_overrides, cpu_overrides

    bundle = "stroke_mri_crossattention_unet2d"
    wide = comparison_overrides(bundle)
    assert wide["features"] != cpu_overrides(bundle)["features"]
    assert comparison_overrides("stroke_ct_boundary_attention_unet2d") == {}  # none: smoke.json alone
    entries = [{"case_id": f"c{i}", "patient_id": f"p{i}", "fold": i % 4, "label": f"c{i}.nii.gz"} for i in range(8)]
    (tmp_path / "datalist.json").write_text(json.dumps({"root": str(tmp_path), "training": entries, "testing": []}))
    seen = []

    def recorded(bundle_name, data, datalist, out, epochs, val_fold, overrides, **kwargs):
        seen.append(overrides)
        raise RuntimeError("recorded")

    monkeypatch.setattr(runner, "train_bundle", recorded)
    _, results = compare("isles2017", bundle, size, str(tmp_path / "out"), progress=False, datalist=str(tmp_path / "datalist.json"))
    assert "recorded" in results[0]["error"] and len(seen) == 1
    assert (seen[0].get("features") == wide["features"]) == (size == "cpu")


def test_a_bundle_s_stored_results_survive_a_metadata_version_bump_but_not_a_config_change(tmp_path):
    """The resume key of a bundle's results (``protocol._files_key`` over its configs) ignores the metadata fields
    that do not change what the bundle computes (version, changelog, smoke epochs, …) and follows everything else."""
    from strokezoo.compare import protocol

    configs = tmp_path / "configs"
    shutil.copytree(REPO / "bundles" / "stroke_ct_boundary_attention_unet2d" / "configs", configs)

    def key() -> str:
        return protocol._files_key(sorted(configs.glob("*.json")))

    before = key()
    meta = json.loads((configs / "metadata.json").read_text())
    (configs / "metadata.json").write_text(json.dumps({**meta, "version": "9.9.9", "changelog": {"9.9.9": "x"}, "smoke_epochs": 1}, indent=4))
    assert key() == before
    (configs / "metadata.json").write_text(json.dumps({**meta, "training_stages": ["other.json"]}, indent=4))
    assert key() != before
    (configs / "metadata.json").write_text(json.dumps(meta, indent=4))
    assert key() == before
    train = json.loads((configs / "train.json").read_text())
    (configs / "train.json").write_text(json.dumps({**train, "learning_rate": 0.5}, indent=4))
    assert key() != before
