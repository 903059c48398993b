"""Config loading shared by the tools: file + ``--cfg-options`` + launcher + work dir."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read ``path``, apply command-line overrides, set the launcher and the work dir
    (``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config name>``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(cfg_options or {})
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
