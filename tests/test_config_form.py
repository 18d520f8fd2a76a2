"""The bundles' configs say each thing once and read as the paper's setup (docs/bundles.md, "How the configs are written").

- ``postprocessing`` is a list of components, each optional output switched by ``_disabled_``;
- no handler is referenced by its position in a list;
- override files add to the base's lists with MONAI's ``+`` merge key instead of restating them;
- the knobs (literal values) come first in every base config;
- the shared machinery (rank gating, resume, version check, input check, mixed-precision inferer, DDP) is worded
  the same in every bundle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from strokezoo.bundle_info import BUNDLES, config_files

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIGS = ("train.json", "train_transformer.json", "inference.json", "evaluate.json")


def _raw(bundle: str, name: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / name).read_text())


def _postprocessing(bundle: str, **keys) -> list[str]:
    parser = ConfigParser()
    parser.read_config(config_files(bundle, "inference.json"))
    for k, v in keys.items():
        parser[k] = v
    return [type(t).__name__ for t in parser.get_parsed_content("postprocessing").transforms]


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_postprocessing_is_a_list_of_components_with_optional_outputs_disabled(bundle):
    transforms = _raw(bundle, "inference.json")["postprocessing"]["transforms"]
    assert isinstance(transforms, list) and all(isinstance(t, dict) and "_target_" in t or t.startswith("@") for t in transforms), transforms
    flag = "save_tfa" if bundle == "stroke_ctp_transformer_unet2d" else "save_probabilities"
    without, with_ = _postprocessing(bundle, **{flag: False}), _postprocessing(bundle, **{flag: True})
    assert with_[: len(without)] == without and with_.count("SaveCased") == without.count("SaveCased") + 1, (without, with_)


def _literal(v) -> bool:
    if isinstance(v, str):
        return not v.startswith(("$", "@", "%"))
    if isinstance(v, list):
        return all(_literal(x) for x in v)
    if isinstance(v, dict):
        return "_target_" not in v and all(_literal(x) for x in v.values())
    return True


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_knobs_come_first_and_no_handler_is_referenced_by_position(bundle):
    for name in BASE_CONFIGS:
        path = REPO / "bundles" / bundle / "configs" / name
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        kinds = [_literal(v) for k, v in config.items() if k not in ("_desc_", "imports")]
        assert kinds == sorted(kinds, reverse=True), f"{path}: a literal key follows a computed one: {list(config)}"
    for path in (REPO / "bundles" / bundle / "configs").glob("*.json"):
        assert not re.search(r"handlers#\d", path.read_text()), f"{path}: a handler referenced by its list position"


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_override_files_add_to_the_base_lists_instead_of_restating_them(bundle):
    base = _raw(bundle, "train.json")
    for name in ("finetune.json", "multi_gpu_train.json", "sequential.json"):
        path = REPO / "bundles" / bundle / "configs" / name
        if not path.is_file():
            continue
        override = json.loads(path.read_text())
        assert "initialize" not in override and "+initialize" in override, path
        assert not set(override["+initialize"]) & set(base["initialize"]), path
        assert "run" not in override, f"{path}: restates train.json's run"
    parser = ConfigParser()
    parser.read_config(config_files(bundle, "train.json", "multi_gpu_train.json", "finetune.json"))
    merged = parser.get("initialize")
    assert merged[: len(base["initialize"])] == base["initialize"] and any("init_process_group" in x for x in merged)
    assert merged.index(next(x for x in merged if "init_process_group" in x)) < merged.index(next(x for x in merged if "load_state_dict" in x))


#: (config, key) of the shared machinery, and for a list of handlers the target of the item meant.
MACHINERY = [
    ("train.json", "is_not_rank0"),
    ("train.json", "resume"),
    ("train.json", "resume_path"),
    ("train.json", "device"),
    ("train.json", "initialize"),
    ("train.json", "train#handlers", "strokezoo.engines.ResumeCheckpoint"),
    ("inference.json", "input_check"),
    ("inference.json", "inferer"),
    ("inference.json", "initialize"),
    ("inference.json", "finalize"),
    ("inference.json", "device"),
    ("inference.json", "handlers"),
    ("inference.json", "dataloader"),
    ("multi_gpu_train.json", "+initialize"),
    ("multi_gpu_train.json", "finalize"),
    ("multi_gpu_train.json", "device"),
    ("finetune.json", "+initialize"),
]


@pytest.mark.parametrize("machinery", MACHINERY, ids=lambda m: "/".join(m[:2]))
def test_the_machinery_is_worded_the_same_in_every_bundle(machinery):
    """Each bundle states the project's machinery itself (an exported zip must run alone), in the same words: a
    change to one bundle's copy fails here until every bundle has it."""
    name, key, *target = machinery
    wordings: dict[str, list[str]] = {}
    for bundle in sorted(BUNDLES):
        value = _raw(bundle, name)
        for part in key.split("#"):
            value = value[part]
        if target:
            (value,) = [h for h in value if isinstance(h, dict) and h.get("_target_") == target[0]]
            value = {k: v for k, v in value.items() if k != "lr_scheduler"}  # a bundle without a scheduler has none to save
        wordings.setdefault(json.dumps(value, sort_keys=True), []).append(bundle)
    assert len(wordings) == 1, f"{name} '{key}' differs between bundles: {list(wordings.values())}"
