"""Semantic segmentation (S): per-pixel class labels, 255 = ignore."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric
from torch import Tensor

from mtl_adapters.registry import TASKS

from .base_task import BaseTask

IGNORE_INDEX = 255


def label_palette(num_classes: int) -> np.ndarray:
    """A fixed, distinct-looking (num_classes, 3) uint8 palette; the same on every run."""
    rng = np.random.RandomState(7)
    palette = rng.randint(40, 256, size=(max(num_classes, 1), 3)).astype(np.uint8)
    palette[0] = (128, 64, 128)
    return palette


def write_label_png(path, label: np.ndarray, palette: np.ndarray) -> None:
    """Write an HxW label map (values < 256) as a palette PNG; unlisted indices are black."""
    import io

    from PIL import Image

    from mtl_adapters.utils import atomic_write_bytes
    full = np.zeros((256, 3), np.uint8)
    full[:len(palette)] = palette[:256]
    img = Image.fromarray(np.asarray(label).astype(np.uint8), mode='P')
    img.putpalette(full.reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    atomic_write_bytes(path, buf.getvalue())


@TASKS.register_module()
class SemanticTask(BaseTask):
    """Semantic segmentation: cross-entropy loss, mIoU (through mmseg's helpers).

    Canonical ground truth: HxW uint8 train ids, 255 where unlabelled. Label values at or
    above ``num_classes`` in a dataset's files are an error unless ``out_of_range_ignore``.
    """

    name = 'seg'
    abbrev = 'S'
    ignore_value = IGNORE_INDEX
    interpolation = 'nearest'
    likelihood = 'classification'
    metric_directions = {'mIoU': True, 'aAcc': True}

    def __init__(self, num_classes: int = 17, class_names: Optional[Sequence[str]] = None,
                 out_of_range_ignore: bool = False, **kwargs):
        super().__init__(**kwargs)
        #: label values beyond num_classes become "ignore" instead of an error (explicit only)
        self.out_of_range_ignore = bool(out_of_range_ignore)
        if not 1 <= int(num_classes) <= IGNORE_INDEX:
            raise ValueError(f'SemanticTask: num_classes={num_classes}, expected 1..'
                             f'{IGNORE_INDEX}: ground truth is stored as 8-bit class ids '
                             f'with {IGNORE_INDEX} = unlabelled (class ids 0..{IGNORE_INDEX - 1}); '
                             'larger ids would wrap around into other classes')
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f'SemanticTask: {len(class_names)} class_names given for '
                             f'num_classes={num_classes}')
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [
            f'class_{i}' for i in range(num_classes)]

    @property
    def out_channels(self) -> int:
        return self.num_classes

    @property
    def named(self) -> bool:
        """Whether the classes have names (given, or from a dataset's class map) rather than
        the placeholders ``class_<i>``."""
        return self.class_names != [f'class_{i}' for i in range(self.num_classes)]

    def options(self) -> dict:
        """``BaseTask.options`` plus the classes (names only where named, see
        :func:`mtl_adapters.tasks.check_model_data_tasks`) and ``out_of_range_ignore``."""
        return dict(super().options(), num_classes=self.num_classes,
                    class_names=list(self.class_names) if self.named else None,
                    out_of_range_ignore=self.out_of_range_ignore)

    def to_tensor(self, value: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(value.astype(np.int64)))[None]

    def valid_mask(self, gt: Tensor) -> Tensor:
        return gt != IGNORE_INDEX

    def random_gt(self, size, generator=None) -> Tensor:
        return torch.randint(0, self.num_classes, (1, *size), generator=generator)

    def default_loss(self) -> dict:
        return dict(type='CrossEntropyLoss', ignore_index=IGNORE_INDEX)

    def postprocess(self, logits: Tensor) -> Tensor:
        return logits.argmax(dim=1, keepdim=True)

    def metric_stats(self, pred: Tensor, gt: Tensor) -> dict:
        inter, union, area_pred, area_label = IoUMetric.intersect_and_union(
            pred[0].cpu(), gt[0].cpu().long(), self.num_classes, IGNORE_INDEX)
        return dict(intersect=inter, union=union, pred=area_pred, label=area_label)

    def reduce_metrics(self, stats: List[dict]) -> Dict[str, float]:
        totals = [sum(s[k] for s in stats) for k in ('intersect', 'union', 'pred', 'label')]
        res = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'], nan_to_num=None)
        iou = np.asarray(res['IoU'], dtype=np.float64)
        out = {'mIoU': float(np.nanmean(iou) * 100), 'aAcc': float(res['aAcc'] * 100)}
        for name, value in zip(self.class_names, iou):
            out[f'IoU.{name}'] = float(value * 100)
        return out

    def save_prediction(self, value: np.ndarray, stem):
        """Palette PNG ``<stem>_<task>.png``: pixel = class id, colours from the palette."""
        from pathlib import Path
        path = Path(stem).with_name(f'{Path(stem).name}_{self.name}.png')
        label = value[..., 0] if value.ndim == 3 else value
        write_label_png(path, label, label_palette(self.num_classes))
        return path

    def colorize(self, value: np.ndarray, reference: Optional[np.ndarray] = None) -> np.ndarray:
        label = value[..., 0] if value.ndim == 3 else value
        palette = label_palette(self.num_classes)
        rgb = np.zeros(label.shape + (3,), np.uint8)
        known = label < self.num_classes
        rgb[known] = palette[label[known].astype(np.int64)]
        return rgb

    def legend(self, reference=None, maps=()) -> list:
        """A colour swatch and the name of each class that appears in the drawn maps."""
        shown = set()
        for m in list(maps) + ([reference] if reference is not None else []):
            values = np.unique(np.asarray(m))
            shown.update(int(c) for c in values if 0 <= c < self.num_classes)
        palette = label_palette(self.num_classes)
        return [(np.broadcast_to(palette[c], (8, 12, 3)).astype(np.uint8), self.class_names[c])
                for c in sorted(shown)]
