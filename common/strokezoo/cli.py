"""The ``strokezoo`` command (python-fire). Each command's ``--help`` shows its docstring."""

from __future__ import annotations

import os
import sys

import fire

from .errors import InputError

__all__ = ["main"]


def synth(layout: str, out: str, cases: int = 10, seed: int = 0, scale: float = 1.0, difficulty: float = 0.5, workers: int | None = None) -> None:
    """Write a synthetic stroke cohort in the exact layout of a release.

    Layouts: isles2015-siss, isles2015-spes, isles2017, isles2018, isles2022, isles2024, apis.
    ``--scale`` shrinks the matrix (1.0 = the release's grid), ``--difficulty`` runs from 0 (easy) to 1.
    A summary of lesion volumes (and inter-rater kappa where raters are written) goes to
    OUT/synth_summary.json.

    Example:
        strokezoo synth --layout isles2022 --cases 10 --seed 0 --out data/isles2022_synth
    """
    from .synth import synthesize_cohort

    s = synthesize_cohort(layout, out, cases=cases, seed=seed, scale=scale, difficulty=difficulty, workers=workers)
    print(f"wrote {s['cases']} {layout} cases to {out} in {s['seconds']} s")


def datalist(
    root: str, out: str, layout: str = "auto", folds: int = 5, seed: int = 0, relative: bool = False, check: bool = True, patients: str | None = None
) -> None:
    """Write a MONAI datalist JSON (patient-level folds) for a dataset in its release layout.

    Every file is opened and checked; bad cases are listed on stderr and in "failures", the others are
    written, and the exit status is 1 when any case was bad. Nothing under ROOT is written.

    Example:
        strokezoo datalist --root data/ISLES-2022 --layout auto --folds 5 --out datalist.json
    """
    from .data.datalist import build_datalist

    d = build_datalist(root, out, layout=layout, folds=folds, seed=seed, relative=relative, check=check, patients=patients)
    print(f"{d['layout']}: {len(d['training'])} training and {len(d['testing'])} testing cases, {len(d['failures'])} bad -> {out}")
    if d["failures"]:
        sys.exit(1)


def evaluate(
    pred: str,
    ref: str,
    out: str,
    label_key: str = "label",
    split: str = "training",
    image_pred: str | None = None,
    image_key: str | None = None,
    margin_mm: float = 10.0,
    folds: list[int] | None = None,
    reference_percentile: float | None = None,
    size_groups_ml: list[float] | None = None,
    empty_precision: str = "nan",
    hd_voxels: bool = False,
    image_data_range: float | None = None,
) -> None:
    """Score predicted masks (PRED/<case_id>.nii.gz) against a datalist's labels with 3D metrics.

    Dice, precision, recall, HD, HD95, ASSD (mm), RVE, volumes and absolute volume difference (mL),
    lesion-count difference and lesion-wise F1 (ISLES'22); with --image_pred and --image_key, SSIM and
    PSNR of synthesized images, global and around the lesion (--reference_percentile 99 first scales the
    reference to (0, 1) by its minimum and 99th percentile; SSIM is 2D per axial slice and both use the scaled
    range 1, or --image_data_range). --size_groups_ml [10,50] adds tables per reference lesion volume (< 10, 10-50,
    > 50 mL). --empty_precision zero counts the precision of an empty prediction against a lesion as 0 (default
    nan: left out of the mean); --hd_voxels adds the Hausdorff distance on the voxel grid. Writes OUT/metrics.csv,
    summary.json, report.md (each mean with its n, and the conventions); exits 1 if any case could not be scored.
    --folds [0] scores only the cases of those folds.

    Example:
        strokezoo evaluate --pred outputs/preds --ref datalist.json --out outputs/eval
        strokezoo evaluate --pred eval --ref datalist.json --out eval/metrics --image_pred eval --image_key dwi \\
            --reference_percentile 99 --size_groups_ml [10,50]
    """
    from .metrics.evaluate import evaluate as run

    s = run(
        pred,
        ref,
        out,
        label_key=label_key,
        split=split,
        image_pred=image_pred,
        image_key=image_key,
        margin_mm=margin_mm,
        folds=folds,
        reference_percentile=reference_percentile,
        size_groups_ml=size_groups_ml,
        empty_precision=empty_precision,
        hd_voxels=hd_voxels,
        image_data_range=image_data_range,
    )
    dice = s["metrics"]["dice"]
    print(f"{s['cases']} cases: Dice {dice['mean']:.3f} (median {dice['median']:.3f}); report in {out}/report.md" if s["cases"] else "no case scored")
    if s["failures"]:
        sys.exit(1)


