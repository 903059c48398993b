"""The data sample carried through the pipeline: one ``PixelData`` per task for ground truth
(``gt_<task>``) and one per task for predictions (``pred_<task>``)."""
from typing import Optional

from mmengine.structures import BaseDataElement, PixelData
from torch import Tensor


class MultiTaskDataSample(BaseDataElement):
    """Per-image ground truth and predictions of all tasks, keyed by task name.

    Metainfo follows mmseg: ``img_path``, ``ori_shape``, ``img_shape``, ``pad_shape``, ``flip``.
    """

    def set_gt(self, task: str, data: Tensor) -> None:
        """Store the (C, H, W) ground truth of ``task``."""
        self.set_field(PixelData(data=data), f'gt_{task}', dtype=PixelData)

    def get_gt(self, task: str) -> Optional[Tensor]:
        """The (C, H, W) ground truth of ``task``, or None when this image has none."""
        field = self.get(f'gt_{task}')
        return None if field is None else field.data

    def has_gt(self, task: str) -> bool:
        """Whether this image is labelled for ``task``."""
        return f'gt_{task}' in self

    def set_pred(self, task: str, data: Tensor) -> None:
        """Store the (C, H, W) prediction of ``task`` (in ground-truth units)."""
        self.set_field(PixelData(data=data), f'pred_{task}', dtype=PixelData)

    def get_pred(self, task: str) -> Optional[Tensor]:
        """The (C, H, W) prediction of ``task``, or None."""
        field = self.get(f'pred_{task}')
        return None if field is None else field.data

    def set_logits(self, task: str, data: Tensor) -> None:
        """Store the (C, H, W) raw head output of ``task`` (before ``task.postprocess``)."""
        self.set_field(PixelData(data=data), f'logits_{task}', dtype=PixelData)

    def get_logits(self, task: str) -> Optional[Tensor]:
        """The (C, H, W) raw output of ``task``, or None if it was not kept."""
        field = self.get(f'logits_{task}')
        return None if field is None else field.data
