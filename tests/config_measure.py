"""How much the bundles' JSON configs repeat themselves, and which settings training and inference both state.

- **Repeated share**: of all config lines (whitespace stripped), the share inside a run of :data:`WINDOW` lines
  that occurs more than once, in another config or elsewhere in the same one. Runs of fewer than three lines longer
  than two characters (brackets only) are not counted.
- **Settings written twice**: top-level keys of a bundle's ``train.json`` and ``inference.json`` that both give a
  literal value (not a ``$`` expression or an ``@`` reference), other than :data:`LOCATION_KEYS`.

``python tests/config_measure.py`` prints both; ``tests/test_config_form.py`` holds them to their bounds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WINDOW = 6
#: where a config runs from, not a setting of the method: MONAI and MONAI Label require it in every config
LOCATION_KEYS = ("bundle_root",)


def config_files(root: Path = REPO) -> list[Path]:
    return sorted((root / "bundles").glob("*/configs/*.json"))


def repeated_share(files: list[Path]) -> tuple[float, int, dict[Path, int]]:
    """``(share, total lines, repeated lines per file)``."""
    lines = {f: [ln.strip() for ln in f.read_text().splitlines()] for f in files}
    places: dict[tuple, set] = defaultdict(set)
    for f, ls in lines.items():
        for i in range(len(ls) - WINDOW + 1):
            window = tuple(ls[i : i + WINDOW])
            if sum(len(x) > 2 for x in window) >= 3:
                places[window].add((f, i))
    covered = {(f, i + k) for found in places.values() if len(found) > 1 for f, i in found for k in range(WINDOW)}
    per_file = {f: sum(1 for g, _ in covered if g == f) for f in files}
    total = sum(len(v) for v in lines.values())
    return len(covered) / max(total, 1), total, per_file


def _literals(path: Path) -> dict:
    if not path.is_file():
        return {}
    config = json.loads(path.read_text())
    return {k: v for k, v in config.items() if not k.startswith("_") and not isinstance(v, (dict, list)) and not (isinstance(v, str) and v[:1] in "$@%")}


def settings_written_twice(root: Path = REPO) -> list[str]:
    """``bundle:key`` of every setting both configs of a bundle give a literal value."""
    twice = []
    for bundle in sorted(p for p in (root / "bundles").iterdir() if (p / "configs" / "train.json").is_file()):
        train, inference = _literals(bundle / "configs" / "train.json"), _literals(bundle / "configs" / "inference.json")
        twice += [f"{bundle.name}:{k}" for k in sorted(set(train) & set(inference)) if k not in LOCATION_KEYS]
    return twice


if __name__ == "__main__":
    files = config_files()
    share, total, per_file = repeated_share(files)
    print(f"{len(files)} config files, {total} lines; {share:.0%} in {WINDOW}-line runs repeated elsewhere")
    by_name: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f, n in per_file.items():
        by_name[f.name][0] += n
        by_name[f.name][1] += len(f.read_text().splitlines())
    for name, (n, t) in sorted(by_name.items(), key=lambda x: -x[1][0]):
        if n:
            print(f"  {name:28s} {n:5d} of {t:5d} lines repeated")
    twice = settings_written_twice()
    print(f"{len(twice)} settings given a value in both train.json and inference.json{': ' + ', '.join(twice) if twice else ''}")
