"""The trainer of Wang et al., MedIA 2020 (Sec. 3.4): three networks and three losses in one step.

The bundles' :class:`~strokezoo.engines.Trainer` (MONAI's ``SupervisedTrainer``) with two changes: the batch brings the targets of all three losses (the label,
the DWI and the weight map A) and the reference DWI goes into the forward pass, so that the context encoder Φ_c
runs inside the (possibly distributed) network; and the loss terms L_s, L_g, L_e of each step are added to the
engine output for the log. ``parts`` selects what learns: all three end-to-end (the paper), or one network at
a time for the sequential variant DWI^{o,l,h}(s) of Table 5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.engines import IterationEvents
from monai.utils import CommonKeys

from ..networks.pseudo_dwi_slnet import PARTS
from .stage import Trainer

__all__ = ["PseudoDWITrainer", "PseudoDWIBatch"]


class PseudoDWIBatch:
    """``prepare_batch`` of :class:`PseudoDWITrainer`: ``(image, {label, dwi, weight}, (), {"reference": dwi})`` on the device.

    With ``reference_key=None`` it gives ``(image, {target_keys…})``: the targets of a loss that takes a mapping
    (:class:`~strokezoo.losses.SegmentationLoss`), for MONAI's ``SupervisedTrainer`` and a network that takes no
    reference, as in the ablations of Tables 3 and 4 (SLNet on the perfusion maps, ``target_keys=("label", "weight")``).
    """

    def __init__(self, image_key: str = CommonKeys.IMAGE, target_keys: Sequence[str] = ("label", "dwi", "weight"), reference_key: str | None = "dwi") -> None:
        self.image_key, self.target_keys, self.reference_key = image_key, tuple(target_keys), reference_key

    def __call__(self, batchdata: dict, device: str | torch.device | None = None, non_blocking: bool = False, **kwargs):
        def move(t):
            return torch.as_tensor(t).to(device=device, non_blocking=non_blocking, **kwargs)

        missing = [k for k in (self.image_key, *self.target_keys) if k not in batchdata]
        if missing:
            raise KeyError(f"the training batch lacks {missing} (the trainer needs {[self.image_key, *self.target_keys]})")
        targets = {k: move(batchdata[k]) for k in self.target_keys}
        if self.reference_key is None:
            return move(batchdata[self.image_key]), targets
        return move(batchdata[self.image_key]), targets, (), {"reference": targets[self.reference_key]}


class PseudoDWITrainer(Trainer):
    """:class:`~strokezoo.engines.Trainer` for :class:`~strokezoo.networks.PseudoDWISLNet` and :class:`~strokezoo.losses.PseudoDWILoss`.

    Args:
        parts: the networks that learn; sets the network's ``trained_parts`` and the loss's ``parts``.
        All other arguments are :class:`~strokezoo.engines.Trainer`'s; ``prepare_batch`` defaults to :class:`PseudoDWIBatch`.
    """

    def __init__(self, *args, parts: Sequence[str] = PARTS, **kwargs) -> None:
        kwargs.setdefault("prepare_batch", PseudoDWIBatch())
        kwargs.setdefault("optim_set_to_none", True)  # networks outside `parts` get no gradient and no update
        super().__init__(*args, **kwargs)
        parts = tuple(parts)
        getattr(self.network, "module", self.network).trained_parts = parts
        self.loss_function.parts = parts

        self.add_event_handler(IterationEvents.LOSS_COMPLETED, self._record_terms)

    @staticmethod
    def _record_terms(engine: PseudoDWITrainer) -> None:
        """After the loss: its terms into the output, and the segmenter's logits as the output's prediction."""
        engine.state.output.update(engine.loss_function.terms)
        engine.state.output[CommonKeys.PRED] = engine.state.output[CommonKeys.PRED]["logits"].detach()
