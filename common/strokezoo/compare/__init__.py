"""``strokezoo compare``: every method of a cohort, the stock MONAI baselines and the clinical threshold rule on the
same patient-level splits (one, or the K of a cross-validation) with one budget, scored by ``strokezoo evaluate``
into a leaderboard."""

from .crossval import cv_splits, pool_splits
from .protocol import COHORTS, DIFFICULTY, SIZES, bundle_split, compare, inference_workflow, methods_of, run_split, split_overrides
from .report import bootstrap_ci, holm, learned, paired_wilcoxon, write_leaderboard
from .stock import STOCK, infer_stock, stock_network, train_stock

__all__ = [
    "COHORTS",
    "DIFFICULTY",
    "SIZES",
    "STOCK",
    "bootstrap_ci",
    "bundle_split",
    "compare",
    "cv_splits",
    "holm",
    "infer_stock",
    "inference_workflow",
    "learned",
    "methods_of",
    "paired_wilcoxon",
    "pool_splits",
    "run_split",
    "split_overrides",
    "stock_network",
    "train_stock",
    "write_leaderboard",
]
