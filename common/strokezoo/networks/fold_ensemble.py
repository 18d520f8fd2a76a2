"""Ensemble of the cross-validation fold models: the networks trained in k-fold cross-validation predict every
test case and their class probabilities are averaged (Clèrigues et al., CMPB 2020, Sec. 4.2), or each fold
votes for its most probable class (de Vries et al., MIDL 2021, Sec. 2).

The ensemble returns the logarithm of the mean softmax probability (or of the vote share), so that it is a
drop-in network that outputs logits: a softmax of its output gives exactly the averaged probabilities (the vote
shares), and its argmax the majority class (a tie goes to the lower class index, background). Auxiliary output
channels that are not class logits (e.g. a probability map) are averaged as they are. Its state dict holds every
fold's parameters (``folds.<k>.…``), one checkpoint for the bundle; :meth:`FoldEnsemble.state_dict_from_folds`
builds it from the fold checkpoints. A checkpoint brings its own number of members: loading one of ``n`` folds
makes the ensemble ``n`` members, so the ensemble of the folds trained so far (:class:`ServedEnsemble`, which
training writes after each new best, e.g. the one fold MONAI Label trains) is served as it is.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..io.atomic import atomic_path

__all__ = ["FoldEnsemble", "ServedEnsemble", "fold_checkpoints", "fold_part", "member_part", "write_fold_ensemble"]

logger = logging.getLogger(__name__)


class FoldEnsemble(nn.Module):
    """``log(mean_k softmax(net_k(x)))`` (or ``log(mean_k onehot(argmax net_k(x)))``) over ``num_folds`` copies of ``network``.

    Args:
        network: the architecture of one fold model (copied ``num_folds`` times).
        num_folds: number of fold models (papers: 4).
        combine: ``"mean"`` averages the softmax probabilities, ``"vote"`` the folds' one-hot argmax.
        auxiliary_channels: trailing output channels that are not class logits; they are averaged over the folds
            and appended unchanged.
    """

    def __init__(self, network: nn.Module, num_folds: int = 4, combine: str = "mean", auxiliary_channels: int = 0) -> None:
        super().__init__()
        if num_folds < 1:
            raise ValueError(f"num_folds must be at least 1, got {num_folds}")
        if combine not in ("mean", "vote"):
            raise ValueError(f"combine must be 'mean' or 'vote', got {combine!r}")
        self.folds = nn.ModuleList(copy.deepcopy(network) for _ in range(num_folds))
        self.combine = combine
        self.auxiliary_channels = auxiliary_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [net(x) for net in self.folds]
        n_classes = outputs[0].shape[1] - self.auxiliary_channels
        if self.combine == "vote":
            shares = [nn.functional.one_hot(o[:, :n_classes].argmax(1), n_classes).movedim(-1, 1).to(o.dtype) for o in outputs]
        else:
            shares = [torch.softmax(o[:, :n_classes], dim=1) for o in outputs]
        mean = torch.stack(shares).mean(0)
        log_mean = torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))
        if not self.auxiliary_channels:
            return log_mean
        return torch.cat([log_mean, torch.stack([o[:, n_classes:] for o in outputs]).mean(0)], dim=1)

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, after giving the ensemble as many members as ``state_dict`` holds
        (``folds.0.…`` to ``folds.<n-1>.…``; the members are copies of the first, on its device)."""
        members = {int(k.split(".")[1]) for k in state_dict if k.startswith("folds.") and k.split(".")[1].isdigit()}
        if members and members != set(range(len(members))):
            raise ValueError(f"an ensemble checkpoint holds folds 0 to n-1, not {sorted(members)}")
        if members and len(members) != len(self.folds):
            self.folds = nn.ModuleList(copy.deepcopy(self.folds[0]) for _ in members)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @staticmethod
    def state_dict_from_folds(paths: Sequence[str | os.PathLike | Mapping[str, str | os.PathLike]]) -> dict[str, torch.Tensor]:
        """The ensemble's state dict from the fold checkpoints (plain state dicts, loaded with weights_only): one path
        per fold, or per fold a mapping ``{submodule: path}`` for a fold model trained in parts (e.g.
        ``{"transformer": …, "unet": …}`` for :class:`~strokezoo.networks.TFAUNet`)."""
        state = {}
        for k, fold in enumerate(paths):
            parts = fold.items() if isinstance(fold, Mapping) else [("", fold)]
            for prefix, path in parts:
                for name, value in torch.load(path, map_location="cpu", weights_only=True).items():
                    state[f"folds.{k}.{prefix}.{name}" if prefix else f"folds.{k}.{name}"] = value
        return state


