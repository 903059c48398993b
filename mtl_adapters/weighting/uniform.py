"""Uniform weighting: every task loss counts once (the model's ``task_weights`` still apply)."""
from typing import Optional

import torch
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from .base import BaseWeighting, WeightingResult


@WEIGHTINGS.register_module()
class UniformWeighting(BaseWeighting):
    """Weights of one: the plain sum of task losses."""

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses -> weights of ones."""
        return WeightingResult(weights=torch.ones_like(losses).detach())
