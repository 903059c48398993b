"""SYNTHIA-RAND-CITYSCAPES: semantic labels, depth, and (prepared) normals and texture edges.

On-disk layout of the archive ``SYNTHIA_RAND_CITYSCAPES.rar`` (http://synthia-dataset.net/
downloads/, "SYNTHIA-RAND-CITYSCAPES (CVPR16)"), which extracts to a folder ``RAND_CITYSCAPES/``
(``data_root`` may be that folder or the folder holding it)::

    RGB/0000000.png ... RGB/0009399.png    9,400 frames, 8-bit RGB, 1280x760 (7-digit ids)
    GT/LABELS/<id>.png                      16-bit, 3 channels: R = SYNTHIA class id (0..22),
                                            G = instance id of dynamic objects
    GT/COLOR/<id>.png                       8-bit colour rendering of the labels (not used)
    Depth/Depth/<id>.png                    16-bit, 3 equal channels: depth in centimetres

Quirks: the label and depth PNGs are 16-bit *colour* images. OpenCV reads them as they are
(BGR order: the class id is channel 2 of ``cv2.imread(..., IMREAD_UNCHANGED)``, channel 0 of
the RGB array ``read_image`` returns); PIL reduces 16-bit colour to 8 bits per channel (the
high byte), which turns every class id into 0 ("void"), so never read them with PIL. Some
``unrar`` builds extract the archive's Windows paths as flat file names with backslashes
(``RGB\\0000000.png``): ``python data_prep/synthia.py --fix-backslash-names`` moves them into
folders. Some users report a handful of label files corrupted by the extraction: the
preparation names each one (exit code 1) and ``skip_missing=True`` drops frames that lack a file.

Decoding (canonical units):

* ``seg``: the R channel (SYNTHIA class id, the index into ``synthia_classes``) through a
  class map of ``class_maps/`` (``class_map``, read by ``datasets/class_map.py``):
  ``'cityscapes16'`` (default, ``synthia_to_cityscapes16.json``) numbers the 16 classes shared
  with Cityscapes 0..15 in Cityscapes train-id order (road, sidewalk, building, wall, fence,
  pole, traffic light, traffic sign, vegetation, sky, person, rider, car, bus, motorcycle,
  bicycle), the index space of the SYNTHIA->Cityscapes 16-class protocol; ``'cityscapes19'``
  (``synthia_to_cityscapes19.json``) is DAFormer's published conversion to the 19 Cityscapes
  train ids (terrain, truck and train kept), for training next to a 19-class Cityscapes
  config; ``'cityscapes19-shared16'`` numbers only the 16 shared classes in train ids (terrain,
  truck and train unlabelled, so not evaluated: ``metainfo['eval_classes']``). Every other
  SYNTHIA id (void, parking-slot, road-work, lanemarking) is 255.
* ``depth``: centimetres / 100 -> metres (z-depth). 0 and 65535 (saturated) become 0 (invalid).
* ``normal`` and ``edge``: SYNTHIA has neither; ``data_prep/synthia.py`` derives them once
  (normals from the depth with the SYNTHIA camera, texture edges from the RGB, both at the
  working resolution, by default the native 1280x760) into ``<derived_dir>/normal/<id>.png``
  (16-bit RGB, ``value = round((n + 1) / 2 * 65535)`` per component of the unit normal in the
  OpenCV camera frame, (0, 0, 0) = no normal) and ``<derived_dir>/edge/<id>.png`` (16-bit grey,
  edge = value / 65535): the encodings of Cityscapes' prepared targets. Prepared at another
  working resolution (same aspect ratio), the loader resizes them to the image.

Camera: focal length 532.740352 px, principal point (640, 380) at 1280x760
(``SYNTHIA_INTRINSICS``). RAND-CITYSCAPES ships no camera files; these are the intrinsics of
SYNTHIA's camera in ``CameraParams/intrinsics.txt`` of the SYNTHIA-SEQS releases, rendered at
the same 1280x760.

Splits: SYNTHIA-RAND-CITYSCAPES has no official split. The domain-adaptation literature trains
on all 9,400 frames and evaluates on Cityscapes (``split='all'``). For in-domain training and
evaluation, ``split='val'`` holds every 10th frame (id % 10 == 9, 940 frames) and
``split='train'`` the rest (8,460). The frames are independent random renderings (not a video),
so interleaved ids do not leak. Our configs (``configs/_base_/datasets/synthia_sdne.py``) train
on ``train`` and evaluate on whole 1280x760 ``val`` frames: 16-class mIoU, depth within
1e-3..80 m (pixel-pooled, no crop), normals and edges on all pixels that have them.
"""
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from mtl_adapters.registry import DATASETS
from mtl_adapters.tasks import build_tasks
from .base import MultiTaskDataset
from .class_map import ClassMap, check_semantic_task, class_map_metainfo, load_class_map
from .prepared import decode_edges, decode_normals

