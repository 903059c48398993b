"""The interface every task-weighting method implements, and the fixed points where the model
calls it.

A weighting method is one class in one file (register it in ``WEIGHTINGS``; nothing else
changes). At build the model calls :meth:`BaseWeighting.bind_tasks` with the task definitions
and :meth:`BaseWeighting.bind_train_tasks` with the tasks it trains (``model.train_tasks``; the
others are evaluated only, and their losses are a constant 0 in every (T,) vector below).
``MultiTaskModel.loss`` calls it at fixed points of every training step, always in this order
and on every rank:

1. :meth:`BaseWeighting.before_forward` ``(step)``: the step starts; the previous step's
   backward and optimizer step are done. A method may set ``step.want_branch_input`` to get
   the (T*B, ...) tensor entering the encoder's task branch.
2. the forward: the encoder reads :meth:`BaseWeighting.task_affinity` (a (T, T) task-mixing
   matrix, by reference: no copy is kept anywhere else; None is the identity).
3. :meth:`BaseWeighting.after_losses` ``(step)``: the unweighted per-task losses and this
   forward's graph are there (``step.outputs``, ``step.losses``, ``step.branch_input``, all
   over the trained tasks only, in task order); a method may take extra gradients from the
   graph (``retain_graph``).
4. :meth:`BaseWeighting.forward` ``(losses, grads)``: per-task losses (T,) and, when the
   method sets ``requires_grads``, the per-task gradients (T, D) on the explicit shared set
   (flattened and concatenated in the order of ``MultiTaskModel.shared_parameters()``) ->
   :class:`WeightingResult`: loss weights (which may carry gradient to the method's own
   parameters), optional extra loss terms, optionally the combined gradient (D,) that the
   shared set should receive instead of ``sum_t w_t g_t``.
5. :meth:`BaseWeighting.after_backward` ``()``: after backward and the optimizer step. Under
   DDP nothing can run between the two, so this is called by the method's own hook
   (``after_train_iter``) and, at the latest, by the method's next ``before_forward``.

The model turns a combined gradient into a plain loss term (mmengine's DDP wrapper only sees
losses): ``sum_p <p - p.detach(), (g*_p - sum_t w_t g_t,p).detach()>``. Its value is zero and
its gradient on the shared parameter p is ``g*_p - sum_t w_t g_t,p``, so the total gradient on
p is exactly ``g*_p`` and every other parameter keeps its ordinary gradient.
"""
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
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


@dataclass
class TrainingStep:
    """What the model knows at the fixed points of one training step (filled as it goes)."""

    #: the model (``task_losses``, ``shared_parameters()``, ``losses[task]``, ``task_names``)
    model: Any
    #: the batch's data samples (ground truth, image paths)
    data_samples: Sequence
    #: set by ``before_forward`` to ask for the (T*B, ...) encoder task-branch input
    want_branch_input: bool = False
    #: ``{task: (B, C, H, W)}`` raw outputs of this forward (after the forward)
    outputs: Dict[str, Tensor] = field(default_factory=dict)
    #: ``{task: loss}`` unweighted (after the losses)
    losses: Dict[str, Tensor] = field(default_factory=dict)
    #: the leaf entering the encoder's task branch, when asked for
    branch_input: Optional[Tensor] = None


def per_task_gradients(losses: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """(T, D): each loss's gradient on ``params``, flattened (zeros where unused, and a zero
    row for a constant loss, e.g. a task that is not trained); the graph is retained for the
    training backward.

    Always float32, whatever the parameters' dtype or an enclosing autocast (``--amp``): the
    rows feed cosines and projections (TROA, PCGrad), which bf16's 8-bit mantissa would blur.
    """
    rows = []
    for value in losses:
        if not value.requires_grad:
            rows.append(torch.cat([torch.zeros(p.numel(), dtype=torch.float32, device=p.device)
                                   for p in params]))
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g.float().flatten() if g is not None else
                                torch.zeros(p.numel(), dtype=torch.float32, device=p.device))
                               for g, p in zip(grads, params)]))
    return torch.stack(rows)


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
        #: the tasks trained (with a loss); the others are evaluated only (``bind_train_tasks``)
        self.train_task_names: List[str] = list(self.task_names)

    def bind_tasks(self, tasks: Dict[str, object]) -> None:
        """Called by the model with its ``{name: task}`` definitions; methods that depend on
        a task's kind (e.g. its likelihood) read it here instead of matching names."""

    def bind_train_tasks(self, names: Sequence[str]) -> None:
        """Called by the model at build with the tasks it trains (``model.train_tasks``; all
        by default). The others are evaluated only: the (T,) losses still list them, as a
        constant 0 with a zero gradient row, and a method keeps its state for them as it is
        (e.g. TROA leaves their rows and columns of W at the loaded values)."""
        unknown = sorted(set(names) - set(self.task_names))
        if unknown:
            raise KeyError(f'model.train_tasks names unknown tasks {unknown}; the weighting\'s '
                           f'tasks are {self.task_names}')
        self.train_task_names = [t for t in self.task_names if t in set(names)]

    @property
    def train_mask(self) -> Tensor:
        """(T,) bool: which tasks are trained (``bind_train_tasks``)."""
        return torch.tensor([t in self.train_task_names for t in self.task_names])

    @property
    def num_tasks(self) -> int:
        """Number of tasks T."""
        return len(self.task_names)

    # ------------------------------------------------ the fixed points (defaults: nothing)
    def task_affinity(self) -> Optional[Tensor]:
        """(T, T) task-mixing matrix the adapter encoder reads at every forward (row t mixes
        the task embeddings for task t), or None for the identity."""
        return None

    def before_forward(self, step: TrainingStep) -> None:
        """A training step starts (grad enabled, model in train mode)."""

    def after_losses(self, step: TrainingStep) -> None:
        """The per-task losses of ``step`` are computed; its graph is alive."""

    def after_backward(self) -> None:
        """Backward and the optimizer step are done (see the module docstring for who
        calls it)."""

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """(T,) losses [+ (T, D) gradients] -> :class:`WeightingResult`."""
        raise NotImplementedError

    def _warn_once(self, message: str) -> None:
        """A warning shown once per weighting instance."""
        seen: List[str] = self.__dict__.setdefault('_warned_messages', [])
        if message not in seen:
            seen.append(message)
            warnings.warn(message)
