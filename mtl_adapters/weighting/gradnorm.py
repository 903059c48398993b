"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018) on an explicit shared set.

Learnable task weights ``w`` (init 1, renormalised to sum to T before every use). With
``G_t = w_t ||g_t||`` (``g_t`` the task's gradient on the shared set), ``G_bar = mean_t G_t``,
the inverse training rate ``r_t = (L_t / L_t(0)) / mean_s (L_s / L_s(0))`` and the constant
target ``G_bar r_t^alpha``, GradNorm minimises ``sum_t |G_t - G_bar r_t^alpha|`` over ``w`` only:
``d/dw_t = sign(G_t - target_t) ||g_t||``. The task losses use ``w`` detached; ``w`` receives
exactly that gradient through a zero-valued surrogate loss term
(``<w - w.detach(), grad_w>``), so it works under DDP (gradients are averaged like any other).
Direction: a task with a larger gradient norm than the mean (or a faster-falling loss) loses
weight; a task that trains slowly gains weight. ``L_t(0)`` are the first step's losses
(all-reduced when distributed), stored as a buffer (kept in checkpoints).
"""
from typing import Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from .base import BaseWeighting, WeightingResult


@WEIGHTINGS.register_module()
class GradNormWeighting(BaseWeighting):
    """Learn loss weights that balance the tasks' gradient norms on the shared set.

    Args:
        task_names: the tasks (filled in by the model).
        alpha: strength of the restoring force towards equal training rates (paper: 0.12-3).
    """

    requires_grads = True

    def __init__(self, task_names: Sequence[str], alpha: float = 1.5):
        super().__init__(task_names)
        self.alpha = float(alpha)
        self.loss_weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer('initial_losses', torch.zeros(self.num_tasks))
        #: per task: whether L_t(0) has been recorded (at its first batch with a loss)
        self.register_buffer('initialised', torch.zeros(self.num_tasks, dtype=torch.bool))

    @torch.no_grad()
    def _renormalise(self) -> None:
        """Keep ``w`` positive with ``sum_t w_t = T`` (identical on every rank)."""
        w = self.loss_weights.clamp_(min=1e-4)
        w.mul_(self.num_tasks / w.sum())

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses, (T, D) gradients -> detached weights and the surrogate for ``w``."""
        self._renormalise()
        weights = self.loss_weights.detach().clone()
        if grads is None or not self.training:
            return WeightingResult(weights=weights)
        losses = losses.detach()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            losses = losses.clone()
            dist.all_reduce(losses)                  # every rank sees the same rates
            losses /= dist.get_world_size()
        # a task with no labels in this batch has loss 0: it neither sets L_t(0) nor moves
        present = losses > 0
        new = present & ~self.initialised
        self.initial_losses[new] = losses[new]
        self.initialised |= new
        active = present & self.initialised
        if int(active.sum()) < 2:      # nothing to balance; keep w in the graph for DDP
            return WeightingResult(weights=weights,
                                   extra_losses=dict(loss_gradnorm=self.loss_weights.sum() * 0))
        norms = grads.detach().norm(dim=1)                             # (T,)
        g_w = weights * norms                                          # G_t
        rate = torch.where(active, losses / self.initial_losses.clamp(min=1e-12),
                           torch.zeros_like(losses))
        rate = rate / rate[active].mean().clamp(min=1e-12)
        target = g_w[active].mean() * rate.pow(self.alpha)
        grad_w = torch.where(active, torch.sign(g_w - target) * norms,
                             torch.zeros_like(norms))                  # d sum|G - target| / dw
        surrogate = ((self.loss_weights - self.loss_weights.detach()) * grad_w).sum()
        return WeightingResult(weights=weights, extra_losses=dict(loss_gradnorm=surrogate))
