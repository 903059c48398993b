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
        classification_tasks: tasks with a classification likelihood (``mode='kendall'``);
            default: the tasks whose definition says ``likelihood = 'classification'``.
        mode: ``'kendall'`` (paper form) or ``'simplified'`` (``exp(-s) L + s``).
    """

    def __init__(self, task_names: Sequence[str],
                 classification_tasks: Optional[Sequence[str]] = None,
                 mode: str = 'kendall'):
        super().__init__(task_names)
        if mode not in ('kendall', 'simplified'):
            raise ValueError(f'UncertaintyWeighting.mode must be "kendall" or "simplified", '
                             f'got {mode!r}')
        self.mode = mode
        self.log_vars = nn.Parameter(torch.zeros(self.num_tasks))
        self.reg_scale = 0.5 if mode == 'kendall' else 1.0
        self.register_buffer('loss_scale', torch.ones(self.num_tasks), persistent=False)
        self._set_scales(classification_tasks or ())
        self._classification_given = classification_tasks is not None

    def _set_scales(self, classification_tasks: Sequence[str]) -> None:
        """c_t = 1 for classification, 1/2 for regression (``'kendall'``); 1 otherwise."""
        if self.mode == 'kendall':
            self.loss_scale.copy_(torch.tensor(
                [1.0 if n in classification_tasks else 0.5 for n in self.task_names]))

    def bind_tasks(self, tasks) -> None:
        """Classification tasks from the task definitions, unless given explicitly."""
        if not self._classification_given:
            self._set_scales([n for n, t in tasks.items()
                              if getattr(t, 'likelihood', 'regression') == 'classification'])

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses -> weights ``c_t exp(-s_t)`` and the regulariser ``r * sum_t s_t`` over
        the trained tasks (an evaluated-only task's ``s_t`` keeps its loaded value)."""
        weights = self.loss_scale * torch.exp(-self.log_vars)
        trained = self.train_mask.to(self.log_vars.device)
        return WeightingResult(
            weights=weights,
            extra_losses=dict(loss_uncertainty=self.reg_scale * self.log_vars[trained].sum()))
