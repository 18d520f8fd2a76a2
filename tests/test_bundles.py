"""Every bundle: config properties, metadata against the schema, network in/out, and DDP over two CPU processes."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, verify_metadata, verify_net_in_out

from strokezoo.bundle_info import BUNDLES, config_files, cpu_overrides
from strokezoo.data.datalist import build_datalist

from conftest import bundle_run, untrained_checkpoint

REPO = Path(__file__).resolve().parents[1]


def configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


def test_every_bundle_folder_is_covered():
    assert sorted(p.name for p in (REPO / "bundles").iterdir() if p.is_dir()) == sorted(BUNDLES)


def small_training_setup(bundle: str, cohort, tmp_path: Path) -> tuple[Path, Path, dict]:
    """The bundle's 3-case cohort with a 3-fold datalist (two training patients, one fold empty) and the fold keys
    that leave something to train on: ``val_fold`` (validation fold of the 2D bundles) is a non-empty fold, ``fold``
    (the evaluated fold of the bundles that hold training patients out for validation) the empty one."""
    layout = BUNDLES[bundle].layout
    data, _ = cohort(layout)
    datalist = tmp_path / "datalist.json"
    entries = build_datalist(data, datalist, layout=layout, folds=3)["training"]
    counts = {k: sum(e["fold"] == k for e in entries) for k in range(3)}
    return data, datalist, {"fold": min(counts, key=counts.get), "val_fold": max(counts, key=counts.get)}


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("kind", ["train", "inference", "evaluate"])
def test_check_properties(bundle, kind, tmp_path, cohort):
    """The first training stage (later stages need its checkpoint: their bundle tests check them after training),
    inference, and evaluation (evaluate.json over inference.json), on a 3-case cohort; see
    :func:`small_training_setup` for the folds."""
    data, datalist, folds = small_training_setup(bundle, cohort, tmp_path)
    config = {
        "train": [str(configs(bundle) / BUNDLES[bundle].stages[0])],
        "inference": [str(configs(bundle) / "inference.json")],
        "evaluate": [str(configs(bundle) / "inference.json"), str(configs(bundle) / "evaluate.json")],
    }[kind]
    if kind == "evaluate":  # it scores the cases of `fold`: a non-empty one
        folds = {**folds, "fold": folds["val_fold"]}
    wf = ConfigWorkflow(
        config_file=config,
        workflow_type="train" if kind == "train" else "inference",
        meta_file=str(configs(bundle) / "metadata.json"),
        logging_file=str(configs(bundle) / "logging.conf"),
        bundle_root=str(tmp_path),
        dataset_dir=str(data),
        datalist=str(datalist),
        datalist_split="training",
        **folds,
        **{"num_workers": 0, **(cpu_overrides(bundle) if kind == "train" else {})},
    )
    wf.initialize()
    assert not wf.check_properties()


@pytest.mark.filterwarnings("ignore:No hash value provided")  # the schema is our own file in the repo
@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_and_network_in_out(bundle, tmp_path):
    verify_metadata(meta_file=str(configs(bundle) / "metadata.json"), filepath=str(REPO / "bundles" / "metadata_schema.json"))
    verify_net_in_out(
        net_id="network_def", meta_file=str(configs(bundle) / "metadata.json"), config_file=str(configs(bundle) / "inference.json"), device="cpu", n=1, any=1
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


#: bundles whose multi-GPU run is another's: the same multi_gpu_train.json, training dataset, trainer and handlers,
#: so the same code path under DDP (test_the_same_multi_gpu_path_as holds them to it)
SAME_MULTI_GPU_PATH = {
    "stroke_mri_crossattention_unet2d": "stroke_ct_boundary_attention_unet2d",
    "stroke_dwi_crossdomain_unet2d": "stroke_ct_boundary_attention_unet2d",
}


@pytest.mark.parametrize("bundle,like", sorted(SAME_MULTI_GPU_PATH.items()))
def test_the_same_multi_gpu_path_as(bundle, like):
    """A bundle left out of the two-process run below has the multi-GPU config, training dataset, trainer and
    handlers of one that runs it; and what DDP asks of its own network (wrapped without find_unused_parameters):
    one training step gives every parameter a gradient."""

    def path(b: str) -> tuple:
        raw = json.loads((configs(b) / "train.json").read_text())
        multi = {k: v for k, v in json.loads((configs(b) / "multi_gpu_train.json").read_text()).items() if k != "_desc_"}
        return multi, raw["train"]["dataset"]["_target_"], raw["train"]["trainer"], raw["train"]["handlers"]

    assert path(bundle) == path(like)
    parser = ConfigParser()
    parser.read_config(config_files(bundle, "train.json"))
    for k, v in cpu_overrides(bundle).items():
        parser[k] = v
    network, loss = parser.get_parsed_content("network_def"), parser.get_parsed_content("loss")
    size = parser.get_parsed_content("image_size")
    x = torch.rand(2, len(parser.get_parsed_content("modalities")), size, size)
    out = network(x)
    target = torch.randint(0, 2, (2, out[0].shape[1] if isinstance(out, (list, tuple)) else out.shape[1], size, size)).float()
    loss(out, target).backward()
    unused = [name for name, p in network.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused


#: bundles whose two-process run is two machines of one process each: torchrun on each node, meeting at a c10d
#: rendezvous on 127.0.0.1 (the multi-node command of docs/bundles.md, with localhost for the first node's address)
TWO_NODES = {"stroke_ct_boundary_attention_unet2d"}


#: bundles whose two-rank validation metric is checked against one process's on the same weights
SAME_VALIDATION_AS_ONE_RANK = {"stroke_ctp_transformer_unet2d"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_node_flags(node: int, endpoint: str) -> list[str]:
    """torchrun's flags for node ``node`` of two, one process each, meeting at ``endpoint``."""
    return ["--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", "--rdzv_id=strokezoo-test"]


