"""One metric over all tasks, composed from the task definitions; results prefixed by task."""
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from prettytable import PrettyTable

from mtl_adapters.registry import METRICS
from mtl_adapters.tasks import build_tasks

from ..delta_m import delta_m, load_baseline

#: key of the multi-task score in the metrics dict
DELTA_M_KEY = 'mtl/delta_m'


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Accumulate each task's per-sample statistics (``task.metric_stats``) and reduce them over
    the dataset (``task.reduce_metrics``). Keys read ``seg/mIoU``, ``depth/rmse``, ...

    The tasks (their ``metric_cfg`` sets ranges, crops, per-image averaging) are the dataset's,
    read from ``dataset_meta['tasks']`` as mmseg's metrics read their classes; a task the model
    does not predict is skipped, so a model narrowed to S-D is evaluated on S-D.

    Args:
        per_class: also report per-class IoU (``seg/IoU.<class>``).
        baseline_file: JSON ``{"seg/mIoU": 40.1, "depth/rmse": 0.6, ...}`` of single-task
            baselines; when given, the multi-task score Δm over the listed metrics is reported
            as ``mtl/delta_m`` (directions from each task's ``metric_directions``).
        baseline: the same as a dict (instead of a file).
        tasks: task configs, only for a metric used without a dataset (tests, scripts).
    """

    default_prefix: Optional[str] = None

    def __init__(self, tasks: Optional[Sequence] = None, per_class: bool = True,
                 baseline_file: Optional[Union[str, Path]] = None,
                 baseline: Optional[Mapping[str, float]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        self._own_tasks = build_tasks(tasks) if tasks is not None else None
        if baseline_file is not None and baseline is not None:
            raise ValueError('MultiTaskMetric: give baseline_file or baseline, not both')
        self.baseline = dict(load_baseline(baseline_file) if baseline_file else baseline or {})
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.per_class = per_class
        if self._own_tasks is not None:
            self._check_baseline()

    @property
    def dataset_meta(self) -> Optional[dict]:
        """The dataset's metainfo (``tasks`` among it), set by mmengine's loops."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        if self._own_tasks is None and dataset_meta and 'tasks' in dataset_meta:
            self._check_baseline()

    @property
    def tasks(self) -> dict:
        """``{name: task}``: the dataset's (``dataset_meta['tasks']``) or the ones given."""
        if self._own_tasks is not None:
            return self._own_tasks
        meta = self.dataset_meta or {}
        if 'tasks' not in meta:
            raise KeyError('MultiTaskMetric reads the tasks from dataset_meta["tasks"], which '
                           'the dataset sets (declare `tasks` in the dataset config); a metric '
                           'used without a dataset needs MultiTaskMetric(tasks=[...])')
        return meta['tasks']

    def _check_baseline(self) -> None:
        """Every baseline metric is a metric of the tasks, or an error listing the known."""
        unknown = sorted(set(self.baseline) - set(self.directions))
        if unknown:
            raise KeyError(f'MultiTaskMetric: baseline metrics {unknown} are not metrics of the '
                           f'evaluated tasks; known: {sorted(self.directions)}')

    @property
    def directions(self) -> Dict[str, bool]:
        """``{'task/metric': larger_is_better}`` of every task's metrics."""
        return {f'{name}/{key}': up for name, task in self.tasks.items()
                for key, up in task.metric_directions.items()}

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Per-sample statistics of every task that has both a prediction and ground truth."""
        for sample in data_samples:
            stats = {}
            for name, task in self.tasks.items():
                pred, gt = _get(sample, f'pred_{name}'), _get(sample, f'gt_{name}')
                if pred is None or gt is None:
                    continue
                pred, gt = _data(pred), _data(gt)
                if pred.is_floating_point() and not bool(torch.isfinite(pred).all()):
                    raise FloatingPointError(
                        f'non-finite {name} prediction for '
                        f'{_get(sample, "img_path") or "an image"}: the model (checkpoint) '
                        'is broken; metrics of it would be meaningless')
                h, w = gt.shape[-2:]
                stats[name] = task.metric_stats(pred[..., :h, :w].cpu(), gt.cpu())
            self.results.append(stats)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Reduce over the dataset, add Δm when a baseline is set; print the tables."""
        metrics: Dict[str, float] = {}
        for name, task in self.tasks.items():
            stats = [r[name] for r in results if name in r]
            if not stats:
                continue
            for key, value in task.reduce_metrics(stats).items():
                if key.startswith('IoU.') and not self.per_class:
                    continue
                metrics[f'{name}/{key}'] = float(value)
        if self.baseline:
            metrics[DELTA_M_KEY] = delta_m(metrics, self.baseline, self.directions)
        print_log('\n' + format_metrics_table(metrics), logger='current')
        return metrics


def _get(sample, key):
    """Field ``key`` of a data sample or of its dict form (None if absent)."""
    return sample.get(key) if hasattr(sample, 'get') else getattr(sample, key, None)


def _data(field):
    """PixelData or dict-like sample field -> tensor."""
    return field.data if hasattr(field, 'data') else field['data']


def format_metrics_table(metrics: Dict[str, float], digits: int = 4) -> str:
    """``{'task/metric': value}`` -> a table with one row per task and one column per metric
    (blank where a task has no such metric); per-class values (``IoU.<class>``) get a second
    table with one row per class."""
    rows: Dict[str, Dict[str, float]] = {}
    per_class: Dict[str, Dict[str, Dict[str, float]]] = {}
    columns: List[str] = []
    for key, value in metrics.items():
        task, _, name = key.partition('/')
        metric, dot, cls = name.partition('.')
        if dot and metric.isalpha():  # "IoU.<class>" (not "11.25")
            per_class.setdefault(task, {}).setdefault(cls, {})[metric] = value
            continue
        rows.setdefault(task, {})[name] = value
        if name not in columns:
            columns.append(name)
    table = PrettyTable(['task'] + columns)
    for task, values in rows.items():
        table.add_row([task] + [f'{values[c]:.{digits}g}' if c in values else ''
                                for c in columns])
    out = [table.get_string()]
    for task, classes in per_class.items():
        names = sorted({m for v in classes.values() for m in v})
        cls_table = PrettyTable([f'{task} class'] + names)
        for cls, values in classes.items():
            cls_table.add_row([cls] + [f'{values[m]:.{digits}g}' if m in values else ''
                                       for m in names])
        out.append(cls_table.get_string())
    return '\n'.join(out)
