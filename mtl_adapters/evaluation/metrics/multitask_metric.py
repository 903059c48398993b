"""One metric over all tasks, composed from the task definitions; results prefixed by task.

Evaluated classes. A dataset read through a class map (``datasets/class_map.py``) publishes
``metainfo['eval_classes'] = {task: [train ids]}``: the model classes that some class of its own
label set maps to. A class outside that list never occurs in the mapped ground truth, so its
IoU could only count false positives; the metric reduces such a task over the listed classes
only (mIoU, aAcc, and ``IoU.<class>`` for each of them). Predictions are not remapped: a pixel
of an evaluated class predicted as any other class is still an error.

Undefined metrics. A metric with nothing to average (a test split whose depth is all invalid,
whose labels are all ``ignore``; the IoU of a class neither labelled nor predicted; Δm over
such a metric) is NaN. ``compute_metrics`` warns naming each one and why, and
``metrics_for_json`` writes it as ``null``: never a number that looks like a score, never a
bare ``NaN`` (not JSON).
"""
import copy
import math
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from prettytable import PrettyTable

from mtl_adapters.datasets.class_map import EVAL_CLASSES_KEY
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
        eval_classes: ``{task: [class ids]}`` to evaluate, only for a metric used without a
            dataset (a dataset publishes them as ``metainfo['eval_classes']``; module
            docstring).
    """

    default_prefix: Optional[str] = None

    def __init__(self, tasks: Optional[Sequence] = None, per_class: bool = True,
                 baseline_file: Optional[Union[str, Path]] = None,
                 baseline: Optional[Mapping[str, float]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 eval_classes: Optional[Mapping[str, Sequence[int]]] = None):
        self._own_tasks = build_tasks(tasks) if tasks is not None else None
        self._own_eval_classes = dict(eval_classes) if eval_classes is not None else None
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

    @property
    def eval_classes(self) -> Dict[str, List[int]]:
        """``{task: [class ids]}`` the metric restricts class-wise tasks to (module docstring):
        the ones given, else the dataset's ``metainfo['eval_classes']`` (none: every class)."""
        if self._own_eval_classes is not None:
            return self._own_eval_classes
        return dict((self.dataset_meta or {}).get(EVAL_CLASSES_KEY) or {})

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
                h, w = gt.shape[-2:]
                stats[name] = task.metric_stats(pred[..., :h, :w].cpu(), gt.cpu())
            self.results.append(stats)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Reduce over the dataset, add Δm when a baseline is set; print the tables."""
        metrics: Dict[str, float] = {}
        eval_classes = self.eval_classes
        for name, task in self.tasks.items():
            stats = [r[name] for r in results if name in r]
            if not stats:
                continue
            if eval_classes.get(name) is not None:
                task, stats = restrict_to_classes(task, stats, eval_classes[name], name)
            for key, value in task.reduce_metrics(stats).items():
                if key.startswith('IoU.') and not self.per_class:
                    continue
                metrics[f'{name}/{key}'] = float(value)
        if self.baseline:
            metrics[DELTA_M_KEY] = delta_m(metrics, self.baseline, self.directions)
        print_log('\n' + format_metrics_table(metrics), logger='current')
        warn_undefined_metrics(metrics, self.baseline)
        return metrics


def warn_undefined_metrics(metrics: Mapping[str, float],
                           baseline: Optional[Mapping[str, float]] = None) -> List[str]:
    """Warn (``UserWarning`` and the log) naming every non-finite metric and why it has no
    value; returns their keys (module docstring: they are written as null)."""
    undefined = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    if not undefined:
        return []
    per_class = [k for k in undefined if k.partition('/')[2].startswith('IoU.')]
    whole = [k for k in undefined if k not in per_class and k != DELTA_M_KEY]
    lines = []
    if whole:
        lines.append(f'{whole} have no value: the test split has no valid ground-truth pixel '
                     'for these tasks (depth all invalid, labels all ignore, normals all '
                     'missing); check the test data and its task config')
    if per_class:
        lines.append(f'{per_class} have no value: these classes are neither in the ground '
                     'truth nor predicted (mIoU averages over the others)')
    if DELTA_M_KEY in undefined:
        missing = [k for k in (baseline or {}) if k in undefined]
        lines.append(f'{DELTA_M_KEY} has no value: it averages over {missing or "metrics"} '
                     'that have none')
    message = ('undefined metrics, reported as null in the metrics JSON: '
               + '; '.join(lines))
    print_log(message, logger='current', level=30)
    warnings.warn(message)
    return undefined


def metrics_for_json(metrics: Mapping[str, float]) -> Dict[str, Optional[float]]:
    """``{key: float}`` with every non-finite (undefined) metric as None, so that strict JSON
    (``utils.write_json``) writes it as ``null``; warn with ``warn_undefined_metrics``."""
    return {k: float(v) if math.isfinite(float(v)) else None for k, v in metrics.items()}


def restrict_to_classes(task, stats: List[dict], classes: Sequence[int],
                        name: str = '') -> Tuple[object, List[dict]]:
    """A class-wise task and its per-sample statistics, restricted to ``classes``: every
    statistic with one entry per class (first dimension ``num_classes``, e.g. the semantic
    task's intersect/union/pred/label areas) keeps the listed entries, and a shallow copy of
    the task gets their names, so its own ``reduce_metrics`` reduces over them only. Every
    class listed: the task and statistics as they are."""
    num = getattr(task, 'num_classes', None)
    names = getattr(task, 'class_names', None)
    if num is None or names is None:
        raise TypeError(f'eval_classes lists classes for task {name!r}, which has no classes '
                        f'({type(task).__name__}); only class-wise tasks can be restricted')
    index = [int(c) for c in classes]
    bad = [c for c in index if not 0 <= c < num]
    if bad or len(set(index)) != len(index) or not index:
        raise ValueError(f'eval_classes[{name!r}] must be distinct class ids in 0..{num - 1}, '
                         f'got {list(classes)}')
    if sorted(index) == list(range(num)):
        return task, stats
    if not all(torch.is_tensor(v) and v.shape[:1] == (num,)
               for s in stats for v in s.values()):
        raise TypeError(f'{type(task).__name__}.metric_stats must give one entry per class '
                        'for every statistic to be restricted to eval_classes')
    keep = torch.tensor(index)
    view = copy.copy(task)
    view.num_classes = len(index)
    view.class_names = [names[i] for i in index]
    print_log(f'{name}: evaluated on the {len(index)} of {num} classes that the dataset\'s '
              f'class map can label ({", ".join(view.class_names)})', logger='current')
    return view, [{k: v[keep] for k, v in s.items()} for s in stats]


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
