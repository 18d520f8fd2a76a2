"""Atomic output writing: every file strokezoo writes appears whole or not at all.

:func:`atomic_path` yields a temporary name in the target's folder (same file system, so the final
``os.replace`` is atomic) and renames it onto the target only when the writer succeeded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic", "write_json_atomic", "write_csv_atomic"]


def _umask() -> int:
    """The process umask (read by setting it, so read once, at import: a second thread never sees it changed)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so format-sniffing writers work); on success
    it replaces ``path``, with the permissions a plain ``open`` would give it (the process umask, not ``mkstemp``'s
    owner-only 0600), on error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(obj, path: str | os.PathLike, indent: int = 2) -> Path:
    return write_text_atomic(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", path)


def write_csv_atomic(rows: list[dict], fieldnames: list[str], path: str | os.PathLike) -> Path:
    """One CSV row per dict (missing keys left empty); floats with 6 significant digits."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return write_text_atomic(buf.getvalue(), path)
