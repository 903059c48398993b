"""The interface every task-weighting method implements.

A weighting method sees the per-task losses ``(T,)`` and, when it sets ``requires_grads``, the
per-task gradients ``(T, D)`` over an explicit shared-parameter set (flattened and concatenated
in the order of ``MultiTaskModel.shared_parameters()``). It answers with a
:class:`WeightingResult`: loss weights (which may carry gradient to the method's own
parameters), optional extra loss terms (regularisers, surrogates), and optionally the combined
gradient ``(D,)`` that the shared set should receive instead of ``sum_t w_t g_t``.

The model turns a combined gradient into a plain loss term (mmengine's DDP wrapper only sees
losses): ``sum_p <p - p.detach(), (g*_p - sum_t w_t g_t,p).detach()>``. Its value is zero and
its gradient on the shared parameter p is ``g*_p - sum_t w_t g_t,p``, so the total gradient on
p is exactly ``g*_p`` and every other parameter keeps its ordinary gradient.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import torch.nn as nn
from torch import Tensor


@dataclass
class WeightingResult:
    """What a weighting method returns for one step."""

    #: (T,) loss weights, multiplied into the per-task losses
    weights: Tensor
    #: extra scalar loss terms ``{name: value}`` (e.g. uncertainty's log-variance regulariser)
    extra_losses: Dict[str, Tensor] = field(default_factory=dict)
    #: (D,) gradient the shared set should receive, or None for ``sum_t w_t g_t``
    combined_grad: Optional[Tensor] = None


class BaseWeighting(nn.Module):
    """Per-task losses (T,) [and gradients (T, D)] in, weights or a combined gradient out.

    Args:
        task_names: the tasks, in the order of every per-task tensor (filled in by the model).
    """

    #: whether :meth:`forward` needs the (T, D) per-task gradient matrix on the shared set
    requires_grads: bool = False

    def __init__(self, task_names: Sequence[str]):
        super().__init__()
        self.task_names = list(task_names)

    def bind_tasks(self, tasks: Dict[str, object]) -> None:
        """Called by the model with its ``{name: task}`` definitions; methods that depend on
        a task's kind (e.g. its likelihood) read it here instead of matching names."""

    @property
    def num_tasks(self) -> int:
        """Number of tasks T."""
        return len(self.task_names)

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses [+ (T, D) gradients] -> :class:`WeightingResult`."""
        raise NotImplementedError
