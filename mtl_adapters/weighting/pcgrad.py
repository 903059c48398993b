"""PCGrad, gradient surgery (Yu et al., NeurIPS 2020).

For every task i (in the order given), visit the other tasks j in a random order; whenever
``<g_i^PC, g_j> < 0`` replace ``g_i^PC <- g_i^PC - <g_i^PC, g_j> / ||g_j||^2 g_j`` (projection onto
the normal plane of the original ``g_j``). The combined gradient is ``sum_i g_i^PC``. The order is
drawn from a private generator seeded with ``seed`` (identical on every DDP rank).
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from .base import BaseWeighting, WeightingResult


@WEIGHTINGS.register_module()
class PCGradWeighting(BaseWeighting):
    """Project conflicting task gradients onto each other's normal planes, then sum.

    Args:
        task_names: the tasks (filled in by the model).
        seed: seed of the random visiting order.
    """

    requires_grads = True

    def __init__(self, task_names: Sequence[str], seed: int = 0):
        super().__init__(task_names)
        self.generator = torch.Generator().manual_seed(int(seed))

    def project(self, grads: Tensor) -> Tensor:
        """(T, D) task gradients -> (T, D) projected gradients ``g_i^PC``."""
        grads = grads.detach()
        projected = grads.clone()
        for i in range(grads.shape[0]):
            for j in torch.randperm(grads.shape[0], generator=self.generator).tolist():
                if j == i:
                    continue
                dot = projected[i] @ grads[j]
                norm_sq = grads[j] @ grads[j]
                if dot < 0 and norm_sq > 0:
                    projected[i] -= dot / norm_sq * grads[j]
        return projected

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses, (T, D) gradients -> unit weights and the combined gradient."""
        weights = torch.ones_like(losses).detach()
        if grads is None:
            return WeightingResult(weights=weights)
        return WeightingResult(weights=weights, combined_grad=self.project(grads).sum(0))
