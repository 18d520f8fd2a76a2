"""``strokezoo segment``: one study's files to masks, lesion figures, an overlay and a report, through each bundle's own
inference configs; the same mask as ``run evaluating``; bad studies refused by name, the others of a batch go on."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from strokezoo.bundle_info import BUNDLES, config_files, cpu_overrides, inference_keys
from strokezoo.data.datalist import build_datalist
from strokezoo.segment import lesion_statistics

from conftest import strokezoo_cli, tree_digest, untrained_checkpoint

XD = "stroke_dwi_crossdomain_unet2d"


def test_lesion_figures_on_a_hand_made_mask_in_lps_order():
    """Volumes, 26-connected count, largest lesion and hemispheres against hand counts, on a grid stored left-posterior
    (voxel i runs toward the subject's left) and off the scanner's centre."""
    affine = np.array([[-2.0, 0, 0, 70], [0, -2, 0, 30], [0, 0, 3, -10], [0, 0, 0, 1]])
    head = np.zeros((20, 12, 6), np.float32)
    head[2:18, 1:11, :] = 100.0  # the head: i = 2..17, so world x from 66 down to 36; its mid-plane x = 51
    mask = np.zeros(head.shape, np.uint8)
    mask[3:5, 3:5, 2:4] = 1  # 8 voxels at i = 3, 4: x = 64, 62 > 51, the subject's right
    mask[14, 6, 2] = mask[15, 7, 3] = 1  # 2 voxels touching only at a corner: one lesion with 26-connectivity; left
    s = lesion_statistics(mask, affine, head)
    voxel_ml = 2 * 2 * 3 / 1000
    assert s["midline_x_mm"] == pytest.approx(51.0)
    assert s["total_volume_ml"] == pytest.approx(10 * voxel_ml)
    assert s["lesion_count"] == 2 and ndimage.label(mask)[1] == 3  # 6-connectivity would count 3
    assert s["largest_lesion_ml"] == pytest.approx(8 * voxel_ml)
    assert s["volume_ml_by_hemisphere"] == {"left": pytest.approx(2 * voxel_ml), "right": pytest.approx(8 * voxel_ml)}
    empty = lesion_statistics(np.zeros_like(mask), affine, head)
    assert empty["total_volume_ml"] == 0 and empty["lesion_count"] == 0 and empty["largest_lesion_ml"] == 0


@pytest.fixture(scope="module")
def xd_study(cohort, tmp_path_factory):
    """An ISLES 2022 study (its ADC and DWI files, read in place) and untrained CPU-sized weights of the cross-domain
    bundle (smoke.json), seeded."""
    root, _ = cohort("isles2022")
    tmp = tmp_path_factory.mktemp("segment")
    entry = build_datalist(root, tmp / "datalist.json", layout="isles2022", folds=3)["training"][0]
    weights = untrained_checkpoint(XD, tmp / "weights" / "model.pt", "inference.json")
    return root, tmp / "datalist.json", entry, weights


def test_segment_writes_the_mask_inference_json_writes_and_a_report_that_matches_it(xd_study, tmp_path):
    root, datalist, entry, weights = xd_study
    before = tree_digest(root)
    args = ["segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--adc", entry["adc"], "--dwi", entry["dwi"]]
    r = strokezoo_cli(*args, "--out", tmp_path / "seg", "--probabilities")
    assert r.returncode == 0, r.stderr[-3000:]
    study = Path(entry["adc"]).name.split(".")[0]
    out = tmp_path / "seg" / study
    assert f"{study}: " in r.stdout and "report.md" in r.stdout
    assert r.stdout.splitlines() == [line for line in r.stdout.splitlines() if line.startswith(f"{study}: ")]  # the result, no logs
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{XD}_mask.nii.gz", f"{XD}_prob.nii.gz", "overlay.png", "report.json", "report.md"])

    # the bundle's own inference (monai.bundle run, its inference.json + smoke.json) on the same files and weights
    from monai.bundle import run

    ref_out = tmp_path / "bundle_run"
    keys = {"config_file": config_files(XD, "inference.json", "smoke.json"), "bundle_root": str(tmp_path / "b"), "ckpt_path": str(weights)}
    run("evaluating", **keys, output_dir=str(ref_out), dataset_dir=str(root), entries=[{"case_id": study, "adc": entry["adc"], "dwi": entry["dwi"]}])
    mine, theirs = nib.load(out / f"{XD}_mask.nii.gz"), nib.load(ref_out / f"{study}_dwi.nii.gz")
    assert np.array_equal(np.asarray(mine.dataobj), np.asarray(theirs.dataobj)) and np.array_equal(mine.affine, theirs.affine)
    dwi = nib.load(entry["dwi"])
    assert mine.shape == dwi.shape and np.allclose(mine.affine, dwi.affine, atol=1e-4)  # the DWI's own grid

    report = json.loads((out / "report.json").read_text())
    mask = np.asarray(mine.dataobj) > 0
    voxel_ml = float(np.prod(dwi.header.get_zooms()[:3])) / 1000
    assert report["lesions"]["total_volume_ml"] == pytest.approx(mask.sum() * voxel_ml, abs=1e-3)
    assert report["lesions"]["lesion_count"] == ndimage.label(mask, structure=np.ones((3, 3, 3)))[1]
    sides = report["lesions"]["volume_ml_by_hemisphere"]
    assert sides["left"] + sides["right"] == pytest.approx(report["lesions"]["total_volume_ml"], abs=2e-3)
    assert report["mask"] == f"{XD}_mask.nii.gz" and report["mask_modality"] == "dwi" and report["ensemble"] is None
    assert report["inputs"]["dwi"]["shape"] == list(dwi.shape) and report["inputs"]["adc"]["file"] == entry["adc"]
    (b,) = report["bundles"]
    assert b["name"] == XD and b["weights_sha256"] == hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    assert b["version"] == json.loads((Path(config_files(XD, "inference.json")[0]).parent / "metadata.json").read_text())["version"]
    assert {"torch", "monai", "python", "strokezoo"} <= set(report["software"]) and report["seconds"] > 0
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "![lesion overlay](overlay.png)" in md and f"{report['lesions']['total_volume_ml']:.2f} mL" in md
    assert tree_digest(root) == before  # nothing written beside the inputs


def test_a_study_folder_and_two_bundles_give_each_mask_and_their_ensemble(cohort, tmp_path):
    """ISLES 2018: the CT boundary and pseudo-DWI bundles read the same study folder; the ensemble mask is their mean
    probability > 0.5, recomputed here from the probability maps they wrote."""
    root, _ = cohort("isles2018")
    case = sorted((root / "TRAINING").iterdir())[0]
    bundles = ["stroke_ct_boundary_attention_unet2d", "stroke_ctp_pseudodwi_slnet2d"]
    weights = [untrained_checkpoint(b, tmp_path / b / "model.pt", "inference.json") for b in bundles]
    r = strokezoo_cli(
        "segment",
        "--bundle",
        ",".join(bundles),
        "--weights",
        ",".join(map(str, weights)),
        "--config",
        "smoke.json",
        "--study",
        case,
        "--out",
        tmp_path / "seg",
        "--probabilities",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "seg" / case.name
    probs = [np.asarray(nib.load(out / f"{b}_prob.nii.gz").dataobj, np.float32) for b in bundles]
    ensemble = np.asarray(nib.load(out / "ensemble_mask.nii.gz").dataobj)
    assert np.array_equal(ensemble > 0, (probs[0] + probs[1]) / 2 > 0.5)
    report = json.loads((out / "report.json").read_text())
    assert report["mask_from"] == "ensemble" and report["ensemble"] == bundles and [b["name"] for b in report["bundles"]] == bundles
    assert report["lesions"]["total_volume_ml"] == pytest.approx(
        (ensemble > 0).sum() * np.prod(nib.load(out / "ensemble_mask.nii.gz").header.get_zooms()[:3]) / 1000, abs=1e-3
    )


def test_bad_studies_are_refused_by_name_and_a_batch_goes_on(xd_study, tmp_path):
    root, _, entry, weights = xd_study
    before = tree_digest(root)
    base = ["segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json"]
    bad = tmp_path / "bad"
    bad.mkdir()

    def refused(*args, code=2):
        r = strokezoo_cli(*args)
        assert r.returncode == code, (args, r.stdout, r.stderr[-2000:])
        return r.stderr

    assert "no file for dwi" in refused(*base, "--adc", entry["adc"], "--out", tmp_path / "o")
    adc = nib.load(entry["adc"])
    small = bad / "small_adc.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 2), np.float32), adc.affine), str(small))
    text = refused(*base, "--adc", small, "--dwi", entry["dwi"], "--out", tmp_path / "o")
    assert str(small) in text and "differs from (5, 5, 2)" in text
    empty = bad / "empty_dwi.nii.gz"
    empty.write_bytes(b"")
    text = refused(*base, "--adc", entry["adc"], "--dwi", empty, "--out", tmp_path / "o")
    assert str(empty) in text and "empty file" in text
    four_d = bad / "adc_4d.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([np.asarray(adc.dataobj, np.float32)] * 3, axis=-1), adc.affine), str(four_d))
    text = refused(*base, "--adc", four_d, "--dwi", entry["dwi"], "--out", tmp_path / "o")
    assert str(four_d) in text
    garbage = bad / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    files = ["--adc", entry["adc"], "--dwi", entry["dwi"], "--out", tmp_path / "o"]
    text = refused("segment", "--bundle", XD, "--weights", garbage, "--config", "smoke.json", *files)
    assert str(garbage) in text and "weights_only=True" in text
    other = untrained_checkpoint("stroke_mri_crossattention_unet2d", bad / "other.pt", "inference.json")
    text = refused("segment", "--bundle", XD, "--weights", other, "--config", "smoke.json", *files)
    assert str(other) in text and f"does not fit the network of {XD}" in text
    text = refused("segment", "--bundle", XD, *files)
    assert "no --weights given" in text and "docs/weights.md" in text
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.nii.gz"))

    # --studies: a good study folder and one without its DWI; the good one is written, the other listed, exit 1
    studies = tmp_path / "studies"
    for name, keys in (("good", ("adc", "dwi")), ("no_dwi", ("adc",))):
        (studies / name).mkdir(parents=True)
        for k in keys:
            shutil.copy(entry[k], studies / name / Path(entry[k]).name)
    text = refused(*base, "--studies", studies, "--out", tmp_path / "batch", code=1)
    assert "1 of 2 studies refused" in text and "no_dwi:" in text and "no file for dwi" in text
    assert (tmp_path / "batch" / "good" / "report.json").is_file() and not (tmp_path / "batch" / "no_dwi").exists()
    assert "inside the input folder" in refused(*base, "--studies", studies, "--out", studies / "out")
    assert tree_digest(root) == before


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_help_lists_each_bundles_modalities(bundle):
    r = strokezoo_cli("segment", "--help")
    text = r.stdout + r.stderr
    short = bundle.removeprefix("stroke_").rsplit("_", 1)[0]
    assert f"{short} {' '.join(inference_keys(bundle))}" in text, (short, inference_keys(bundle))
    assert cpu_overrides(bundle)  # every bundle has the smoke.json that --config names


def test_the_readme_command_runs_as_written(xd_study, tmp_path, monkeypatch):
    """README.md's ``strokezoo segment`` line, word for word, in a folder holding the files it names: a study's ADC and
    DWI (three of its slices: the network as shipped, without smoke.json, is wide) and untrained weights of the
    bundle as shipped."""
    import re
    import shlex

    import torch
    from monai.bundle import ConfigWorkflow

    root, _, entry, _ = xd_study
    (line,) = re.findall(r"`(strokezoo segment [^`]+)`", (Path(__file__).resolve().parents[1] / "README.md").read_text())
    words = shlex.split(line)
    for key in ("adc", "dwi"):
        img = nib.load(entry[key])
        z = img.shape[2] // 2
        slab = img.slicer[:, :, z - 1 : z + 2]
        nib.save(nib.Nifti1Image(np.asarray(slab.dataobj, np.float32), slab.affine), str(tmp_path / words[words.index(f"--{key}") + 1]))
    torch.manual_seed(0)
    wf = ConfigWorkflow(config_file=config_files(XD, "inference.json"), workflow_type="inference", bundle_root=str(tmp_path))
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), tmp_path / words[words.index("--weights") + 1])
    monkeypatch.chdir(tmp_path)
    r = strokezoo_cli(*words[1:])
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / words[words.index("--out") + 1]
    (study,) = [p for p in out.iterdir() if p.is_dir()]
    assert json.loads((study / "report.json").read_text())["bundles"][0]["name"] == XD and (study / "overlay.png").is_file()


def test_a_folder_named_like_the_bundle_does_not_hide_it(tmp_path, monkeypatch):
    """``--bundle NAME`` with a folder NAME in the working directory (say, holding the weights) still finds the
    repository's bundle; a real bundle folder given by path is taken as it is."""
    from strokezoo.bundle_info import bundle_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / XD).mkdir()
    assert (bundle_folder(XD) / "configs" / "inference.json").is_file() and bundle_folder(XD) != tmp_path / XD
    copy = shutil.copytree(bundle_folder(XD), tmp_path / "elsewhere" / XD)
    assert bundle_folder(copy) == copy


