"""Loading the image and every task's ground truth of one sample."""
from typing import Callable, Optional, Sequence

from mtl_adapters.registry import TRANSFORMS
from mtl_adapters.utils import DataFileError, read_image
from .base import TaskTransform


@TRANSFORMS.register_module()
class LoadMultiTaskImageAndAnnotations(TaskTransform):
    """Read ``img_path`` (RGB uint8) and each ``task_paths[task]``, decoded to the task's
    canonical ground truth by the dataset (``results['decode_gt']``, see
    ``datasets/base.py``; outside a dataset, ``task.decode_<gt_format>``).

    A label map stored at another resolution than the image (Taskonomy's 256² semantic maps)
    is resized to the image with the task's interpolation (nearest for labels).
    Adds ``img``, ``gt`` (``{task: array}``), ``img_shape``, ``ori_shape``.

    Args:
        gt_format: outside a dataset only: which ``decode_<gt_format>`` of the tasks reads the
            files.
        with_labels: False reads the image only, never a ground-truth file (``gt`` is empty):
            the unlabelled target domain of unsupervised domain adaptation.
        tasks: only outside a dataset (see ``TaskTransform``).
    """

    def __init__(self, gt_format: str = 'taskonomy', with_labels: bool = True,
                 tasks: Optional[Sequence] = None):
        super().__init__(tasks)
        self.gt_format = gt_format
        self.with_labels = bool(with_labels)

    def decoder(self, results: dict, tasks) -> Callable:
        """``(name, task, raw, info) -> canonical array``: the dataset's, else the tasks'
        ``decode_<gt_format>`` (an error naming the task if it has none); 'taskonomy': the
        format table of ``formats/taskonomy.py``."""
        if 'decode_gt' in results:
            return results['decode_gt']
        if self.gt_format == 'taskonomy':
            from mtl_adapters.formats.taskonomy import decode_taskonomy, taskonomy_format
            for task in tasks.values():
                taskonomy_format(task)            # a task without one: an error naming it
            return lambda name, task, raw, info: decode_taskonomy(task, raw)
        for task in tasks.values():
            if not hasattr(task, f'decode_{self.gt_format}'):
                raise ValueError(f'{type(task).__name__} has no decode_{self.gt_format}(): '
                                 f'gt_format={self.gt_format!r} is not supported for this task')
        return lambda name, task, raw, info: getattr(task, f'decode_{self.gt_format}')(raw)

    def transform(self, results: dict) -> dict:
        img = read_image(results['img_path'], unchanged=False)
        h, w = img.shape[:2]
        gts = {}
        results.update(img=img, gt=gts, img_shape=(h, w), ori_shape=(h, w))
        if not self.with_labels:
            return results
        if results.get('with_labels') is False:
            raise ValueError(
                f'{results["img_path"]}: its dataset was built with with_labels=False (images '
                'only, no label file listed), but this pipeline loads labels. Fix: load with '
                "dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False), or build the "
                'dataset with with_labels=True.')
        tasks = self.tasks_of(results)
        decode = self.decoder(results, tasks)
        for name, task in tasks.items():
            path = results['task_paths'].get(name)
            if path is None:        # this image is not labelled for this task
                continue
            raw = read_image(path, unchanged=True)
            try:
                gt = decode(name, task, raw, results)
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
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(gt_format={self.gt_format!r}, '
                f'with_labels={self.with_labels})')
