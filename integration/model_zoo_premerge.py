"""The MONAI model zoo's premerge checks, run on an unpacked exported bundle, offline.

The model zoo verifies a bundle (``ci/verify_bundle.py``) in ``min`` mode with: the necessary files (``configs/
metadata.json``, ``LICENSE``), the preferred ones (``models/model.pt``, ``configs/inference.json``), a ``version``
recorded in the ``changelog``, and the metadata against its schema (``monai.bundle.verify_metadata``); ``full`` mode
adds the network's input and output shapes (``verify_net_in_out``) and a TorchScript export (``ckpt_export``), which
a bundle whose network does not script replaces by tracing (the route its README names). The CPU premerge first
installs ``required_packages_version`` with pip, so every package listed there must be on a package index: here,
one this environment has installed from one (pip records no ``direct_url.json`` for those; an editable or local
install, like strokezoo's own, has one).

The official schema (``meta_schema_20240725``) is a release asset that cannot be fetched offline;
``--schema`` gives the file to check against (default: ``bundles/metadata_schema.json``, written from the bundle
specification with the official schema's required fields). Run it where strokezoo is not installed, as the zoo
does::

    python -S integration/model_zoo_premerge.py UNPACKED/stroke_mri_crossattention_unet2d --mode full

Prints one line per check passed; exits non-zero at the first that fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def check(bundle: Path, mode: str = "full", schema: Path = REPO / "bundles" / "metadata_schema.json") -> list[str]:
    """Run the checks of ``mode`` (``min`` or ``full``) on the bundle folder ``bundle``; the names of those passed."""
    from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

    passed = []
    for name in ("configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"):
        if not (bundle / name).is_file():
            raise SystemExit(f"{bundle}: {name} is missing")
    passed.append("necessary and preferred files")
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    if meta.get("version") not in meta.get("changelog", {}):
        raise SystemExit(f"{bundle}: version {meta.get('version')!r} is not in the changelog")
    passed.append("version in changelog")
    missing = []
    for package in meta.get("required_packages_version", {}):
        try:
            origin = json.loads(importlib.metadata.distribution(package).read_text("direct_url.json") or "{}")
        except importlib.metadata.PackageNotFoundError:
            origin = {"missing": True}
        if origin:  # absent, or installed from a folder or a URL rather than from a package index
            missing.append(package)
    if missing:
        raise SystemExit(f"{bundle}: required_packages_version lists {missing}, which pip did not install here from a package index")
    passed.append("required_packages_version installable")
    local_schema = bundle / "eval" / "schema.json"  # where the zoo downloads the schema to; present, it is read as is
    local_schema.parent.mkdir(exist_ok=True)
    shutil.copyfile(schema, local_schema)
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(local_schema))
    passed.append("metadata against the schema")
    if mode == "min":
        return passed
    sys.path.insert(0, str(bundle))  # the bundle's own scripts/, as the zoo adds it
    config = str(bundle / "configs" / "inference.json")
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"), config_file=config, bundle_root=str(bundle), device="cpu")
    passed.append("network input and output shapes")
    ckpt_export(
        net_id="network_def",
        filepath=str(bundle / "models" / "verify_model.ts"),
        ckpt_file=str(bundle / "models" / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=config,
        bundle_root=str(bundle),
        use_trace=True,
    )
    import torch

    torch.jit.load(str(bundle / "models" / "verify_model.ts"))
    passed.append("TorchScript export by tracing, and reload")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="an unpacked exported bundle folder")
    parser.add_argument("--mode", choices=("min", "full"), default="full")
    parser.add_argument("--schema", type=Path, default=REPO / "bundles" / "metadata_schema.json")
    args = parser.parse_args()
    for name in check(args.bundle, args.mode, args.schema):
        print(f"passed: {name}")


if __name__ == "__main__":
    main()
