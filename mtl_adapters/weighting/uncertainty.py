"""Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

One learnable ``s_t = log(sigma_t^2)`` per task (init 0). The per-task objective is

- regression:     ``L_t / (2 sigma_t^2) + log sigma_t = 0.5 exp(-s_t) L_t + 0.5 s_t``
- classification: ``L_t / sigma_t^2     + log sigma_t =     exp(-s_t) L_t + 0.5 s_t``

(``mode='kendall'``, the paper's form), or the common simplified form used by most
re-implementations, ``exp(-s_t) L_t + s_t`` for every task (``mode='simplified'``). The weight
carries gradient to ``s_t`` (so the optimiser learns it); the regulariser is returned as the
extra loss ``loss_uncertainty``. Direction: a task whose loss stays large drives its ``s_t`` up
(``dJ/ds_t = -c exp(-s_t) L_t + r`` is negative while ``c exp(-s_t) L_t > r``), so its weight
falls; at the optimum ``exp(-s_t) = r / (c L_t)``.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from .base import BaseWeighting, WeightingResult


@WEIGHTINGS.register_module()
class UncertaintyWeighting(BaseWeighting):
    """Learnable log-variances weight each task loss (Kendall et al. 2018).

    Args:
        task_names: the tasks (filled in by the model).
        classification_tasks: tasks with a classification likelihood (``mode='kendall'``).
        mode: ``'kendall'`` (paper form) or ``'simplified'`` (``exp(-s) L + s``).
    """

    def __init__(self, task_names: Sequence[str], classification_tasks: Sequence[str] = ('seg',),
                 mode: str = 'kendall'):
        super().__init__(task_names)
        if mode not in ('kendall', 'simplified'):
            raise ValueError(f'UncertaintyWeighting.mode must be "kendall" or "simplified", '
                             f'got {mode!r}')
        self.mode = mode
        self.log_vars = nn.Parameter(torch.zeros(self.num_tasks))
        if mode == 'kendall':
            scale = [1.0 if n in classification_tasks else 0.5 for n in self.task_names]
            reg = 0.5
        else:
            scale, reg = [1.0] * self.num_tasks, 1.0
        self.register_buffer('loss_scale', torch.tensor(scale), persistent=False)
        self.reg_scale = reg

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses -> weights ``c_t exp(-s_t)`` and the regulariser ``r * sum_t s_t``."""
        weights = self.loss_scale * torch.exp(-self.log_vars)
        return WeightingResult(
            weights=weights,
            extra_losses=dict(loss_uncertainty=self.reg_scale * self.log_vars.sum()))