RGB_DIR = 'RGB'
LABEL_DIR = 'GT/LABELS'
DEPTH_DIR = 'Depth/Depth'
#: the folder the archive extracts to
ARCHIVE_FOLDER = 'RAND_CITYSCAPES'
#: folders of the prepared (derived) targets, inside ``derived_dir``
DERIVED_DIRS = {'normal': 'normal', 'edge': 'edge'}
NATIVE_SIZE = (760, 1280)                       # (H, W) of every SYNTHIA-RAND-CITYSCAPES file
#: (focal length, cx, cy) in pixels at NATIVE_SIZE (SYNTHIA-SEQS CameraParams/intrinsics.txt)
SYNTHIA_INTRINSICS = (532.740352, 640.0, 380.0)
DEPTH_UNITS_PER_METRE = 100.0                   # centimetres
DEPTH_INVALID = (0, 65535)                      # no depth / saturated (beyond 655.34 m)
# prepared normals and edges: the 16-bit encodings of datasets/prepared.py
#: SYNTHIA's classes, index = class id (README.txt of the archive); the class maps list them so
SYNTHIA_CLASSES = ('void', 'sky', 'building', 'road', 'sidewalk', 'fence', 'vegetation', 'pole',
                   'car', 'traffic sign', 'pedestrian', 'bicycle', 'motorcycle', 'parking-slot',
                   'road-work', 'traffic light', 'terrain', 'rider', 'truck', 'bus', 'train',
                   'wall', 'lanemarking')
NUM_SYNTHIA_IDS = len(SYNTHIA_CLASSES)          # class ids 0..22
SPLITS = ('train', 'val', 'all')
VAL_EVERY = 10                                  # val = ids with id % 10 == 9
_NAME = re.compile(r'^(?P<id>\d{7})\.png$')


def synthia_intrinsics(size: Tuple[int, int] = NATIVE_SIZE,
                       intrinsics: Sequence[float] = SYNTHIA_INTRINSICS) -> np.ndarray:
    """3x3 K of the SYNTHIA camera for images resized from 1280x760 to ``size`` (H, W)."""
    from .geometry import scale_intrinsics
    f, cx, cy = intrinsics
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    h, w = size
    return scale_intrinsics(K, w / NATIVE_SIZE[1], h / NATIVE_SIZE[0])


def load_synthia_class_map(class_map: Union[str, Path] = 'cityscapes16') -> ClassMap:
    """The :class:`ClassMap` of a label protocol (``class_maps/synthia_to_<name>.json``:
    ``'cityscapes16'``, ``'cityscapes19'``, or a JSON path) over the SYNTHIA class ids."""
    return load_class_map(class_map, label_set='synthia', first_id=0,
                          source_classes=SYNTHIA_CLASSES, dataset='SYNTHIA')


