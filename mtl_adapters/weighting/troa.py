"""TROA, the Task Representation Optimization Algorithm (docs/methods.md#troa): the update rule.

TROA lives in this file alone: ``TROAHook`` only marks the iterations due (every ``interval``)
and reports W and C; the model knows nothing of TROA and calls the weighting interface
(``base.py``). On a due iteration :class:`TROAWeighting` takes each task's gradient on a shared
set from that iteration's own forward graph (never a second forward, never through the frozen
trunk), separately on two halves A and B of the batch, and calls :meth:`TROAWeighting.update`:

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
they give it. eta = 0 leaves W exactly as it is. Evaluated-only tasks (left out of
``model.train_tasks``: zero-shot task transfer) have no loss, so nothing measures how they help
or are helped: their rows and columns are skipped on every update (``bind_train_tasks``), so
they keep the values W was loaded with (the source model's) exactly, and the trained rows keep
the mass they give them. W is kept in one place, the buffer ``affinity`` here: the adapter
encoder reads it by reference at every forward (``task_affinity``;
``theta_hat_t = sum_j W[t, j] theta_j``) and, with ``loss_weighting=True``, the loss weights are
``lambda_s = N mean_t W[t, s]`` (they sum to N).

The counterfactual ``zero_cosines=True`` (``configs/troa/troa-zero-cosines_*``) runs everything
above (the same gradients, the same skipped rows, the same cost) but uses ``C = 0`` in step 3,
so W moves only through its prior: ``W[t] <- normalise(W[t]^(1 - eta rho))``, towards uniform
rows for rho > 0 (with rho = 0 W never moves). It tells what the measured cosines add over the
regulariser's drift alone; ``cosine`` then holds the zeros that were used.

One rule in both gradient modes: a step's gradients are taken from its own graph, and the
update they make is written to W in ``after_backward``, after that step's backward and
optimizer step. So within a step the adapters' conditioning and the loss weights lambda read
the same W (the one before the step's update), and the next step reads the updated W.

The two gradient modes, at the model's fixed points:

- ``'params'``: in ``after_losses``, each task's gradient on the adapter parameters on each
  half (2T ``autograd.grad`` calls on the step's graph), kept until ``after_backward``.
- ``'representation'``: ``before_forward`` asks for the (T*B, ...) adapter input;
  ``after_losses`` hooks its gradient, which the training backward fills, and ``after_backward``
  runs the update. ``g_t(half) = d L_t(half) / d x_half`` is needed up to a positive factor per
  (task, half), which the cosine ignores. For a task whose loss is ``batch_separable`` the
  training backward already holds it (the batch loss's gradient on a half is parallel to the
  half's own loss gradient); a non-separable loss (berHu, SILog) gets it from its own per-half
  losses in one extra ``autograd.grad`` in ``after_losses``.
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from .base import BaseWeighting, TrainingStep, WeightingResult, per_task_gradients


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
    new = sub.sum(dim=1, keepdim=True) * torch.softmax(logits, dim=1)
    # exact simplex rows: the valid block takes whatever mass the other entries leave, so the
    # entries of invalid (e.g. evaluated-only) columns are not touched, not even by an ulp
    rest = out[cols].sum(dim=1, keepdim=True) - sub.sum(dim=1, keepdim=True)
    out[rows_cols] = new * ((1.0 - rest) / new.sum(dim=1, keepdim=True))
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
        zero_cosines: the counterfactual: every update uses ``C = 0`` (W moves only by the
            regulariser, ``W[t] <- normalise(W[t]^(1 - eta rho))``); gradients are still taken
            (same cost, same skipped tasks). False: the measured cosines (TROA itself).

    ``due`` is set by ``TROAHook`` before an iteration that runs an update; ``scheduled`` when
    training starts (without a hook W never changes, which is warned about).
    """

    GRADIENT_MODES = ('params', 'representation')

    def __init__(self, task_names: Sequence[str], eta: float = 0.1, rho: float = 0.5,
                 eps: float = 0.1, gradient_mode: str = 'params', loss_weighting: bool = False,
                 zero_cosines: bool = False):
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
        if not isinstance(zero_cosines, bool):
            raise TypeError(f'TROAWeighting.zero_cosines must be True or False, '
                            f'got {zero_cosines!r}')
        self.zero_cosines = zero_cosines
        self.register_buffer('affinity', init_affinity(self.num_tasks, eps))
        self.register_buffer('cosine', torch.zeros(self.num_tasks, self.num_tasks))
        self.register_buffer('num_updates', torch.tensor(0, dtype=torch.long))
        #: set by ``TROAHook`` before an iteration on which the model must run an update
        self.due = False
        #: set by ``TROAHook`` when training starts; without it W never changes
        self.scheduled = False
        self._warned = set()
        self._step_due = False                    # this step takes task gradients
        self._branch_grad: Optional[Tensor] = None
        self._exact_rows: Dict[str, Tuple[Tensor, Tensor]] = {}
        #: 'params' mode: the step's half gradients and their dimension, until after_backward
        self._pending_rows: Optional[Tuple[Dict[str, Tuple[Tensor, Tensor]], int]] = None
        #: the tasks of the branch input's (T*B) chunks, in order (the step's trained tasks)
        self._branch_tasks: List[str] = []

    def task_affinity(self) -> Tensor:
        """W itself (not a copy): what the adapter encoder mixes the task embeddings with."""
        return self.affinity

    def loss_weights(self) -> Tensor:
        """(T,) ``lambda_s = N mean_t W[t, s]`` (sums to N)."""
        return self.num_tasks * self.affinity.mean(dim=0)

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        """lambda with ``loss_weighting`` (no gradient: W moves only by its update), else 1."""
        if self.loss_weighting:
            return WeightingResult(weights=self.loss_weights().detach().to(losses))
        return WeightingResult(weights=torch.ones_like(losses).detach())

    # ------------------------------------------------------ the model's fixed points
    def before_forward(self, step: TrainingStep) -> None:
        """Finish an update the previous backward fed; on a due step in 'representation'
        mode ask for the encoder's task-branch input."""
        self.after_backward()
        if not (self.scheduled or self.due) and self.eta > 0:
            self._warn_once('TROAWeighting is configured but no TROAHook schedules its '
                            'updates, so W never changes: add custom_hooks = '
                            "[..., dict(type='TROAHook', interval=10)] to the config")
        self._step_due, self.due = self.due, False
        if self._step_due and self.gradient_mode == 'representation':
            if not hasattr(step.model.encoder, 'adapt'):
                raise TypeError(f'{type(step.model.encoder).__name__} has no trunk/adapt split: '
                                "TROA gradient_mode='representation' needs an adapter encoder; "
                                "use model.weighting.gradient_mode='params'")
            step.want_branch_input = True

    def after_losses(self, step: TrainingStep) -> None:
        """On a due step: 'params' mode takes the task gradients now, 'representation' mode
        hooks the branch input's gradient; in both the update is written to W in
        ``after_backward`` (this step's loss weights read the W its forward read)."""
        if not self._step_due:
            return
        self._step_due = False
        if self.gradient_mode == 'params':
            self._pending_rows = self._params_rows(step)
        else:
            self._branch_tasks = list(step.outputs)
            step.branch_input.register_hook(self._capture_branch_grad)
            self._exact_representation_rows(step)

    def after_backward(self) -> Optional[Tensor]:
        """Write the pending update of a due step to W: 'params' mode from the gradients taken
        in ``after_losses``; 'representation' mode from task t's gradient on chunk t of the
        (T*B, ...) adapter input, summed over each half of the batch (exact rows for the
        non-separable losses). No-op if nothing is pending. A collective under DDP: every rank
        calls it at the same point (``TROAHook.after_train_iter``, else the next step)."""
        pending, self._pending_rows = self._pending_rows, None
        if pending is not None:
            return self._update_from_rows(*pending)
        grad, self._branch_grad = self._branch_grad, None
        exact, self._exact_rows = self._exact_rows, {}
        if grad is None:
            return None
        tasks = self._branch_tasks
        grad = grad.unflatten(0, (len(tasks), grad.shape[0] // len(tasks)))
        half = grad.shape[1] // 2                                       # (T, B, H, W, C)
        rows = {}
        if half == 0:
            self._warn_small_batch()
        else:
            rows = {t: exact.get(t, (grad[i, :half].sum(0).flatten(),
                                     grad[i, half:].sum(0).flatten()))
                    for i, t in enumerate(tasks)}
        return self._update_from_rows(rows, grad[0, 0].numel())

    # ------------------------------------------------------------------ internals
    def _capture_branch_grad(self, grad: Tensor) -> None:
        """Tensor hook: keep the adapter input's gradient from the training backward."""
        self._branch_grad = grad.detach()

    def _warn_small_batch(self) -> None:
        """TROA splits each GPU's batch into two halves: a batch of 1 gives no gradients."""
        self._warn_once('TROA needs at least 2 images per GPU (it compares two halves of the '
                        'batch); W is not updated on such steps')

    def _update_from_rows(self, rows: Dict[str, Tuple[Tensor, Tensor]], dim: int) -> Tensor:
        """``{task: (g_half_a, g_half_b)}`` -> :meth:`update` (zeros for absent tasks: skipped
        there). A collective under DDP: every rank calls it."""
        g_a = torch.zeros(self.num_tasks, dim, device=self.affinity.device)
        g_b = torch.zeros_like(g_a)
        for i, name in enumerate(self.task_names):
            if name in rows:
                g_a[i], g_b[i] = rows[name][0].detach(), rows[name][1].detach()
        return self.update(g_a, g_b)

    @staticmethod
    def _halves(step: TrainingStep) -> Tuple[int, int]:
        """(batch, half) of the step."""
        batch = next(iter(step.outputs.values())).shape[0]
        return batch, batch // 2

    def _params_rows(self, step: TrainingStep) -> Tuple[Dict[str, Tuple[Tensor, Tensor]], int]:
        """'params' mode: each task's gradient on the shared (adapter) parameters, separately
        on halves A and B of the batch, from this step's graph -> (rows, dimension)."""
        shared = step.model.shared_parameters()
        batch, half = self._halves(step)
        rows = {}
        if half == 0:
            self._warn_small_batch()
        if half > 0 and shared:
            parts = [slice(0, half), slice(half, batch)]
            per_half = [step.model.task_losses({t: o[part] for t, o in step.outputs.items()},
                                               step.data_samples[part]) for part in parts]
            grads = [per_task_gradients(list(h.values()), shared) for h in per_half]
            rows = {t: (grads[0][i].detach(), grads[1][i].detach())
                    for i, t in enumerate(step.outputs)}
        return rows, sum(p.numel() for p in shared)

    def _exact_representation_rows(self, step: TrainingStep) -> None:
        """Per-half adapter-input gradients of the tasks whose loss is not batch-separable,
        from their half-batch losses (one ``autograd.grad``: task t's half losses reach only
        chunk t's half of the branch input, so their sum gives every row at once)."""
        batch, half = self._halves(step)
        names = [t for t in step.outputs
                 if not getattr(step.model.losses[t], 'batch_separable', False)]
        if half == 0 or not names:
            return
        total = 0
        for part in (slice(0, half), slice(half, batch)):
            losses = step.model.task_losses({t: step.outputs[t][part] for t in names},
                                            step.data_samples[part])
            total = total + sum(losses.values())
        grad, = torch.autograd.grad(total, step.branch_input, retain_graph=True)
        tasks = list(step.outputs)                                       # the branch's chunks
        grad = grad.unflatten(0, (len(tasks), batch))                    # (T, B, H, W, C)
        for t in names:
            i = tasks.index(t)
            self._exact_rows[t] = (grad[i, :half].sum(0).flatten(),
                                   grad[i, half:].sum(0).flatten())

    @torch.no_grad()
    def update(self, g_a: Tensor, g_b: Tensor) -> Tensor:
        """(T, D) half-A and half-B task gradients -> the updated (T, T) W (also stored).

        Collective when distributed: every rank must call it on the same iteration. Computed
        in fp32 with autocast off (under ``--amp`` a bf16 cosine is off by ~1e-3)."""
        with torch.autocast(g_a.device.type, enabled=False):
            return self._update(g_a.float(), g_b.float())

    def _update(self, g_a: Tensor, g_b: Tensor) -> Tensor:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            both = torch.stack([g_a, g_b]).float()
            dist.all_reduce(both)
            both /= dist.get_world_size()
            g_a, g_b = both[0], both[1]
        g_a, g_b = g_a.to(self.cosine), g_b.to(self.cosine)
        trained = self.train_mask.to(g_a.device)
        valid = valid_gradients(g_a, g_b) & trained       # evaluated-only tasks: W kept
        for i in (~valid & trained).nonzero().flatten().tolist():
            if self.task_names[i] not in self._warned:
                self._warned.add(self.task_names[i])
                warnings.warn(f'TROA: task {self.task_names[i]!r} has a zero or non-finite '
                              'gradient (no labels in the batch?); its row and column of W are '
                              'skipped on such steps (warned once)')
        cos = cosine_matrix(torch.nan_to_num(g_a), torch.nan_to_num(g_b))
        if self.zero_cosines:                              # the counterfactual: C = 0
            cos = torch.zeros_like(cos)
        pair = valid[:, None] & valid[None, :]
        self.cosine.copy_(torch.where(pair, cos, self.cosine))
        self.affinity.copy_(mirror_descent_update(self.affinity, self.cosine, self.eta,
                                                  self.rho, valid))
        self.num_updates += 1
        return self.affinity
