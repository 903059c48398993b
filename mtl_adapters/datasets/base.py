"""The base of every multi-task dataset: tasks declared once, each dataset decodes its own files.

A dataset file (one per dataset) subclasses :class:`MultiTaskDataset` and writes two things:

* ``load_data_list``: one record per sample with ``img_path`` and ``task_paths``
  (``{task name: file}``; a task without a file for this sample is simply absent), plus any
  per-sample data its decoding needs (e.g. camera intrinsics);
* ``decode_gt(name, task, raw, info)``: the raw file array (as ``read_image`` returns it,
  native dtype) -> the task's canonical units (class ids with ``task.ignore_value`` for
  unlabelled pixels, depth in metres with 0 invalid, unit normals, edges in [0, 1]). The
  on-disk encoding of a dataset lives in its file, never in the task classes.

A dataset built with ``with_labels=False`` (the unlabelled target domain of UDA) lists images
only: its index has no ``task_paths`` and checks no label file, so a copy of the data without
any label file works (``label_tasks`` is empty; every dataset builds its index from it).

The tasks are built once, here: kept in ``metainfo['tasks']`` (the metric reads them there)
and handed to every sample as ``results['tasks']``, together with ``results['decode_gt']``
(the transforms read both there).
"""
from typing import Dict, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from mtl_adapters.tasks import BaseTask, build_tasks


class MultiTaskDataset(BaseDataset):
    """A dataset of images with per-task ground-truth files.

    Args:
        tasks: task configs (or names), declared once for the whole pipeline. They must be
            the model's (same classes and options; checked before a run by
            ``TaskCheckHook``).
        with_labels: False: images only, no label file is listed or needed (load the samples
            with ``LoadMultiTaskImageAndAnnotations(with_labels=False)``).
        own_metric_cfg: True: the metric options of these tasks are this dataset's own
            evaluation protocol and may differ from the model's (a model tested on another
            dataset, e.g. with its depth range and crop); the metric uses the dataset's.
        **kwargs: mmengine ``BaseDataset`` arguments (``data_root``, ``pipeline``, ...).
    """

    def __init__(self, tasks: Sequence, with_labels: bool = True, own_metric_cfg: bool = False,
                 **kwargs):
        self.with_labels = bool(with_labels)
        self.own_metric_cfg = bool(own_metric_cfg)
        self.tasks: Dict[str, BaseTask] = build_tasks(tasks)
        kwargs['metainfo'] = dict(kwargs.get('metainfo') or {}, tasks=self.tasks)
        super().__init__(**kwargs)
        self.tasks = self._metainfo['tasks']          # one set of built tasks, not two

    @property
    def label_tasks(self) -> Dict[str, BaseTask]:
        """The tasks whose label files the index lists (and checks): every task, none when
        the dataset is built ``with_labels=False``."""
        return self.tasks if self.with_labels else {}

    def decode_gt(self, name: str, task: BaseTask, raw: np.ndarray, info: dict) -> np.ndarray:
        """Raw file array of task ``name`` -> the task's canonical ground truth."""
        raise NotImplementedError(f'{type(self).__name__} must implement decode_gt')

    def get_data_info(self, idx: int) -> dict:
        """The sample's record plus the dataset's built tasks and its decoder, which the
        transforms read (the pipeline config lists no tasks), and whether it has labels."""
        info = super().get_data_info(idx)
        info['tasks'] = self.tasks
        info['decode_gt'] = self.decode_gt
        info['with_labels'] = self.with_labels
        return info
