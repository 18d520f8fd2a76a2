"""MONAI Label's loop with every exported bundle (``make test-monailabel``): annotate, ``/train``, ``/infer``.

Not part of the default suite: MONAI Label 0.8.5 brings its own large dependency set, so it lives in its own
virtual environment (``.venv-monailabel``, which has no strokezoo: the bundles run on their vendored copy).
This test runs in the project's environment. Per bundle, as a user would:

* a synthetic cohort, each case written as the stacked study MONAI Label hands a bundle (``strokezoo stack
  --training``: the pseudo-DWI bundle's stacks hold the DWI its training reads);
* the bundle exported (CPU-sized configs, untrained weights) into the ``monaibundle`` sample app's ``model/``;
* ``monailabel start_server`` on 127.0.0.1 with that bundle and its studies;
* every study annotated: its label ``PUT`` to ``/datastore/label`` (tag ``final``);
* ``/infer``, with the untrained weights, on the training study with the largest lesion;
* ``POST /train/<bundle>?run_sync=true`` for the bundle's smoke-run epochs (``max_epochs``);
* ``/infer`` again: the answer must come from the weights ``/train`` wrote (``models/model.pt`` changed), differ
  from the untrained mask and score a higher Dice against the study's label.

Each answer must be a binary mask on the study's grid.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from strokezoo.bundle_info import BUNDLES, cpu_overrides, training_keys
from strokezoo.data.layouts import discover_cases
from strokezoo.data.stacked import stack_case
from strokezoo.export import export_bundle
from strokezoo.synth import synthesize_cohort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import COHORT12_SCALE  # noqa: E402 - the suite's smoke-run cohort, which MONAI Label trains on here

MONAILABEL = Path(os.environ.get("MONAILABEL", REPO / ".venv-monailabel" / "bin" / "monailabel")).absolute()
START_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 900
STUDIES = 12  # the smoke run's cohort size; MONAI Label's default val_split (0.2) keeps the last two for validation


def cpu_sized(configs: Path, bundle: str, name: str = "inference.json") -> ConfigParser:
    """The bundle's config ``name`` in ``configs`` with its CPU sizes. Not its smoke run's other overrides (the
    cross-domain bundle's two-rater targets): a MONAI Label datastore holds one label per study."""
    parser = ConfigParser()
    parser.read_config(str(configs / name))
    for key, value in cpu_overrides(bundle).items():
        parser[key] = value
    return parser


def untrained_weights(bundle: str, path: Path) -> Path:
    """Freshly initialised (seed 0) weights of the bundle's CPU-sized network, as a state dict."""
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cpu_sized(REPO / "bundles" / bundle / "configs", bundle).get_parsed_content("network_def").state_dict(), path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, data: bytes | None = None, method: str = "GET", headers: dict | None = None, log: Path | None = None) -> bytes:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as r:  # noqa: S310 - 127.0.0.1 only
            return r.read()
    except urllib.error.HTTPError as e:
        tail = log.read_text()[-6000:] if log is not None else ""
        raise AssertionError(f"{method} {url}: HTTP {e.code} {e.read()[:2000]!r}\n{tail}") from None


def multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, dict]:
    """A ``multipart/form-data`` body (what Slicer's MONAI Label module sends to ``/datastore/label``)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def dice(mask: np.ndarray, label: np.ndarray) -> float:
    a, b = mask > 0, label > 0
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float((a & b).sum()) / total if total else 1.0


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    """The ``monaibundle`` sample app, copied out of the MONAI Label install."""
    assert MONAILABEL.exists(), f"{MONAILABEL}: no MONAI Label; run `make test-monailabel` (it installs it)"
    sample_app = MONAILABEL.parents[1] / "monailabel" / "sample-apps" / "monaibundle"
    assert sample_app.is_dir(), f"{sample_app}: the monaibundle sample app is missing from the MONAI Label install"
    app = tmp_path_factory.mktemp("apps") / "monaibundle"
    shutil.copytree(sample_app, app)
    return app


def install_bundle(bundle: str, app: Path, tmp_path: Path) -> Path:
    """Export ``bundle`` with untrained weights into the app's ``model/``; CPU sizes into its train and inference
    configs (the files MONAI Label reads). Returns the bundle's folder there."""
    weights = untrained_weights(bundle, tmp_path / "weights" / "model.pt")
    with zipfile.ZipFile(export_bundle(bundle, tmp_path / "dist", weights=weights)) as z:
        z.extractall(app / "model")
    configs = app / "model" / bundle / "configs"
    for name in ("inference.json", "train.json"):
        parser = cpu_sized(configs, bundle, name)
        parser.export_config_file(parser.get(), str(configs / name), indent=4)
    return app / "model" / bundle


