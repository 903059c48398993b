"""The multi-task model: image -> encoder (trunk once) -> one decoder per task -> losses.

Data flow: ``inputs (B, 3, H, W)`` -> ``encoder(inputs, tasks)`` gives each task its stage
features (the frozen trunk runs once; an adapter encoder adds task-specific deep stages) ->
``decoders[task](features, (H, W))`` gives (B, C_task, H, W) -> ``task.postprocess`` /
``task`` losses. Loss weights are a buffer (``task_weights``), so a weighting method or hook can
change them and they work under DDP (mmengine's wrapper calls our loss, not our train_step).

Weighting (``weighting=dict(type=...)`` from ``WEIGHTINGS``, uniform by default) happens inside
``loss()`` too, so it also runs under DDP, where no hook can run between backward and step:
gradient methods (PCGrad, GradNorm) take per-task gradients on ``shared_parameters()`` with
``torch.autograd.grad(retain_graph=True)`` and return their combined gradient as a zero-valued
surrogate loss term (``mtl_adapters/weighting/base.py``). TROA takes its task gradients on
the iterations ``TROAHook`` marks due, from that iteration's own forward graph: never a second
forward, never through the frozen trunk (see ``loss``).
"""
import warnings
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch import Tensor

from mtl_adapters.registry import MODELS, WEIGHTINGS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks
from mtl_adapters.weighting import TROAWeighting


def check_finite_losses(losses: Dict[str, Tensor],
                        data_samples: Sequence[MultiTaskDataSample]) -> None:
    """Stop training on a non-finite task loss, before the step and before any checkpoint of
    that state (one device sync per step). Names the iteration, the task and the images."""
    values = torch.stack([v.detach().float() for v in losses.values()])
    if bool(torch.isfinite(values).all()):
        return
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    iteration = hub.get_info('iter')
    bad = {n: float(v) for n, v in losses.items() if not torch.isfinite(v)}
    paths = [s.metainfo.get('img_path') for s in data_samples if 'img_path' in s.metainfo]
    where = 'iteration ' + (str(iteration + 1) if iteration is not None else '?')
    raise FloatingPointError(
        f'non-finite loss at {where}: {bad}. Training stopped before this step was applied, '
        'so no checkpoint holds its state; resume from the last checkpoint with a lower '
        'learning rate (optim_wrapper.optimizer.lr) or check the labels of this batch'
        + (f': {paths}' if paths else '.'))


