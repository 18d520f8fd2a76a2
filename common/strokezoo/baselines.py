"""Clinical threshold rules, the trivial predictors every learned method must beat.

* ``adc``: ADC < 620e-6 mm^2/s within the head (ADC > 0), the DWI-core rule used by RAPID
  (Purushotham et al., Int J Stroke 2015).
* ``rcbf``: CBF < 30 % of the healthy hemisphere's median CBF, within tissue of 20-60 HU on the
  non-contrast/average CT (which excludes CSF and bone), the CTP-core rule (Campbell et al., Stroke 2011).

The healthy hemisphere is the half of the volume (split at the middle column of the first axis) with the
higher median CBF.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adc_rule", "rcbf_rule", "RULES"]


def adc_rule(adc: np.ndarray, threshold: float = 620.0) -> np.ndarray:
    """Binary core mask: 0 < ADC < ``threshold`` (ADC in 1e-6 mm^2/s)."""
    return ((adc > 0) & (adc < threshold)).astype(np.uint8)


def rcbf_rule(cbf: np.ndarray, ct: np.ndarray, fraction: float = 0.3, hu_range: tuple[float, float] = (20.0, 60.0)) -> np.ndarray:
    """Binary core mask: CBF < ``fraction`` x healthy-hemisphere median, within ``hu_range`` on ``ct``."""
    tissue = (ct >= hu_range[0]) & (ct <= hu_range[1]) & (cbf > 0)
    half = cbf.shape[0] // 2
    medians = []
    for side in (slice(0, half), slice(half, None)):
        values = cbf[side][tissue[side]]
        medians.append(float(np.median(values)) if values.size else 0.0)
    reference = max(medians)
    if reference <= 0:
        return np.zeros(cbf.shape, np.uint8)
    return (tissue & (cbf < fraction * reference)).astype(np.uint8)


#: rule name -> (function, datalist keys it reads in order; "a|b" takes whichever the entry has)
RULES = {"adc": (adc_rule, ("adc",)), "rcbf": (rcbf_rule, ("cbf", "ct|ncct"))}


def predict_datalist(datalist: str, rule: str, out: str, split: str = "training") -> tuple[int, list[dict]]:
    """Apply ``rule`` to every case of ``split`` and write ``<out>/<case_id>.nii.gz`` on the input's grid.

    Returns the number of masks written and the failures (case, error); bad cases do not stop the others.
    """
    from pathlib import Path

    from .data.datalist import load_datalist_entries
    from .errors import InputError
    from .io.nifti import load_nifti, save_nifti

    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {sorted(RULES)}")
    fn, keys = RULES[rule]
    out_dir = Path(out)
    written, failures = 0, []
    for e in load_datalist_entries(datalist, split):
        try:
            paths = []
            for k in keys:
                options = [o for o in k.split("|") if o in e]
                if not options:
                    raise InputError(datalist, f"case {e.get('case_id')} has no '{k}' image")
                paths.append(e[options[0]])
            vols = [load_nifti(p, "image") for p in paths]
            mask = fn(*[v.data for v in vols])
            save_nifti(mask, vols[0].affine, out_dir / f"{e['case_id']}.nii.gz", np.uint8)
            written += 1
        except (InputError, ValueError) as err:
            failures.append({"case_id": e.get("case_id"), "error": str(err)})
    return written, failures
