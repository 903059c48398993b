"""Checkpoints that load without executing code (``mtl_adapters/utils/checkpoint.py``) and that
never hold a non-finite state."""
import math

import torch
from mmengine.hooks import Hook

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils.checkpoint import (plain_dataset_meta, plain_message_hub,
                                           restore_message_hub)


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that load with ``weights_only=True`` and hold only finite numbers.

    * message-hub buffers are stored as plain lists (and rebuilt after loading, for resume),
      the dataset's built tasks in ``meta.dataset_meta`` as their class names;
    * a non-finite gradient norm stops training after that iteration, before the checkpoint
      hook (lower priority) can write it; the model already stops on non-finite losses before
      the step (``check_finite_losses``);
    * a state dict with a non-finite tensor is never written, so checkpoint rotation can never
      delete the last finite checkpoint in favour of a broken one.

    In every schedule base's ``default_hooks`` (``safe_checkpoint``), so any config inheriting
    one gets it.
    """

    priority = 'ABOVE_NORMAL'       # before CheckpointHook (VERY_LOW) in after_train_iter

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Stop on a non-finite gradient norm (logged by the optimiser wrapper's clipping)."""
        hub = runner.message_hub
        if 'train/grad_norm' not in hub.log_scalars:
            return
        if getattr(getattr(runner, 'optim_wrapper', None), 'loss_scaler', None) is not None:
            return         # fp16 loss scaling skips overflowing steps itself: params stay finite
        grad_norm = hub.get_scalar('train/grad_norm').current()
        if not math.isfinite(grad_norm):
            raise FloatingPointError(
                f'non-finite gradient norm ({grad_norm}) at iteration {runner.iter + 1}: the '
                'parameters are no longer finite, so training stops before a checkpoint of '
                'them is written. Resume from the last checkpoint with a lower learning rate.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Message-hub buffers -> plain lists, task objects -> names (they would need code to
        unpickle); refuse a non-finite state."""
        bad = [k for k, v in checkpoint.get('state_dict', {}).items()
               if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise FloatingPointError(
                f'refusing to write a checkpoint at iteration {runner.iter}: non-finite values '
                f'in {bad[:5]}{" ..." if len(bad) > 5 else ""}; the earlier checkpoints are kept')
        if 'message_hub' in checkpoint:
            plain_message_hub(checkpoint['message_hub'])
        # mmengine stores the dataset's metainfo twice: in meta and in the hub's runtime info
        for holder in (checkpoint.get('meta', {}),
                       checkpoint.get('message_hub', {}).get('runtime_info', {})):
            if isinstance(holder.get('dataset_meta'), dict):
                plain_dataset_meta(holder['dataset_meta'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Plain lists -> message-hub buffers, before the Runner resumes from them."""
        if 'message_hub' in checkpoint:
            restore_message_hub(checkpoint['message_hub'])
