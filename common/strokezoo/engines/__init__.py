"""Engine pieces of the strokezoo bundles: validation metrics, handlers and trainers MONAI does not provide."""

from .distributed import close_distributed, distributed, init_distributed, is_rank0, per_rank_batch, prepare_in_shards, rank_device
from .hand_trainer import HandTrainer
from .inference import Inference
from .l1_error_rate import L1ErrorRate
from .pseudo_dwi_trainer import PseudoDWIBatch, PseudoDWITrainer
from .redraw_patches import RedrawPatches
from .resume import ResumeCheckpoint, SaveBestNetwork, load_weights, save_atomically
from .routine import InferenceRoutine, TrainingRoutine, ValidationRoutine
from .stage import Trainer, Validator
from .wall_clock import WallClockBudget

__all__ = [
    "HandTrainer",
    "Inference",
    "InferenceRoutine",
    "L1ErrorRate",
    "PseudoDWIBatch",
    "PseudoDWITrainer",
    "RedrawPatches",
    "ResumeCheckpoint",
    "SaveBestNetwork",
    "Trainer",
    "TrainingRoutine",
    "ValidationRoutine",
    "Validator",
    "WallClockBudget",
    "is_rank0",
    "load_weights",
    "close_distributed",
    "distributed",
    "init_distributed",
    "per_rank_batch",
    "prepare_in_shards",
    "rank_device",
    "save_atomically",
]
