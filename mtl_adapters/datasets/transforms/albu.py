"""Joint albumentations augmentation of the image and all task maps.

Geometric transforms are applied to the image and every task map together (labels with
nearest interpolation as albumentations masks, continuous maps bilinear as extra images);
photometric transforms touch the RGB image only. After a horizontal flip each task fixes its
values (``task.hflip_values``: the normal's x-component changes sign).

Every task map travels with its validity mask (same interpolation): a pixel whose resampling
touched an invalid or padded pixel becomes the task's ignore value afterwards
(``task.clean_resampled``). So bilinear resizing never invents depths between a measurement
and the "no measurement" 0, and padding (albumentations fills with 0, a real class for labels)
is ignored for every task, whatever the transform's fill value.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import albumentations as A
import numpy as np

from mtl_adapters.registry import TRANSFORMS
from .base import TaskTransform

#: transforms after which pixel values that encode directions must be mirrored
_HFLIPS = ('HorizontalFlip',)
#: transforms that rotate directions; the normal vectors would need rotating too
_ROTATIONS = ('Rotate', 'SafeRotate', 'Affine', 'ShiftScaleRotate', 'RandomRotate90',
              'Transpose', 'VerticalFlip', 'D4', 'Perspective', 'ElasticTransform')


def _build(cfgs: Optional[Sequence[dict]]) -> List[A.BasicTransform]:
    transforms = []
    for cfg in cfgs or []:
        cfg = dict(cfg)
        name = cfg.pop('type')
        if not hasattr(A, name):
            raise KeyError(f'albumentations has no transform {name!r} (config key `type`)')
        transforms.append(getattr(A, name)(**cfg))
    return transforms


@TRANSFORMS.register_module()
class MultiTaskAlbu(TaskTransform):
    """Albumentations over ``img`` and ``gt[task]`` with geometry shared by all.

    The tasks (the dataset's, see ``TaskTransform``) decide each map's interpolation and flip
    behaviour; the joint pipeline is built once per task set, on the first sample.

    Args:
        geometric: albumentations configs applied jointly, e.g.
            ``[dict(type='RandomResizedCrop', size=(128, 128)), dict(type='HorizontalFlip')]``.
        photometric: albumentations configs applied to the RGB image only.
        tasks: only outside a dataset.
    """

    def __init__(self, geometric: Optional[Sequence[dict]] = None,
                 photometric: Optional[Sequence[dict]] = None, tasks: Optional[Sequence] = None):
        super().__init__(tasks)
        self.geometric_cfg, self.photometric_cfg = geometric, photometric
        _build(geometric)                                  # unknown names fail at build time
        self.photometric = A.Compose(_build(photometric))
        self._geometric: Dict[Tuple[str, ...], A.Compose] = {}
        if self.own_tasks is not None:
            self.geometric_for(self.own_tasks)

    def geometric_for(self, tasks) -> A.Compose:
        """The joint geometric pipeline for this task set (built and checked once)."""
        key = tuple(tasks)
        if key in self._geometric:
            return self._geometric[key]
        geo = _build(self.geometric_cfg)
        directional = [t for t in tasks.values()
                       if not np.array_equal(t.hflip_values(np.ones((1, 1, 3), np.float32)),
                                             np.ones((1, 1, 3), np.float32))]
        for t in geo:
            if directional and type(t).__name__ in _ROTATIONS:
                raise ValueError(f'{type(t).__name__} rotates the image but not the vectors of '
                                 f'{[d.name for d in directional]}: use crops, scales and '
                                 'HorizontalFlip for these tasks')
        targets = {}
        for n, t in tasks.items():
            kind = 'mask' if t.interpolation == 'nearest' else 'image'
            targets.update({f'gt_{n}': kind, f'valid_{n}': kind})
        self._geometric[key] = A.Compose(geo, additional_targets=targets,
                                         save_applied_params=True)
        return self._geometric[key]

    def reseed(self, geometric: A.Compose) -> None:
        """Seed both pipelines for this sample from numpy's global generator.

        albumentations 2 draws from generators of its own, which no global seed reaches, so
        two runs with the same ``randomness.seed`` would differ from the first batch. numpy's
        global generator is seeded from the run's seed by mmengine (per dataloader worker and
        rank, ``worker_init_fn``; in the main process by ``set_random_seed``), and a resumed
        run replays the batches it skips, so runs and resumed runs see the same augmentations.
        """
        seed = int(np.random.randint(0, 2 ** 31 - 2))
        geometric.set_random_seed(seed)
        self.photometric.set_random_seed(seed + 1)

    def transform(self, results: dict) -> dict:
        tasks = self.tasks_of(results)
        geometric = self.geometric_for(tasks)
        self.reseed(geometric)
        gts = results['gt']
        maps = {}
        for name, value in gts.items():
            maps[f'gt_{name}'] = value
            task = tasks[name]        # float masks for bilinear targets: fractions survive
            dtype = np.uint8 if task.interpolation == 'nearest' else np.float32
            maps[f'valid_{name}'] = task.valid_mask_np(value).astype(dtype)
        out = geometric(image=results['img'], **maps)
        flipped = sum(name in _HFLIPS for name, _ in out['applied_transforms']) % 2 == 1
        new_gt = {}
        for name in gts:
            task = tasks[name]
            value = task.clean_resampled(out[f'gt_{name}'], out[f'valid_{name}'] > 1 - 1e-3)
            new_gt[name] = task.hflip_values(value) if flipped else value
        img = self.photometric(image=out['image'])['image']
        results.update(img=img, gt=new_gt, img_shape=img.shape[:2],
                       flip=bool(results.get('flip', False)) ^ flipped)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(geometric={self.geometric_cfg}, '
                f'photometric={self.photometric_cfg})')
