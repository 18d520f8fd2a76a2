"""Seconds to synthesize N cases of each release layout at full scale (prints a Markdown table).

Usage: python benchmarks/synth_speed.py [--cases 10] [--workers 2] [--layouts isles2022,isles2018]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

from strokezoo.data.layouts import LAYOUTS
from strokezoo.synth import synthesize_cohort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--layouts", default=",".join(sorted(LAYOUTS)))
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.cases} cases, {args.workers} workers")
    print("| layout | cases written | seconds (wall, incl. process start-up) | MB on disk |")
    print("|---|---|---|---|")
    for layout in args.layouts.split(","):
        out = tempfile.mkdtemp(prefix=f"synth_{layout}_")
        try:
            t0 = time.perf_counter()
            s = synthesize_cohort(layout, out, cases=args.cases, seed=0, workers=args.workers)
            seconds = time.perf_counter() - t0
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs) / 1e6
            print(f"| {layout} | {s['cases']} | {seconds:.1f} | {size:.0f} |", flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
