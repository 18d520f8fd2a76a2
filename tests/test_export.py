"""``strokezoo export`` and the weights path: every bundle exports to one zip with the library vendored and its
weights hashed; an exported bundle runs its inference where strokezoo is not installed; ``large_files.yml``,
``monai.bundle.download --url`` and ``monai.bundle.load`` work against a local HTTP server, and a corrupted file
is refused by its hash."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import site
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from strokezoo.bundle_info import BUNDLES, bundles_dir, cpu_overrides, inference_keys
from strokezoo.export import NOT_VENDORED, export_bundle, sha256

from conftest import REPO, bundle_run, strokezoo_cli, tree_digest, untrained_checkpoint

#: An interpreter that sees the packages of this environment (monai, torch, itk, nibabel, ignite, fire, ...) but not
#: strokezoo: without ``site``, the editable install's .pth file is not read.
BARE = {**os.environ, "PYTHONPATH": site.getsitepackages()[0], "OMP_NUM_THREADS": "1"}


def bare_python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=BARE, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A static HTTP server on 127.0.0.1 over a fresh folder: (folder, base URL)."""
    root = tmp_path_factory.mktemp("served")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_the_check_environment_has_no_strokezoo(tmp_path):
    assert bare_python("-c", "import monai, torch, itk, nibabel, ignite, fire", cwd=tmp_path).returncode == 0
    r = bare_python("-c", "import strokezoo", cwd=tmp_path)
    assert r.returncode != 0 and "No module named 'strokezoo'" in r.stderr


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_bundle_exports_with_its_library_weights_and_hashes(bundle, tmp_path):
    weights = untrained_checkpoint(bundle, tmp_path / "w" / "model.pt", BUNDLES[bundle].stages[-1])
    source = bundles_dir() / bundle
    digest = tree_digest(source)
    path = export_bundle(bundle, tmp_path / "dist", weights=weights, url="https://example.org/model.pt")
    assert tree_digest(source) == digest  # the bundle folder is only read
    version = json.loads((source / "configs" / "metadata.json").read_text())["version"]
    assert path.name == f"{bundle}_v{version}.zip" and not [p for p in path.parent.iterdir() if p != path]
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert {n.split("/")[0] for n in names} == {bundle}
        assert f"{bundle}/scripts/__init__.py" in names and f"{bundle}/scripts/strokezoo/networks/__init__.py" in names
        vendored = {n.split("/")[3] for n in names if n.startswith(f"{bundle}/scripts/strokezoo/")}
        assert {"data", "networks", "transforms", "inferers", "metrics", "errors.py"} <= vendored and not vendored & NOT_VENDORED
        assert f"{bundle}/configs/inference.json" in names and not any("/datalist.json" in n or "__pycache__" in n for n in names)
        meta = json.loads(z.read(f"{bundle}/configs/metadata.json"))
        assert "strokezoo" not in meta["required_packages_version"] and "nibabel" in meta["required_packages_version"]
        for n in names:
            if n.endswith(".json") and "/configs/" in n:
                text = z.read(n).decode()
                assert text.isascii() and text == json.dumps(json.loads(text), indent=4) + "\n", n
        imports = json.loads(z.read(f"{bundle}/configs/inference.json"))["imports"]
        assert imports.index("$import scripts") == imports.index("$import strokezoo") - 1
        assert z.read(f"{bundle}/models/model.pt") == weights.read_bytes()
        large = z.read(f"{bundle}/large_files.yml").decode()
    assert f'hash_val: "{sha256(weights)}"' in large and 'url: "https://example.org/model.pt"' in large
    assert (source / "large_files.yml").is_file()  # every bundle in the repository has one too


def test_export_refuses_a_checkpoint_that_is_not_a_state_dict(tmp_path):
    bad = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, bad)
    with pytest.raises(ValueError, match="model.pt: not a checkpoint that loads with weights_only=True"):
        export_bundle("stroke_mri_crossattention_unet2d", tmp_path / "dist", weights=bad)
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


BUNDLE = "stroke_mri_crossattention_unet2d"


def test_exported_bundle_runs_inference_without_strokezoo(cohort, tmp_path):
    weights = untrained_checkpoint(BUNDLE, tmp_path / "w" / "model.pt")
    with zipfile.ZipFile(export_bundle(BUNDLE, tmp_path / "dist", weights=weights)) as z:
        z.extractall(tmp_path / "unpacked")
    folder = tmp_path / "unpacked" / BUNDLE
    data = tmp_path / "data"
    shutil.copytree(cohort(BUNDLES[BUNDLE].layout)[0], data)
    digest = tree_digest(data)
    keys = {"config_file": "configs/inference.json", "dataset_dir": data, "datalist": tmp_path / "datalist.json", "datalist_split": "training"}
    cmd = bundle_run(None, {**keys, "output_dir": tmp_path / "out", **cpu_overrides(BUNDLE), "num_workers": 0})
    r = bare_python(*cmd, cwd=folder)
    assert r.returncode == 0, r.stderr[-3000:]
    assert tree_digest(data) == digest
    entries = json.loads((tmp_path / "datalist.json").read_text())["training"]
    for e in entries:
        mask = nib.load(tmp_path / "out" / f"{e['case_id']}.nii.gz")
        assert mask.shape == nib.load(e["label"]).shape
    # strokezoo segment, on the same files and weights, writes the exported zip's mask voxel for voxel
    e = entries[0]
    modalities = [a for k in inference_keys(BUNDLE) for a in (f"--{k}", e[k])]
    r = strokezoo_cli("segment", "--bundle", BUNDLE, "--weights", weights, "--config", "smoke.json", *modalities, "--out", tmp_path / "seg")
    assert r.returncode == 0, r.stderr[-3000:]
    (mine,) = (tmp_path / "seg").glob(f"*/{BUNDLE}_mask.nii.gz")
    zipped, mine = nib.load(tmp_path / "out" / f"{e['case_id']}.nii.gz"), nib.load(mine)
    assert np.array_equal(np.asarray(mine.dataobj), np.asarray(zipped.dataobj)) and np.array_equal(mine.affine, zipped.affine)