def run_nodes(cmds: list[list[str]], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run the torchrun commands of every node at once; one CompletedProcess: the first failure's status, and every
    node's output."""
    nodes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env) for c in cmds]
    outputs = [n.communicate(timeout=600) for n in nodes]
    status = next((n.returncode for n in nodes if n.returncode), 0)
    return subprocess.CompletedProcess(cmds[0], status, "".join(o for o, _ in outputs), "".join(e for _, e in outputs))


@pytest.mark.parametrize("bundle", [b for b in BUNDLES if b not in SAME_MULTI_GPU_PATH])
def test_multi_gpu_config_runs_two_processes_on_cpu(bundle, tmp_path, cohort12, bundle_cache):
    """``multi_gpu_train.json`` with torchrun and ``--tracking mlflow``: DDP over two CPU processes (gloo), one
    epoch of each training stage, on two of the 12-case cohort's four folds (3 patients each), three for the bundles
    that validate on a share of the training patients: both ranks still get training and validation cases.
    ``rank_probe`` records what each rank drew and saved: the ranks train on disjoint shards that together cover the
    training set, and only rank 0 writes checkpoints, TensorBoard events and MLflow runs. The bundles of
    :data:`TWO_NODES` run as two nodes of one process each (c10d rendezvous on 127.0.0.1), the multi-node command."""
    data, full = cohort12(bundle)
    listed = json.loads(full.read_text())
    datalist = tmp_path / "datalist.json"
    parsed = ConfigParser()
    parsed.read_config(config_files(bundle, BUNDLES[bundle].stages[0]))
    n = 3 if "val_fraction" in parsed else 2  # validating on a share of the training patients needs more of them
    datalist.write_text(json.dumps({**listed, "training": [e for e in listed["training"] if e["fold"] < n], "num_folds": n}))
    folds = {"fold": 0, "val_fold": 0}
    root = bundle_cache(tmp_path / "bundle")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    keys = {"meta_file": configs(bundle) / "metadata.json", "bundle_root": root, "dataset_dir": data, "datalist": datalist, "epochs": 1, "tracking": "mlflow"}
    from mlflow.tracking import MlflowClient
    from monai.utils import path_to_sqlite_uri

    store = root / "eval" / "mlruns.db"
    client = MlflowClient(path_to_sqlite_uri(str(store)))

    def mlflow_runs() -> list:
        experiment = client.get_experiment_by_name(bundle) if store.exists() else None
        return client.search_runs([experiment.experiment_id]) if experiment else []

    rendezvous = f"127.0.0.1:{_free_port()}"
    cpu = cpu_overrides(bundle)
    if cpu["batch_size"] % 2:  # the pseudo-DWI's batch of 5 cannot be shared by two ranks (per_rank_batch refuses it)
        cpu = {**cpu, "batch_size": cpu["batch_size"] - 1}
    retried = []
    for stage in BUNDLES[bundle].stages:
        probe_dir = tmp_path / "probe" / Path(stage).stem
        probe = tmp_path / f"probe_{Path(stage).stem}.json"
        probe.write_text(json.dumps({"run": ["$import rank_probe", f"$rank_probe.attach(@train#trainer, {str(probe_dir)!r})", "$@train#trainer.run()"]}))
        training = bundle_run("training", {**keys, "config_file": [*config_files(bundle, stage, "multi_gpu_train.json"), str(probe)], **folds, **cpu})
        if bundle in TWO_NODES:
            cmds = [[sys.executable, "-m", "torch.distributed.run", *two_node_flags(node, rendezvous), *training] for node in (0, 1)]
        else:
            cmds = [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2", *training]]
        before = {run.info.run_id for run in mlflow_runs()}
        events_before = set((root / "eval").rglob("events.out.tfevents.*"))
        r = run_nodes(cmds, tmp_path, env)
        if r.returncode != 0 and "terminate called without an active exception" in r.stderr:
            # Seen in CI runs, now and then: a gloo worker aborting at teardown while the other test worker starved
            # the two cores. One retry, after removing what the aborted attempt left (its probe records, its MLflow
            # run, its TensorBoard files); any other failure, or a second abort, fails the test.
            retried.append(stage)
            shutil.rmtree(probe_dir, ignore_errors=True)
            for run in mlflow_runs():
                if run.info.run_id not in before:
                    client.delete_run(run.info.run_id)
            for event_file in set((root / "eval").rglob("events.out.tfevents.*")) - events_before:
                event_file.unlink()
            r = run_nodes(cmds, tmp_path, env)
        assert r.returncode == 0, (stage, [line for line in r.stderr.splitlines() if "Error" in line][-5:], r.stderr[-2000:])
        computed = re.findall(r"(\S+): TFA map computed", r.stdout + r.stderr)  # part B's maps: each case once, on one rank
        assert len(computed) == len(set(computed)), (stage, computed)
        if stage == "train.json" and bundle == "stroke_ctp_transformer_unet2d":
            assert computed, stage

        ranks = [read_jsonl(probe_dir / f"rank{k}.jsonl") for k in range(2)]
        drawn = [next(e for e in log if "indices" in e) for log in ranks]
        size = drawn[0]["dataset_size"]
        shards = [set(d["indices"]) for d in drawn]
        assert len(drawn[0]["indices"]) == len(drawn[1]["indices"]) == math.ceil(size / 2), stage  # even_divisible
        assert shards[0] | shards[1] == set(range(size)), stage
        assert len(shards[0] & shards[1]) == 2 * math.ceil(size / 2) - size, stage  # only the padding repeats
        # the global batch is the stage's (global_batch_size where a bundle's stages share one multi-GPU file)
        parser = ConfigParser()
        parser.read_config(config_files(bundle, stage))
        for k, v in cpu.items():
            parser[k] = v
        global_batch = parser.get_parsed_content("global_batch_size" if "global_batch_size" in parser else "batch_size")
        assert all(d["batch_size"] * 2 == global_batch for d in drawn), (stage, drawn[0]["batch_size"], global_batch)
        for d, log in zip(drawn, ranks):  # and the loader ran through that shard
            n, b = len(d["indices"]), d["batch_size"]
            assert next(e["iterations"] for e in log if "iterations" in e) == (n // b if d["drop_last"] else math.ceil(n / b)), stage
        saved = [[e["saved"] for e in log if "saved" in e] for log in ranks]
        assert saved[0] and not saved[1], (stage, saved)
        assert all(Path(p).parent.is_relative_to(root / "models") for p in saved[0]), saved[0]
        if bundle in SAME_VALIDATION_AS_ONE_RANK and stage == BUNDLES[bundle].stages[-1]:
            # the validation the two ranks shared out (each rank its cases, the metric gathered) equals one process's
            # on the same weights: the saved network of the epoch, validated again here alone
            one = ConfigWorkflow(
                config_file=config_files(bundle, stage),
                workflow_type="train",
                **{**keys, **folds, **cpu, "tracking": None, "tensorboard_dir": str(tmp_path / "one_rank")},
            )
            one.initialize()
            checkpoint = Path(one.parser.get_parsed_content("resume_path"))
            two_ranks = torch.load(checkpoint, weights_only=True)["best_metric"]
            network = one.parser.get_parsed_content("network")
            network.load_state_dict(torch.load(checkpoint.with_name("model.pt"), weights_only=True))
            evaluator = one.parser.get_parsed_content("validate#evaluator")
            evaluator.run()
            assert abs(evaluator.state.best_metric - two_ranks) < 1e-6, (evaluator.state.best_metric, two_ranks)
    for checkpoint in (root / "models").rglob("*.pt"):
        state = torch.load(checkpoint, weights_only=True)
        assert not any(k.startswith("module.") for k in state)  # saved without the DDP wrapper
    assert any((root / "models").rglob("model.pt"))
    # rank 0 alone logged: one MLflow run with the training loss and the validation metric, and one training and
    # one validation TensorBoard event file, per stage
    runs = mlflow_runs()
    assert len(runs) == len(BUNDLES[bundle].stages), (retried, [(run.info.run_id, run.info.status) for run in runs])
    assert all({"train_loss"} < set(run.data.metrics) and any(m.startswith("val_") for m in run.data.metrics) for run in runs)
    events = sorted((root / "eval" / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 2 * len(BUNDLES[bundle].stages), events


def test_a_training_run_shows_a_progress_bar_and_logs_to_tensorboard_and_mlflow(tmp_path, cohort):
    """One process, two epochs (every bundle's tracking under DDP: the multi-GPU test): tqdm's bar on stderr, the
    loss of every iteration and the validation metric of every epoch in MLflow's store and in TensorBoard's events."""
    from mlflow.tracking import MlflowClient
    from monai.utils import path_to_sqlite_uri
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    bundle = "stroke_mri_crossattention_unet2d"
    data, datalist, folds = small_training_setup(bundle, cohort, tmp_path)
    root = tmp_path / "bundle"
    keys = {"config_file": configs(bundle) / "train.json", "meta_file": configs(bundle) / "metadata.json", "bundle_root": root, "dataset_dir": data}
    keys |= {"datalist": datalist, "epochs": 2, "val_interval": 1, "tracking": "mlflow"}
    cmd = [sys.executable, *bundle_run(None, {**keys, **folds, **cpu_overrides(bundle)})]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Epoch [1/2]" in r.stderr and "Epoch [2/2]" in r.stderr  # ignite's ProgressBar
    client = MlflowClient(path_to_sqlite_uri(str(root / "eval" / "mlruns.db")))
    (run,) = client.search_runs([client.get_experiment_by_name(bundle).experiment_id])
    iterations = len(client.get_metric_history(run.info.run_id, "train_loss"))
    assert iterations >= 2 and len(client.get_metric_history(run.info.run_id, "val_mean_dice")) == 2
    scalars = {}
    for f in (root / "eval" / "tensorboard").glob("events.out.tfevents.*"):
        events = EventAccumulator(str(f))
        events.Reload()
        scalars.update({tag: len(events.Scalars(tag)) for tag in events.Tags()["scalars"]})
    assert scalars.get("train_loss") == iterations and scalars.get("val_mean_dice") == 2, scalars


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_runnable_config_warns_on_version_drift(bundle, caplog):
    """Each config with an ``initialize`` list checks the running MONAI/PyTorch against the metadata's pins."""
    from strokezoo.versions import warn_on_version_drift

    meta = json.loads((configs(bundle) / "metadata.json").read_text())
    for f in configs(bundle).glob("*.json"):
        init = json.loads(f.read_text()).get("initialize")
        if isinstance(init, list):
            assert "$strokezoo.versions.warn_on_version_drift(@_meta_)" in init, f.name
    with caplog.at_level("WARNING", logger="strokezoo.versions"):
        import monai

        running = {**meta, "monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0]}
        assert warn_on_version_drift(running) is None  # a local build tag (+cpu, +cu126) is the same release
        message = warn_on_version_drift({**meta, "monai_version": "0.9.0", "pytorch_version": "1.13.1"})
    assert "MONAI" in message and "tested: 0.9.0" in message and "PyTorch" in message and "tested: 1.13.1" in message
    assert [r.getMessage() for r in caplog.records] == [message]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_finetune_starts_from_the_trained_weights_with_a_lower_learning_rate(bundle, tmp_path, cohort):
    """``finetune.json`` over the bundle's (last) training config: the network starts from ``finetune_from``, the
    learning rate and the epochs are a tenth of the training config's, and the new checkpoint goes elsewhere."""
    data, datalist, folds = small_training_setup(bundle, cohort, tmp_path)
    stage = BUNDLES[bundle].stages[-1]
    finetune = json.loads((configs(bundle) / "finetune.json").read_text())
    cpu = {k: v for k, v in cpu_overrides(bundle).items() if k not in finetune}
    common = dict(workflow_type="train", bundle_root=str(tmp_path), dataset_dir=str(data), datalist=str(datalist), **folds, **{**cpu, "num_workers": 0})
    plain = ConfigWorkflow(config_file=str(configs(bundle) / stage), **common)
    wf = ConfigWorkflow(config_file=[str(configs(bundle) / stage), str(configs(bundle) / "finetune.json")], **common)
    start = Path(wf.parser.get_parsed_content("finetune_from"))
    start.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    trained = wf.parser.get_parsed_content("network_def")
    with torch.no_grad():  # in place: some networks (DynUNet) reach one module under two names
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    weights = trained.state_dict()
    torch.save(weights, start)
    if "transformer_path" in wf.parser:  # a later stage: the earlier stage's checkpoint must exist too
        untrained_checkpoint(bundle, Path(wf.parser.get_parsed_content("transformer_path")), BUNDLES[bundle].stages[0])
    wf.initialize()
    assert not wf.check_properties()
    net = wf.parser.get_parsed_content("network")
    assert all(torch.equal(v.cpu(), weights[k]) for k, v in net.state_dict().items())
    lr = wf.parser.get_parsed_content("optimizer").defaults["lr"]
    plain_lr = plain.parser.get_parsed_content("optimizer").defaults["lr"]
    assert lr == pytest.approx(plain_lr / 10) and wf.parser.get_parsed_content("epochs") * 10 == plain.parser.get_parsed_content("epochs")
    assert Path(wf.parser.get_parsed_content("ckpt_dir")) != start.parent


def reoriented(path: Path, how: str) -> None:
    """Rewrite one NIfTI in place (a test copy): ``lps`` reverses the first two voxel axes and their affine columns
    (the same image stored LPS instead of RAS), ``oblique`` turns the affine 20° about z (same voxels)."""
    import nibabel as nib
    import numpy as np

    img = nib.load(str(path), mmap=False)  # the file is rewritten below
    data, affine = img.get_fdata(dtype=np.float32).copy(), img.affine.copy()
    if how == "lps":
        flip = np.eye(4)
        for ax in (0, 1):
            flip[ax, ax], flip[ax, 3] = -1.0, data.shape[ax] - 1
        data, affine = data[::-1, ::-1].copy(), affine @ flip
    else:
        a = np.deg2rad(20.0)
        turn = np.array([[np.cos(a), -np.sin(a), 0, 0], [np.sin(a), np.cos(a), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        affine = turn @ affine
    header = img.header.copy()
    header.set_qform(affine, 1)
    header.set_sform(affine, 1)
    nib.save(nib.Nifti1Image(data, affine, header), str(path))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_predictions_stay_on_an_lps_or_oblique_input_grid(bundle, tmp_path, cohort):
    """Inference on an LPS-stored case and an obliquely oriented one: each mask on its input's own grid and affine."""
    import shutil

    import nibabel as nib
    import numpy as np

    source, _ = cohort(BUNDLES[bundle].layout)
    data = tmp_path / "data"
    shutil.copytree(source, data)
    entries = build_datalist(data, tmp_path / "first.json", layout=BUNDLES[bundle].layout, folds=3)["training"][:2]
    for entry, how in zip(entries, ("lps", "oblique")):
        for v in entry.values():
            if isinstance(v, str) and v.endswith((".nii", ".nii.gz")):
                reoriented(Path(v), how)
    datalist = tmp_path / "datalist.json"
    build_datalist(data, datalist, layout=BUNDLES[bundle].layout, folds=3)
    checkpoint = tmp_path / "models" / "model.pt"
    untrained_checkpoint(bundle, checkpoint, "inference.json")
    wf = ConfigWorkflow(
        config_file=config_files(bundle, "inference.json"),
        workflow_type="infer",
        bundle_root=str(tmp_path),
        dataset_dir=str(data),
        datalist=str(datalist),
        datalist_split="training",
        output_dir=str(tmp_path / "out"),
        ckpt_path=str(checkpoint),
        **{
            **cpu_overrides(bundle),
            "num_workers": 0,
            "dataset#data": [e for e in json.loads(datalist.read_text())["training"] if e["case_id"] in {x["case_id"] for x in entries}],
        },
    )
    wf.initialize()
    wf.run()
    for entry, how in zip(entries, ("lps", "oblique")):
        ref = nib.load(entry["label"])
        outs = sorted((tmp_path / "out").glob(f"{entry['case_id']}*.nii.gz"))
        assert outs, (how, entry["case_id"])
        for out in outs:
            img = nib.load(str(out))
            assert img.shape == ref.shape and np.allclose(img.affine, ref.affine, atol=1e-4), (how, out.name)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("bundle", BUNDLES)
def test_torchscript_export_matches_eager(bundle, tmp_path):
    """``ckpt_export`` (traced at the metadata's input shape; none of the networks scripts, see docs/bundles.md), loaded
    back: the same output as eager within 1e-5, at the traced shape and, except where noted, at another one."""
    from monai.bundle import ckpt_export

    meta = json.loads((configs(bundle) / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    shape = [1, image["num_channels"], *image["spatial_shape"]]
    checkpoint = untrained_checkpoint(bundle, tmp_path / "model.pt", "inference.json")
    cpu = {k: v for k, v in cpu_overrides(bundle).items() if k != "num_workers"}
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(checkpoint),
        meta_file=str(configs(bundle) / "metadata.json"),
        config_file=str(configs(bundle) / "inference.json"),
        use_trace=True,
        input_shape=shape,
        bundle_root=str(tmp_path),
        **cpu,
    )
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    wf = ConfigWorkflow(config_file=str(configs(bundle) / "inference.json"), workflow_type="infer", bundle_root=str(tmp_path), **cpu)
    eager = wf.parser.get_parsed_content("network_def").eval()
    eager.load_state_dict(torch.load(checkpoint, weights_only=True))
    shapes = [shape]
    if bundle != "stroke_ctp_transformer_unet2d":  # its TFA patch grid is computed in Python: traced for one slice size
        shapes.append([2, shape[1], *[2 * s for s in shape[2:4]], *shape[4:]])
    torch.manual_seed(0)
    for s in shapes:
        x = torch.rand(*s)
        with torch.no_grad():
            assert torch.allclose(scripted(x), eager(x), atol=1e-5), s


_NOT_TRAINING = {"inference.json", "evaluate.json", "metadata.json", "ensemble.json", "fast.json"}


def _combinations(bundle: str) -> tuple[list[list[str]], list[list[str]]]:
    """Every training combination (each stage alone, with each override file, and multi-GPU with fine-tuning) and
    every inference combination (alone, with each override that applies) of a bundle's configs."""
    files = sorted(p.name for p in configs(bundle).glob("*.json"))
    stages = list(BUNDLES[bundle].stages)
    # an override of the training engines (train#…, validate#…) has nothing to override in inference.json, and an
    # inference override (…_inference.json) nothing in a training stage
    training_only = {f for f in files if any(k.startswith(("train#", "validate#")) for k in json.loads((configs(bundle) / f).read_text()))}
    overrides = [f for f in files if f not in _NOT_TRAINING and f not in stages and not f.endswith("_inference.json")]
    train = [[s] for s in stages] + [[s, o] for s in stages for o in overrides] + [[s, "multi_gpu_train.json", "finetune.json"] for s in stages]
    infer_overrides = [
        f
        for f in files
        if f not in {"inference.json", "metadata.json", "ensemble.json", "multi_gpu_train.json", "finetune.json", "sequential.json", *stages, *training_only}
    ]
    infer = (
        [["inference.json"]]
        + [["inference.json", o] for o in infer_overrides]
        + [["inference.json", "evaluate.json", o] for o in infer_overrides if o != "evaluate.json"]
    )
    return train, infer


@pytest.mark.parametrize("bundle", BUNDLES)
def test_run_training_and_run_evaluating_exist_in_every_combination(bundle):
    """``python -m monai.bundle run training`` / ``run evaluating`` (MONAI's and the model zoo's run ids) work with every
    stage, variant, fine-tuning and multi-GPU combination: ``ConfigWorkflow.run`` refuses an id missing from the merged
    config, and the id is the combination's own ``run`` (so an override of ``run``, e.g. multi-GPU's, is what it runs).
    The training tests run ``run training`` for real (``tests/conftest.py::train_as_a_user``)."""
    from monai.bundle import ConfigWorkflow

    train, infer = _combinations(bundle)
    assert len(train) >= 3 and len(infer) >= 2
    for combo, run_id, kind in [*((c, "training", "train") for c in train), *((c, "evaluating", "inference") for c in infer)]:
        wf = ConfigWorkflow(config_file=[str(configs(bundle) / f) for f in combo], workflow_type=kind, run_id=run_id)
        assert run_id in wf.parser and wf.parser.get(run_id) == "@run" and wf.parser.get("run"), combo


_BASE = ("train.json", "train_transformer.json", "inference.json")


def _unknown_override_keys(bundle: str, override: dict) -> list[str]:
    """Keys of ``override`` that name nothing in the bundle's base configs (training stages and inference.json) and
    that no config of the bundle references as ``@key``: MONAI adds such a key silently, so a misspelt override
    would do nothing. ``_desc_`` notes and ``+`` merge keys (checked without the ``+``) are allowed, and so is a new
    argument of an existing component (``train#trainer#epoch_length``: a misspelt one fails loudly when built)."""

    base: dict = {}
    for name in _BASE:
        if (configs(bundle) / name).is_file():
            base.update(json.loads((configs(bundle) / name).read_text()))
    parser = ConfigParser(base)
    used = " ".join(p.read_text() for p in configs(bundle).glob("*.json"))
    unknown = []
    for key in override:
        path = key.lstrip("+")
        parent = path.rpartition("#")[0]
        if key.startswith("_") or path in parser or f"@{path}" in used:
            continue
        if parent and parent in parser and isinstance(parser[parent], dict) and "_target_" in parser[parent]:
            continue
        unknown.append(key)
    return unknown


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_key_of_every_override_file_exists_in_the_config_it_overrides(bundle):
    """smoke.json, the variants, apis/spes/two_rater, multi_gpu_train, finetune, sequential, fast: each key is one the
    base configs have (or a knob the file introduces and a config uses, e.g. finetune_from)."""
    overrides = [p for p in sorted(configs(bundle).glob("*.json")) if p.name not in {*_BASE, "metadata.json", "evaluate.json", "ensemble.json"}]
    assert any(p.name == "smoke.json" for p in overrides) and len(overrides) >= 3
    for p in overrides:
        assert _unknown_override_keys(bundle, json.loads(p.read_text())) == [], p
    assert _unknown_override_keys(bundle, {"learnig_rate": 1e-3, "image_sise": 64, "train#trainr#max_epochs": 2}) == [
        "learnig_rate",
        "image_sise",
        "train#trainr#max_epochs",
    ]  # misspelt keys are caught
    assert set(cpu_overrides(bundle)) <= set(json.loads((configs(bundle) / "smoke.json").read_text()))


def test_every_bundle_json_is_as_the_model_zoo_hooks_leave_it():
    """4-space indent, ASCII escapes (non-ASCII author names too), a final newline: what model-zoo's pre-commit writes."""
    files = sorted((REPO / "bundles").glob("*/configs/*.json"))
    assert len(files) >= 6 * 6
    for f in files:
        text = f.read_text()
        assert text.isascii() and text == json.dumps(json.loads(text), indent=4) + "\n", f


@pytest.mark.parametrize("bundle", BUNDLES)
def test_no_network_scripts(bundle):
    """Each bundle README says that ``torch.jit.script`` cannot compile its network and names tracing instead; if one
    ever scripts, the README (and the model zoo's script check) should say so."""
    wf = ConfigWorkflow(config_file=str(configs(bundle) / "inference.json"), workflow_type="infer", **cpu_overrides(bundle))
    net = wf.parser.get_parsed_content("network_def")
    with pytest.raises(Exception):  # noqa: B017 - RuntimeError or NotSupportedError, by network
        torch.jit.script(net)
    readme = (REPO / "bundles" / bundle / "docs" / "README.md").read_text()
    assert "`torch.jit.script` cannot compile this network" in readme and "use_trace=True" in readme


#: the key of each bundle's train.json that sets its learning-rate schedule's horizon, and that horizon for a run of n epochs
SCHEDULE_HORIZON = {
    "stroke_ct_boundary_attention_unet2d": ("lr_scheduler#t_total", lambda n: n),
    "stroke_ctp_pseudodwi_slnet2d": ("lr_decay_epoch", lambda n: int(round(n * 0.6))),
    "stroke_ctp_transformer_unet2d": ("lr_scheduler#total_iters", lambda n: n),
    "stroke_dwi_crossdomain_unet2d": ("lr_scheduler#t_total", lambda n: n),
    "stroke_mri_crossattention_unet2d": ("lr_scheduler#t_total", lambda n: n),
}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_the_learning_rate_schedule_spans_the_epochs_the_trainer_runs(bundle):
    """MONAI Label sets ``train#trainer#max_epochs`` alone: the schedule must span that run, not the paper's ``epochs``."""
    parser = ConfigParser()
    parser.read_config(str(configs(bundle) / "train.json"))
    if bundle not in SCHEDULE_HORIZON:
        assert "lr_scheduler" not in parser, f"{bundle}: a schedule without a horizon in SCHEDULE_HORIZON"
        return
    key, horizon = SCHEDULE_HORIZON[bundle]
    assert parser.get_parsed_content(key) == horizon(parser.get_parsed_content("epochs"))
    parser["train#trainer#max_epochs"] = 7
    assert parser.get_parsed_content(key) == horizon(7)
