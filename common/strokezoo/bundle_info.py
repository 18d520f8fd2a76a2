"""What each bundle of the repository says about itself, read from its own files.

- ``configs/metadata.json``: ``training_stages`` (the training configs, run in this order), ``training_inputs``
  (modalities training reads that inference does not, e.g. the pseudo-DWI bundle's DWI), ``smoke_configs``
  (override files a first, CPU-sized run adds to every config, e.g. the two-rater targets of the cross-domain
  bundle, whose synthetic cohort has two raters), ``smoke_epochs`` (the epochs of that run: enough for the
  bundle to beat its untrained network on the 12-case synthetic cohort, the test each bundle's training passes) and
  ``comparison_variants`` (override configs that deviate from the paper, which ``strokezoo compare`` runs as rows of
  their own beside the paper's default);
- ``configs/smoke.json``: the CPU-sized keys of that run (narrow networks, small batches, no workers), which the
  tests, ``make demo`` and a user's first try use: ``--config_file "['configs/train.json','configs/smoke.json']"``;
- ``configs/inference.json``'s ``layout``: the release layout the bundle reads.

The demo, the tests and ``strokezoo export`` use this module; nothing here imports them.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "BundleInfo",
    "BUNDLES",
    "bundle_folder",
    "bundles_dir",
    "config_files",
    "cpu_overrides",
    "describe",
    "inference_keys",
    "training_keys",
    "variant_keys",
    "split_overrides",
    "bundle_split",
]


class BundleInfo(NamedTuple):
    """A bundle's release layout, training stages, smoke-run override files, smoke-run epochs and the override
    configs of its comparison variants."""

    layout: str
    stages: tuple[str, ...]
    overrides: tuple[str, ...]
    epochs: int
    variants: tuple[str, ...] = ()


_REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (the demo and the tests run from a clone)."""
    d = _REPO_BUNDLES
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no bundles folder; this needs a clone of the repository")
    return d


def bundle_folder(bundle: str | os.PathLike) -> Path:
    """``bundle`` if it is a bundle folder, else the repository's ``bundles/<bundle>`` (a folder of that name that is
    not a bundle, e.g. one holding its weights in the working directory, does not hide it)."""
    root = Path(bundle)
    if not (root / "configs" / "metadata.json").is_file() and (_REPO_BUNDLES / str(bundle) / "configs" / "metadata.json").is_file():
        root = _REPO_BUNDLES / str(bundle)
    elif not root.is_dir():
        root = bundles_dir() / str(bundle)
    meta_file = root / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file}: no bundle metadata; is {bundle} a bundle folder?")
    return root


def inference_keys(bundle: str | os.PathLike) -> list[str]:
    """The modality keys a bundle's ``configs/inference.json`` loads (``load_keys``), in channel order."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_folder(bundle) / "configs" / "inference.json"))
    return list(parser.get_parsed_content("load_keys", instantiate=False))


def training_keys(bundle: str | os.PathLike) -> list[str]:
    """The modality keys a bundle's training reads besides the label: its :func:`inference_keys`, then its
    metadata's ``training_inputs`` (what a stacked study for training holds, ``strokezoo stack --training``)."""
    keys = inference_keys(bundle)
    extra = _read(bundle_folder(bundle) / "configs" / "metadata.json").get("training_inputs", [])
    return keys + [k for k in extra if k not in keys]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the bundle's description ({e})") from None


@cache
def describe(bundle: str) -> BundleInfo:
    """``bundle``'s :class:`BundleInfo`, from its metadata.json and first training config."""
    configs = bundles_dir() / bundle / "configs"
    meta = _read(configs / "metadata.json")
    stages = tuple(meta.get("training_stages", ("train.json",)))
    layout = _read(configs / "inference.json").get("layout")
    if not isinstance(layout, str):
        raise ValueError(f"{configs / 'inference.json'}: no 'layout' key naming the release layout")
    epochs = meta.get("smoke_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"{configs / 'metadata.json'}: 'smoke_epochs' must be a positive integer, not {epochs!r}")
    variants = tuple(meta.get("comparison_variants", ()))
    missing = [v for v in variants if not (configs / v).is_file()]
    if missing:
        raise ValueError(f"{configs / 'metadata.json'}: comparison_variants {missing} are not files of configs/")
    return BundleInfo(layout, stages, tuple(meta.get("smoke_configs", ())), epochs, variants)


def variant_keys(bundle: str, variant: str) -> dict:
    """The keys of ``bundle``'s override config ``variant`` (e.g. ``percentile.json``), without its ``_desc_``."""
    return {k: v for k, v in _read(bundles_dir() / bundle / "configs" / variant).items() if not k.startswith("_")}


def comparison_overrides(bundle: str) -> dict:
    """The keys ``strokezoo compare --size cpu`` sets over :func:`cpu_overrides`: ``bundle``'s ``configs/cpu.json``
    (without its ``_desc_``), or none. A bundle whose smoke size (sized for the tests and the demo) is too small to
    show what it learns at the comparison's budget has one."""
    return variant_keys(bundle, "cpu.json") if (bundles_dir() / bundle / "configs" / "cpu.json").is_file() else {}


def cpu_overrides(bundle: str) -> dict:
    """The CPU-sized keys of ``bundle`` (its ``configs/smoke.json``, without the ``_desc_`` that explains them)."""
    return variant_keys(bundle, "smoke.json")


def config_files(bundle: str, *names: str) -> list[str]:
    """Paths of ``names`` in the bundle's configs/, followed by its smoke-run override files."""
    configs = bundles_dir() / bundle / "configs"
    return [str(configs / n) for n in (*names, *describe(bundle).overrides)]


def split_overrides(bundle: str, stage: str, test_fold: int, val_fold: int) -> dict:
    """Config keys that make ``bundle``'s ``stage`` train on the comparison's training folds and select its model
    on ``val_fold``: ``val_fold`` where the bundle validates on a fold, else its ``split`` as the two fold sets.
    ``fold`` names the test fold, which the training datalist does not hold."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(bundle, stage))
    keys: dict = {"fold": test_fold}
    if "split" in parser:
        select = "strokezoo.data.datalist.select_entries(@datalist_path, 'training'"
        keys["split"] = f"$[{select}, exclude_folds=[{val_fold}]), {select}, folds=[{val_fold}])]"
    else:
        keys["val_fold"] = val_fold
    return keys


def bundle_split(bundle: str, stage: str, keys: dict) -> tuple[set[str], set[str]]:
    """The case ids ``bundle``'s ``stage`` trains and validates on, with ``keys``, read from the parsed config."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(bundle, stage))
    for k, v in keys.items():
        parser[k] = v
    if "split" in parser:
        train, val = parser.get_parsed_content("split")
    else:
        train, val = parser.get_parsed_content("train#dataset#data"), parser.get_parsed_content("validate#dataset#data")
    return {e["case_id"] for e in train}, {e["case_id"] for e in val}


def _all() -> dict[str, BundleInfo]:
    if not _REPO_BUNDLES.is_dir():
        return {}
    return {p.name: describe(p.name) for p in sorted(_REPO_BUNDLES.iterdir()) if (p / "configs" / "metadata.json").is_file()}


#: every bundle of the repository (empty where strokezoo runs outside a clone)
BUNDLES: dict[str, BundleInfo] = _all()