@MODELS.register_module()
class MultiTaskModel(BaseModel):
    """Frozen encoder + per-task decoders, trained on a weighted sum of task losses.

    Args:
        tasks: task configs; their order is the order of every per-task tensor.
        encoder: encoder config (``SwinV2Encoder`` or the adapter encoder).
        decoder: decoder config shared by all tasks, or ``{task: config}``; ``in_channels`` and
            ``out_channels`` are filled in.
        data_preprocessor: preprocessor config (``tasks`` filled in).
        task_weights: initial loss weights ``{task: w}`` (default 1 each).
        weighting: task-weighting config from ``WEIGHTINGS`` (default ``UniformWeighting``);
            its weights multiply ``task_weights``.
    """

    def __init__(self, tasks: Sequence, encoder: dict, decoder: dict,
                 data_preprocessor: Optional[dict] = None,
                 task_weights: Optional[Dict[str, float]] = None,
                 weighting: Optional[dict] = None, init_cfg=None):
        self.tasks = build_tasks(tasks)
        data_preprocessor = dict(data_preprocessor or dict(type='MultiTaskDataPreprocessor'))
        data_preprocessor.setdefault('tasks', list(self.tasks.values()))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.task_names: List[str] = list(self.tasks)
        encoder = dict(encoder)
        if getattr(MODELS.get(encoder['type']) if isinstance(encoder['type'], str)
                   else encoder['type'], 'needs_task_names', False):
            encoder.setdefault('task_names', self.task_names)  # adapter encoders embed tasks
        self.encoder = MODELS.build(encoder)
        per_task = decoder if 'type' not in decoder else {t: decoder for t in self.task_names}
        unknown = set(per_task) - set(self.task_names)
        missing = [t for t in self.task_names if t not in per_task]
        if unknown or missing:
            raise KeyError(f'model.decoder: give one config for all tasks (with `type`) or one '
                           f'per task {self.task_names}; unknown {sorted(unknown)}, '
                           f'missing {missing}')
        self.decoders = nn.ModuleDict({
            name: MODELS.build(dict(per_task[name], in_channels=self.encoder.out_channels,
                                    out_channels=task.out_channels))
            for name, task in self.tasks.items()})
        self.losses = nn.ModuleDict({n: t.build_loss() for n, t in self.tasks.items()})
        unknown = set(task_weights or {}) - set(self.task_names)
        if unknown:
            raise KeyError(f'model.task_weights names unknown tasks {sorted(unknown)}; '
                           f'tasks are {self.task_names}')
        weights = [float((task_weights or {}).get(n, 1.0)) for n in self.task_names]
        self.register_buffer('task_weights', torch.tensor(weights))
        self.weighting = WEIGHTINGS.build(dict(weighting or dict(type='UniformWeighting'),
                                               task_names=self.task_names))
        self.weighting.bind_tasks(self.tasks)
        self._warned = set()
        self._troa_branch_grad: Optional[Tensor] = None
        self._troa_exact_rows: Dict[str, tuple] = {}

    def shared_parameters(self) -> List[nn.Parameter]:
        """The explicit shared trainable set (gradient weighting, TROA 'params' mode): the
        encoder's adapter parameters if it has them, else its trainable parameters (none for
        the frozen baseline; decoders are per task, so nothing in them is shared)."""
        if hasattr(self.encoder, 'adapter_named_parameters'):
            return [p for _, p in self.encoder.adapter_named_parameters() if p.requires_grad]
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def sync_affinity(self) -> None:
        """Copy TROA's W into the encoder's ``affinity`` and, with ``loss_weighting``, its
        lambda into ``task_weights`` (done before a forward: never while a graph uses them)."""
        if not isinstance(self.weighting, TROAWeighting):
            return
        if hasattr(self.encoder, 'set_affinity'):
            self.encoder.set_affinity(self.weighting.affinity)
        if self.weighting.loss_weighting:
            self.task_weights.copy_(self.weighting.loss_weights())

    # ------------------------------------------------------------------ forward
    def forward_tasks(self, inputs: Tensor, task_names: Optional[Sequence[str]] = None,
                      return_branch_input: bool = False):
        """(B, 3, H, W) -> ``{task: (B, C_task, H, W)}`` raw outputs (and, with
        ``return_branch_input``, the (T*B, ...) leaf entering the encoder's first adapter)."""
        task_names = list(task_names or self.task_names)
        self.sync_affinity()
        if return_branch_input:
            if not hasattr(self.encoder, 'adapt'):
                raise TypeError(f'{type(self.encoder).__name__} has no trunk/adapt split: TROA '
                                "gradient_mode='representation' needs an adapter encoder; use "
                                "model.weighting.gradient_mode='params'")
            feats, branch_input = self.encoder.adapt(self.encoder.trunk(inputs), task_names,
                                                     return_branch_input=True)
        else:
            feats = self.encoder(inputs, task_names)
        size = tuple(inputs.shape[-2:])
        outputs = {t: self.decoders[t](feats[t], size) for t in task_names}
        return (outputs, branch_input) if return_branch_input else outputs

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        """mmengine entry point: mode 'loss', 'predict' or 'tensor'."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.forward_tasks(inputs)
        raise ValueError(f'unknown mode {mode!r}; use loss, predict or tensor')

    # ------------------------------------------------------------------- losses
    def stack_gt(self, name: str, data_samples: Sequence[MultiTaskDataSample],
                 like: Tensor) -> Optional[Tensor]:
        """(B, C, H, W) ground truth of ``name``; images without it are filled with the
        task's ignore value. None if no image in the batch has this task."""
        task = self.tasks[name]
        gts = [s.get_gt(name) for s in data_samples]
        if all(g is None for g in gts):
            return None
        shape = (task.gt_channels,) + tuple(like.shape[-2:])
        ref = next(g for g in gts if g is not None)
        return torch.stack([g if g is not None else ref.new_full(shape, task.ignore_value)
                            for g in gts]).to(like.device)

    def task_losses(self, outputs: Dict[str, Tensor],
                    data_samples: Sequence[MultiTaskDataSample]) -> Dict[str, Tensor]:
        """Unweighted loss of every task (a zero that depends on the output when a task has
        no labels in this batch, so every parameter still takes part under DDP)."""
        losses = {}
        for name, out in outputs.items():
            gt = self.stack_gt(name, data_samples, out)
            if gt is None:
                losses[name] = out.sum() * 0.0
                continue
            losses[name] = self.losses[name](out, gt, self.tasks[name].valid_mask(gt))
        return losses

    def per_task_gradients(self, losses: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
        """(T, D): each loss's gradient on ``params``, flattened (zeros where unused)."""
        rows = []
        for value in losses:
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                   for g, p in zip(grads, params)]))
        return torch.stack(rows)

    def _troa_update(self, rows: Dict[str, tuple], dim: int) -> Tensor:
        """``{task: (g_half_a, g_half_b)}`` -> ``TROAWeighting.update`` (zeros for absent
        tasks: skipped there). A collective under DDP: every rank calls it."""
        g_a = torch.zeros(len(self.task_names), dim, device=self.task_weights.device)
        g_b = torch.zeros_like(g_a)
        for i, name in enumerate(self.task_names):
            if name in rows:
                g_a[i], g_b[i] = rows[name][0].detach(), rows[name][1].detach()
        return self.weighting.update(g_a, g_b)

    def troa_params_step(self, outputs: Dict[str, Tensor],
                         data_samples: Sequence[MultiTaskDataSample]) -> Tensor:
        """TROA 'params' mode: each task's gradient on the adapter parameters, separately on
        halves A and B of the batch (2T ``autograd.grad`` calls on this forward's graph)."""
        shared = self.shared_parameters()
        batch = next(iter(outputs.values())).shape[0]
        half = batch // 2
        rows = {}
        if half == 0:
            self._warn_small_batch()
        if half > 0 and shared:
            parts = [slice(0, half), slice(half, batch)]
            per_half = [self.task_losses({t: o[part] for t, o in outputs.items()},
                                         data_samples[part]) for part in parts]
            grads = [self.per_task_gradients(list(h.values()), shared) for h in per_half]
            rows = {t: (grads[0][i], grads[1][i]) for i, t in enumerate(outputs)}
        return self._troa_update(rows, sum(p.numel() for p in shared))

    def finish_troa(self) -> Optional[Tensor]:
        """TROA 'representation' mode: the update from task t's gradient on chunk t of the
        (T*B, ...) adapter input, summed over each half of the batch. No-op if nothing is
        pending. Called by ``TROAHook`` after the step and by the next ``loss()``: on every
        rank at the same point.

        What it computes: ``g_t(half) = d L_t(half) / d x_half`` up to a positive factor per
        (task, half), which the cosine ignores, i.e. exactly the per-half definition. For a
        task whose loss is ``batch_separable`` the training backward already holds it (the
        batch loss's gradient on a half is parallel to the half's own loss gradient), so it is
        read from there for free; a non-separable loss (berHu, SILog) gets it from its own
        per-half losses in one extra ``autograd.grad`` in ``loss()``
        (``_troa_exact_rows``)."""
        grad, self._troa_branch_grad = self._troa_branch_grad, None
        exact, self._troa_exact_rows = self._troa_exact_rows, {}
        if grad is None:
            return None
        num_tasks = len(self.task_names)
        grad = grad.unflatten(0, (num_tasks, grad.shape[0] // num_tasks))   # (T, B, H, W, C)
        half = grad.shape[1] // 2
        rows = {}
        if half == 0:
            self._warn_small_batch()
        else:
            rows = {t: exact.get(t, (grad[i, :half].sum(0).flatten(),
                                     grad[i, half:].sum(0).flatten()))
                    for i, t in enumerate(self.task_names)}
        return self._troa_update(rows, grad[0, 0].numel())

    def troa_exact_representation_rows(self, outputs: Dict[str, Tensor], branch_input: Tensor,
                                       data_samples: Sequence[MultiTaskDataSample]) -> None:
        """Per-half adapter-input gradients of the tasks whose loss is not batch-separable,
        from their half-batch losses (one ``autograd.grad``: task t's half losses reach only
        chunk t's half of ``branch_input``, so their sum gives every row at once)."""
        batch = branch_input.shape[0] // len(self.task_names)
        half = batch // 2
        names = [t for t in outputs if not getattr(self.losses[t], 'batch_separable', False)]
        if half == 0 or not names:
            return
        total = 0
        for part in (slice(0, half), slice(half, batch)):
            losses = self.task_losses({t: outputs[t][part] for t in names}, data_samples[part])
            total = total + sum(losses.values())
        grad, = torch.autograd.grad(total, branch_input, retain_graph=True)
        grad = grad.unflatten(0, (len(self.task_names), batch))            # (T, B, H, W, C)
        for t in names:
            i = self.task_names.index(t)
            self._troa_exact_rows[t] = (grad[i, :half].sum(0).flatten(),
                                        grad[i, half:].sum(0).flatten())

    def _capture_branch_grad(self, grad: Tensor) -> None:
        """Tensor hook: keep the adapter input's gradient from the training backward."""
        self._troa_branch_grad = grad.detach()

    def _warn_once(self, message: str) -> None:
        """A warning shown once per model."""
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message)

    def _warn_small_batch(self) -> None:
        """TROA splits each GPU's batch into two halves: a batch of 1 gives no gradients."""
        self._warn_once('TROA needs at least 2 images per GPU (it compares two halves of the '
                        'batch); W is not updated on such steps')

    def weigh_losses(self, losses: Dict[str, Tensor]) -> dict:
        """Per-task losses -> the loss dict: ``<task>.loss_<name>`` weighted by
        ``task_weights`` x the weighting's weights, plus ``weighting.loss_*`` terms."""
        names = list(losses)
        index = [self.task_names.index(n) for n in names]
        values = torch.stack([losses[n] for n in names])
        static = self.task_weights[index]
        shared, grads = [], None
        if self.weighting.requires_grads and torch.is_grad_enabled():
            shared = self.shared_parameters()
            if shared:
                grads = self.per_task_gradients(list(static * values), shared)
            else:
                self._warn_once(f'{type(self.weighting).__name__} needs shared trainable '
                                'parameters but the encoder has none (frozen baseline); it '
                                'acts as uniform weighting. Use an adapter encoder.')
        result = self.weighting(values, grads)
        weights = static * result.weights
        out = {}
        for i, name in enumerate(names):
            out[f'{name}.loss_{self.losses[name].loss_name}'] = weights[i] * values[i]
        out.update({f'weighting.{k}': v for k, v in result.extra_losses.items()})
        if result.combined_grad is not None and grads is not None:
            # zero-valued term whose gradient moves the shared set from sum_t w_t g_t to g*
            delta = result.combined_grad - (result.weights.detach()[:, None] * grads).sum(0)
            offsets = torch.tensor([0] + [p.numel() for p in shared]).cumsum(0).tolist()
            out['weighting.loss_surrogate'] = sum(
                ((p - p.detach()) * delta[a:b].view_as(p)).sum()
                for p, a, b in zip(shared, offsets[:-1], offsets[1:]))
        return out

    def loss(self, inputs: Tensor, data_samples: Sequence[MultiTaskDataSample]) -> dict:
        """Weighted per-task losses, keyed ``<task>.loss_<name>`` (logs read by task). On an
        iteration ``TROAHook`` marked due, TROA takes its task gradients from this forward:
        'params' mode here (``autograd.grad``), 'representation' mode from the training
        backward itself (a hook on the adapter input; the update runs in ``finish_troa``),
        plus one ``autograd.grad`` here for the tasks whose loss is not batch-separable."""
        troa = isinstance(self.weighting, TROAWeighting)
        if troa:
            self.finish_troa()
            if not self.weighting.scheduled and self.weighting.eta > 0 and self.training:
                self._warn_once('TROAWeighting is configured but no TROAHook schedules its '
                                'updates, so W never changes: add custom_hooks = '
                                "[..., dict(type='TROAHook', interval=10)] to the config")
        due = troa and self.weighting.due and torch.is_grad_enabled()
        if due and self.weighting.gradient_mode == 'representation':
            outputs, branch_input = self.forward_tasks(inputs, return_branch_input=True)
            branch_input.register_hook(self._capture_branch_grad)
        else:
            outputs = self.forward_tasks(inputs)
        losses = self.task_losses(outputs, data_samples)
        if torch.is_grad_enabled():
            check_finite_losses(losses, data_samples)
        if due:
            self.weighting.due = False
            if self.weighting.gradient_mode == 'params':
                self.troa_params_step(outputs, data_samples)
            else:
                self.troa_exact_representation_rows(outputs, branch_input, data_samples)
        return self.weigh_losses(losses)

    # --------------------------------------------------------------- prediction
    def predict(self, inputs: Tensor,
                data_samples: Optional[Sequence[MultiTaskDataSample]] = None
                ) -> List[MultiTaskDataSample]:
        """Predictions in ground-truth units, cropped to each image's unpadded size."""
        outputs = self.forward_tasks(inputs)
        if data_samples is None:
            data_samples = [MultiTaskDataSample(metainfo=dict(img_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        for name, out in outputs.items():
            pred = self.tasks[name].postprocess(out)
            for i, sample in enumerate(data_samples):
                h, w = sample.metainfo.get('img_shape', pred.shape[-2:])
                sample.set_pred(name, pred[i, :, :h, :w])
        return list(data_samples)
