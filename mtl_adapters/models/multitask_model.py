"""The multi-task model: image -> encoder (trunk once) -> one decoder per task -> losses.

Data flow: ``inputs (B, 3, H, W)`` -> ``encoder(inputs, tasks)`` gives each task its stage
features (the frozen trunk runs once; an adapter encoder adds task-specific deep stages) ->
``decoders[task](features, (H, W))`` gives (B, C_task, H, W) -> ``task.postprocess`` /
``task`` losses, weighted by the configured ``task_weights`` (a buffer) times the weighting
method's weights (mmengine's DDP wrapper calls our loss, not our train_step).

Weighting (``weighting=dict(type=...)`` from ``WEIGHTINGS``, uniform by default) happens inside
``loss()`` too, so it also runs under DDP, where no hook can run between backward and step. The
model names no weighting method: it calls the interface of ``mtl_adapters/weighting/base.py``
at fixed points of the step (before the forward, after the per-task losses, the weighting
itself) and passes the method's task-mixing matrix to the encoder by reference. Methods that
need per-task gradients (``requires_grads``) get them on ``shared_parameters()`` with
``torch.autograd.grad(retain_graph=True)`` from this step's graph, and their combined gradient
comes back as a zero-valued surrogate loss term.

Trained and evaluated tasks (zero-shot task transfer). ``train_tasks`` names the tasks that
have a loss in training (default: all); the others are evaluated only. A task outside it gets
no loss, and its decoder and head, and any encoder parameters it alone uses
(``encoder.task_named_parameters``), are frozen at build (``requires_grad=False``: no gradient,
skipped by the optimizer constructor), so a checkpoint's values for it are kept exactly. In
training only the trained tasks run (encoder branches and decoders): a task's encoder branch
depends on the other tasks only through the conditioning ``theta_hat_t = sum_j W[t, j] theta_j``
(the task embeddings, not the other branches), so leaving the evaluated-only branches out
changes no trained output, and no trainable parameter is left unused (DDP needs none unused).
Prediction runs every task. The weighting method gets the trained subset at build
(``bind_train_tasks``) and still sees (T,) losses in task order: an evaluated-only task's entry
is a constant 0 with a zero gradient row (TROA keeps its row and column of W as loaded).
The task embeddings are one (T, d) tensor shared by all tasks, and a trained task's
conditioning mixes in the evaluated-only rows (``W[t, j] > 0``): their gradient is tiny but
AdamW normalises it, so they would move at the full step size. With
``freeze_eval_only_embeddings=True`` (default) a gradient hook on the tensor zeroes those rows
(in training and in the weighting methods' ``autograd.grad``), so they stay the loaded values
bit for bit: AdamW with a zero gradient and no weight decay leaves a value exactly as it is
(the schedules exclude ``task_embeddings`` from decay; ``FrozenTrunkOptimWrapperConstructor``
refuses decay on such a tensor). ``False`` lets them move (the study's alternative). A copy of
the model (``copy.deepcopy``: the mean teacher) does not carry the hook; it is not trained.
"""
import warnings
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mtl_adapters.registry import MODELS, WEIGHTINGS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks
from mtl_adapters.utils.checkpoint import RESUME_LOWER_LR
from mtl_adapters.weighting.base import TrainingStep, per_task_gradients

