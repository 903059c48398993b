"""Joint albumentations augmentation of the image and all task maps.

Geometric transforms are applied to the image and every task map together (labels with
nearest interpolation as albumentations masks, continuous maps bilinear as extra images);
photometric transforms touch the RGB image only. Each list takes only transforms whose effect
on every task is known, and refuses the others by name: ``photometric`` pixel-level ones
(albumentations ``ImageOnlyTransform``), ``geometric`` those of ``GEOMETRIC_ALLOWED``. After a
flip, quarter turn or transposition each task fixes its values with the transform's in-plane
matrix (``task.reorient_values``: the normal's (x, y) components turn or mirror with the
image).

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

#: in-plane matrices (image axes: x right, y down; old pixel offset -> new) of the D4 elements,
#: by albumentations' names: identity, counter-clockwise quarter turns, flips, transpositions
_D4 = {'e': ((1, 0), (0, 1)), 'r90': ((0, 1), (-1, 0)), 'r180': ((-1, 0), (0, -1)),
       'r270': ((0, -1), (1, 0)), 'v': ((1, 0), (0, -1)), 'h': ((-1, 0), (0, 1)),
       't': ((0, 1), (1, 0)), 'hvt': ((0, -1), (-1, 0))}
#: geometric transforms that move pixels by a known orthogonal map, and that map from the
#: parameters albumentations applied; each task fixes its values with ``task.reorient_values``
_REORIENTING = {
    'HorizontalFlip': lambda p: _D4['h'],
    'VerticalFlip': lambda p: _D4['v'],
    'Transpose': lambda p: _D4['t'],
    'RandomRotate90': lambda p: np.linalg.matrix_power(np.array(_D4['r90']), int(p['factor'])),
    'D4': lambda p: _D4[str(p['group_element'])],
    'SquareSymmetry': lambda p: _D4[str(p['group_element'])],
}
#: geometric transforms that only crop, pad or rescale: no task value changes
_RESAMPLING = ('Resize', 'RandomScale', 'LongestMaxSize', 'SmallestMaxSize', 'RandomCrop',
               'CenterCrop', 'Crop', 'RandomResizedCrop', 'RandomSizedCrop', 'PadIfNeeded',
               'Pad')
#: what the ``geometric`` list accepts: every transform whose effect on each task is known
GEOMETRIC_ALLOWED = tuple(_RESAMPLING) + tuple(_REORIENTING)


def _build(cfgs: Optional[Sequence[dict]], where: str) -> List[A.BasicTransform]:
    """Build the albumentations transforms of one list, refusing those the list cannot take.

    ``photometric`` takes pixel-level transforms only (albumentations ``ImageOnlyTransform``:
    they change the image and nothing else, so no task map needs to follow); ``geometric``
    takes the transforms of ``GEOMETRIC_ALLOWED`` (crops, pads, rescales, and flips, quarter
    turns and transpositions, whose effect on direction values the tasks implement).
    """
    transforms = []
    for i, cfg in enumerate(cfgs or []):
        cfg = dict(cfg)
        name = cfg.pop('type')
        if not hasattr(A, name):
            raise KeyError(f'albumentations has no transform {name!r} '
                           f'(MultiTaskAlbu {where}[{i}].type)')
        cls = getattr(A, name)
        if where == 'photometric' and not (isinstance(cls, type)
                                           and issubclass(cls, A.ImageOnlyTransform)):
            raise ValueError(
                f'MultiTaskAlbu photometric[{i}]: {name} is not a pixel-level transform '
                '(albumentations ImageOnlyTransform): it would move the image but not the task '
                'maps. The photometric list takes only ImageOnlyTransforms (ColorJitter, '
                f'GaussianBlur, ...); for a geometric one use `geometric` (allowed there: '
                f'{", ".join(GEOMETRIC_ALLOWED)}).')
        if where == 'geometric' and name not in GEOMETRIC_ALLOWED:
            raise ValueError(
                f'MultiTaskAlbu geometric[{i}]: {name} is not allowed: its effect on the task '
                'values (e.g. the direction of surface normals) is not implemented, or it is '
                'not geometric. The geometric list takes only '
                f'{", ".join(GEOMETRIC_ALLOWED)}; pixel-level transforms go to `photometric`.')
        transforms.append(cls(**cfg))
    return transforms


def orientation_of(applied: Sequence) -> np.ndarray:
    """The 2x2 in-plane matrix (old pixel offset -> new) of albumentations'
    ``applied_transforms`` list, composed in the order they ran."""
    matrix = np.eye(2, dtype=np.int64)
    for name, params in applied:
        if name in _REORIENTING:
            matrix = np.asarray(_REORIENTING[name](params), np.int64) @ matrix
        elif name not in _RESAMPLING:
            raise ValueError(f'MultiTaskAlbu: applied transform {name} has no known effect on '
                             f'the task values (allowed: {", ".join(GEOMETRIC_ALLOWED)})')
    return matrix


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
        _build(geometric, 'geometric')              # refused names fail at build time
        self.photometric = A.Compose(_build(photometric, 'photometric'))
        self._geometric: Dict[Tuple[str, ...], A.Compose] = {}
        if self.own_tasks is not None:
            self.geometric_for(self.own_tasks)

    def geometric_for(self, tasks) -> A.Compose:
        """The joint geometric pipeline for this task set (built and checked once)."""
        key = tuple(tasks)
        if key in self._geometric:
            return self._geometric[key]
        geo = _build(self.geometric_cfg, 'geometric')
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
        orientation = orientation_of(out['applied_transforms'])
        moved = not np.array_equal(orientation, np.eye(2))
        flipped = bool(np.linalg.det(orientation) < 0)           # a mirror image
        new_gt = {}
        for name in gts:
            task = tasks[name]
            value = task.clean_resampled(out[f'gt_{name}'], out[f'valid_{name}'] > 1 - 1e-3)
            new_gt[name] = task.reorient_values(value, orientation) if moved else value
        img = self.photometric(image=out['image'])['image']
        results.update(img=img, gt=new_gt, img_shape=img.shape[:2],
                       flip=bool(results.get('flip', False)) ^ flipped)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(geometric={self.geometric_cfg}, '
                f'photometric={self.photometric_cfg})')
