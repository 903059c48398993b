"""mtl_adapters: multitask dense prediction with task-adapted adapters on a frozen Swin-V2."""
from .utils.setup_env import setup_offline_env

setup_offline_env()

__version__ = '0.1.0'
__all__ = ['__version__']