def evaluate_raters(
    pred: str,
    ref: str,
    out: str,
    modalities: str = "adc,dwi",
    raters: dict | None = None,
    split: str = "training",
    folds: list[int] | None = None,
    compare: dict | None = None,
    empty_precision: str = "nan",
) -> None:
    """Score per-modality masks (PRED/<case_id>_<modality>.nii.gz) against every rater's annotation of that
    modality, with the raters' agreement (Cohen's kappa per modality and between modalities) and a
    Bland-Altman comparison of the model's Dice with the inter-rater Dice (Gómez et al., MICCAI 2023, Sec. 3).

    --raters maps rater names to datalist-key templates (default: the two-rater layout,
    '{"R1": "label_r1_{modality}", "R2": "label_r2_{modality}"}'; '{"R1": "label"}' for one mask per case);
    a case with some raters only is scored against those. Paired t-tests on Dice: the model against the
    inter-rater Dice, and with --compare '{"unimodal": "DIR"}' against other models' predictions.
    Writes OUT/metrics.csv, agreement.csv, bland_altman.csv/.png, t_tests.csv, summary.json, report.md; exits 1
    if any case could not be scored.

    Example:
        strokezoo evaluate-raters --pred outputs/preds --ref datalist.json --out outputs/raters
    """
    from .metrics.evaluate import fmt_metric as fmt
    from .metrics.rater_study import evaluate_raters as run

    mods = [m.strip() for m in modalities.split(",")] if isinstance(modalities, str) else list(modalities)
    s = run(pred, ref, out, modalities=mods, raters=raters, split=split, folds=folds, compare=compare, empty_precision=empty_precision)
    for m, per_rater in s["metrics"].items():
        for r, metrics in per_rater.items():
            print(f"{m} vs {r}: Dice {fmt(metrics['dice']['mean'])} over {metrics['dice']['n']} cases")
    print(f"report in {out}/report.md")
    if s["failures"]:
        sys.exit(1)


def grid_search(
    probs: str,
    ref: str,
    out: str,
    override: str | None = None,
    split: str = "training",
    folds: list[int] | None = None,
    hd_max: float = 200.0,
    suffix: str = "_prob",
    connectivity: int = 1,
) -> None:
    """Choose the post-processing threshold T_h (0.1-0.9) and minimum lesion size S_min (10-1000 voxels) that
    maximise Eq. 2 of Clerigues et al. 2020 (Dice and Hausdorff distance in voxels, HD_max 200) over
    cross-validation probability maps PROBS/<case_id>_prob.nii.gz. Writes OUT/grid_search.csv and .json (mean
    DSC, PPV, sensitivity, HD of every pair), the pooled evaluation at the chosen pair (OUT/table1.md and .csv:
    the paper's Table 1 row, mean +- SD over all folds' cases) and, with --override, an override file holding
    only "threshold" and "min_size" for inference: --config_file "['configs/inference.json','OVERRIDE']".
    Lesions are face-connected (--connectivity 1, 6 neighbours in 3D, the authors' count; 3: 26 neighbours), as
    in the bundle's inference.json "connectivity": the two must agree.

    Example:
        strokezoo grid-search --probs cv_probs --ref datalist.json --out cv_probs/grid --override configs/postprocessing.json
    """
    from .metrics.grid_search import grid_search as run

    r = run(probs, ref, out, override=override, split=split, folds=folds, hd_max=hd_max, suffix=suffix, connectivity=connectivity)
    print(
        f"T_h {r['threshold']}, S_min {r['min_size']}: score {r['score']:.3f} (Dice {r['dice']:.3f}, PPV {r['precision']:.3f}, sensitivity {r['recall']:.3f}, "
        f"HD {r['hd']:.1f} voxels) over {r['cases']} cases; Table 1 row in {out}/table1.md" + (f"; T_h and S_min written to {override}" if override else "")
    )
    if r["failures"]:
        sys.exit(1)


