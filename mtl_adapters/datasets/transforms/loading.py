"""Loading the image and every task's ground truth of one sample."""
from typing import Optional, Sequence

from mtl_adapters.registry import TRANSFORMS
from mtl_adapters.utils import DataFileError, read_image
from .base import TaskTransform


@TRANSFORMS.register_module()
class LoadMultiTaskImageAndAnnotations(TaskTransform):
    """Read ``img_path`` (RGB uint8) and each ``task_paths[task]``, decoded to the task's
    canonical ground truth with ``task.decode_<gt_format>``.

    A label map stored at another resolution than the image (Taskonomy's 256² semantic maps)
    is resized to the image with the task's interpolation (nearest for labels).
    Adds ``img``, ``gt`` (``{task: array}``), ``img_shape``, ``ori_shape``.

    Args:
        gt_format: which ``decode_<gt_format>`` of the tasks reads the files.
        tasks: only outside a dataset (see ``TaskTransform``).
    """

    def __init__(self, gt_format: str = 'taskonomy', tasks: Optional[Sequence] = None):
        super().__init__(tasks)
        self.gt_format = gt_format
        if self.own_tasks is not None:
            self.check_decoders(self.own_tasks)

    def check_decoders(self, tasks) -> None:
        """Every task can read ``gt_format`` files, or an error naming the task."""
        for task in tasks.values():
            if not hasattr(task, f'decode_{self.gt_format}'):
                raise ValueError(f'{type(task).__name__} has no decode_{self.gt_format}(): '
                                 f'gt_format={self.gt_format!r} is not supported for this task')

    def transform(self, results: dict) -> dict:
        tasks = self.tasks_of(results)
        self.check_decoders(tasks)
        img = read_image(results['img_path'], unchanged=False)
        h, w = img.shape[:2]
        gts = {}
        for name, task in tasks.items():
            path = results['task_paths'].get(name)
            if path is None:        # this image is not labelled for this task
                continue
            raw = read_image(path, unchanged=True)
            try:
                gt = getattr(task, f'decode_{self.gt_format}')(raw)
            except Exception as exc:  # a wrong dtype/shape is a data problem: name the file
                raise DataFileError(f'cannot decode {name} ground truth {path} '
                                    f'({raw.dtype}, shape {raw.shape}): {exc}') from exc
            if gt.shape[:2] != (h, w):
                gh, gw = gt.shape[:2]
                if gh * w != gw * h:     # another aspect ratio: stretching would misalign it
                    raise DataFileError(
                        f'{name} ground truth {path} is {gw}x{gh} but its image '
                        f'{results["img_path"]} is {w}x{h}: a label map may be another '
                        'resolution of the image (same aspect ratio), never another shape')
                gt = task.resize(gt, (h, w))
            gts[name] = gt
        results.update(img=img, gt=gts, img_shape=(h, w), ori_shape=(h, w))
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(gt_format={self.gt_format!r})'
