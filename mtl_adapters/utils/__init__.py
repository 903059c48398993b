"""Utilities: I/O with clear errors, checkpoints, configs, environment set-up.

The bottom layer of the package: nothing here imports another ``mtl_adapters`` sub-package
(``register_all_modules`` lives in :mod:`mtl_adapters.registry`).
"""
from .checkpoint import (SAFE_GLOBALS, UnsafeCheckpointError, load_checkpoint_file,
                         newest_loadable_checkpoint, register_safe_checkpoint_loader,
                         trust_checkpoint)
from .config import load_config
from .io import DataFileError, atomic_write_bytes, read_image, write_png
from .model import unwrap_model
from .rng import isolated_rng
from .setup_env import setup_offline_env
from .threads import available_cores, choose_threads, set_cpu_threads

__all__ = ['DataFileError', 'read_image', 'atomic_write_bytes', 'write_png', 'load_config',
           'setup_offline_env', 'load_checkpoint_file', 'register_safe_checkpoint_loader',
           'trust_checkpoint', 'SAFE_GLOBALS', 'newest_loadable_checkpoint', 'unwrap_model',
           'UnsafeCheckpointError', 'isolated_rng', 'available_cores',
           'choose_threads', 'set_cpu_threads']