def baseline(datalist: str, rule: str, out: str, split: str = "training") -> None:
    """Predict lesions with a clinical threshold rule: "adc" (ADC < 620e-6 mm^2/s) or "rcbf" (CBF < 30 %).

    Example:
        strokezoo baseline --datalist datalist.json --rule adc --out outputs/adc_rule
    """
    from .baselines import predict_datalist

    n, failures = predict_datalist(datalist, rule, out, split)
    for f in failures:
        print(f"cannot predict {f['case_id']}: {f['error']}", file=sys.stderr)
    print(f"wrote {n} masks to {out}")
    if failures:
        sys.exit(1)


def show(case_dir: str, out: str = "case.png", label: str | dict | None = None, z: int | None = None, pred: str | dict | None = None) -> None:
    """Draw a montage of a case's modalities at one axial slice with the lesion outline (red) and,
    with --pred MASK, a predicted mask's outline (blue). --label and --pred also take one mask per
    modality, e.g. --pred '{"adc": "case_adc.nii.gz", "dwi": "case_dwi.nii.gz"}'.

    Example:
        strokezoo show data/isles2018_synth/TRAINING/case_1 --out case_1.png
    """
    from .visualize import show_case

    print(show_case(case_dir, out, label=label, z=z, pred=pred))


def demo(out: str = "demo_output", cases: int = 8, epochs: int | None = None) -> None:
    """Synthesize ISLES 2022 and ISLES 2018 cohorts, build datalists, run the clinical threshold rules,
    evaluate them; then train each bundle on a small synthetic cohort (CPU-sized: its configs/smoke.json, for
    its metadata's smoke_epochs, or EPOCHS for all), infer its validation fold and score it; write OUT/report.md
    with overlay PNGs.

    Example:
        strokezoo demo --out demo_output
    """
    from .demo import run_demo

    print(run_demo(out, cases, epochs=epochs))


def export(bundle: str, out: str = "dist", weights: str | None = None, url: str = "") -> None:
    """Write a bundle as one standalone zip, OUT/<name>_v<version>.zip, that runs without strokezoo installed.

    The zip's top level is the bundle folder, with the shared library vendored as scripts/strokezoo, the
    weights as models/model.pt (--weights PATH, default the bundle's own models/model.pt if any) and
    large_files.yml (sha256 of every large file; --url is where models/model.pt will be published, see
    docs/weights.md). Run it from the unpacked folder:
    python -m monai.bundle run evaluating --config_file configs/inference.json --dataset_dir DATA

    Example:
        strokezoo export stroke_mri_crossattention_unet2d --out dist --weights runs/fold0/model.pt
    """
    from .export import export_bundle

    try:
        path = export_bundle(bundle, out, weights, url)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(path)


def stack(root: str, bundle: str, out: str, layout: str = "auto", training: bool = False) -> None:
    """Stack each case's modalities into one multi-channel NIfTI, OUT/<case>.nii.gz, in BUNDLE's input order.

    A stacked study is what MONAI Label hands a bundle (one image per request); every bundle's inference reads
    it as well as the per-modality files (docs/monailabel.md). ROOT is a release folder or one case's folder;
    BUNDLE a bundle name or folder. Every modality must lie on the case's grid. Cases that fail are listed at
    the end and the exit status is 1; the others are written. With --training, the stack also holds the
    modalities the bundle's training reads and its inference does not (the pseudo-DWI bundle's DWI), so that
    MONAI Label can train on it; inference reads such a stack too.

    Example:
        strokezoo stack /data/ISLES2017 --bundle stroke_mri_crossattention_unet2d --out studies/
    """
    from .bundle_info import inference_keys, training_keys
    from .data.stacked import stack_cases

    try:
        keys = training_keys(bundle) if training else inference_keys(bundle)
        written, failures = stack_cases(root, keys, out, layout)
    except (InputError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"stacked {len(written)} cases ({', '.join(keys)}) -> {out}")
    if failures:
        print(f"{len(failures)} cases failed:", *failures, sep="\n  ", file=sys.stderr)
        raise SystemExit(1)


