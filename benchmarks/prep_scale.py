"""Per-rank preparation at scale: the CTP transformer's part B preparation of a 48-patient cohort by one rank and
by two, measured side by side in one run.

Part B's deterministic transforms (``train#deterministic_transforms`` of ``train.json``: loading, the mirror
registration, the TFA maps of the frozen part-A transformer) are what every case costs before training starts. One
process prepares every case of the split. Under DDP, ``multi_gpu_train.json``'s ``+initialize`` runs
``strokezoo.engines.prepare_in_shards``: each rank prepares every world-size-th case and keeps the results on disk,
so the datasets of every rank read them. This script synthesises an ISLES 2018 cohort (``--patients``, at
``--scale``), builds part B's transforms at CPU size (``configs/smoke.json``; an untrained part-A transformer: the
time does not depend on its weights), and prints:

* one rank: the seconds to prepare every case of the split, in one process;
* two ranks (two processes, gloo on 127.0.0.1): each rank's cases, its seconds preparing them, and its seconds in
  ``prepare_in_shards`` until both ranks are done (the barrier);
* the ratio of the two-rank wall-clock to the one-rank time (0.5 is a perfect halving).

Each run has its own ``bundle_root``, so neither finds the other's cached registrations or maps. Run it with
nothing else on the machine: the two ranks need a core each.

    python benchmarks/prep_scale.py --out /tmp/prep_scale [--patients 48] [--scale 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.bundle import ConfigParser

from strokezoo.bundle_info import config_files, cpu_overrides
from strokezoo.data.datalist import build_datalist
from strokezoo.synth import synthesize_cohort

BUNDLE = "stroke_ctp_transformer_unet2d"


def part_b(root: Path, data: Path, datalist: Path) -> ConfigParser:
    """Part B's train.json at CPU size over ``datalist``, fold 0, with an untrained part-A transformer in ``root``."""
    parser = ConfigParser()
    parser.read_config(config_files(BUNDLE, "train.json"))
    for k, v in {**cpu_overrides(BUNDLE), "bundle_root": str(root), "dataset_dir": str(data), "datalist": str(datalist), "fold": 0}.items():
        parser[k] = v
    transformer = Path(parser.get_parsed_content("transformer_path#path"))
    if not transformer.exists():
        transformer.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(parser.get_parsed_content("transformer_def").state_dict(), transformer)
    return parser


def _rank(rank: int, world: int, port: int, root: Path, data: Path, datalist: Path, out: Path) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from strokezoo.engines import prepare_in_shards

    parser = part_b(root, data, datalist)
    train, val = parser.get_parsed_content("split")
    transform = parser.get_parsed_content("train#deterministic_transforms")
    spent = [0.0]

    def timed(entry: dict) -> dict:
        t = time.perf_counter()
        result = transform(entry)
        spent[0] += time.perf_counter() - t
        return result

    dist.barrier()
    t0 = time.perf_counter()
    n = prepare_in_shards(train + val, timed)
    to_barrier = time.perf_counter() - t0  # its own cases, then the wait for the other rank
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "cases": n, "seconds": spent[0], "seconds_to_barrier": to_barrier}))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=48)
    parser.add_argument("--scale", type=float, default=0.2)
    args = parser.parse_args()
    out = args.out
    data, datalist = out / "data", out / "datalist.json"
    if not datalist.exists():
        synthesize_cohort("isles2018", data, cases=args.patients, seed=5, scale=args.scale, workers=1, test_fraction=0.0)
        build_datalist(data, datalist, layout="isles2018", folds=4)

    # one rank: every case of the split, in this process
    torch.set_num_threads(1)
    one = part_b(out / "one_rank", data, datalist)
    train, val = one.get_parsed_content("split")
    transform = one.get_parsed_content("train#deterministic_transforms")
    t0 = time.perf_counter()
    for entry in train + val:
        transform(dict(entry))
    t_one = time.perf_counter() - t0

    # two ranks: each its share, as multi_gpu_train.json's +initialize does
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks_dir = out / "two_ranks_timing"
    ranks_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    mp.spawn(_rank, args=(2, port, out / "two_ranks", data, datalist, ranks_dir), nprocs=2, join=True)
    t_two = time.perf_counter() - t0
    ranks = [json.loads((ranks_dir / f"rank{k}.json").read_text()) for k in range(2)]
    slowest = max(r["seconds_to_barrier"] for r in ranks)

    cases = len(train) + len(val)
    print(f"cohort: {args.patients} ISLES 2018 patients at scale {args.scale}, {cases} slabs in part B's split (fold 0 held out)")
    print("| run | rank | slabs prepared | seconds preparing | seconds until both ranks are done |\n|---|---|---|---|---|")
    print(f"| one rank | 0 | {cases} | {t_one:.1f} | {t_one:.1f} |")
    for r in ranks:
        print(f"| two ranks | {r['rank']} | {r['cases']} | {r['seconds']:.1f} | {r['seconds_to_barrier']:.1f} |")
    print(
        f"\ntwo ranks / one rank: {slowest / t_one:.2f} of the preparation time ({slowest:.1f} s against {t_one:.1f} s); "
        f"{t_two:.1f} s of wall-clock for the two-rank run with the processes' start"
    )


if __name__ == "__main__":
    main()
