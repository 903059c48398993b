"""The base of every transform that needs the task definitions.

Tasks are declared once, in the dataset config (``dataset=dict(tasks=...)``): the dataset builds
them, keeps them in its ``metainfo['tasks']`` and hands the same built tasks to every sample as
``results['tasks']`` (as mmseg's datasets hand ``seg_fields`` and ``reduce_zero_label`` to
their transforms). The transforms read them from there, so a pipeline config lists no tasks.
``tasks=`` on a transform is only for a pipeline used outside a dataset (a test, a script).
"""
from typing import Dict, Optional, Sequence

from mmcv.transforms import BaseTransform

from mtl_adapters.tasks import BaseTask, build_tasks


class TaskTransform(BaseTransform):
    """A transform that reads the sample's task definitions.

    Args:
        tasks: task configs for a pipeline used outside a dataset; None (the default in
            configs): the dataset's tasks, from ``results['tasks']``.
    """

    def __init__(self, tasks: Optional[Sequence] = None):
        self.own_tasks = build_tasks(tasks) if tasks is not None else None

    def tasks_of(self, results: dict) -> Dict[str, BaseTask]:
        """``{name: task}`` of this sample: the dataset's, or the ones given to the transform."""
        if self.own_tasks is not None:
            return self.own_tasks
        tasks = results.get('tasks')
        if tasks is None:
            raise KeyError(f'{type(self).__name__}: the sample has no `tasks`. Inside a dataset '
                           'the dataset adds its metainfo["tasks"] to every sample (declare '
                           '`tasks` in the dataset config); a pipeline used on its own needs '
                           f'{type(self).__name__}(tasks=[...]).')
        return tasks