def decode_synthia_label(raw: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """A GT/LABELS array as ``read_image`` returns it (RGB order) -> HxW train ids, 255 = none."""
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise ValueError(f'found {raw.dtype} with shape {raw.shape}, expected a 16-bit 3-channel '
                         'SYNTHIA GT/LABELS file (class id in R)')
    ids = raw[..., 0]
    bad = ids >= NUM_SYNTHIA_IDS
    if bad.any():
        values = np.unique(ids[bad])[:10].tolist()
        raise ValueError(f'class ids {values} ({int(bad.sum())} pixels) are not SYNTHIA ids '
                         f'(0..{NUM_SYNTHIA_IDS - 1}): not a SYNTHIA-RAND-CITYSCAPES label file')
    return lut[ids]


def decode_synthia_depth(raw: np.ndarray) -> np.ndarray:
    """A Depth/Depth array (16-bit centimetres, 3 equal channels) -> HxW metres, 0 = invalid."""
    if raw.dtype != np.uint16:
        raise ValueError(f'found {raw.dtype} values, expected 16-bit centimetres (SYNTHIA '
                         'Depth/Depth)')
    if raw.ndim == 3:
        if raw.shape[2] != 3 or not all(np.array_equal(raw[..., 0], raw[..., c])
                                        for c in (1, 2)):
            raise ValueError(f'found {raw.shape[2]} channel(s) that differ, expected 3 equal '
                             'channels (SYNTHIA encodes depth in any of the 3)')
        raw = raw[..., 0]
    depth = raw.astype(np.float32) / DEPTH_UNITS_PER_METRE
    depth[np.isin(raw, DEPTH_INVALID)] = 0.0
    return depth


def frame_in_split(frame_id: str, split: str) -> bool:
    """Our fixed split: val = every 10th frame (id % 10 == 9), train = the rest, all = all."""
    if split == 'all':
        return True
    return (int(frame_id) % VAL_EVERY == VAL_EVERY - 1) == (split == 'val')


def resolve_synthia_root(root) -> Path:
    """``root`` if it holds ``RGB/``, else ``root/RAND_CITYSCAPES`` (the archive's folder);
    an error naming both and the fix otherwise."""
    root = Path(root)
    for candidate in (root, root / ARCHIVE_FOLDER):
        if (candidate / RGB_DIR).is_dir():
            return candidate
    flat = [p.name for p in root.glob('*\\*')] if root.is_dir() else []
    if flat:
        raise FileNotFoundError(
            f'{root} holds {len(flat)} file(s) named with backslashes (e.g. {flat[0]!r}): the '
            'archive was extracted with Windows paths as file names. Fix: python '
            f'data_prep/synthia.py --src {root} --fix-backslash-names')
    raise FileNotFoundError(
        f'neither {root / RGB_DIR} nor {root / ARCHIVE_FOLDER / RGB_DIR} exists: data_root must '
        'be the extracted SYNTHIA_RAND_CITYSCAPES.rar (RGB/, GT/LABELS/, Depth/Depth/), from '
        'http://synthia-dataset.net/downloads/ ("SYNTHIA-RAND-CITYSCAPES (CVPR16)"); see '
        '`python data_prep/synthia.py --help`.')


def list_frames(root) -> List[str]:
    """The 7-digit frame ids of ``<root>/RGB/*.png``, sorted."""
    return sorted(m['id'] for m in (_NAME.match(p.name) for p in (Path(root) / RGB_DIR).iterdir())
                  if m is not None)


def synthia_paths(root, derived, frame_id: str) -> Dict[str, Path]:
    """``{'img', 'seg', 'depth', 'normal', 'edge': path}`` of one frame."""
    root, derived = Path(root), Path(derived)
    name = f'{frame_id}.png'
    return dict(img=root / RGB_DIR / name, seg=root / LABEL_DIR / name,
                depth=root / DEPTH_DIR / name,
                normal=derived / DERIVED_DIRS['normal'] / name,
                edge=derived / DERIVED_DIRS['edge'] / name)


@DATASETS.register_module()
class SynthiaDataset(MultiTaskDataset):
    """SYNTHIA-RAND-CITYSCAPES with S-D-N-E targets (see the module docstring).

    Args:
        data_root: the extracted archive (``RAND_CITYSCAPES/`` or its parent).
        tasks: task configs, declared once (``seg`` needs the class map's ``num_classes``, 16
            or 19; a SemanticTask without class_names gets the map's).
        split: 'train', 'val' (every 10th frame) or 'all' (the UDA convention).
        derived_dir: the prepared normals/edges (``data_prep/synthia.py --out``), relative to
            ``data_root`` or absolute.
        class_map: label protocol, 'cityscapes16' (0..15, default), 'cityscapes19' (Cityscapes
            train ids, DAFormer's conversion), 'cityscapes19-shared16' or a JSON path
            (``class_maps/synthia_to_<name>.json``); only the classes some SYNTHIA class maps
            to are evaluated (``metainfo['eval_classes']``).
        frames: use these frame ids instead of ``split``.
        skip_missing: drop frames that lack a file (with a warning) instead of raising.
    """

    METAINFO = dict(dataset='synthia')
    DECODERS = ('seg', 'depth', 'normal', 'edge')

    def __init__(self, data_root: str, tasks: Sequence, split: str = 'train',
                 derived_dir: str = 'derived', class_map: str = 'cityscapes16',
                 frames: Optional[Sequence[str]] = None, skip_missing: bool = False, **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        self.split = split
        self.derived_dir = derived_dir
        self.class_map = load_synthia_class_map(class_map)
        self.lut = self.class_map.lut
        self.class_names = list(self.class_map.class_names)
        self.frames = [str(f) for f in frames] if frames is not None else None
        self.skip_missing = skip_missing
        # the model classes this protocol can evaluate (metric: only these are reported)
        metainfo = dict(kwargs.pop('metainfo', None) or {},
                        **class_map_metainfo(self.class_map, 'seg'))
        tasks = build_tasks(tasks)
        if 'seg' in tasks:          # before the base copies the tasks into the metainfo
            check_semantic_task(tasks['seg'], self.class_map, 'SYNTHIA')
        super().__init__(tasks=list(tasks.values()), data_root=data_root, metainfo=metainfo,
                         **kwargs)

    def full_init(self):
        unknown = [n for n in self.tasks if n not in self.DECODERS]
        if unknown:
            raise ValueError(f'SynthiaDataset has no ground truth for task(s) {unknown}; it '
                             f'provides {list(self.DECODERS)}')
        super().full_init()

    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """SYNTHIA's encodings (labels, depth) and ours (prepared normals, edges)."""
        if name == 'seg':
            return decode_synthia_label(raw, self.lut)
        if name == 'depth':
            return decode_synthia_depth(raw)
        return decode_normals(raw) if name == 'normal' else decode_edges(raw)

    def load_data_list(self) -> List[dict]:
        root = resolve_synthia_root(self.data_root)
        derived = Path(self.derived_dir)
        if not derived.is_absolute():
            derived = Path(self.data_root) / derived
        frames = self.frames
        if frames is None:
            frames = [f for f in list_frames(root) if frame_in_split(f, self.split)]
        data_list, missing, dropped = [], [], 0
        for frame in frames:
            paths = synthia_paths(root, derived, frame)
            wanted = ['img'] + list(self.label_tasks)
            absent = [str(paths[k]) for k in wanted if not paths[k].is_file()]
            if absent:
                missing.extend(absent)
                dropped += 1
                continue
            data_list.append(dict(img_path=str(paths['img']), frame=frame,
                                  task_paths={k: str(paths[k]) for k in self.label_tasks}))
        if missing and not self.skip_missing:
            derived_missing = any(str(derived) in m for m in missing)
            fix = (f'run `python data_prep/synthia.py --src {self.data_root}` (it resumes; '
                   'its --out must be this derived_dir)' if derived_missing else
                   're-extract the file from SYNTHIA_RAND_CITYSCAPES.rar')
            raise FileNotFoundError(
                f'{len(missing)} file(s) missing, first: {missing[0]}. Fix: {fix}, or set '
                'skip_missing=True to drop those frames.')
        if missing:
            print_log(f'SynthiaDataset: skipped {dropped} frame(s) with missing files '
                      f'({len(missing)} files), first: {missing[0]}', logger='current')
        if not data_list:
            raise FileNotFoundError(f'no frames found for split {self.split!r} under {root}')
        return data_list
