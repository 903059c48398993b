"""Utilities: I/O with clear errors, checkpoints, configs, environment set-up.

The bottom layer of the package: nothing here imports another ``mtl_adapters`` sub-package
(``register_all_modules`` lives in :mod:`mtl_adapters.set_env`).
"""
import importlib

#: exported name -> the submodule defining it. Imported on first use (PEP 562), so importing
#: ``mtl_adapters`` (or a light helper such as ``utils.io``) does not import torch: a tool's
#: ``--help`` answers before any heavy import.
_EXPORTS = {
    'SAFE_GLOBALS': 'checkpoint', 'UnsafeCheckpointError': 'checkpoint',
    'load_checkpoint_file': 'checkpoint', 'newest_loadable_checkpoint': 'checkpoint',
    'register_safe_checkpoint_loader': 'checkpoint', 'trust_checkpoint': 'checkpoint',
    'load_config': 'config',
    'DataFileError': 'io', 'atomic_write_bytes': 'io', 'read_image': 'io', 'write_png': 'io',
    'json_bytes': 'io', 'write_json': 'io', 'save_figure': 'io',
    'unwrap_model': 'model',
    'isolated_rng': 'rng',
    'available_cores': 'threads', 'choose_threads': 'threads', 'set_cpu_threads': 'threads',
    'setup_offline_env': 'setup_env',
}


def __getattr__(name: str):
    """Import the submodule that defines ``name`` the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value


__all__ = ['DataFileError', 'read_image', 'atomic_write_bytes', 'write_png', 'load_config',
           'setup_offline_env', 'load_checkpoint_file', 'register_safe_checkpoint_loader',
           'trust_checkpoint', 'SAFE_GLOBALS', 'newest_loadable_checkpoint', 'unwrap_model',
           'UnsafeCheckpointError', 'json_bytes', 'write_json', 'isolated_rng', 'save_figure',
           'available_cores', 'choose_threads', 'set_cpu_threads']
