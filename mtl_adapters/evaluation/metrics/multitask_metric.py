"""One metric over all tasks, composed from the task definitions; results prefixed by task."""
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mtl_adapters.registry import METRICS
from mtl_adapters.tasks import build_tasks


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Accumulate each task's per-sample statistics (``task.metric_stats``) and reduce them over
    the dataset (``task.reduce_metrics``). Keys read ``seg/mIoU``, ``depth/rmse``, ...

    Args:
        tasks: task configs (their ``metric_cfg`` sets ranges, crops, per-image averaging).
        per_class: also report per-class IoU (``seg/IoU.<class>``).
    """

    default_prefix: Optional[str] = None

    def __init__(self, tasks: Sequence, per_class: bool = False, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tasks = build_tasks(tasks)
        self.per_class = per_class

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Per-sample statistics of every task that has both a prediction and ground truth."""
        for sample in data_samples:
            stats = {}
            for name, task in self.tasks.items():
                pred, gt = sample.get(f'pred_{name}'), sample.get(f'gt_{name}')
                if pred is None or gt is None:
                    continue
                pred, gt = _data(pred), _data(gt)
                h, w = gt.shape[-2:]
                stats[name] = task.metric_stats(pred[..., :h, :w].cpu(), gt.cpu())
            self.results.append(stats)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Reduce over the dataset; print one table."""
        metrics = {}
        for name, task in self.tasks.items():
            stats = [r[name] for r in results if name in r]
            if not stats:
                continue
            for key, value in task.reduce_metrics(stats).items():
                if key.startswith('IoU.') and not self.per_class:
                    continue
                metrics[f'{name}/{key}'] = value
        print_log('\n' + format_metrics_table(metrics), logger='current')
        return metrics


def _data(field):
    """PixelData or dict-like sample field -> tensor."""
    return field.data if hasattr(field, 'data') else field['data']


def format_metrics_table(metrics: Dict[str, float]) -> str:
    """``{'task/metric': value}`` -> a plain-text table, one row per task."""
    rows: Dict[str, List[str]] = {}
    for key, value in metrics.items():
        task, _, name = key.partition('/')
        rows.setdefault(task, []).append(f'{name}={value:.4g}')
    width = max((len(t) for t in rows), default=4)
    lines = [f'{"task".ljust(width)} | metrics', '-' * (width + 40)]
    lines += [f'{t.ljust(width)} | ' + '  '.join(v) for t, v in rows.items()]
    return '\n'.join(lines)