from .prediction import check_finite_outputs, same_size_groups, window_weight


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
        f'so no checkpoint holds its state; {RESUME_LOWER_LR}, or check the labels of this '
        'batch' + (f': {paths}' if paths else '.'))


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
        test_cfg: how images are predicted, as in mmseg: ``dict(mode='whole')`` (default: the
            padded image at once) or ``dict(mode='slide', crop_size=(h, w), stride=(sh, sw))``
            (overlapping windows, raw outputs blended where they overlap; for images much
            larger than the training scale; ``stride <= crop_size``).
        train_tasks: the tasks trained (with a loss); None: all. The others are evaluated
            only, their decoders and heads frozen (module docstring; zero-shot task transfer,
            ``configs/generalisation/zeroshot_*``).
        freeze_eval_only_embeddings: keep the evaluated-only tasks' rows of the encoder's task
            embeddings exactly as loaded (module docstring); False lets them move.
    """

    TEST_MODES = ('whole', 'slide')

    def __init__(self, tasks: Sequence, encoder: dict, decoder: dict,
                 data_preprocessor: Optional[dict] = None,
                 task_weights: Optional[Dict[str, float]] = None,
                 weighting: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 train_tasks: Optional[Sequence[str]] = None,
                 freeze_eval_only_embeddings: bool = True, init_cfg=None):
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
        self.train_task_names: List[str] = self._check_train_tasks(train_tasks)
        self.weighting.bind_train_tasks(self.train_task_names)
        self.frozen_embedding_rows: Dict[str, tuple] = {}
        self._freeze_eval_only_tasks(freeze_eval_only_embeddings)
        self._warned = set()
        self.register_load_state_dict_pre_hook(self._upgrade_legacy_state)
        self.test_cfg = dict(test_cfg or dict(mode='whole'))
        self.check_test_cfg()

    @property
    def eval_only_task_names(self) -> List[str]:
        """Tasks evaluated but not trained (outside ``train_tasks``), in task order."""
        return [t for t in self.task_names if t not in self.train_task_names]

    def _check_train_tasks(self, train_tasks: Optional[Sequence[str]]) -> List[str]:
        """``model.train_tasks`` -> the trained tasks in task order, or an error naming it."""
        if train_tasks is None:
            return list(self.task_names)
        if isinstance(train_tasks, str):
            train_tasks = [train_tasks]
        unknown = sorted(set(train_tasks) - set(self.task_names))
        if unknown or not train_tasks:
            raise KeyError(f'model.train_tasks must name some of the model\'s tasks '
                           f'{self.task_names}; got unknown {unknown} in {list(train_tasks)}')
        return [t for t in self.task_names if t in set(train_tasks)]

    def _freeze_eval_only_tasks(self, embeddings: bool) -> None:
        """Evaluated-only tasks: decoder, head and the encoder parameters only they use get
        ``requires_grad=False`` (no gradient, no optimizer state, values kept exactly); with
        ``embeddings``, their rows of the encoder's (T, d) task embeddings get a zero gradient
        (``frozen_embedding_rows``: ``{name: (parameter, rows)}``)."""
        for name in self.eval_only_task_names:
            self.decoders[name].requires_grad_(False)
            if hasattr(self.encoder, 'task_named_parameters'):
                for _, param in self.encoder.task_named_parameters(name):
                    param.requires_grad_(False)
        if not isinstance(embeddings, bool):
            raise TypeError(f'model.freeze_eval_only_embeddings must be True or False, got '
                            f'{embeddings!r}')
        table = getattr(self.encoder, 'task_embeddings', None)
        if not (embeddings and self.eval_only_task_names and isinstance(table, nn.Parameter)):
            return
        rows = [self.encoder.task_names.index(t) for t in self.eval_only_task_names]
        table.register_hook(lambda grad: grad.index_fill(
            0, torch.tensor(rows, device=grad.device), 0.0))
        self.frozen_embedding_rows['encoder.task_embeddings'] = (table, rows)

    def check_test_cfg(self) -> None:
        """``test_cfg`` is whole or slide with a crop size and stride, or an error naming it."""
        mode = self.test_cfg.get('mode', 'whole')
        if mode not in self.TEST_MODES:
            raise ValueError(f'model.test_cfg.mode must be one of {self.TEST_MODES}, got {mode!r}')
        if mode == 'slide':
            for key in ('crop_size', 'stride'):
                value = self.test_cfg.get(key)
                if value is None or len(value) != 2 or min(value) < 1:
                    raise ValueError(f"model.test_cfg.{key} must be (h, w) of positive ints for "
                                     f"mode='slide', got {value!r}")
            crop, stride = self.test_cfg['crop_size'], self.test_cfg['stride']
            if any(int(s) > int(c) for s, c in zip(stride, crop)):
                raise ValueError(f'model.test_cfg: a slide stride {tuple(stride)} larger than '
                                 f'its window crop_size {tuple(crop)} leaves pixels between '
                                 'windows without a prediction; use stride <= crop_size (e.g. '
                                 '2/3 of it, so that windows overlap and blend)')

    def _upgrade_legacy_state(self, module, state_dict, prefix, *args) -> None:
        """Checkpoints written before the weighting interface still carry
        ``encoder.affinity``, a copy of the weighting's task-mixing matrix (the encoder drops
        it), and may hold a weighting's loss weights in ``task_weights`` (it used to copy them
        there). The weighting's own buffers hold both, so ``task_weights`` is restored to the
        configured weights for such checkpoints."""
        if prefix + 'encoder.affinity' in state_dict and prefix + 'task_weights' in state_dict:
            state_dict[prefix + 'task_weights'] = self.task_weights.detach().clone()

    def shared_parameters(self) -> List[nn.Parameter]:
        """The explicit shared trainable set (for gradient-based weighting methods): the
        encoder's adapter parameters if it has them, else its trainable parameters (none for
        the frozen baseline; decoders are per task, so nothing in them is shared). Refused under
        FSDP (configs/_base_/fsdp.py), where they are sharded views that the forward swaps for
        plain tensors: the method would find none and silently act as uniform weighting
        (tools/train.py refuses such configs at build; this catches other entry points)."""
        from torch.distributed.fsdp import FullyShardedDataParallel
        if any(isinstance(m, FullyShardedDataParallel) for m in self.modules()):
            raise RuntimeError(
                f'model.weighting.type={type(self.weighting).__name__!r} needs the full shared '
                'parameters (per-task gradients on model.shared_parameters()), which FSDP '
                'shards; use DDP (drop configs/_base_/fsdp.py) or uniform/uncertainty '
                "weighting, or TROA with gradient_mode='representation', with FSDP")
        if hasattr(self.encoder, 'adapter_named_parameters'):
            return [p for _, p in self.encoder.adapter_named_parameters() if p.requires_grad]
        return [p for p in self.encoder.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ forward
    def forward_tasks(self, inputs: Tensor, task_names: Optional[Sequence[str]] = None,
                      return_branch_input: bool = False):
        """(B, 3, H, W) -> ``{task: (B, C_task, H, W)}`` raw outputs (and, with
        ``return_branch_input``, the (T*B, ...) leaf entering the encoder's task branch). The
        encoder reads the weighting's task-mixing matrix by reference (None: identity)."""
        task_names = list(task_names or self.task_names)
        affinity = self.weighting.task_affinity()
        if return_branch_input:
            if not hasattr(self.encoder, 'adapt'):
                raise TypeError(f'{type(self.encoder).__name__} has no trunk/adapt split, so '
                                'there is no task-branch input to return; use an adapter '
                                'encoder')
            feats, branch_input = self.encoder.adapt(self.encoder.trunk(inputs), task_names,
                                                     return_branch_input=True,
                                                     affinity=affinity)
        else:
            feats = self.encoder(inputs, task_names, affinity=affinity)
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
            losses[name] = self.task_loss(name, out, gt)
        return losses

    def task_loss(self, name: str, out: Tensor, gt: Tensor) -> Tensor:
        """Unweighted loss of task ``name``: raw outputs ``out`` (B, C, H, W) against ``gt``
        (B, gt_channels, H, W), pixels at the task's ignore value left out. One place for it,
        so labels from another source (UDA's pseudo-labels) get exactly the same loss."""
        return self.losses[name](out, gt, self.tasks[name].valid_mask(gt))

    def _warn_once(self, message: str) -> None:
        """A warning shown once per model."""
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message)

    def weigh_losses(self, losses: Dict[str, Tensor]) -> dict:
        """Per-task losses (any subset of the tasks) -> the loss dict: ``<task>.loss_<name>``
        weighted by ``task_weights`` x the weighting's weights, plus ``weighting.loss_*``
        terms. The weighting always sees (T,) losses in task order: a task without a loss
        here is a constant 0 (zero gradient row), so per-task state keeps its meaning."""
        unknown = sorted(set(losses) - set(self.task_names))
        if unknown:
            raise KeyError(f'losses of unknown tasks {unknown}; tasks are {self.task_names}')
        ref = next(iter(losses.values()))
        values = torch.stack([losses[n] if n in losses else ref.detach().new_zeros(())
                              for n in self.task_names])                   # (T,)
        static = self.task_weights
        shared, grads = [], None
        if self.weighting.requires_grads and torch.is_grad_enabled():
            shared = self.shared_parameters()
            if shared:
                grads = per_task_gradients(list(static * values), shared)
            else:
                self._warn_once(f'{type(self.weighting).__name__} needs shared trainable '
                                'parameters but the encoder has none (frozen baseline); it '
                                'acts as uniform weighting. Use an adapter encoder.')
        with torch.autocast(values.device.type, enabled=False):   # weights in fp32 (--amp)
            result = self.weighting(values.float(), grads)
        weights = static * result.weights
        out = {}
        for i, name in enumerate(self.task_names):
            if name in losses:
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
        """Weighted per-task losses, keyed ``<task>.loss_<name>`` (logs read by task). A
        training step calls the weighting method at its fixed points (``before_forward``,
        ``after_losses``, then the weighting itself; ``mtl_adapters/weighting/base.py``)."""
        training = torch.is_grad_enabled()
        step = TrainingStep(model=self, data_samples=data_samples)
        if training:
            self.weighting.before_forward(step)
            self._check_eval_only_labels(data_samples)
        tasks = self.train_task_names                     # evaluated-only tasks: no loss
        if step.want_branch_input:
            step.outputs, step.branch_input = self.forward_tasks(inputs, tasks,
                                                                 return_branch_input=True)
        else:
            step.outputs = self.forward_tasks(inputs, tasks)
        step.losses = self.task_losses(step.outputs, data_samples)
        if training:
            check_finite_losses(step.losses, data_samples)
            self.weighting.after_losses(step)
        return self.weigh_losses(step.losses)

    def _check_eval_only_labels(self, data_samples: Sequence[MultiTaskDataSample]) -> None:
        """Warn (once) when a training batch carries labels of an evaluated-only task: they
        are not used, and in zero-shot transfer the training data should not have them."""
        present = [t for t in self.eval_only_task_names
                   if any(s.has_gt(t) for s in data_samples)]
        if present:
            self._warn_once(f'the training batch has {present} labels, which model.train_tasks '
                            f'{self.train_task_names} leaves out: they are not used. For '
                            'zero-shot task transfer, leave these tasks out of the training '
                            "dataset's `tasks` so their labels are never loaded.")

    # --------------------------------------------------------------- prediction
    def slide_forward(self, inputs: Tensor) -> Dict[str, Tensor]:
        """Raw outputs of every task from overlapping ``crop_size`` windows every ``stride``
        pixels (the last window of a row or column ends at the image edge, so every pixel is
        covered), blended where windows overlap with ``window_weight`` (a tent: each window's
        share fades out towards its border, so no seam where a window starts or ends). Each
        window runs the trunk once for all tasks."""
        (ch, cw), (sh, sw) = self.test_cfg['crop_size'], self.test_cfg['stride']
        batch, _, h, w = inputs.shape
        rows = max(h - ch + sh - 1, 0) // sh + 1
        cols = max(w - cw + sw - 1, 0) // sw + 1
        sums: Dict[str, Tensor] = {}                      # accumulated in float32 (AMP)
        total = inputs.new_zeros((1, 1, h, w), dtype=torch.float32)
        for r in range(rows):
            for c in range(cols):
                y0, x0 = min(r * sh, max(h - ch, 0)), min(c * sw, max(w - cw, 0))
                y1, x1 = min(y0 + ch, h), min(x0 + cw, w)
                outputs = self.forward_tasks(inputs[..., y0:y1, x0:x1])
                weight = window_weight(y1 - y0, x1 - x0, total)
                for name, out in outputs.items():
                    if name not in sums:
                        sums[name] = out.new_zeros((batch, out.shape[1], h, w),
                                                   dtype=torch.float32)
                    sums[name][..., y0:y1, x0:x1] += out.float() * weight
                total[..., y0:y1, x0:x1] += weight
        return {name: (value / total).to(outputs[name].dtype) for name, value in sums.items()}

    def predict(self, inputs: Tensor,
                data_samples: Optional[Sequence[MultiTaskDataSample]] = None,
                rescale: bool = False, keep_logits: bool = False
                ) -> List[MultiTaskDataSample]:
        """Predictions in ground-truth units, cropped to each image's unpadded size
        (``img_shape``), as the metric compares them with the ground truth of the test
        pipeline. With ``rescale`` (inference) the raw outputs are further resized
        bilinearly to the image's original size (``ori_shape``) before ``task.postprocess``:
        logit-bilinear for labels, re-normalised normals, depth in its own units. With
        ``keep_logits`` the raw outputs are kept too (``logits_<task>``).

        Each image is predicted at the size it is padded to when batched alone (images of one
        padded size together, ``prediction.same_size_groups``), so a prediction never depends
        on the other images of the batch; a non-finite raw output is an error naming the task
        and the image (``prediction.check_finite_outputs``)."""
        if data_samples is None:
            data_samples = [MultiTaskDataSample(metainfo=dict(img_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        divisor = getattr(self.data_preprocessor, 'pad_size_divisor', 1)
        for index, (ph, pw) in same_size_groups(data_samples, inputs.shape[-2:], divisor):
            group = inputs[index, :, :ph, :pw] if len(index) < len(inputs) \
                else inputs[..., :ph, :pw]
            if self.test_cfg.get('mode', 'whole') == 'slide':
                outputs = self.slide_forward(group)
            else:
                outputs = self.forward_tasks(group)
            for j, i in enumerate(index):
                sample = data_samples[i]
                h, w = sample.metainfo.get('img_shape', (ph, pw))
                raws = {name: out[j:j + 1, :, :h, :w] for name, out in outputs.items()}
                check_finite_outputs(raws, sample)
                for name, raw in raws.items():
                    if rescale:
                        size = tuple(sample.metainfo.get('ori_shape', (h, w)))
                        if size != (h, w):
                            raw = F.interpolate(raw, size=size, mode='bilinear',
                                                align_corners=False)
                    if keep_logits:
                        sample.set_logits(name, raw[0])
                    sample.set_pred(name, self.tasks[name].postprocess(raw)[0])
        return list(data_samples)
