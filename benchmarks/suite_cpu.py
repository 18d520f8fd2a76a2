"""Where the test suite's CPU time goes: each Python process's own CPU seconds, grouped by what it runs.

Runs ``pytest -n 2 --dist worksteal -q tests`` (``make test``'s command, one compute thread per process unless
OMP_NUM_THREADS says otherwise) with a ``sitecustomize`` on PYTHONPATH that
appends, at every Python process's exit, its CPU seconds and command line to a log; then prints the log as a Markdown
table, with the fixed start-up costs measured in fresh interpreters (``import monai``; SimpleITK, which every process
that mirror-registers loads, beside ITK's Python registration modules, which it loaded before). A process ended by a
signal runs no exit hook and is not counted.

Usage: python benchmarks/suite_cpu.py [--log FILE]   (with --log and no --run: only tabulate an existing log)
       python benchmarks/suite_cpu.py --run [--log FILE]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HOOK = """import atexit, os, sys
def _record():
    t = os.times()
    with open(os.environ["SUITE_CPU_LOG"], "a") as f:
        f.write(f"{t.user + t.system:.2f}\\t{' '.join(sys.argv)[:300]}\\n")
atexit.register(_record)
"""


def kind(argv: str) -> str:
    """What a process ran, from its command line."""
    words = argv.split()
    if "monai/bundle/__main__.py" in argv:
        head = []
        for word in words[1:3]:  # "run training", "run" (then flags), "download"
            if word.startswith("--"):
                break
            head.append(word)
        return " ".join(["python -m monai.bundle", *head])
    if "strokezoo/cli.py" in argv:
        return "strokezoo " + (words[1] if len(words) > 1 else "")
    if "torch/distributed/run.py" in argv:
        return "torchrun"
    if argv.startswith("-c"):
        return "pytest workers (in-process tests)"
    return Path(words[0]).name if words else "?"


def startup_seconds(code: str) -> float:
    """Median wall seconds of ``code`` in three fresh interpreters."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the suite first (about 12 min on 2 cores)")
    ap.add_argument("--log", type=Path, default=None, help="the per-process log (default: a temporary file)")
    args = ap.parse_args()
    log = args.log or Path(tempfile.mkdtemp(prefix="suite_cpu_")) / "processes.tsv"
    if args.run:
        hook_dir = Path(tempfile.mkdtemp(prefix="suite_cpu_hook_"))
        (hook_dir / "sitecustomize.py").write_text(HOOK)
        path = os.pathsep.join([str(hook_dir), str(REPO / "common"), os.environ.get("PYTHONPATH", "")])
        env = {"OMP_NUM_THREADS": "1", **os.environ, "SUITE_CPU_LOG": str(log), "PYTHONPATH": path}
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "worksteal", "-q", "tests", "-p", "no:cacheprovider"], cwd=REPO, env=env)
        print(f"pytest exit {r.returncode}, {time.perf_counter() - t0:.0f} s wall; per-process log: {log}")
    if not log.is_file():
        raise SystemExit(f"{log}: no per-process log (pass --run, or --log FILE of an earlier run)")
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        seconds, _, argv = line.partition("\t")
        groups[kind(argv)].append(float(seconds))
    print("| what | processes | CPU s |\n|---|---|---|")
    for what, cpu in sorted(groups.items(), key=lambda g: -sum(g[1])):
        print(f"| {what} | {len(cpu)} | {sum(cpu):.0f} |")
    print(f"| all recorded | {sum(len(c) for c in groups.values())} | {sum(sum(c) for c in groups.values()):.0f} |")
    print(f"\nstart-up, median of 3 fresh interpreters: `import monai` {startup_seconds('import monai'):.1f} s; ", end="")
    sitk = "import SimpleITK as sitk; sitk.ImageRegistrationMethod(); sitk.VersorRigid3DTransform()"
    itk = "import itk; itk.VersorRigid3DTransform; itk.ImageRegistrationMethodv4; itk.MattesMutualInformationImageToImageMetricv4"
    print(f"the mirror registration's SimpleITK {startup_seconds(sitk):.1f} s, ", end="")
    print(f"against ITK's Python registration modules {startup_seconds(itk):.1f} s (python included)")


if __name__ == "__main__":
    main()