def annotated_studies(bundle: str, tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """The suite's smoke-run cohort (``STUDIES`` synthetic cases, as ``cohort12`` makes them), stacked for training:
    image id -> (stacked study, label file)."""
    spec = BUNDLES[bundle]
    data = tmp_path / "data"
    scale = COHORT12_SCALE.get(bundle, 0.4)
    synthesize_cohort(spec.layout, data, cases=STUDIES, seed=3, scale=scale, difficulty=0.0, workers=1, test_fraction=0.0)
    keys = training_keys(bundle)
    studies = {}
    for case in discover_cases(data, spec.layout):
        if all(k in case.images for k in keys) and "label" in case.labels:
            study = stack_case(case.images, keys, tmp_path / "studies" / f"{case.case_id}.nii.gz")
            studies[study.name[: -len(".nii.gz")]] = (study, Path(case.labels["label"]))
    assert len(studies) >= 3, (bundle, sorted(studies))
    return dict(sorted(studies.items()))


@contextmanager
def server(app: Path, studies: Path, bundle: str, log_path: Path):
    port = free_port()
    log = log_path.open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(MONAILABEL.parent), env.get("PATH", "")])  # the script runs `python -m monailabel.main`
    conf = {"models": bundle, "zoo_source": "github", "sam2": "false"}
    args = [str(MONAILABEL), "start_server", "--app", str(app), "--studies", str(studies), "--host", "127.0.0.1", "--port", str(port)]
    for k, v in conf.items():
        args += ["--conf", k, v]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**env, "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}, cwd=log_path.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, info = time.monotonic() + START_TIMEOUT_S, None
        while info is None:
            assert proc.poll() is None, "monailabel exited:\n" + log_path.read_text()[-6000:]
            assert time.monotonic() < deadline, "monailabel did not answer /info/ in time:\n" + log_path.read_text()[-6000:]
            try:
                with urllib.request.urlopen(f"{base}/info/", timeout=10) as r:  # noqa: S310 - 127.0.0.1 only
                    info = json.loads(r.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(2)
        yield base, info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def infer(base: str, bundle: str, image_id: str, out: Path, log: Path) -> nib.Nifti1Image:
    url = f"{base}/infer/{bundle}?" + urllib.parse.urlencode({"image": image_id, "output": "image"})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(request(url, data=urllib.parse.urlencode({"params": "{}"}).encode(), method="POST", log=log))
    return nib.load(str(out))


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_monai_label_annotate_train_infer_loop(bundle, app, tmp_path):
    folder = install_bundle(bundle, app, tmp_path)
    studies = annotated_studies(bundle, tmp_path)
    log = tmp_path / "server.log"
    with server(app, tmp_path / "studies", bundle, log) as (base, info):
        assert bundle in info["models"] and bundle in info["trainers"], (sorted(info["models"]), sorted(info["trainers"]))
        for image_id, (_, label_file) in studies.items():
            body, headers = multipart({"params": "{}"}, {"label": label_file})
            url = f"{base}/datastore/label?" + urllib.parse.urlencode({"image": image_id, "tag": "final"})
            request(url, data=body, method="PUT", headers=headers, log=log)
        objects = json.loads(request(f"{base}/datastore/?output=all", log=log))["objects"]
        assert sum(1 for o in objects.values() if "final" in o.get("labels", {})) == len(studies), objects
        # MONAI Label trains on the first 80 % of its datalist (the datastore's order) and validates on the rest:
        # the study inferred is the one with the largest lesion in the first half, a training study
        first_half = list(objects)[: len(objects) // 2]
        labels = {i: np.asanyarray(nib.load(str(studies[i][1])).dataobj) for i in first_half}
        chosen = max(first_half, key=lambda i: int((labels[i] > 0).sum()))
        study = nib.load(str(studies[chosen][0]))

        masks = {}
        for when in ("untrained", "trained"):
            if when == "trained":
                before = (folder / "models" / "model.pt").stat().st_mtime_ns
                params = {"max_epochs": BUNDLES[bundle].epochs, "multi_gpu": False, "val_split": 0.2}
                request(
                    f"{base}/train/{bundle}?run_sync=true",
                    data=json.dumps(params).encode(),
                    method="POST",
                    headers={"Content-Type": "application/json"},
                    log=log,
                )
                assert (folder / "models" / "model.pt").stat().st_mtime_ns != before, "/train did not write models/model.pt:\n" + log.read_text()[-6000:]
            mask = infer(base, bundle, chosen, tmp_path / "answers" / f"{when}.nii.gz", log)
            assert mask.shape == study.shape[:3], (when, mask.shape, study.shape)
            assert np.allclose(mask.affine, study.affine, atol=1e-3), (when, mask.affine, study.affine)
            masks[when] = np.asanyarray(mask.dataobj)
            assert set(np.unique(masks[when]).tolist()) <= {0, 1}, (when, np.unique(masks[when])[:10])
    scores = {when: round(dice(m, labels[chosen]), 4) for when, m in masks.items()}
    print(f"\n{bundle}: Dice against the label of {chosen} ({int((labels[chosen] > 0).sum())} voxels): {scores}")
    assert not np.array_equal(masks["untrained"], masks["trained"]), scores
    assert scores["trained"] > scores["untrained"], scores
