"""Config loading shared by the tools: file + ``--cfg-options`` + launcher + work dir."""
import os.path as osp
import warnings
from typing import Optional

from mmengine.config import Config

#: top-level keys the Runner (``Runner.from_cfg``) or our tools read after the file is parsed
RUNNER_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg', 'runner_type',
    'custom_imports', 'vis_backends', 'cfg', 'load_from_partial', 'resume_lr_from_config'))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def apply_dataset_variables(cfg: Config, cfg_options: dict) -> None:
    """Make top-level overrides of dataset variables work (``--cfg-options data_root=...``).

    A config's ``data_root = ...`` is substituted into the dataloaders when the file is read,
    so overriding the variable afterwards changes nothing by itself. A top-level key that
    the dataloaders' datasets take (``data_root``, ``split_file``, ...) is therefore copied into
    every dataset that has it; any other top-level key that nothing reads is a loud warning.
    """
    for key, value in cfg_options.items():
        if '.' in key or key in RUNNER_KEYS:
            continue
        datasets = [cfg[name].dataset for name in LOADERS
                    if name in cfg and cfg[name] and key in cfg[name].get('dataset', {})]
        for dataset in datasets:
            dataset[key] = value
        if not datasets:
            warnings.warn(
                f'--cfg-options {key}=...: the top-level variable {key!r} is only read while '
                'the config file is parsed, so this override changes nothing. Override the '
                f'field that uses it (e.g. model.{key}=... or train_dataloader.dataset.{key}'
                '=...), or set it in a config that inherits this one.')


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read ``path``, apply command-line overrides, set the launcher and the work dir
    (``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config name>``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(cfg_options or {})
    apply_dataset_variables(cfg, dict(cfg_options or {}))
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
