"""TROA, the Task Representation Optimization Algorithm (DESIGN section 1): the update rule.

Every ``interval`` iterations (set by ``TROAHook``) the model computes each task's gradient on a
shared set, separately on two halves A and B of the batch, and calls :meth:`TROAWeighting.update`:

1. ``g_a, g_b`` (T, D) are all-reduced (mean) when distributed, so every rank sees the same
   numbers and W stays bit-identical everywhere.
2. ``C[t, s] = cos(g_a[t], g_b[s])``: target t on half A, source s on half B. Asymmetric, with a
   diagonal below 1 (a task's agreement with itself across samples).
3. Each target row of W takes one mirror-descent step on the simplex with the entropy mirror map
   (exponentiated gradient, entropy-regularised):
   ``W[t] <- normalise(W[t]^(1 - eta rho) * exp(eta C[t]))``. rho = 0 is plain exponentiated
   gradient; rho > 0 has the fixed point ``softmax(C_bar[t] / rho)``.

W starts at ``(1 - eps) I + eps / N`` (exponentiated gradient cannot leave an exact zero). W and
the last C are buffers (saved in checkpoints). Degenerate steps: a task whose gradient is zero
or non-finite in either half (no labels in the batch, a NaN loss) has its row and column skipped
for that step (warned once per task); its row keeps its weights, and the other rows keep the mass
they give it. eta = 0 leaves W exactly as it is. W feeds the encoder's ``affinity``
(``theta_hat_t = sum_j W[t, j] theta_j``) and, with ``loss_weighting=True``, the loss weights
``lambda_s = N mean_t W[t, s]`` (they sum to N).
"""
import warnings
from typing import Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from .base import BaseWeighting, WeightingResult


def init_affinity(num_tasks: int, eps: float = 0.1) -> Tensor:
    """The TROA start ``(1 - eps) I + eps / N``: row-stochastic, each task mostly itself."""
    if not 0.0 < eps <= 1.0:
        raise ValueError(f'TROA eps must be in (0, 1] (W must start in the interior), got {eps}')
    return (1.0 - eps) * torch.eye(num_tasks) + eps / num_tasks


def valid_gradients(*grads: Tensor) -> Tensor:
    """(T,) bool: tasks whose gradient rows are finite and non-zero in every given (T, D)."""
    ok = torch.ones(grads[0].shape[0], dtype=torch.bool, device=grads[0].device)
    for g in grads:
        ok &= torch.isfinite(g).all(dim=1) & (g.abs().sum(dim=1) > 0)
    return ok


def cosine_matrix(g_target: Tensor, g_source: Tensor) -> Tensor:
    """(T, D) target gradients (half A), (T, D) source gradients (half B) ->
    (T, T) ``C[t, s] = cos(g_target[t], g_source[s])`` (0 where a row is all zeros)."""
    a = g_target / g_target.norm(dim=1, keepdim=True).clamp(min=1e-30)
    b = g_source / g_source.norm(dim=1, keepdim=True).clamp(min=1e-30)
    return (a @ b.T).clamp(-1.0, 1.0)


def mirror_descent_update(W: Tensor, C: Tensor, eta: float, rho: float = 0.0,
                          valid: Optional[Tensor] = None) -> Tensor:
    """One entropy-regularised exponentiated-gradient step on every valid row of W:
    ``W[t, v] <- mass_t * normalise(W[t, v]^(1 - eta rho) exp(eta C[t, v]))`` over the valid
    columns v, ``mass_t = sum_v W[t, v]`` (invalid rows and columns keep their entries)."""
    if eta < 0 or rho < 0 or eta * rho > 1:
        raise ValueError(f'TROA needs eta >= 0, rho >= 0 and eta * rho <= 1; '
                         f'got eta={eta}, rho={rho}')
    if eta == 0:
        return W.clone()
    n = W.shape[0]
    valid = torch.ones(n, dtype=torch.bool, device=W.device) if valid is None else valid
    cols = valid.nonzero().flatten()
    if cols.numel() < 2:
        return W.clone()
    rows_cols = torch.meshgrid(cols, cols, indexing='ij')
    out = W.detach().to(torch.float64, copy=True)                     # float64: no drift
    sub = out[rows_cols]                                              # (V, V)
    logits = (1.0 - eta * rho) * sub.log() + eta * C.double()[rows_cols]
    out[rows_cols] = sub.sum(dim=1, keepdim=True) * torch.softmax(logits, dim=1)
    out[cols] = out[cols] / out[cols].sum(dim=1, keepdim=True)        # exact simplex rows
    return out.to(W.dtype)


