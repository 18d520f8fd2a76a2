"""Bad input, everywhere a user hands a bundle a file: one batch per bundle holds a good case, the same case as a
stacked study (what MONAI Label sends), the cases it must accept with a warning, and one case per kind of bad
file. The run must write the good and accepted cases (the stacked study's outputs equal the good case's), refuse
every bad one with its file and problem, exit non-zero listing them, and leave the input tree unchanged.
(``strokezoo datalist`` and ``strokezoo evaluate`` meet the same files through ``load_nifti``: test_datalist.py,
test_nifti.py, test_metrics.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from strokezoo.bundle_info import BUNDLES, config_files, cpu_overrides, inference_keys
from strokezoo.data.checks import InputCheck, check_entry
from strokezoo.data.datalist import build_datalist
from strokezoo.data.stacked import stack_case
from strokezoo.errors import InputError

from conftest import bundle_run, strokezoo_cli, tree_digest, untrained_checkpoint


def _rewrite(src: str, dst: Path, data=None, affine=None) -> str:
    img = nib.load(src)
    arr = np.asanyarray(img.dataobj).astype(np.float32) if data is None else data(np.asanyarray(img.dataobj).astype(np.float32))
    nib.save(nib.Nifti1Image(arr, img.affine if affine is None else affine(img.affine.copy())), str(dst))
    return str(dst)


def _huge_header(src: str, dst: Path) -> str:
    """A small file whose header claims 30000^3 voxels (a corrupt header, not a scan)."""
    img = nib.load(src)
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((30000, 30000, 30000))
    header["vox_offset"] = 352
    header.set_sform(img.affine, 1)
    dst = dst.with_name(dst.name.replace(".nii.gz", ".nii"))
    dst.write_bytes(header.binaryblock + b"\0" * 4 + np.zeros(64, np.float32).tobytes())
    return str(dst)


def bad_variants(entry: dict, keys: list[str], where: Path, with_accepted: bool = True) -> tuple[dict[str, tuple[dict, str]], dict[str, dict]]:
    """``refused`` (name -> (entry, words of the expected message)) and ``accepted`` (name -> entry) variants of
    ``entry``; ``with_accepted=False`` leaves the accepted ones out (each costs a prediction)."""
    where.mkdir(parents=True)
    series = next((k for k in keys if k == "ctp"), None)
    first, last = keys[0], keys[-1]
    refused, accepted = {}, {}

    def variant(name: str, key: str, make) -> dict:
        e = {**entry, "case_id": f"{entry['case_id']}-{name}"}
        suffix = ".nii.gz" if str(entry[key]).endswith(".gz") else ".nii"
        e[key] = make(str(entry[key]), where / f"{name}_{key}{suffix}")
        return e

    def write(content: bytes):
        def make(src, dst):
            dst.write_bytes(content(src))
            return str(dst)

        return make

    refused["zero_byte"] = (variant("zero_byte", first, write(lambda s: b"")), "empty file (0 bytes)")
    refused["truncated"] = (variant("truncated", first, write(lambda s: Path(s).read_bytes()[: len(Path(s).read_bytes()) // 2])), "")
    refused["not_nifti"] = (variant("not_nifti", first, write(lambda s: b"GIF89a not an image at all " * 50)), "not a readable NIfTI file")
    refused["missing_file"] = (variant("missing_file", first, lambda s, d: str(d)), "file does not exist")
    refused["nan_voxels"] = (
        variant("nan_voxels", first, lambda s, d: _rewrite(s, d, data=lambda a: np.where(np.indices(a.shape).sum(0) == 3, np.nan, a))),
        "NaN or Inf",
    )
    refused["all_zero"] = (variant("all_zero", first, lambda s, d: _rewrite(s, d, data=np.zeros_like)), "all voxels are zero")
    refused["two_d"] = (variant("two_d", first, lambda s, d: _rewrite(s, d, data=lambda a: a[:, :, 0])), "expected")
    refused["huge_header"] = (variant("huge_header", first, _huge_header), "implausible shape")
    if len(keys) > 1:
        refused["other_shape"] = (variant("other_shape", last, lambda s, d: _rewrite(s, d, data=lambda a: a[:-2])), "shape")
        shifted = lambda a: a + np.array([[0, 0, 0, 2.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # noqa: E731
        refused["shifted_affine"] = (variant("shifted_affine", last, lambda s, d: _rewrite(s, d, affine=shifted)), "affine differs")
        rounding = lambda a: a + 5e-4 * np.eye(4, k=3)[:4]  # noqa: E731 - well within the 1e-3 mm tolerance
        accepted["rounding_affine"] = variant("rounding_affine", last, lambda s, d: _rewrite(s, d, affine=rounding))
    if series:
        refused["one_frame"] = (variant("one_frame", series, lambda s, d: _rewrite(s, d, data=lambda a: a[..., :1])), "series")
        accepted["five_d_series"] = variant("five_d_series", series, lambda s, d: _rewrite(s, d, data=lambda a: a[:, :, :, None, :]))
    if "dwi" in keys:
        accepted["dwi_two_volumes"] = variant("dwi_two_volumes", "dwi", lambda s, d: _rewrite(s, d, data=lambda a: np.stack([a * 0.5 + 1, a], -1)))
    return refused, (accepted if with_accepted else {})


#: Bundles whose CPU prediction of a case takes longest; the accepted variants go through the shared loading code
#: (LoadModalitiesd, InputCheck) that the other bundles' batches already run, so these batches leave them out.
SLOW_TO_PREDICT = {"stroke_mri_residual_unet3d", "stroke_ctp_transformer_unet2d"}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_a_batch_with_bad_files_keeps_going_and_lists_every_refusal(bundle, tmp_path, cohort):
    source, _ = cohort(BUNDLES[bundle].layout)
    data = tmp_path / "data"
    shutil.copytree(source, data)
    keys = inference_keys(bundle)
    entries = build_datalist(data, tmp_path / "datalist.json", layout=BUNDLES[bundle].layout, folds=3)["training"]
    good = entries[0]
    refused, accepted = bad_variants(good, keys, data / "bad", with_accepted=bundle not in SLOW_TO_PREDICT)
    study = stack_case({k: good[k] for k in keys}, keys, tmp_path / "studies" / f"{good['case_id']}-stacked.nii.gz")
    accepted["stacked_study"] = {"image": str(study)}  # its outputs are named after the file
    before = tree_digest(data)
    checkpoint = untrained_checkpoint(bundle, tmp_path / "models" / "model.pt", "inference.json")
    out = tmp_path / "out"
    batch = [good, *accepted.values(), *(e for e, _ in refused.values())]
    run_keys = {"config_file": config_files(bundle, "inference.json"), "bundle_root": tmp_path, "dataset_dir": data}
    run_keys |= {"datalist": tmp_path / "datalist.json", "ckpt_path": checkpoint, "output_dir": out, "entries": batch, "save_probabilities": True}
    # fp32 (amp False): the stacked study's voxels equal the files' only to float rounding, which bf16 rounding can
    # carry across the 0.5 threshold of an untrained net; bf16 inference is tested in test_mixed_precision.py and by
    # every bundle test, which run the default inferer
    cmd = [sys.executable, *bundle_run(None, {**run_keys, "save_tfa": True, **cpu_overrides(bundle), "num_workers": 0, "amp": False, "channels_last": False})]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    log = r.stdout + r.stderr
    assert r.returncode != 0, log[-3000:]
    assert f"{len(refused)} case(s) refused" in log, log[-3000:]
    for name, (entry, words) in refused.items():
        line = next((x for x in log.splitlines() if x.strip().startswith(f"{entry['case_id']}:")), None)
        assert line is not None, (name, log[-3000:])
        assert words in line, (name, line)
        assert any(str(v) in line for k, v in entry.items() if k in keys and v != good.get(k)), (name, line)  # names the bad file
        assert not list(out.rglob(f"{entry['case_id']}*.nii.gz")), name
    for name, case_id in [("good", good["case_id"]), *((n, e.get("case_id", study.name[: -len(".nii.gz")])) for n, e in accepted.items())]:
        assert list(out.rglob(f"{case_id}.nii.gz")) or list(out.rglob(f"{case_id}_*.nii.gz")), (name, sorted(p.name for p in out.rglob("*")))
    # the stacked study gives the good case's outputs: the same masks, probabilities within float rounding
    outputs = [p for p in out.rglob(f"{good['case_id']}*.nii.gz") if not p.name.startswith(f"{good['case_id']}-")]
    assert any(nib.load(p).get_data_dtype() == np.uint8 for p in outputs) and any(nib.load(p).get_data_dtype() == np.float32 for p in outputs)
    for p in outputs:
        a, b = nib.load(p), nib.load(p.with_name(p.name.replace(good["case_id"], f"{good['case_id']}-stacked", 1)))
        assert np.array_equal(a.affine, b.affine) and a.get_data_dtype() == b.get_data_dtype(), p.name
        if a.get_data_dtype() != np.uint8:
            assert np.allclose(a.get_fdata(), b.get_fdata(), atol=1e-5), p.name
            continue
        # masks: equal wherever the probability is not within float rounding of the threshold (an untrained net
        # puts whole regions at 0.5, where the last bit of the input decides)
        prob = p.with_name(p.name.replace(".nii.gz", "_prob.nii.gz"))
        decided = np.abs(nib.load(prob).get_fdata() - 0.5) > 1e-4 if prob.exists() else np.ones(a.shape, bool)
        assert np.array_equal(a.get_fdata()[decided], b.get_fdata()[decided]) and decided.mean() > 0.5, p.name
    if "dwi_two_volumes" in accepted:
        assert "stored as 2 volumes; the last one" in log
    if "rounding_affine" in accepted:
        assert "within 0.001 mm: read on its grid" in log
    assert tree_digest(data) == before  # nothing under the input root changed


def test_an_output_folder_inside_the_input_tree_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match="output folder is inside the input folder"):
        InputCheck([], ["adc"], output_dir=tmp_path / "data" / "predictions", input_root=tmp_path / "data")
    assert not (tmp_path / "data" / "predictions").exists()
    assert InputCheck([], ["adc"], output_dir=tmp_path / "predictions", input_root=tmp_path / "data").usable == []


def test_a_stacked_study_is_checked_like_the_files(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for k in ("adc", "dwi"):
        files[k] = str(tmp_path / f"{k}.nii.gz")
        nib.save(nib.Nifti1Image(rng.uniform(1, 2, (6, 6, 3)).astype(np.float32), np.eye(4)), files[k])
    study = stack_case(files, ["adc", "dwi"], tmp_path / "study.nii.gz")
    assert check_entry({"image": str(study)}, ["adc", "dwi"]) == []
    assert check_entry({"image": str(study)}, ["dwi", "adc"]) == []  # the header names the channels
    assert "is a stack of adc, dwi; this bundle reads adc, tmax from it (missing: tmax" in check_entry({"image": str(study)}, ["adc", "tmax"])[0]
    label = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 3), np.uint8), np.eye(4)), str(label))
    assert check_entry({"image": str(study), "label": str(label)}, ["adc", "dwi", "label"]) == []  # MONAI Label's training item
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 4), np.uint8), np.eye(4)), str(label))
    assert "shape (6, 6, 3) differs from (6, 6, 4)" in check_entry({"image": str(study), "label": str(label)}, ["adc", "dwi", "label"])[0]
    nan = np.full((6, 6, 3, 2), np.nan, np.float32)
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    assert "NaN or Inf" in check_entry({"image": str(tmp_path / "nan.nii.gz")}, ["adc", "dwi"])[0]


def test_evaluate_scores_what_it_can_refuses_a_label_that_is_not_a_mask_and_exits_1(tmp_path, cohort):
    """``strokezoo evaluate`` over references with a scaled-integer label (binarised, with a warning), an empty label
    (scored) and a label of three values (refused by name): the others are scored, the exit status is 1."""
    source, _ = cohort("isles2017")
    data = tmp_path / "data"
    shutil.copytree(source, data)
    entries = build_datalist(data, tmp_path / "datalist.json", layout="isles2017", folds=3)["training"]
    pred = tmp_path / "pred"
    pred.mkdir()
    for e in entries:
        shutil.copy(e["label"], pred / (e["case_id"] + (".nii.gz" if e["label"].endswith(".gz") else ".nii")))
    scaled, empty, three = entries
    for entry, values in (
        (scaled, lambda a: (a > 0).astype(np.uint8) * 255),
        (empty, np.zeros_like),
        (three, lambda a: np.where(np.indices(a.shape).sum(0) == 0, 2, a > 0).astype(np.uint8)),
    ):
        img = nib.load(entry["label"])
        arr = values(np.asanyarray(img.dataobj))
        if entry is scaled:
            arr[tuple(s // 2 for s in arr.shape)] = 255  # at least one lesion voxel
        nib.save(nib.Nifti1Image(arr.astype(np.uint8), img.affine), entry["label"])
    before = tree_digest(data)
    r = strokezoo_cli("evaluate", "--pred", pred, "--ref", tmp_path / "datalist.json", "--out", tmp_path / "out")
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"cannot evaluate {three['case_id']}: {three['label']}: label is not binary: values [0, 1, 2]" in r.stderr
    assert f"{scaled['label']}: label stored as {{0, 255}} (scaled integer?); binarised as > 0" in r.stderr
    scored = {row.split(",")[0] for row in (tmp_path / "out" / "metrics.csv").read_text().splitlines()[1:]}
    assert scored == {scaled["case_id"], empty["case_id"]}
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["failures"][0]["case_id"] == three["case_id"]
    assert tree_digest(data) == before


#: every kind of bad file that ``bad_variants`` makes for a two-modality case
CATALOGUE = ["zero_byte", "truncated", "not_nifti", "missing_file", "nan_voxels", "all_zero", "two_d", "huge_header", "other_shape", "shifted_affine"]


def _put_in_place(made: str, target: Path) -> Path:
    """Replace the dataset file ``target`` by the bad file ``made`` (a ``.nii`` stays ``.nii``); returns its path."""
    target.unlink()
    if made.endswith(".nii") and target.name.endswith(".nii.gz"):
        target = target.with_name(target.name[: -len(".gz")])
    if Path(made).exists():
        shutil.copy(made, target)
    return target


@pytest.mark.parametrize("kind", CATALOGUE)
def test_datalist_refuses_each_kind_of_bad_file_by_name_and_keeps_the_other_cases(kind, cohort, tmp_path):
    src, _ = cohort("apis")
    root = tmp_path / "data"
    shutil.copytree(src, root)
    good = build_datalist(root, tmp_path / "good.json", layout="apis")
    entries = good["training"] + good["testing"]
    victim = entries[0]
    refused, _ = bad_variants(victim, ["ncct", "adc"], tmp_path / "variants", with_accepted=False)
    bad, words = refused[kind]
    key = next(k for k in ("ncct", "adc") if bad[k] != victim[k])
    placed = _put_in_place(bad[key], Path(victim[key]))
    before = tree_digest(root)
    d = build_datalist(root, tmp_path / "dl.json", layout="apis")
    errors = {f["case_id"]: f["error"] for f in d["failures"]}
    assert list(errors) == [victim["case_id"]], errors
    if kind == "missing_file":
        assert f"'{key}'" in errors[victim["case_id"]] and "missing" in errors[victim["case_id"]]
    else:
        assert str(placed) in errors[victim["case_id"]] and words in errors[victim["case_id"]], errors
    kept = sorted(e["case_id"] for e in d["training"] + d["testing"])
    assert kept == sorted(e["case_id"] for e in entries[1:])
    assert tree_digest(root) == before


@pytest.mark.parametrize("kind", ["zero_byte", "truncated", "not_nifti", "missing_file", "nan_voxels", "two_d", "huge_header", "all_zero"])
def test_evaluate_refuses_each_kind_of_bad_prediction_by_name_and_scores_the_others(kind, cohort, tmp_path):
    """Predictions are the references themselves (Dice 1), one replaced by a bad file; an all-zero prediction is a
    legitimate empty one: scored (Dice 0), not refused."""
    from strokezoo.metrics.evaluate import evaluate

    src, _ = cohort("apis")
    dl = tmp_path / "dl.json"
    entries = build_datalist(src, dl, layout="apis")["training"]
    pred = tmp_path / "pred"
    pred.mkdir()
    for e in entries:
        shutil.copy(e["label"], pred / f"{e['case_id']}.nii.gz")
    victim = entries[0]
    target = pred / f"{victim['case_id']}.nii.gz"
    refused, _ = bad_variants({"case_id": victim["case_id"], "pred": str(target)}, ["pred"], tmp_path / "variants", with_accepted=False)
    bad, words = refused[kind]
    placed = _put_in_place(bad["pred"], target)
    before = tree_digest(src)
    summary = evaluate(pred, dl, tmp_path / "eval")
    errors = {f["case_id"]: f["error"] for f in summary["failures"]}
    if kind == "all_zero":
        assert errors == {} and summary["cases"] == len(entries)
        assert summary["metrics"]["dice"]["mean"] == pytest.approx((len(entries) - 1) / len(entries))  # that case's Dice is 0
    else:
        assert list(errors) == [victim["case_id"]] and summary["cases"] == len(entries) - 1
        assert (str(placed) if kind != "missing_file" else "no prediction for this case") in errors[victim["case_id"]]
        assert words in errors[victim["case_id"]] or kind == "missing_file"
        assert summary["metrics"]["dice"]["mean"] == pytest.approx(1.0)
    assert tree_digest(src) == before
