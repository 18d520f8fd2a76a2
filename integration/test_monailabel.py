"""Every exported bundle served by MONAI Label's ``monaibundle`` sample app (``make test-monailabel``).

Not part of the default suite: MONAI Label 0.8.5 brings its own large dependency set, so it lives in its own
virtual environment (``.venv-monailabel``, which has no strokezoo: the bundles run on their vendored copy).
This test runs in the project's environment: it synthesises one case per bundle, writes it as the stacked
study MONAI Label hands a bundle (``strokezoo stack``), exports each bundle (CPU-sized network, untrained
weights) into the app's ``model/`` folder, starts ``monailabel start_server`` on 127.0.0.1, and asks
``/info/`` and ``/infer/<bundle>?image=<id>`` of it. Each answer must be a mask on the study's grid.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser

from strokezoo.bundle_info import BUNDLES, cpu_overrides, inference_keys
from strokezoo.data.layouts import discover_cases
from strokezoo.data.stacked import stack_case
from strokezoo.export import export_bundle
from strokezoo.synth import synthesize_cohort

REPO = Path(__file__).resolve().parents[1]
MONAILABEL = Path(os.environ.get("MONAILABEL", REPO / ".venv-monailabel" / "bin" / "monailabel")).absolute()
START_TIMEOUT_S = 600
INFER_TIMEOUT_S = 600


def cpu_sized(configs: Path, bundle: str) -> ConfigParser:
    """The bundle's ``inference.json`` in ``configs`` with its demo overrides and CPU sizes."""
    parser = ConfigParser()
    parser.read_config([str(configs / "inference.json"), *(str(configs / f) for f in BUNDLES[bundle].overrides)])
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


def get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return r.read()


def test_monaibundle_app_serves_every_bundle_on_stacked_studies(tmp_path):
    assert MONAILABEL.exists(), f"{MONAILABEL}: no MONAI Label; run `make test-monailabel` (it installs it)"
    sample_app = MONAILABEL.parents[1] / "monailabel" / "sample-apps" / "monaibundle"
    assert sample_app.is_dir(), f"{sample_app}: the monaibundle sample app is missing from the MONAI Label install"
    app, studies = tmp_path / "app", tmp_path / "studies"
    shutil.copytree(sample_app, app)
    expected = {}
    for bundle, spec in BUNDLES.items():
        data = tmp_path / "data" / bundle
        synthesize_cohort(spec.layout, data, cases=2, seed=7, scale=0.3, workers=1)
        case = next(c for c in discover_cases(data, spec.layout) if all(k in c.images for k in inference_keys(bundle)))
        study = stack_case(case.images, inference_keys(bundle), studies / f"{bundle}-{case.case_id}.nii.gz")
        expected[bundle] = (study.name[: -len(".nii.gz")], nib.load(str(study)))
        weights = untrained_weights(bundle, tmp_path / "weights" / bundle / "model.pt")
        with zipfile.ZipFile(export_bundle(bundle, tmp_path / "dist", weights=weights)) as z:
            z.extractall(app / "model")
        configs = app / "model" / bundle / "configs"  # MONAI Label reads this one file: the CPU sizes go into it
        parser = cpu_sized(configs, bundle)
        parser.export_config_file(parser.get(), str(configs / "inference.json"), indent=4)

    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(MONAILABEL.parent), env.get("PATH", "")])  # the script runs `python -m monailabel.main`
    server = subprocess.Popen(
        [
            str(MONAILABEL),
            "start_server",
            "--app",
            str(app),
            "--studies",
            str(studies),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--conf",
            "models",
            ",".join(BUNDLES),
            "--conf",
            "zoo_source",
            "github",
            "--conf",
            "sam2",
            "false",
            "--conf",
            "skip_trainers",
            "true",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**env, "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"},
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        info = None
        while info is None:
            assert server.poll() is None, "monailabel exited:\n" + (tmp_path / "server.log").read_text()[-5000:]
            assert time.monotonic() < deadline, "monailabel did not answer /info/ in time:\n" + (tmp_path / "server.log").read_text()[-5000:]
            try:
                info = json.loads(get(f"{base}/info/", timeout=10))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(2)
        assert set(BUNDLES) <= set(info["models"]), (sorted(info["models"]), (tmp_path / "server.log").read_text()[-5000:])
        for bundle, (image_id, study) in expected.items():
            url = f"{base}/infer/{bundle}?" + urllib.parse.urlencode({"image": image_id, "output": "image"})
            request = urllib.request.Request(url, data=urllib.parse.urlencode({"params": "{}"}).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=INFER_TIMEOUT_S) as r:  # noqa: S310 - 127.0.0.1 only
                    body = r.read()
            except urllib.error.HTTPError as e:
                raise AssertionError(f"{bundle}: HTTP {e.code} {e.read()[:2000]!r}\n" + (tmp_path / "server.log").read_text()[-5000:]) from None
            answer = tmp_path / "answers" / f"{bundle}.nii.gz"
            answer.parent.mkdir(exist_ok=True)
            answer.write_bytes(body)
            mask = nib.load(str(answer))
            values = np.unique(np.asanyarray(mask.dataobj))
            assert mask.shape == study.shape[:3], (bundle, mask.shape, study.shape)
            assert set(values.tolist()) <= {0, 1}, (bundle, values[:10])
            assert np.allclose(mask.affine, study.affine, atol=1e-3), (bundle, mask.affine, study.affine)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
