"""``strokezoo compare``: every method of a cohort, the stock MONAI baselines and the clinical threshold rule on one
patient-level split with one budget, scored by ``strokezoo evaluate`` into a leaderboard."""

from .protocol import COHORTS, SIZES, bundle_split, compare, inference_workflow, methods_of, split_overrides
from .report import bootstrap_ci, paired_wilcoxon, write_leaderboard
from .stock import STOCK, infer_stock, stock_network, train_stock

__all__ = [
    "COHORTS",
    "SIZES",
    "STOCK",
    "bootstrap_ci",
    "bundle_split",
    "compare",
    "infer_stock",
    "inference_workflow",
    "methods_of",
    "paired_wilcoxon",
    "split_overrides",
    "stock_network",
    "train_stock",
    "write_leaderboard",
]