def fold_checkpoints(models_dir: str | os.PathLike, folds: Sequence[int], parts: Mapping[str, str] | None = None) -> list:
    """The checkpoints of ``folds`` as the bundles' training writes them, ``<models_dir>/fold<k>/model.pt``; with
    ``parts`` (submodule -> file name, e.g. ``{"transformer": "transformer.pt", "unet": "model.pt"}``) one mapping
    per fold, for :func:`write_fold_ensemble`."""
    if parts is None:
        return [os.path.join(models_dir, f"fold{k}", "model.pt") for k in folds]
    return [{part: os.path.join(models_dir, f"fold{k}", name) for part, name in parts.items()} for k in folds]


def write_fold_ensemble(fold_checkpoints: Sequence[str | os.PathLike | Mapping[str, str | os.PathLike]], out: str | os.PathLike) -> str:
    """Write the :class:`FoldEnsemble` checkpoint of the given fold checkpoints (see
    :meth:`FoldEnsemble.state_dict_from_folds`) to ``out`` (atomically); returns it."""
    paths = [p for fold in fold_checkpoints for p in (fold.values() if isinstance(fold, Mapping) else [fold])]
    missing = [str(p) for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"fold checkpoints missing (train those folds first): {missing}")
    with atomic_path(out) as tmp:
        torch.save(FoldEnsemble.state_dict_from_folds(fold_checkpoints), tmp)
    return str(out)


def member_part(served: str | os.PathLike, part: str, member: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of ``part`` (a submodule, e.g. ``"transformer"``) of member ``member`` of the ensemble
    checkpoint ``served`` (loaded with weights_only); empty when the checkpoint holds no such part."""
    prefix = f"folds.{member}.{part}."
    state = torch.load(served, map_location="cpu", weights_only=True)
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def fold_part(path: str | os.PathLike, served: str | os.PathLike, part: str, member: int = 0) -> str:
    """``path``, the file of a fold's trained ``part`` (e.g. the part-A transformer a part-B training reads).

    Where it is missing and the served ensemble checkpoint ``served`` holds that part, member ``member``'s part is
    written there first (atomically): an exported bundle ships only ``models/model.pt``, and MONAI Label's
    ``/train`` runs the bundle's last stage on the part it serves. Otherwise ``path`` is returned as it is, for
    the reader to refuse by name.
    """
    if not os.path.isfile(path) and os.path.isfile(served):
        state = member_part(served, part, member)
        if state:
            with atomic_path(path) as tmp:
                torch.save(state, tmp)
            logger.info(f"{path}: the {part} of member {member} of {served}")
    return str(path)


class ServedEnsemble:
    """Write ``out`` (the checkpoint inference reads, ``models/model.pt``) as the :class:`FoldEnsemble` of every fold
    trained so far under ``models_dir`` (``fold<k>/`` holding all of ``parts``' files), atomically, when called.

    :class:`~strokezoo.engines.ValidationRoutine` calls it after each new best network (its ``serve``), so that
    the bundle's inference, and MONAI Label's, use what training has just written: one fold after the first
    fold's training (what MONAI Label's ``/train`` runs), the paper's ensemble after the last.

    Args:
        models_dir: the folder of the fold folders.
        out: the served checkpoint.
        parts: as :func:`fold_checkpoints`; ``None`` for one ``model.pt`` per fold.
    """

    def __init__(self, models_dir: str | os.PathLike, out: str | os.PathLike, parts: Mapping[str, str] | None = None) -> None:
        self.models_dir = models_dir
        self.out = out
        self.parts = dict(parts) if parts is not None else None

    def folds(self) -> list[int]:
        """The fold numbers whose checkpoints are all present, in order."""
        names = list(self.parts.values()) if self.parts is not None else ["model.pt"]
        found = []
        for d in sorted(os.listdir(self.models_dir)) if os.path.isdir(self.models_dir) else []:
            k = d[len("fold") :]
            if d.startswith("fold") and k.isdigit() and all(os.path.isfile(os.path.join(self.models_dir, d, n)) for n in names):
                found.append(int(k))
        return sorted(found)

    def __call__(self, *_) -> str:
        folds = self.folds()
        if not folds:
            raise FileNotFoundError(f"{self.models_dir}: no fold checkpoint to serve")
        return write_fold_ensemble(fold_checkpoints(self.models_dir, folds, self.parts), self.out)
