"""Grid pictures of validation/test predictions, saved under the work dir and sent to the
visualiser (TensorBoard when ``TensorboardVisBackend`` is configured)."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils import write_png
from mtl_adapters.visualization.grid import make_prediction_grid


@HOOKS.register_module()
class MultiTaskVisualizationHook(Hook):
    """Every ``interval``-th validation/test sample (at most ``max_samples`` per evaluation),
    draw a grid (rows: tasks; columns: input | ground truth | prediction) and save it as
    ``<out_dir or work_dir/vis>/<mode>_iter<k>_<idx>.png`` (k: training iteration, idx: the
    sample's number in this evaluation), and add it to ``runner.visualizer``.

    Args:
        interval: draw every ``interval``-th sample (1 = every sample).
        max_samples: at most this many pictures per evaluation (None or < 0: no limit).
        out_dir: folder of the PNG files (default ``<work_dir>/vis``).
        draw_val / draw_test: whether to draw during validation / test.
        add_to_visualizer: also call ``runner.visualizer.add_image``.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50, max_samples: Optional[int] = 8,
                 out_dir: Optional[str] = None, draw_val: bool = True, draw_test: bool = True,
                 add_to_visualizer: bool = True):
        if interval < 1:
            raise ValueError(f'MultiTaskVisualizationHook: interval must be >= 1, got {interval}')
        self.interval = interval
        self.max_samples = None if max_samples is None or max_samples < 0 else max_samples
        self.out_dir = out_dir
        self.draw = dict(val=draw_val, test=draw_test)
        self.add_to_visualizer = add_to_visualizer
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
        model = getattr(runner.model, 'module', runner.model)
        tasks = model.tasks
        inputs = (data_batch or {}).get('inputs')
        out_dir = self.out_dir or osp.join(runner.work_dir, 'vis')
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
            write_png(osp.join(out_dir, f'{mode}_iter{step}_{idx}.png'), grid)
            if self.add_to_visualizer and getattr(runner, 'visualizer', None) is not None:
                runner.visualizer.add_image(f'{mode}_sample{idx}', grid, step=step)
            self._drawn += 1


def _train_iter(runner) -> int:
    """The training iteration, 0 when the runner has no built train loop (``runner.iter``
    would build one, and a test-only config has no training data)."""
    return runner.iter if isinstance(getattr(runner, '_train_loop', None), BaseLoop) else 0
