"""The bundles' configs say each thing once and read as the paper's setup (docs/bundles.md, "How the configs are written").

- ``postprocessing`` is a list of components, each optional output switched by ``_disabled_``;
- no handler is referenced by its position in a list;
- override files add to the base's lists with MONAI's ``+`` merge key instead of restating them;
- the knobs (literal values) come first in every base config;
- the shared machinery (handlers, resume, rank gating, DDP set-up) is named from strokezoo.engines, never copied;
- the configs repeat no more than their bound (tests/config_measure.py), no setting is written in both train.json
  and inference.json, and no ``$`` expression is longer than 120 characters.
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
    assert merged[: len(base["initialize"])] == base["initialize"] and any("init_distributed" in x for x in merged)
    assert merged.index(next(x for x in merged if "init_distributed" in x)) < merged.index(next(x for x in merged if "load_weights" in x))


#: MONAI handlers and set-up steps that strokezoo.engines' routines and distributed helpers attach or run: a config
#: that lists one again holds a copy of the machinery
COPIED_MACHINERY = (
    '"LrScheduleHandler"',
    '"ValidationHandler"',
    '"StatsHandler"',
    '"TensorBoardStatsHandler"',
    "ignite.handlers.ProgressBar",
    "strokezoo.engines.ResumeCheckpoint",
    "strokezoo.engines.SaveBestNetwork",
    "strokezoo.engines.TrainingRoutine",
    "strokezoo.engines.ValidationRoutine",
    "strokezoo.engines.InferenceRoutine",
    '"DataLoader"',
    "DistributedSampler",
    "per_rank_batch",
    '"CheckpointLoader"',
    "init_process_group",
    "DistributedDataParallel",
    "load_state_dict",
    "get_rank()",
)


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_the_machinery_is_named_once_and_never_copied(bundle):
    """The trainer's and the validator's loaders and handlers, inference's handlers, resume, rank gating and DDP
    set-up are written once in strokezoo.engines and named by every bundle: no config states one of them again."""
    from strokezoo import engines

    configs = REPO / "bundles" / bundle / "configs"
    for path in configs.glob("*.json"):
        text = path.read_text()
        copied = [m for m in COPIED_MACHINERY if m in text]
        assert not copied, f"{path}: states machinery strokezoo.engines provides: {copied}"
    for stage in BUNDLES[bundle].stages:
        config = _raw(bundle, stage)
        trainer, validator = config["train"]["trainer"]["_target_"], config["validate"]["evaluator"]["_target_"]
        assert issubclass(getattr(engines, trainer.removeprefix("strokezoo.engines.")), engines.Trainer), (stage, trainer)
        assert validator == "strokezoo.engines.Validator", (stage, validator)
    assert _raw(bundle, "inference.json")["evaluator"]["_target_"] == "strokezoo.engines.Inference"


def test_the_configs_repeat_no_more_than_their_bound_and_state_each_setting_once():
    """``tests/config_measure.py``: the repeated share of config lines stays at or under :data:`MAX_REPEATED_SHARE`
    (lower it as the configs shrink: docs/bundles.md states the target, 25 %), no setting has a literal value in
    both a bundle's train.json and inference.json, and no ``$`` expression is longer than 120 characters."""
    from config_measure import config_files as measured_files
    from config_measure import repeated_share, settings_written_twice

    share, total, _ = repeated_share(measured_files())
    assert share <= MAX_REPEATED_SHARE, f"{share:.1%} of {total} config lines sit in repeated 6-line runs (bound {MAX_REPEATED_SHARE:.0%})"
    assert settings_written_twice() == []

    def expressions(v):
        if isinstance(v, dict):
            for x in v.values():
                yield from expressions(x)
        elif isinstance(v, list):
            for x in v:
                yield from expressions(x)
        elif isinstance(v, str) and v.startswith("$"):
            yield v

    long = [(str(p), e) for p in measured_files() for e in expressions(json.loads(p.read_text())) if len(e) > 120]
    assert not long, long


#: the bound today; each change that removes repetition lowers it
MAX_REPEATED_SHARE = 0.67


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_train_json_reads_the_model_s_settings_from_inference_json(bundle, tmp_path):
    """Every setting train.json takes from inference.json (``$@model['key']``) parses to inference.json's value, and
    a bundle folder whose inference.json says otherwise trains with what it says: the setting is written once."""
    import shutil

    config = _raw(bundle, "train.json")
    shared = [k for k, v in config.items() if isinstance(v, str) and v == f"$@model['{k}']"]
    assert shared, "train.json takes no setting from inference.json"
    configs = REPO / "bundles" / bundle / "configs"
    parser, inference = ConfigParser(), ConfigParser()
    parser.read_config(str(configs / "train.json"))
    inference.read_config(str(configs / "inference.json"))
    for k in shared:
        assert parser.get_parsed_content(k) == inference.get_parsed_content(k), k
    copy = tmp_path / bundle
    shutil.copytree(REPO / "bundles" / bundle / "configs", copy / "configs")
    edited = json.loads((copy / "configs" / "inference.json").read_text())
    edited["num_folds"] = 7
    (copy / "configs" / "inference.json").write_text(json.dumps(edited))
    parser = ConfigParser()
    parser.read_config(str(copy / "configs" / "train.json"))
    parser["bundle_root"] = str(copy)
    assert parser.get_parsed_content("num_folds") == 7
