"""One config of a bundle reading the settings another of its configs states, so that each is written once.

A bundle's ``train.json`` reads the model's settings (inputs, widths, normalisation, slice size) from its
``inference.json``, which states them for both: ``"features": "$@model['features']"`` with ``model`` a
:class:`SiblingConfig`. A key set for the run itself (an override file, ``--features ...``) replaces the reference
as any override does.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SiblingConfig"]

#: the library's place: ``<repo>/common/strokezoo/io`` in a clone, ``<bundle>/scripts/strokezoo/io`` when vendored
_HERE = Path(__file__).resolve()


def _candidates(bundle_root: Path, bundle: str, name: str) -> list[Path]:
    """Where ``configs/<name>`` may be: under ``bundle_root``; in the bundle this copy of the library is vendored into;
    in the repository's bundle ``bundle``."""
    return [bundle_root / "configs" / name, _HERE.parents[3] / "configs" / name, _HERE.parents[3] / "bundles" / bundle / "configs" / name]


class SiblingConfig:
    """The parsed settings of ``configs/<name>`` of the bundle, read by ``key``.

    The file is the first of: ``<bundle_root>/configs/<name>`` (the bundle's folder, as MONAI and MONAI Label set
    ``bundle_root``); that of the exported bundle this library is vendored into; that of the repository's bundle
    ``bundle`` (a run whose ``bundle_root`` is an output folder, as the demo's and the tests'). None: a
    ``FileNotFoundError`` naming where it looked.
    """

    def __init__(self, bundle_root: str | os.PathLike, bundle: str, name: str = "inference.json") -> None:
        from monai.bundle import ConfigParser

        places = _candidates(Path(bundle_root), bundle, name)
        found = next((p for p in places if p.is_file() and (p.parent / "metadata.json").is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{places[0]}: not found (nor {', '.join(str(p) for p in places[1:])}); pass --bundle_root <the bundle's folder>, "
                f"whose configs/{name} states the model's settings"
            )
        self.path = found
        self._parser = ConfigParser()
        self._parser.read_config(str(found))
        self._parser["bundle_root"] = str(found.parent.parent)

    def __getitem__(self, key: str):
        if key not in self._parser:
            raise KeyError(f"{self.path}: no key {key!r}")
        return self._parser.get_parsed_content(key)

    def __repr__(self) -> str:
        return f"SiblingConfig({str(self.path)!r})"
