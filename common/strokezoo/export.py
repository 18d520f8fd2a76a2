"""``strokezoo export``: a bundle as one standalone zip that runs without strokezoo installed.

``<name>_v<version>.zip`` holds one top-level folder, the bundle, with:

* its configs, docs and licence; every config that imports strokezoo imports ``scripts`` first;
* ``scripts/strokezoo/``: the shared library, vendored, and ``scripts/__init__.py``, which puts ``scripts/`` on
  ``sys.path`` so that ``import strokezoo`` finds that copy (MONAI Label imports only ``scripts`` from a bundle;
  ``python -m monai.bundle run`` from the bundle folder finds ``scripts`` in the working directory);
* ``models/model.pt`` when trained weights are given or present (a plain state dict, checked with
  ``weights_only=True``);
* ``large_files.yml``: path, url, sha256 of every large file, for ``python -m monai.bundle download_large_files``.

The zip is written under a temporary name and renamed, so a failed export leaves nothing half-written; the bundle
folder itself is only read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

__all__ = ["export_bundle", "large_files_entry", "sha256", "NOT_VENDORED"]

#: parts of the library that no bundle imports at run time (the cohort generator and the tools around the bundles)
NOT_VENDORED = frozenset({"synth", "demo.py", "compare", "segment", "cli.py", "export.py", "visualize.py", "baselines.py", "bundle_info.py", "bundle_run.py"})

#: Bundle content never exported: run-time outputs of training and inference.
_SKIP = {"models", "eval", "cache", "datalist.json", "__pycache__", "large_files.yml"}

_SCRIPTS_INIT = '''"""Vendored strokezoo, exported with the bundle: importing ``scripts`` makes ``import strokezoo`` use this copy."""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)
'''


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def large_files_entry(path: str, file: str | os.PathLike, url: str) -> str:
    """One ``large_files.yml`` item (YAML) for ``file`` stored at bundle-relative ``path``."""
    return f'  - path: "{path}"\n    url: "{url}"\n    hash_val: "{sha256(file)}"\n    hash_type: "sha256"\n'


def _check_state_dict(weights: Path) -> None:
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is refused with its path
        raise ValueError(f"{weights}: not a checkpoint that loads with weights_only=True ({e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{weights}: not a plain state dict (name -> tensor); export the network's state_dict()")


def _vendored_config(text: str) -> str:
    """A config as the exported bundle holds it: ``scripts`` imported before ``strokezoo``; in metadata.json no
    ``strokezoo`` among the required packages (it is vendored, and PyPI has no such package); JSON as the model zoo's
    pre-commit hooks leave it (4-space indent, ASCII escapes, final newline)."""
    config = json.loads(text)
    imports = config.get("imports")
    if isinstance(imports, list) and "$import strokezoo" in imports:
        imports.insert(imports.index("$import strokezoo"), "$import scripts")
    if isinstance(config.get("required_packages_version"), dict):
        config["required_packages_version"].pop("strokezoo", None)
    return json.dumps(config, indent=4) + "\n"


def export_bundle(bundle: str | os.PathLike, out: str | os.PathLike = "dist", weights: str | os.PathLike | None = None, url: str = "") -> Path:
    """Write ``<out>/<name>_v<version>.zip`` of ``bundle`` (a folder, or a bundle name under the repository's
    ``bundles/``); returns its path.

    Args:
        weights: checkpoint to ship as ``models/model.pt`` (default: the bundle's own ``models/model.pt`` if any).
        url: where ``models/model.pt`` will be published (release asset or Hugging Face file URL), written to
            ``large_files.yml``; empty until the weights are published (docs/weights.md).
    """
    import strokezoo

    from .bundle_info import bundle_folder

    root = bundle_folder(bundle)
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    name, version = meta["name"], meta["version"]
    weights = Path(weights) if weights is not None else (root / "models" / "model.pt")
    if weights.exists():
        _check_state_dict(weights)
    elif weights != root / "models" / "model.pt":
        raise FileNotFoundError(f"{weights}: checkpoint not found")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}_v{version}.zip"
    library = Path(strokezoo.__file__).resolve().parent

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=out)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(root.rglob("*")):
                rel = f.relative_to(root)
                if not f.is_file() or rel.parts[0] in _SKIP or "__pycache__" in rel.parts:
                    continue
                if rel.parts[0] == "configs" and f.suffix == ".json":
                    z.writestr(f"{name}/{rel.as_posix()}", _vendored_config(f.read_text()))
                else:
                    z.write(f, f"{name}/{rel.as_posix()}")
            z.writestr(f"{name}/scripts/__init__.py", _SCRIPTS_INIT)
            for f in sorted(library.rglob("*")):
                rel = f.relative_to(library)
                if rel.parts[0] in NOT_VENDORED:
                    continue
                if f.is_file() and "__pycache__" not in rel.parts and f.suffix in (".py", ".json", ".typed"):
                    z.write(f, f"{name}/scripts/strokezoo/{rel.as_posix()}")
            large = "large_files:\n"
            if weights.exists():
                z.write(weights, f"{name}/models/model.pt")
                large += large_files_entry("models/model.pt", weights, url)
            else:
                large += "  []\n"
            z.writestr(f"{name}/large_files.yml", large)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
