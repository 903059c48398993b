"""Task definitions: one class per task, registered in ``TASKS``."""
from .base_task import BaseTask, build_tasks
from .depth import DepthTask
from .edge import EdgeTask
from .normal import NormalTask
from .semantic import SemanticTask

__all__ = ['BaseTask', 'build_tasks', 'SemanticTask', 'DepthTask', 'NormalTask', 'EdgeTask']