def _names(value) -> list:
    """A flag given as one value, a comma-separated list or a list (fire reads ``[a,b]`` as one)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def segment(
    bundle,
    out: str,
    weights=None,
    study: str | None = None,
    studies: str | None = None,
    config=None,
    probabilities: bool = False,
    map=None,  # the flag is --map
    amp: bool | None = None,
    min_b_value: float = 500.0,
    **modalities: str,
) -> None:
    """Segment a study with a bundle's own inference configs: a mask, its volume, an overlay and a report.

    Inputs: one flag per modality the bundle reads (`--adc FILE --dwi FILE`; the keys of its configs/inference.json
    `load_keys`; stroke_<name>_unet2d/3d: ct_boundary_attention ct cbf cbv mtt tmax; ctp_pseudodwi ctp cbf cbv mtt tmax;
    ctp_transformer ctp; dwi_crossdomain adc dwi; mri_crossattention adc ttp tmax; mri_residual flair t1 t2 dwi), or
    --study DIR (its NIfTI
    files, matched by modality token as `strokezoo datalist` does; or its DICOM series, read with ITK and matched by
    the tokens of their SeriesDescription or ProtocolName, or by --map dwi=SERIES_UID,adc=SERIES_UID), or --studies DIR (every study folder below it;
    the refused ones are listed at the end, exit status 1). BUNDLE: a bundle name or folder; several, comma-separated,
    with their --weights in the same order: each writes its mask, and their mean probability > 0.5 is the
    ensemble's. --config: override files of the bundles' configs/ the weights were trained with (e.g. smoke.json).
    --amp / --noamp: bf16 autocast on or off for every bundle (default: each bundle's own; bf16 is faster on CPUs with
    AMX or AVX512-BF16 and on GPUs, and may flip voxels whose probability is within rounding of the threshold).
    --min_b_value: a DICOM DWI series is read at its highest b-value (DiffusionBValue, else the GE, Siemens or Philips
    private tag), which must be at least this (default 500 s/mm^2); report.json records it.

    Writes OUT/<study>/: <bundle>_mask.nii.gz on the grid of the modality it segments (as the study gave it;
    --probabilities: <bundle>_prob.nii.gz too), ensemble_mask.nii.gz, overlay.png, report.json (lesion volume,
    26-connected lesion count, largest lesion, volume per hemisphere, the inputs' geometry, bundle versions, the
    weights' sha256, software versions, seconds) and report.md; from DICOM, segmentation.dcm too (a DICOM SEG of the
    mask, referencing the series it is on). No weights are published yet: docs/weights.md.

    Example:
        strokezoo segment --bundle stroke_dwi_crossdomain_unet2d --weights model.pt --adc adc.nii.gz --dwi dwi.nii.gz --out seg
    """
    from .errors import InputsRefused
    from .segment import StudyFailed, segment_studies, segment_study

    bundles, weights_list = _names(bundle), _names(weights)
    kwargs = {"configs": _names(config), "probabilities": bool(probabilities), "amp": None if amp is None else bool(amp), "min_b_value": float(min_b_value)}
    try:
        pairs = [m.split("=", 1) for m in _names(map)]
        if any(len(p) != 2 or not all(p) for p in pairs):
            raise ValueError(f"--map takes MODALITY=SERIES_UID pairs, comma-separated; got {map!r}")
        kwargs["mapping"] = dict(pairs)
        if not bundles:
            raise ValueError("give --bundle NAME (and --weights FILE)")
        weights_list = weights_list or [None] * len(bundles)
        if studies:
            reports = segment_studies(studies, bundles, weights_list, out, **kwargs)
        else:
            reports = [segment_study(bundles, weights_list, out, files={k: str(v) for k, v in modalities.items()}, study=study, **kwargs)]
    except (InputError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (InputsRefused, StudyFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for r in reports:
        s = r["lesions"]
        print(f"{r['study']}: {s['total_volume_ml']:.2f} mL in {s['lesion_count']} lesion(s) -> {os.path.join(out, r['study'], 'report.md')}")


def compare(
    cohort: str = "isles2018",
    methods: str = "all",
    size: str = "cpu",
    out: str = "compare_output",
    epochs: int | None = None,
    cases: int = 12,
    seed: int = 3,
    dataset_dir: str | None = None,
    datalist: str | None = None,
    minutes: float | None = None,
    folds: int = 1,
    difficulty: float = 0.5,
) -> None:
    """Train every method of a synthetic cohort (or of real data: --dataset_dir in the cohort's release layout, or a
    --datalist with patient-level folds), the stock MONAI baselines (BasicUNet, DynUNet) and the cohort's
    clinical threshold rule with one budget, on one patient-level split or, with --folds K (K >= 3), on each split of a
    K-fold cross-validation (split k tests fold k and selects each network on fold k+1 mod K, so every study is a
    test study once and n is the cohort); score the test studies with `strokezoo evaluate` and write
    OUT/leaderboard.md, leaderboard.csv and dice.png (mean, SD, bootstrap CI, Wilcoxon p against BasicUNet with
    Holm's correction; a stock baseline that learnt nothing is marked so and is never the bar). Exits 1 if a method
    failed (the others still run and are reported). Methods that finished with the same settings are not run again,
    split by split (a bundle's settings: its configs, and of its metadata what changes the run, not its version or
    changelog). --difficulty: of the synthetic cohort (0 easy to 1 hard; default 0.5, the generator's).

    Cohorts: isles2018, isles2022, isles2017, isles2015-siss, or all (each into OUT/<cohort>/). Sizes: smoke (CPU-sized, 1 epoch), cpu (CPU-sized,
    every method the cohort's epochs: isles2018 40, isles2022 20, isles2017 25, isles2015-siss 2), paper (the configs as
    shipped, for a GPU, at the same epochs unless --epochs). METHODS: "all" or a comma-separated list. --minutes M:
    a wall-clock budget per trained method besides the epochs: each validates after every epoch and stops at the end
    of the first epoch past M minutes (a bundle's stages share them equally); the table gives the epochs completed.

    Example:
        strokezoo compare --cohort isles2018 --methods all --size cpu --out compare_isles2018
        strokezoo compare --cohort isles2022 --methods all --size cpu --folds 4 --cases 16 --seed 7 --out cv_isles2022
    """
    from .compare import COHORTS
    from .compare import compare as run_compare

    if cohort == "all" and (methods != "all" or dataset_dir or datalist):
        raise ValueError("--cohort all runs every method of every synthetic cohort (--methods all, no --dataset_dir or --datalist)")
    failed = []
    for c in COHORTS if cohort == "all" else [cohort]:
        target = os.path.join(out, c) if cohort == "all" else out
        report, results = run_compare(
            c, methods, size, target, epochs, cases, seed, dataset_dir=dataset_dir, datalist=datalist, minutes=minutes, folds=folds, difficulty=difficulty
        )
        print(f"wrote {report}")
        failed += [r for r in results if r["status"] != "done"]
    if failed:
        print(f"{len(failed)} methods failed:", *(f"{r['name']}: {r.get('error', '')}" for r in failed), sep="\n  ", file=sys.stderr)
        raise SystemExit(1)


def main() -> None:
    try:
        fire.Fire(
            {
                "synth": synth,
                "datalist": datalist,
                "evaluate": evaluate,
                "evaluate-raters": evaluate_raters,
                "grid-search": grid_search,
                "baseline": baseline,
                "show": show,
                "demo": demo,
                "export": export,
                "stack": stack,
                "compare": compare,
                "segment": segment,
            },
            name="strokezoo",
        )
    except (InputError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
