"""The multi-task model trained by unsupervised domain adaptation (UDA).

One training step takes ``dict(source=batch, target=batch)`` (``UDAIterBasedTrainLoop`` samples
the two dataloaders together). Both batches go through the same frozen trunk, adapters, TROA
mixing and decoders, in two forwards: the source batch through the parent's :meth:`loss`
(supervised; the weighting method's fixed points run there, on source losses only, as without
adaptation), the target batch through :meth:`forward_tasks` (no labels exist for it). Two
strategies use the target outputs, each optional, both combinable (``uda_cfg``):

* **adversarial** (output space, AdaptSegNet / ADVENT): one discriminator per task
  (``discriminators.py``). The student's loss gets ``lambda_adv * BCE(D_t(target outputs),
  source)``: target outputs should look like source ones. Then, every ``interval`` iterations,
  ``steps`` updates of the discriminators with their own optimiser on the detached outputs
  (source -> 0, target -> 1). The student's adversarial term reaches the student only: it is
  computed with detached discriminator weights, so the discriminators never see it.
* **mean teacher**: an EMA copy of the student (kept by ``MeanTeacherHook``, which calls
  :meth:`set_teacher`) labels the target batch (``pseudo_labels.make_pseudo_labels``:
  confident pixels only, the rest at the task's ignore value), and the student's own task
  losses on those labels are added with weight ``mean_teacher.weight``, scheduled by the
  Runner's iteration (:meth:`UDAMultiTaskModel.pseudo_label_weight`): 0 during the first
  ``warmup_iters`` iterations (student and teacher still untrained; no pseudo-labels are
  made then), then ramped up over ``ramp_iters`` iterations as ``weight * exp(-5 (1 - t)^2)``
  (Tarvainen & Valpola's consistency ramp-up), ``weight`` from then on. Both default to 0:
  the full weight from the first iteration.

Losses are logged per task: ``<task>.loss_<name>`` (source, weighted), ``<task>.loss_adv``,
``<task>.loss_pseudo`` and ``<task>.loss_disc`` (the discriminator's, logged with its total
``loss_disc``; ``loss`` is the student's total). With a warm-up or ramp-up the current
pseudo-label weight is logged too, as ``mean_teacher.weight``, and ``<task>.loss_pseudo`` is a
constant 0 during the warm-up (the same keys every iteration).

Optimisers: ``optim_wrapper`` is an ``OptimWrapperDict`` with ``model`` (everything but the
discriminators; ``UDAOptimWrapperConstructor``) and ``discriminator``. Under DDP use
``model_wrapper_cfg=dict(type='UDADistributedDataParallel')``: it calls this model's
:meth:`train_step` with the wrapped student and discriminators, so each one's gradients are
averaged over the ranks by its own DDP.
"""
import math
import numbers
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from mtl_adapters.registry import MODELS
from mtl_adapters.structures import MultiTaskDataSample
from ..multitask_model import MultiTaskModel, check_finite_losses
from .discriminators import TaskDiscriminators
from .pseudo_labels import make_pseudo_labels, resolve_pseudo_label_cfg

#: domain labels of the discriminators (ADVENT's convention)
SOURCE_LABEL, TARGET_LABEL = 0.0, 1.0

ADVERSARIAL_DEFAULTS = dict(
    tasks=None,                 # the adapted tasks (default: all)
    lambda_adv=0.001,           # weight of the student's adversarial term: float or {task: w}
    discriminator=dict(type='OutputDiscriminator', channels=64, num_convs=5),
    interval=1,                 # discriminator updates every `interval` iterations ...
    steps=1,                    # ... `steps` of them each time
)
MEAN_TEACHER_DEFAULTS = dict(
    tasks=None,                 # the pseudo-labelled tasks (default: all)
    weight=1.0,                 # weight of the pseudo-label losses
    pseudo_labels=None,         # confidence options (pseudo_labels.resolve_pseudo_label_cfg)
    warmup_iters=0,             # no pseudo-label loss before this (0-based) iteration ...
    ramp_iters=0,               # ... then weight * exp(-5 (1 - t)^2) over this many (0: none)
)


