"""Grid pictures of validation/test predictions, written by the runner's visualiser."""
from typing import Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils import unwrap_model
from mtl_adapters.visualization.grid import make_prediction_grid


@HOOKS.register_module()
class MultiTaskVisualizationHook(Hook):
    """Every ``interval``-th validation/test sample (at most ``max_samples`` per evaluation),
    draw a grid (rows: tasks; columns: input | ground truth | prediction) and hand it to
    ``runner.visualizer.add_image('<mode>_sample<idx>', grid, step=k)`` (k: the training
    iteration, 0 before/without training; idx: the sample's number in this evaluation).

    The pictures are written once, by the visualiser's ``vis_backends``, as in mmseg
    (``SegVisualizationHook``): ``LocalVisBackend`` writes
    ``<work_dir>/<timestamp>/vis_data/vis_image/<mode>_sample<idx>_<k>.png`` and
    ``TensorboardVisBackend`` (or any other backend) gets the same picture. This is where users
    of mmseg look, every backend is served by one call, and there is no second copy of every
    picture in a folder of our own. ``tools/test.py --show-dir DIR`` points the visualiser at
    ``DIR`` (``DIR/vis_data/vis_image/``), as mmseg's does.

    Args:
        interval: draw every ``interval``-th sample (1 = every sample).
        max_samples: at most this many pictures per evaluation (None or < 0: no limit).
        draw_val / draw_test: whether to draw during validation / test.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50, max_samples: Optional[int] = 8,
                 draw_val: bool = True, draw_test: bool = True):
        if interval < 1:
            raise ValueError(f'MultiTaskVisualizationHook: interval must be >= 1, got {interval}')
        self.interval = interval
        self.max_samples = None if max_samples is None or max_samples < 0 else max_samples
        self.draw = dict(val=draw_val, test=draw_test)
        self._seen = 0
        self._drawn = 0

    def before_val(self, runner) -> None:
        """Restart the sample count of this evaluation."""
        self._seen = self._drawn = 0

    def before_test(self, runner) -> None:
        """Restart the sample count of this evaluation."""
        self._seen = self._drawn = 0

    def after_val_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                       outputs: Optional[Sequence] = None) -> None:
        """Draw the selected samples of a validation batch."""
        self._draw_batch(runner, 'val', data_batch, outputs)

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        """Draw the selected samples of a test batch."""
        self._draw_batch(runner, 'test', data_batch, outputs)

    def _draw_batch(self, runner, mode: str, data_batch, outputs) -> None:
        if not self.draw[mode] or not outputs or not is_main_process():
            return
        tasks = unwrap_model(runner.model).tasks
        inputs = (data_batch or {}).get('inputs')
        step = _train_iter(runner)
        for i, sample in enumerate(outputs):
            idx = self._seen
            self._seen += 1
            if idx % self.interval or inputs is None or i >= len(inputs):
                continue
            if self.max_samples is not None and self._drawn >= self.max_samples:
                continue
            gts = {n: sample.get_gt(n) for n in tasks if sample.get_gt(n) is not None}
            preds = {n: sample.get_pred(n) for n in tasks if sample.get_pred(n) is not None}
            grid = make_prediction_grid(inputs[i], gts, preds, tasks)
            runner.visualizer.add_image(f'{mode}_sample{idx}', grid, step=step)
            self._drawn += 1


def _train_iter(runner) -> int:
    """The training iteration, 0 when the runner has no built train loop (``runner.iter``
    would build one, and a test-only config has no training data)."""
    return runner.iter if isinstance(getattr(runner, '_train_loop', None), BaseLoop) else 0
