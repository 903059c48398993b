"""Loading this project's own checkpoints under torch>=2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default; mmengine's checkpoints hold its
own objects (HistoryBuffer, message hub state), so resume fails with an unpickling error. We
register a loader for local paths that trusts the file (``weights_only=False``): only use it for
checkpoints you wrote yourself. Pretrained weights are loaded separately (safetensors or plain
state dicts, see ``models/backbones``).
"""
import os

import torch
from mmengine.runner import CheckpointLoader

_REGISTERED = False


def load_from_trusted_local(filename: str, map_location=None, logger=None):
    """Load a local checkpoint written by this project (full pickle)."""
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)


def register_trusted_checkpoint_loader() -> None:
    """Make mmengine's ``load_checkpoint``/``resume`` use :func:`load_from_trusted_local` for
    local files (the prefix '' matches plain paths)."""
    global _REGISTERED
    if not _REGISTERED:
        CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_trusted_local)
        _REGISTERED = True