def _options(cfg, defaults: dict, key: str) -> dict:
    """``cfg`` over ``defaults``, unknown keys refused by name."""
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise KeyError(f'model.uda_cfg.{key}: unknown key(s) {unknown}; known: '
                       f'{list(defaults)}')
    return dict(defaults, **cfg)


@MODELS.register_module()
class UDAMultiTaskModel(MultiTaskModel):
    """``MultiTaskModel`` trained on labelled source and unlabelled target batches.

    Args:
        uda_cfg: ``dict(adversarial=dict(...), mean_teacher=dict(...))``, one or both (keys and
            defaults: ``ADVERSARIAL_DEFAULTS``, ``MEAN_TEACHER_DEFAULTS``).
        *args, **kwargs: ``MultiTaskModel``'s.
    """

    def __init__(self, *args, uda_cfg: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = dict(uda_cfg or {})
        unknown = sorted(set(cfg) - {'adversarial', 'mean_teacher'})
        if unknown:
            raise KeyError(f'model.uda_cfg: unknown key(s) {unknown}; use adversarial=dict(...) '
                           'and/or mean_teacher=dict(...)')
        if cfg.get('adversarial') is None and cfg.get('mean_teacher') is None:
            raise ValueError('model.uda_cfg needs adversarial=dict(...), mean_teacher=dict(...) '
                             'or both (an empty dict takes the defaults: adversarial=dict())')
        self.adversarial_cfg = self.mean_teacher_cfg = None
        if cfg.get('adversarial') is not None:
            adv = _options(cfg['adversarial'], ADVERSARIAL_DEFAULTS, 'adversarial')
            adv['tasks'] = self._task_subset(adv['tasks'], 'adversarial')
            weights = adv['lambda_adv']
            if not isinstance(weights, dict):
                weights = {name: weights for name in adv['tasks']}
            extra = sorted(set(weights) - set(adv['tasks']))
            missing = [n for n in adv['tasks'] if n not in weights]
            if extra or missing:
                raise KeyError(f'model.uda_cfg.adversarial.lambda_adv: one weight for all tasks '
                               f'or one per adapted task {adv["tasks"]}; unknown {extra}, '
                               f'missing {missing}')
            adv['lambda_adv'] = {n: float(w) for n, w in weights.items()}
            for key in ('interval', 'steps'):
                if int(adv[key]) < 1:
                    raise ValueError(f'model.uda_cfg.adversarial.{key} must be >= 1, got '
                                     f'{adv[key]!r}')
            self.adversarial_cfg = adv
            self.discriminators = TaskDiscriminators(
                {n: self.tasks[n] for n in adv['tasks']}, adv['discriminator'])
        if cfg.get('mean_teacher') is not None:
            teacher = _options(cfg['mean_teacher'], MEAN_TEACHER_DEFAULTS, 'mean_teacher')
            teacher['tasks'] = self._task_subset(teacher['tasks'], 'mean_teacher')
            resolve_pseudo_label_cfg(self.tasks, teacher['pseudo_labels'],
                                     'model.uda_cfg.mean_teacher.pseudo_labels')  # fail early
            for key in ('warmup_iters', 'ramp_iters'):
                value = teacher[key]
                if not isinstance(value, numbers.Integral) or isinstance(value, bool) \
                        or value < 0:
                    raise ValueError(f'model.uda_cfg.mean_teacher.{key} must be an integer '
                                     f'number of iterations >= 0 (0: off), got {value!r}')
                teacher[key] = int(value)
            self.mean_teacher_cfg = teacher
        self.__dict__['_teacher'] = None      # not a submodule: not in state_dict, not in DDP
        self._local_iter = 0

    def _task_subset(self, names: Optional[Sequence[str]], key: str) -> list:
        """The tasks a strategy applies to (default: the trained tasks, ``train_tasks``), in
        task order; evaluated-only tasks are frozen, so they are never adapted."""
        trained = list(self.train_task_names)
        if names is None:
            return trained
        unknown = [n for n in names if n not in trained]
        if unknown or not names:
            raise KeyError(f'model.uda_cfg.{key}.tasks: {list(names)} must be a non-empty '
                           f'subset of the trained tasks {trained}')
        return [n for n in trained if n in set(names)]

    @property
    def adapted_task_names(self) -> list:
        """The tasks the target batch runs (adversarial or pseudo-labelled), in task order."""
        used = set(self.adversarial_cfg['tasks'] if self.adversarial_cfg else []) | \
            set(self.mean_teacher_cfg['tasks'] if self.mean_teacher_cfg else [])
        return [n for n in self.task_names if n in used]

    # ---------------------------------------------------------------- teacher
    def set_teacher(self, teacher: nn.Module) -> None:
        """Use ``teacher`` (the EMA copy ``MeanTeacherHook`` keeps) for pseudo-labels. Stored
        outside the module tree: it is no part of the student's state dict, parameters or
        DDP (the hook saves it in checkpoints itself)."""
        self.__dict__['_teacher'] = teacher

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The mean teacher set by :meth:`set_teacher`, or None."""
        return self.__dict__.get('_teacher')

    def __getstate__(self):
        """Copies (``deepcopy``: the hook's teacher is one) and pickles leave the teacher
        out."""
        state = dict(self.__dict__)
        state.pop('_teacher', None)
        return state

    # ---------------------------------------------------------------- forward
    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor', **kwargs):
        """The parent's modes, plus ``'uda_loss'`` (:meth:`uda_loss`, with ``target_inputs``
        and ``target_samples``): one call, so a DDP wrapper sees the whole student step."""
        if mode == 'uda_loss':
            return self.uda_loss(inputs, data_samples, **kwargs)
        return super().forward(inputs, data_samples, mode)

    def task_losses(self, outputs: Dict[str, Tensor],
                    data_samples: Sequence[MultiTaskDataSample]) -> Dict[str, Tensor]:
        """The parent's. During :meth:`uda_loss` the outputs of the step's first call are also
        kept (detached) for the discriminator step: that call is the parent's :meth:`loss` on
        the whole source batch (``step.outputs``). Later calls in the same step are a
        weighting method's on parts of it (TROA's half-batch losses) and are not kept, so the
        discriminators always compare the full source batch with the target batch."""
        kept = self.__dict__.get('_source_outputs')
        if kept is not None and not kept:
            kept.update({n: o.detach() for n, o in outputs.items()})
        return super().task_losses(outputs, data_samples)

    def uda_loss(self, inputs: Tensor, data_samples: Sequence[MultiTaskDataSample],
                 target_inputs: Tensor, target_samples: Sequence[MultiTaskDataSample]):
        """Student loss dict of one UDA step and ``dict(source=, target=)`` detached raw
        outputs (``{task: (B, C, H, W)}``) for the discriminator step."""
        source_outputs: Dict[str, Tensor] = {}
        self.__dict__['_source_outputs'] = source_outputs
        try:
            losses = self.loss(inputs, data_samples)      # source: supervised, weighted
        finally:
            self.__dict__['_source_outputs'] = None
        mt = self.mean_teacher_cfg
        pseudo_weight = None if mt is None else self.pseudo_label_weight()
        needed = self.adapted_task_names
        if pseudo_weight == 0:         # warm-up: the target runs the adversarial tasks only
            adversarial = self.adversarial_cfg['tasks'] if self.adversarial_cfg else []
            needed = [n for n in needed if n in adversarial]
        target_outputs = self.forward_tasks(target_inputs, needed) if needed else {}
        unweighted = {}
        if self.adversarial_cfg is not None:
            adv = self.adversarial_cfg
            frozen = {n: p.detach() for n, p in self.discriminators.named_parameters()}
            logits = torch.func.functional_call(
                self.discriminators, frozen, ({n: target_outputs[n] for n in adv['tasks']},))
            for name, value in logits.items():
                fool = F.binary_cross_entropy_with_logits(
                    value, torch.full_like(value, SOURCE_LABEL))
                unweighted[f'{name}.loss_adv'] = fool
                losses[f'{name}.loss_adv'] = adv['lambda_adv'][name] * fool
        if mt is not None and pseudo_weight == 0:       # warm-up: no teacher forward
            self._check_teacher()                        # a missing hook still fails early
            zero = target_inputs.new_zeros(())
            losses.update({f'{name}.loss_pseudo': zero for name in mt['tasks']})
        elif mt is not None:
            pseudo = self.pseudo_labels(target_inputs, target_samples)
            for name in mt['tasks']:
                value = self.task_loss(name, target_outputs[name], pseudo[name])
                unweighted[f'{name}.loss_pseudo'] = value
                losses[f'{name}.loss_pseudo'] = pseudo_weight * value
        if mt is not None and (mt['warmup_iters'] or mt['ramp_iters']):
            losses['mean_teacher.weight'] = target_inputs.new_tensor(float(pseudo_weight))
        if unweighted:
            check_finite_losses(unweighted, target_samples)
        outputs = dict(source=source_outputs,
                       target={n: o.detach() for n, o in target_outputs.items()})
        return losses, outputs

    def pseudo_label_weight(self, iteration: Optional[int] = None) -> float:
        """The pseudo-label losses' weight at ``iteration`` (0-based; default: the Runner's,
        :meth:`_iteration`): 0 before ``warmup_iters``; then ``weight * exp(-5 (1 - t)^2)``
        with ``t = min(1, (iteration - warmup_iters) / ramp_iters)``, so ``exp(-5) * weight``
        at the first iteration after the warm-up and ``weight`` from ``warmup_iters +
        ramp_iters`` on; ``ramp_iters=0``: ``weight`` right after the warm-up."""
        mt = self.mean_teacher_cfg
        if mt is None:
            raise RuntimeError('pseudo_label_weight: model.uda_cfg.mean_teacher is not set')
        iteration = self._iteration() if iteration is None else int(iteration)
        elapsed = iteration - mt['warmup_iters']
        if elapsed < 0:
            return 0.0
        if elapsed >= mt['ramp_iters']:
            return mt['weight']
        return mt['weight'] * math.exp(-5.0 * (1.0 - elapsed / mt['ramp_iters']) ** 2)

    def _check_teacher(self) -> None:
        if self.teacher is None:
            raise RuntimeError(
                'model.uda_cfg.mean_teacher is set but the model has no teacher: add '
                "dict(type='MeanTeacherHook', alpha=0.99) to custom_hooks (it builds the EMA "
                'teacher and calls model.set_teacher)')

    def pseudo_labels(self, target_inputs: Tensor,
                      target_samples: Sequence[MultiTaskDataSample]) -> Dict[str, Tensor]:
        """The teacher's confidence-filtered labels of the target batch (``{task: (B,
        gt_channels, H, W)}``, untrusted pixels at the task's ignore value)."""
        self._check_teacher()
        sizes = [tuple(s.metainfo.get('img_shape', target_inputs.shape[-2:]))
                 for s in target_samples]
        return make_pseudo_labels(self.teacher, target_inputs, self.mean_teacher_cfg['tasks'],
                                  self.mean_teacher_cfg['pseudo_labels'], image_sizes=sizes,
                                  cfg_name='model.uda_cfg.mean_teacher.pseudo_labels')

    # -------------------------------------------------------------- training
    def discriminator_due(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` (0-based) updates the discriminators."""
        return self.adversarial_cfg is not None and \
            iteration % int(self.adversarial_cfg['interval']) == 0

    def _iteration(self) -> int:
        """The Runner's 0-based iteration (the message hub's ``iter``; it survives resuming),
        else the number of steps this model has taken (no Runner)."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        return self._local_iter if iteration is None else int(iteration)

    @staticmethod
    def _split_batch(data) -> tuple:
        if not isinstance(data, dict) or set(data) != {'source', 'target'}:
            raise TypeError(
                'UDAMultiTaskModel.train_step takes dict(source=batch, target=batch); train it '
                "with train_cfg=dict(type='UDAIterBasedTrainLoop', target_dataloader=dict(...))")
        return data['source'], data['target']

    def check_unlabelled(self, samples: Sequence[MultiTaskDataSample]) -> None:
        """Refuse a target batch that carries ground truth: UDA never reads target labels."""
        labelled = sorted({n for s in samples for n in self.task_names
                           if s.get_gt(n) is not None})
        if labelled:
            raise ValueError(
                f'the target batch carries ground truth of {labelled}: unsupervised adaptation '
                'must not read target labels. Load target images only: '
                "dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False) in "
                'train_cfg.target_dataloader.dataset.pipeline')

    def train_step(self, data: dict, optim_wrapper, student: Optional[nn.Module] = None,
                   discriminators: Optional[nn.Module] = None) -> Dict[str, Tensor]:
        """One UDA iteration: the student's update (source + target terms), then the
        discriminators' when due. ``student`` / ``discriminators`` are the DDP-wrapped model
        and discriminators (``UDADistributedDataParallel`` passes them); by default this model
        and its own discriminators."""
        student = self if student is None else student
        source, target = self._split_batch(data)
        source = self.data_preprocessor(source, True)
        target = self.data_preprocessor(target, True)
        self.check_unlabelled(target['data_samples'])
        wrappers = self._optim_wrappers(optim_wrapper)
        iteration = self._iteration()
        with wrappers['model'].optim_context(student):
            losses, outputs = student(source['inputs'], source['data_samples'], mode='uda_loss',
                                      target_inputs=target['inputs'],
                                      target_samples=target['data_samples'])
        parsed, log_vars = self.parse_losses(losses)
        wrappers['model'].update_params(parsed)
        if self.discriminator_due(iteration):
            log_vars.update(self.discriminator_step(
                outputs, self.discriminators if discriminators is None else discriminators,
                wrappers['discriminator'], target['data_samples']))
        self._local_iter += 1
        return log_vars

    def _optim_wrappers(self, optim_wrapper) -> Dict[str, OptimWrapper]:
        """``{'model': ..., 'discriminator': ...}`` from the Runner's wrapper(s)."""
        if isinstance(optim_wrapper, OptimWrapperDict):
            wrappers = dict(optim_wrapper.items())
        else:
            wrappers = dict(model=optim_wrapper)
        needed = ['model'] + (['discriminator'] if self.adversarial_cfg is not None else [])
        missing = [k for k in needed if k not in wrappers]
        if missing:
            raise KeyError(
                f'optim_wrapper has no {missing}: adversarial UDA needs one optimiser for the '
                "model and one for the discriminators, optim_wrapper=dict(constructor="
                "'UDAOptimWrapperConstructor', model=dict(...), discriminator=dict(...))")
        return wrappers

    def discriminator_step(self, outputs: dict, discriminators: nn.Module,
                           optim_wrapper: OptimWrapper,
                           samples: Sequence[MultiTaskDataSample]) -> Dict[str, float]:
        """``steps`` updates of the discriminators on the detached outputs (source -> 0,
        target -> 1); returns their log variables (``<task>.loss_disc``, ``loss_disc``)."""
        names = self.adversarial_cfg['tasks']
        source = {n: outputs['source'][n] for n in names}
        target = {n: outputs['target'][n] for n in names}
        log_vars = {}
        for _ in range(int(self.adversarial_cfg['steps'])):
            with optim_wrapper.optim_context(discriminators):
                src_logits, tgt_logits = discriminators(source, target)
                losses = {}
                for name in names:
                    s, t = src_logits[name], tgt_logits[name]
                    losses[f'{name}.loss_disc'] = 0.5 * (
                        F.binary_cross_entropy_with_logits(s, torch.full_like(s, SOURCE_LABEL))
                        + F.binary_cross_entropy_with_logits(t, torch.full_like(t, TARGET_LABEL)))
            check_finite_losses(losses, samples)
            total, log_vars = self.parse_losses(losses)
            optim_wrapper.update_params(total)
        log_vars['loss_disc'] = log_vars.pop('loss')
        return log_vars