def test_an_exported_zip_passes_the_model_zoo_premerge_checks(tmp_path):
    """``integration/model_zoo_premerge.py`` (the zoo's ci/verify_bundle.py: min mode, and full mode's metadata,
    shapes and export) on an exported zip with weights of the released network size, where strokezoo is not installed."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundles_dir() / BUNDLE / "configs" / "inference.json"))
    torch.manual_seed(0)
    weights = tmp_path / "w" / "model.pt"
    weights.parent.mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), weights)
    with zipfile.ZipFile(export_bundle(BUNDLE, tmp_path / "dist", weights=weights)) as z:
        z.extractall(tmp_path / "unpacked")
    folder = tmp_path / "unpacked" / BUNDLE
    r = bare_python(str(REPO / "integration" / "model_zoo_premerge.py"), str(folder), "--mode", "full", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [line for line in r.stdout.splitlines() if line.startswith("passed: ")] == [
        "passed: necessary and preferred files",
        "passed: version in changelog",
        "passed: required_packages_version installable",
        "passed: metadata against the schema",
        "passed: network input and output shapes",
        "passed: TorchScript export by tracing, and reload",
    ]
    meta = folder / "configs" / "metadata.json"
    meta.write_text(meta.read_text().replace('"nibabel": ', '"strokezoo": '))  # a package pip cannot install is refused
    r = bare_python(str(REPO / "integration" / "model_zoo_premerge.py"), str(folder), "--mode", "min", cwd=tmp_path)
    assert r.returncode != 0 and "lists ['strokezoo'], which pip did not install here from a package index" in r.stderr


def test_weights_download_by_hash_and_bundle_download_and_load(server, tmp_path):
    served, base = server
    weights = untrained_checkpoint(BUNDLE, served / "model.pt")
    # large_files.yml -> python -m monai.bundle download_large_files
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "large_files.yml").write_text(
        f'large_files:\n  - path: "models/model.pt"\n    url: "{base}/model.pt"\n    hash_val: "{sha256(weights)}"\n    hash_type: "sha256"\n'
    )
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "download_large_files", "--bundle_path", str(bundle)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (bundle / "models" / "model.pt").read_bytes() == weights.read_bytes()
    # a corrupted file on the server is refused by its hash
    corrupted = tmp_path / "corrupted"
    corrupted.mkdir()
    (corrupted / "large_files.yml").write_text((bundle / "large_files.yml").read_text().replace('/model.pt"', '/broken.pt"'))
    (served / "broken.pt").write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    # the same functions the command line runs (fire calls them), in this process: a second interpreter's start
    # would test nothing more
    from monai.bundle import download, download_large_files

    with pytest.raises(Exception, match="(?i)hash"):
        download_large_files(bundle_path=str(corrupted))
    assert not (corrupted / "models" / "model.pt").exists()

    # the exported zip -> monai.bundle.download --url -> monai.bundle.load returns the network with its weights
    export_bundle(BUNDLE, served, weights=weights)
    zip_name = next(p.name for p in served.glob("*.zip"))
    downloads = tmp_path / "downloads"
    download(name=BUNDLE, bundle_dir=str(downloads), url=f"{base}/{zip_name}")
    override = {"features": cpu_overrides(BUNDLE)["features"]}
    script = (
        f"import json, torch; from monai.bundle import load\n"
        f"net = load({BUNDLE!r}, bundle_dir={str(downloads)!r}, workflow_type='inference', device='cpu', net_override={override!r})\n"
        f"ref = torch.load({str(weights)!r}, weights_only=True)\n"
        f"print(all(torch.equal(v, ref[k]) for k, v in net.state_dict().items()), len(ref) == len(net.state_dict()))"
    )
    r = bare_python("-c", script, cwd=downloads / BUNDLE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-2:] == ["True", "True"]


def test_an_exported_train_json_reads_its_own_inference_json_without_strokezoo(tmp_path):
    """An exported bundle's train.json takes the model's settings from its own inference.json through the vendored
    library, where strokezoo is not installed: from the bundle's folder, and from another one with the bundle on the
    path (as MONAI Label runs it) and ``bundle_root`` an output folder. An edit to the zip's inference.json is what
    train.json reads."""
    with zipfile.ZipFile(export_bundle(BUNDLE, tmp_path / "dist")) as z:
        z.extractall(tmp_path / "unpacked")
    folder = tmp_path / "unpacked" / BUNDLE
    edited = json.loads((folder / "configs" / "inference.json").read_text())
    edited["image_size"] = 96
    (folder / "configs" / "inference.json").write_text(json.dumps(edited, indent=4) + "\n")
    probe = (
        "import sys; from monai.bundle import ConfigParser; p = ConfigParser(); p.read_config(sys.argv[1]); "
        "p['bundle_root'] = sys.argv[2]; print('IMAGE_SIZE', p.get_parsed_content('image_size'), p.get_parsed_content('features'))"
    )
    (tmp_path / "elsewhere").mkdir()
    for cwd, root in ((folder, "."), (tmp_path / "elsewhere", str(tmp_path / "outputs"))):
        env = {**BARE, "PYTHONPATH": os.pathsep.join([BARE["PYTHONPATH"], str(folder)])}
        r = subprocess.run([sys.executable, "-S", "-c", probe, str(folder / "configs" / "train.json"), root], cwd=cwd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"IMAGE_SIZE 96 {edited['features']}" in r.stdout, r.stdout[-500:]
