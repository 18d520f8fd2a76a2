"""The library's layers (pyproject.toml, ``[tool.importlinter]``) hold: no module imports from a layer above its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"]


def test_the_layer_contract_is_kept():
    r = subprocess.run(LINT, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and "1 kept, 0 broken" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_the_check_sees_a_broken_layering(tmp_path):
    """Transforms put below the networks that one of them runs: the check must fail and name the import."""
    config = tmp_path / "wrong.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "strokezoo"\n\n[[tool.importlinter.contracts]]\nname = "wrong"\ntype = "layers"\n'
        'layers = ["strokezoo.networks", "strokezoo.transforms"]\n'
    )
    r = subprocess.run([*LINT, str(config)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0 and "BROKEN" in r.stdout and "strokezoo.transforms.tfa_inputs -> strokezoo.networks" in r.stdout, r.stdout[-3000:]
