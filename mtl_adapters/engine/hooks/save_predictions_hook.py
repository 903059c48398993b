"""Write every test (and optionally validation) prediction as per-task data files."""
from pathlib import Path
from typing import Optional, Sequence

from mmengine.hooks import Hook

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils import unwrap_model
from mtl_adapters.visualization.save_predictions import sample_stem, save_predictions


@HOOKS.register_module()
class SavePredictionsHook(Hook):
    """Write every test (and optionally validation) prediction as per-task PNG files under
    ``out_dir``, one ``<building>/<image>_<task>...png`` set per image (formats: see
    :mod:`mtl_adapters.visualization.save_predictions`). These are the predictions as data
    (class ids, millimetres, ...), not pictures: ``tools/test.py --out-dir`` adds this hook."""

    def __init__(self, out_dir: str, on_val: bool = False):
        self.out_dir = Path(out_dir)
        self.on_val = on_val
        self._count = 0

    def before_test(self, runner) -> None:
        """Restart the sample count."""
        self._count = 0

    def before_val(self, runner) -> None:
        """Restart the sample count."""
        self._count = 0

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        """Save the batch's predictions."""
        self._save(runner, outputs or [])

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        """Save the batch's predictions when ``on_val``."""
        if self.on_val:
            self._save(runner, outputs or [])

    def _save(self, runner, outputs: Sequence) -> None:
        tasks = unwrap_model(runner.model).tasks
        for sample in outputs:
            preds = {name: sample.get_pred(name) for name in tasks
                     if sample.get_pred(name) is not None}
            save_predictions(preds, tasks, self.out_dir / sample_stem(sample, self._count))
            self._count += 1
