"""The mean teacher of unsupervised domain adaptation: an EMA copy of the student, kept by a hook.

The teacher is a deep copy of the (unwrapped) student whose parameters follow

    teacher <- alpha_t * teacher + (1 - alpha_t) * student,   alpha_t = min(1 - 1/(t + 1), alpha)

after every ``interval``-th training iteration, t = the number of updates made so far (0 for
the first update, so alpha_0 = 0 and the first update copies the student; alpha_t then ramps up
as a running mean until it reaches ``alpha``). Note the convention: alpha is the weight of the
*old teacher* (the mean-teacher papers'), while mmengine's ``ExponentialMovingAverage.momentum``
is the weight of the *new student* (its ``1 - alpha``); :class:`MeanTeacher` subclasses mmengine's
``BaseAveragedModel`` (the deep copy, ``steps`` and ``avg_func``) with this alpha_t schedule.

* Parameters the student trains are averaged; parameters it keeps frozen (the pretrained trunk)
  and all buffers (task weights, TROA's W, norm statistics) are **copied** from the student, so
  the frozen trunk stays bit-identical (an average of a constant would drift by rounding).
* The teacher never receives gradients (``requires_grad=False``) and stays in eval mode.
* Under DDP each rank updates its own teacher from its own (identical) student replica, with
  the same arithmetic, so the teachers stay identical without any communication.
* Checkpoints hold ``checkpoint['mean_teacher'] = {'state_dict': {name: tensor}, 'steps': int,
  'alpha': float}`` (tensors and plain Python values: loads with ``weights_only=True``).
  Resuming restores that teacher and its step count, so the average continues where it stopped;
  loading weights without resuming (``load_from``) starts a fresh teacher from the loaded
  student.
* ``before_train`` builds the teacher (after mmengine's weight initialisation and checkpoint
  loading, which follow ``before_run``) and hands it to the student with
  ``student.set_teacher(teacher)`` when the student has that method (the UDA model: it makes
  pseudo-labels with :func:`~mtl_adapters.models.uda.pseudo_labels.make_pseudo_labels`); any
  other model just gets an EMA copy (to evaluate).
* Validation and test evaluate the **student** by default. With ``evaluate_teacher=True`` the
  teacher's weights are swapped into the student before each val/test epoch and swapped back
  after it (before the checkpoint hook saves a best checkpoint, so checkpoints always hold the
  student in ``state_dict``). For ``tools/test.py`` on a checkpoint with a ``mean_teacher`` entry
  that is the checkpoint's teacher.
"""
import logging
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model.averaged_model import BaseAveragedModel
from torch import Tensor

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils import unwrap_model

#: key of the teacher in checkpoints
CHECKPOINT_KEY = 'mean_teacher'


class MeanTeacher(BaseAveragedModel):
    """EMA copy of a model with alpha_t = min(1 - 1/(t + 1), alpha); ``.module`` is the teacher.

    Args:
        model: the student (unwrapped).
        alpha: the final weight of the old teacher in each update, in [0, 1).
    """

    def __init__(self, model: nn.Module, alpha: float = 0.99):
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f'MeanTeacherHook.alpha must be in [0, 1), got {alpha!r}')
        super().__init__(model, interval=1, update_buffers=False)
        self.alpha = float(alpha)
        self.module.eval()

    def alpha_at(self, steps: int) -> float:
        """The teacher's weight in update number ``steps`` (0-based)."""
        return min(1.0 - 1.0 / (steps + 1), self.alpha)

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """In place: averaged <- alpha_t * averaged + (1 - alpha_t) * source."""
        alpha_t = self.alpha_at(steps)
        averaged_param.mul_(alpha_t).add_(source_param, alpha=1.0 - alpha_t)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """One update from the student: trainable parameters averaged, frozen parameters and
        buffers copied, ``steps`` + 1."""
        steps = int(self.steps)
        source = dict(model.named_parameters())
        for name, avg in self.avg_parameters.items():
            src = source[name]
            if src.requires_grad and avg.is_floating_point():
                self.avg_func(avg.data, src.data.to(avg.device), steps)
            else:
                avg.data.copy_(src.data)
        buffers = dict(model.named_buffers())
        for name, buf in self.module.named_buffers():
            buf.data.copy_(buffers[name].data)
        self.steps += 1

    def plain_state(self) -> dict:
        """What a checkpoint stores: CPU tensors and plain Python values only."""
        return dict(state_dict={k: v.detach().to('cpu', copy=True)
                                for k, v in self.module.state_dict().items()},
                    steps=int(self.steps), alpha=self.alpha)

    def load_plain_state(self, state: dict) -> None:
        """Inverse of :meth:`plain_state` (the teacher continues from it)."""
        self.module.load_state_dict(state['state_dict'], strict=True)
        self.steps.fill_(int(state['steps']))


