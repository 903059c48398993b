"""Task definitions: one class per task, registered in ``TASKS``.

A new task is one file in this folder: every module here is imported below, so its
``@TASKS.register_module()`` runs without a line anywhere else.
"""
import importlib
import pkgutil

from .base_task import BaseTask, build_tasks
from .consistency import check_model_data_tasks, task_differences
from .depth import DepthTask
from .edge import EdgeTask
from .normal import NormalTask
from .semantic import SemanticTask

__all__ = ['BaseTask', 'build_tasks', 'check_model_data_tasks', 'task_differences',
           'SemanticTask', 'DepthTask', 'NormalTask', 'EdgeTask']

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