def test_amp_turns_bf16_on_for_every_bundle_as_the_config_key_does(xd_study, tmp_path):
    """``--amp`` is the bundles' ``amp`` key: the mask equals ``run evaluating`` with ``amp`` True, and the report
    records it (the cross-domain bundle defaults to fp32)."""
    root, _, entry, weights = xd_study
    args = ["segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--adc", entry["adc"], "--dwi", entry["dwi"], "--amp"]
    r = strokezoo_cli(*args, "--out", tmp_path / "seg")
    assert r.returncode == 0, r.stderr[-3000:]
    (out,) = (tmp_path / "seg").iterdir()
    assert json.loads((out / "report.json").read_text())["bundles"][0]["amp"] is True
    from monai.bundle import run

    keys = {"config_file": config_files(XD, "inference.json", "smoke.json"), "bundle_root": str(tmp_path / "b"), "ckpt_path": str(weights), "amp": True}
    case = {"case_id": out.name, "adc": entry["adc"], "dwi": entry["dwi"]}
    run("evaluating", **keys, output_dir=str(tmp_path / "ref"), dataset_dir=str(root), entries=[case])
    mine, theirs = (np.asarray(nib.load(p).dataobj) for p in (out / f"{XD}_mask.nii.gz", tmp_path / "ref" / f"{out.name}_dwi.nii.gz"))
    assert np.array_equal(mine, theirs)


