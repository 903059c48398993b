"""Checkpoints that load without executing code: see ``mtl_adapters/utils/checkpoint.py``."""
from mmengine.hooks import Hook

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils.checkpoint import plain_message_hub, restore_message_hub


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that load with ``weights_only=True``; read them back for resume.

    In every schedule base's ``default_hooks`` (``safe_checkpoint``), so any config inheriting
    one writes such checkpoints.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Message-hub buffers -> plain lists (they would need ``getattr`` to unpickle)."""
        if 'message_hub' in checkpoint:
            plain_message_hub(checkpoint['message_hub'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Plain lists -> message-hub buffers, before the Runner resumes from them."""
        if 'message_hub' in checkpoint:
            restore_message_hub(checkpoint['message_hub'])
