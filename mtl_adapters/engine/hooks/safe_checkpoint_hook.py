"""Checkpoints that load without executing code (``mtl_adapters/utils/checkpoint.py``), that
only ever hold a sane state, and that are checked against the model before they are loaded."""
import logging
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mtl_adapters.engine import checkpoint_checks as checks
from mtl_adapters.registry import HOOKS
from mtl_adapters.utils.checkpoint import (RESUME_LOWER_LR, plain_dataset_meta,
                                           plain_message_hub, restore_message_hub)
from mtl_adapters.utils.model import unwrap_model


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that load with ``weights_only=True`` and hold a sane state; check the
    checkpoints that are loaded.

    Saving:

    * message-hub buffers are stored as plain lists (and rebuilt after loading, for resume),
      the dataset's built tasks in ``meta.dataset_meta`` as their class names;
    * training stops after an iteration whose total loss is above ``max_loss`` or whose
      gradient norm is not finite, before the checkpoint hook (lower priority) can write that
      state or rotate out an older checkpoint (the model already stops on a non-finite loss,
      before the step: ``check_finite_losses``);
    * a state dict with a tensor that is not finite or whose magnitude exceeds
      ``max_abs_weight`` (exploded weights) is never written.

    With :class:`~mtl_adapters.engine.hooks.AtomicCheckpointHook` (which deletes an old
    checkpoint only after the next iteration passed these checks) the newest checkpoint
    whose weights and losses were sane is always kept.

    Loading (``after_load_checkpoint``): ``load_from`` is strict unless the config sets
    ``load_from_partial = True``; a resume must match the model and the optimiser; a resume
    on another dataset warns with the metainfo keys that differ; ``resume_lr_from_config =
    True`` takes the learning rates from the config (:mod:`mtl_adapters.engine.
    checkpoint_checks`).

    Args:
        max_loss: the largest total training loss (``train/loss``) that counts as sane.
        max_abs_weight: the largest magnitude a saved weight or buffer may have.

    In every schedule base's ``default_hooks`` (``safe_checkpoint``), so any config inheriting
    one gets it.
    """

    priority = 'ABOVE_NORMAL'       # before CheckpointHook (VERY_LOW) in after_train_iter

    def __init__(self, max_loss: float = 1e6, max_abs_weight: float = 1e6):
        self.max_loss = float(max_loss)
        self.max_abs_weight = float(max_abs_weight)
        self._armed: Optional[dict] = None       # the load the post-hook checks
        self._hooked = set()                     # ids of the models that carry the post-hook

    # ------------------------------------------------------------------------------ saving
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Stop on an exploded loss or a non-finite gradient norm (logged by the optimiser
        wrapper's clipping)."""
        hub = runner.message_hub
        where = f'at iteration {runner.iter + 1}'
        if 'train/loss' in hub.log_scalars:
            loss = hub.get_scalar('train/loss').current()
            if not loss <= self.max_loss:
                raise FloatingPointError(
                    f'exploded training loss ({loss:g} > max_loss={self.max_loss:g}) {where}: '
                    'training stops before a checkpoint of this state is written, and the '
                    'checkpoint written before it is kept (a checkpoint written at the '
                    f'previous iteration holds the weights that gave this loss). '
                    f'{RESUME_LOWER_LR}. (A loss this large that is legitimate: raise '
                    'default_hooks.safe_checkpoint.max_loss.)')
        if 'train/grad_norm' not in hub.log_scalars:
            return
        if getattr(getattr(runner, 'optim_wrapper', None), 'loss_scaler', None) is not None:
            return         # fp16 loss scaling skips overflowing steps itself: params stay finite
        grad_norm = hub.get_scalar('train/grad_norm').current()
        if not math.isfinite(grad_norm):
            raise FloatingPointError(
                f'non-finite gradient norm ({grad_norm}) {where}: the parameters are no longer '
                f'finite, so training stops before a checkpoint of them is written. '
                f'{RESUME_LOWER_LR}.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a state that is not sane; message-hub buffers -> plain lists, task objects
        -> names (they would need code to unpickle)."""
        bad = []
        for key, value in checkpoint.get('state_dict', {}).items():
            if torch.is_tensor(value) and value.is_floating_point() and value.numel():
                peak = float(value.detach().abs().max())
                if not peak <= self.max_abs_weight:              # NaN fails too
                    bad.append(f'{key} (max |x| {peak:g})')
        if bad:
            raise FloatingPointError(
                'refusing to write a checkpoint at iteration '
                f'{checkpoint.get("meta", {}).get("iter", runner.iter + 1)}: values not finite '
                f'or above max_abs_weight={self.max_abs_weight:g} in {bad[:5]}'
                f'{" ..." if len(bad) > 5 else ""}; the earlier checkpoints are kept. '
                f'{RESUME_LOWER_LR}.')
        if 'message_hub' in checkpoint:
            plain_message_hub(checkpoint['message_hub'])
        # mmengine stores the dataset's metainfo twice: in meta (the dataset's own dict: it is
        # copied, not changed) and in the hub's runtime info
        for holder in (checkpoint.get('meta', {}),
                       checkpoint.get('message_hub', {}).get('runtime_info', {})):
            if isinstance(holder.get('dataset_meta'), dict):
                holder['dataset_meta'] = plain_dataset_meta(dict(holder['dataset_meta']))

    # ----------------------------------------------------------------------------- loading
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Plain lists -> message-hub buffers; check the checkpoint against the model (and on
        resume the optimiser and the dataset) before the Runner copies anything from it."""
        if 'message_hub' in checkpoint:
            restore_message_hub(checkpoint['message_hub'])
        if 'state_dict' not in checkpoint:
            return
        resume = bool(getattr(runner, '_resume', False))
        cfg = getattr(runner, 'cfg', None) or {}
        source = getattr(runner, '_load_from', None) or 'the checkpoint'
        model = unwrap_model(runner.model)
        state = checks.revised_state_dict(checkpoint)
        # a strategy runner (FSDP) holds sharded/flattened parameters and loads through its
        # strategy: the structure checks below apply to the Runner's own loading only
        sharded = hasattr(runner, 'strategy')
        shapes = [] if sharded else checks.shape_mismatches(model, state)
        if resume:
            self._check_resume(runner, checkpoint, source, model, state, shapes)
            if cfg.get('resume_lr_from_config', False):
                lines = checks.rescale_resumed_lr(runner.optim_wrapper, checkpoint)
                runner.logger.info('resume: learning rates from the config, not the '
                                   'checkpoint: ' + ('; '.join(lines) or 'unchanged'))
        partial = bool(cfg.get('load_from_partial', False)) and not resume
        if shapes and not partial:
            own = model.state_dict()        # name every difference, not only the shapes
            keys = checks.key_differences([k for k in own if k not in state],
                                          [k for k in state if k not in own])
            raise checks.CheckpointMismatchError(
                f'{source} does not fit the model the config builds: tensor shapes differ: '
                f'{shapes[:6]}' + ''.join(f'; {line}' for line in keys) + '. Fix: load a '
                'checkpoint of this model (same tasks and class counts), or set '
                'load_from_partial = True (--load-partial) to load only the tensors that match.')
        if partial and shapes:
            runner.logger.warning(f'load_from_partial: skipped (shape differs): {shapes}')
        if not sharded:
            self._arm(model, source, partial)

    def _check_resume(self, runner, checkpoint, source, model, state, shapes) -> None:
        """A resume needs the same model and optimiser; warn on another dataset."""
        problems = list(shapes)
        if 'optimizer' in checkpoint and not hasattr(runner, 'strategy'):   # see above
            if isinstance(runner.optim_wrapper, dict):
                # resumed before training built it (``load_or_resume`` alone): build it now, as
                # mmengine's ``resume`` does next anyway (it keeps a built wrapper as it is)
                runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
            problems += checks.optimizer_differences(runner.optim_wrapper,
                                                     checkpoint['optimizer'])
        if problems:        # (keys alone: the post-hook, after the model's legacy upgrades)
            own = model.state_dict()
            problems += checks.key_differences(
                [k for k in own if k not in state], [k for k in state if k not in own])
            config_diff = checks.model_config_differences(
                checkpoint.get('meta', {}).get('cfg'), runner.cfg.pretty_text)
            raise checks.CheckpointMismatchError(
                f'cannot resume from {source}: it was written for another model or optimiser '
                'than the config builds:\n  ' + '\n  '.join(problems)
                + ('\nmodel config, checkpoint (-) vs this config (+):\n  '
                   + '\n  '.join(config_diff) if config_diff else '')
                + '\nFix: resume with the config that wrote it, or start a new run in another '
                'work dir from its weights (load_from; load_from_partial = True for a subset).')
        meta = checkpoint.get('meta', {})
        dataset = getattr(getattr(runner, 'train_dataloader', None), 'dataset', None)
        current = getattr(dataset, 'metainfo', None)
        differs = checks.dataset_meta_differences(meta.get('dataset_meta'), current)
        if differs:
            runner.logger.warning(
                f'resume: the training dataset differs from the one {source} was trained on, '
                f'in its metainfo {differs}: check that this is the dataset you meant.')
        # mmengine compares the pickled metainfo itself (our checkpoints store the tasks by
        # name, so it would always differ): give it this run's, we have compared already
        meta['dataset_meta'] = current

    def _arm(self, model, source: str, partial: bool) -> None:
        """Check the keys when the Runner loads the state dict into ``model`` (a load_state_dict
        post-hook sees what the model's own pre-hooks, e.g. legacy upgrades, made of it)."""
        self._armed = dict(source=source, partial=partial)
        if id(model) not in self._hooked:
            model.register_load_state_dict_post_hook(self._check_keys)
            self._hooked.add(id(model))

    def _check_keys(self, module, incompatible) -> None:
        armed, self._armed = self._armed, None
        if armed is None:
            return
        lines = checks.key_differences(incompatible.missing_keys, incompatible.unexpected_keys)
        if not lines:
            return
        if not armed['partial']:
            raise checks.CheckpointMismatchError(
                f'{armed["source"]} does not fit the model the config builds: '
                + '; '.join(lines) + '. A tensor missing from the checkpoint would stay as '
                'initialised (e.g. a random, frozen decoder). Fix: load a checkpoint of this '
                'model, or set load_from_partial = True (--load-partial) to load only what '
                'matches.')
        print_log('load_from_partial: ' + '; '.join(lines)
                  + f' (missing: {sorted(incompatible.missing_keys)}; skipped: '
                  f'{sorted(incompatible.unexpected_keys)})', logger='current',
                  level=logging.WARNING)