def test_the_quick_start_segments_a_demo_study_as_written(cohort12, tmp_path, monkeypatch):
    """README.md's quick-start ``.venv/bin/strokezoo segment`` line, word for word, in a folder laid out as ``make
    demo`` leaves it: the bundles' ISLES 2022 cohort (12 patients, seed 3, scale 0.4, difficulty 0, as the demo
    synthesises it) under ``demo_output/data/isles2022_bundles`` and the cross-domain bundle's smoke-sized checkpoint
    (here untrained) under ``demo_output/bundles``. The study is one the demo holds out (fold 0, never trained on
    nor used to pick the checkpoint) and its lesion is large enough to see (at least 10 mL)."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (line,) = [x for block in re.findall(r"```bash\n(.*?)```", text, re.S) for x in block.splitlines() if x.startswith(".venv/bin/strokezoo segment")]
    words = shlex.split(line)
    study = Path(words[words.index("--study") + 1])
    root, datalist = cohort12(XD)
    shutil.copytree(root, tmp_path / study.parent.parent)  # demo_output/data/isles2022_bundles
    assert (tmp_path / study).is_dir()
    (entry,) = [e for e in json.loads(datalist.read_text())["training"] if e["case_id"] == study.name]
    lesion_ml = {r["case_id"]: r["lesion_ml"] for r in json.loads((root / "synth_summary.json").read_text())["rows"]}[study.name]
    assert entry["fold"] == 0 and lesion_ml >= 10.0, (entry["fold"], lesion_ml)
    untrained_checkpoint(XD, tmp_path / words[words.index("--weights") + 1])  # smoke-sized, as the demo trains it
    monkeypatch.chdir(tmp_path)
    r = strokezoo_cli(*words[1:])
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / words[words.index("--out") + 1] / study.name / "report.json").read_text())
    assert report["bundles"][0]["name"] == XD and sorted(report["inputs"]) == ["adc", "dwi"]


def test_inputs_that_cannot_be_the_modality_are_refused_or_warned_of(xd_study, tmp_path):
    """A rater's binary mask given as --adc is refused by name and nothing is written; an ADC stored in mm^2/s (a
    scaling explains it) segments, with a warning in report.json; the rules on arrays: a constant image, a mask, an
    ADC in no unit, a CT stored without its rescale intercept."""
    from strokezoo.data.plausibility import check_values

    _, _, entry, weights = xd_study
    args = ["segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--dwi", entry["dwi"]]
    r = strokezoo_cli(*args, "--adc", entry["label"], "--out", tmp_path / "mask")
    assert r.returncode == 2 and entry["label"] in r.stderr and "a mask, not adc" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "mask").exists() or not any((tmp_path / "mask").rglob("*.json"))
    adc = nib.load(entry["adc"])
    scaled = tmp_path / "adc_mm2s.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(adc.dataobj, np.float32) * 1e-6, adc.affine), scaled)
    r = strokezoo_cli(*args, "--adc", scaled, "--out", tmp_path / "scaled")
    assert r.returncode == 0, r.stderr[-2000:]
    (report,) = (tmp_path / "scaled").rglob("report.json")
    (warning,) = json.loads(report.read_text())["warnings"]
    assert "reads as mm^2/s" in warning
    rng = np.random.default_rng(0)
    assert check_values("dwi", np.full((4, 4, 4), 7.0))[0] == "every voxel is 7: an empty image, not dwi"
    assert "a mask, not flair" in check_values("flair", rng.integers(0, 2, (8, 8, 8)))[0]
    assert "is not an ADC's" in check_values("adc", rng.uniform(1e5, 2e5, (8, 8, 8)))[0]
    assert check_values("adc", rng.uniform(300, 3000, (8, 8, 8))) == (None, None)
    hu = rng.uniform(-1000, 1500, (8, 8, 8))
    assert check_values("ct", hu) == (None, None) and "rescale intercept" in check_values("ct", hu + 1024)[1]
