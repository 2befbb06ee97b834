"""An exponential moving average (EMA) of a model's weights, kept beside the weights Adam updates.

Why: at a small batch and a constant learning rate the weights a run holds at any one step scatter
around where the loss is low; two checkpoints of scorr's default-model run 95 steps apart differed by
~9% in held-out L1. The average over the last ~1/(1 − decay) steps sits nearer the middle of that
scatter, so every saved checkpoint is a usable release and picking one stops being a lottery.

The average covers every floating-point entry of the state dict (parameters and BatchNorm running
statistics); integer entries (``num_batches_tracked``) are copied. The first updates use a smaller
decay, ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so a run that starts (or switches the
average on) from a given model does not drag that model along for thousands of steps.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


class WeightAverage:
    """EMA of ``model``'s state dict, starting at its current values."""

    def __init__(self, model: nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = updates
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's weights after an optimiser step into the average."""
        d = self.current_decay()
        for k, v in model.state_dict().items():
            avg = self.average[k]
            if avg.is_floating_point():
                avg.lerp_(v.detach(), 1.0 - d)
            else:
                avg.copy_(v)
        self.updates += 1

    def load(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        """Restore a stored average (names and shapes as the model's state dict)."""
        missing = set(self.average) - set(tensors)
        if missing:
            raise KeyError(f"the stored weight average lacks {sorted(missing)[0]}")
        for k, avg in self.average.items():
            avg.copy_(tensors[k])
        self.updates = updates

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model holding the averaged weights inside the block (to evaluate or save it), its own after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.average)
        try:
            yield model
        finally:
            model.load_state_dict(own)


__all__ = ["WeightAverage"]