@WEIGHTINGS.register_module()
class TROAWeighting(BaseWeighting):
    """Holds the TROA affinity W and the last cosine matrix C; updates W from task gradients.

    Args:
        task_names: the tasks (filled in by the model).
        eta: mirror-descent step size (0 freezes W).
        rho: entropy regularisation (fixed point ``softmax(C_bar / rho)``); ``eta * rho <= 1``.
        eps: initial off-diagonal mass, ``W0 = (1 - eps) I + eps / N``.
        gradient_mode: ``'params'`` (task gradients on the adapter parameters) or
            ``'representation'`` (on the tensor entering the first adapter block; cheaper).
        loss_weighting: also weight the losses by ``lambda_s = N mean_t W[t, s]``.
    """

    GRADIENT_MODES = ('params', 'representation')

    def __init__(self, task_names: Sequence[str], eta: float = 0.1, rho: float = 0.5,
                 eps: float = 0.1, gradient_mode: str = 'params', loss_weighting: bool = False):
        super().__init__(task_names)
        if gradient_mode not in self.GRADIENT_MODES:
            raise ValueError(f'TROAWeighting.gradient_mode must be one of {self.GRADIENT_MODES}, '
                             f'got {gradient_mode!r}')
        if eta < 0 or rho < 0 or eta * rho > 1:
            raise ValueError(f'TROAWeighting needs eta >= 0, rho >= 0, eta * rho <= 1; '
                             f'got eta={eta}, rho={rho}')
        self.eta, self.rho, self.eps = float(eta), float(rho), float(eps)
        self.gradient_mode = gradient_mode
        self.loss_weighting = bool(loss_weighting)
        self.register_buffer('affinity', init_affinity(self.num_tasks, eps))
        self.register_buffer('cosine', torch.zeros(self.num_tasks, self.num_tasks))
        self.register_buffer('num_updates', torch.tensor(0, dtype=torch.long))
        #: set by ``TROAHook`` before an iteration on which the model must run an update
        self.due = False
        #: set by ``TROAHook`` when training starts; without it W never changes
        self.scheduled = False
        self._warned = set()

    def loss_weights(self) -> Tensor:
        """(T,) ``lambda_s = N mean_t W[t, s]`` (sums to N)."""
        return self.num_tasks * self.affinity.mean(dim=0)

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """Unit weights: with ``loss_weighting`` the model's ``task_weights`` carry lambda."""
        return WeightingResult(weights=torch.ones_like(losses).detach())

    @torch.no_grad()
    def update(self, g_a: Tensor, g_b: Tensor) -> Tensor:
        """(T, D) half-A and half-B task gradients -> the updated (T, T) W (also stored).

        Collective when distributed: every rank must call it on the same iteration."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            both = torch.stack([g_a, g_b]).float()
            dist.all_reduce(both)
            both /= dist.get_world_size()
            g_a, g_b = both[0], both[1]
        g_a, g_b = g_a.to(self.cosine), g_b.to(self.cosine)
        valid = valid_gradients(g_a, g_b)
        for i in (~valid).nonzero().flatten().tolist():
            if self.task_names[i] not in self._warned:
                self._warned.add(self.task_names[i])
                warnings.warn(f'TROA: task {self.task_names[i]!r} has a zero or non-finite '
                              'gradient (no labels in the batch?); its row and column of W are '
                              'skipped on such steps (warned once)')
        cos = cosine_matrix(torch.nan_to_num(g_a), torch.nan_to_num(g_b))
        pair = valid[:, None] & valid[None, :]
        self.cosine.copy_(torch.where(pair, cos, self.cosine))
        self.affinity.copy_(mirror_descent_update(self.affinity, self.cosine, self.eta,
                                                  self.rho, valid))
        self.num_updates += 1
        return self.affinity