@HOOKS.register_module()
class MeanTeacherHook(Hook):
    """Keep an EMA teacher of the student, save it in checkpoints, resume it (module docstring).

    Args:
        alpha: final EMA weight of the teacher (issue: alpha_t = min(1 - 1/(t+1), alpha)).
        interval: update the teacher after every ``interval``-th training iteration.
        evaluate_teacher: validate/test with the teacher's weights instead of the student's.

    Compare teachers across DDP ranks with ``hook.teacher.state_dict()`` (and ``hook.steps``).
    """

    priority = 'NORMAL'     # after the optimiser step; before CheckpointHook (VERY_LOW)

    def __init__(self, alpha: float = 0.99, interval: int = 1, evaluate_teacher: bool = False):
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f'MeanTeacherHook.alpha must be in [0, 1), got {alpha!r}')
        if int(interval) < 1:
            raise ValueError(f'MeanTeacherHook.interval must be >= 1, got {interval!r}')
        self.alpha = float(alpha)
        self.interval = int(interval)
        self.evaluate_teacher = bool(evaluate_teacher)
        self.averaged: Optional[MeanTeacher] = None
        self._pending: Optional[dict] = None        # a checkpoint's teacher, not applied yet
        self._pending_is_resume = False
        self._swapped = False

    # ------------------------------------------------------------------ access
    @property
    def teacher(self) -> Optional[nn.Module]:
        """The teacher network (None before training starts)."""
        return None if self.averaged is None else self.averaged.module

    @property
    def steps(self) -> int:
        """Number of EMA updates made so far."""
        return 0 if self.averaged is None else int(self.averaged.steps)

    def _build(self, runner, use_pending: bool) -> None:
        """Teacher = copy of the unwrapped student (or the checkpoint's teacher); attach it."""
        student = unwrap_model(runner.model)
        if self.averaged is None:
            self.averaged = MeanTeacher(student, alpha=self.alpha)
        if self._pending is not None and use_pending:
            self.averaged.load_plain_state(self._pending)
            print_log(f'MeanTeacherHook: continuing the checkpoint\'s teacher after '
                      f'{self.steps} updates', logger='current')
        self._pending = None
        if hasattr(student, 'set_teacher'):
            student.set_teacher(self.averaged.module)

    # ---------------------------------------------------------------- training
    def before_train(self, runner) -> None:
        """Build the teacher from the initialised/loaded student, or continue the resumed one."""
        if self._pending is not None and not self._pending_is_resume:
            print_log('MeanTeacherHook: weights were loaded without resuming; the teacher '
                      'starts as a copy of the loaded student', logger='current')
        self._build(runner, use_pending=self._pending_is_resume)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """teacher <- alpha_t * teacher + (1 - alpha_t) * student every ``interval`` iters."""
        if self.every_n_train_iters(runner, self.interval):
            self.averaged.update_parameters(unwrap_model(runner.model))

    # ------------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the teacher (tensors and plain values only)."""
        if self.averaged is not None:
            checkpoint[CHECKPOINT_KEY] = self.averaged.plain_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the checkpoint's teacher until the teacher is built (checkpoints are loaded
        before ``before_train``); restore it at once if the teacher already exists."""
        resume = bool(getattr(runner, '_resume', False))
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            if resume:
                print_log(f'MeanTeacherHook: the checkpoint has no {CHECKPOINT_KEY!r}; the '
                          'teacher restarts as a copy of the resumed student',
                          logger='current', level=logging.WARNING)
            return
        self._pending, self._pending_is_resume = state, resume
        if self.averaged is not None and resume:
            self._build(runner, use_pending=True)

    # -------------------------------------------------------------- evaluation
    def _swap(self, runner) -> None:
        """Exchange the student's and the teacher's parameters and buffers in place."""
        student = unwrap_model(runner.model)
        theirs: Dict[str, Tensor] = dict(self.averaged.module.named_parameters())
        theirs.update(self.averaged.module.named_buffers())
        with torch.no_grad():
            for name, mine in list(student.named_parameters()) + list(student.named_buffers()):
                other = theirs[name]
                tmp = mine.data.clone()
                mine.data.copy_(other.data)
                other.data.copy_(tmp)
        self._swapped = not self._swapped

    def _before_eval(self, runner) -> None:
        if not self.evaluate_teacher:
            return
        if self.averaged is None:                   # val/test without training: the checkpoint's
            if self._pending is None:
                print_log('MeanTeacherHook(evaluate_teacher=True): no teacher in the loaded '
                          'checkpoint; evaluating the student', logger='current',
                          level=logging.WARNING)
                return
            self._build(runner, use_pending=True)
        self._swap(runner)

    def _after_eval(self, runner) -> None:
        if self._swapped:
            self._swap(runner)

    def before_val_epoch(self, runner) -> None:
        """With ``evaluate_teacher``: the teacher's weights into the student."""
        self._before_eval(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Swap the student's weights back."""
        self._after_eval(runner)

    def before_test_epoch(self, runner) -> None:
        """With ``evaluate_teacher``: the teacher's weights into the student."""
        self._before_eval(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Swap the student's weights back."""
        self._after_eval(runner)
