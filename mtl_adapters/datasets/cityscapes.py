"""Cityscapes (S, D, N, E): the official archives plus the targets we derive from them.

On-disk layout (``data_root``, as the official archives unpack; cityscapesScripts README)::

    leftImg8bit/{split}/{city}/{city}_{seq:06}_{frame:06}_leftImg8bit.png   8-bit RGB, 2048x1024
    gtFine/{split}/{city}/{stem}_gtFine_labelIds.png       8-bit grey, official label ids 0..33
    disparity/{split}/{city}/{stem}_disparity.png          16-bit grey, p -> (p - 1) / 256 px
    camera/{split}/{city}/{stem}_camera.json               extrinsic.baseline (m),
                                                           intrinsic.fx/fy/u0/v0 (px)

``gtFine`` also holds ``_gtFine_color.png``, ``_gtFine_instanceIds.png``,
``_gtFine_polygons.json`` and, after ``csCreateTrainIdLabelImgs``, ``_gtFine_labelTrainIds.png``:
only ``labelIds`` is read (a ``labelTrainIds`` file passed instead is refused: its 255s are not
label ids). Splits: ``train`` (2975 images), ``val`` (500), ``test`` (1525, labels not public:
its ``labelIds`` only mark the ego vehicle and the rectification border, so a test sample
has no ``seg`` ground truth here). The configs train on ``train`` and evaluate on ``val``, the
usual practice for Cityscapes.

Prepared by ``data_prep/cityscapes.py`` at one working resolution ``H x W`` (default
512x1024, half the original; same aspect ratio), under ``prepared_root`` (default
``data_root``), in the same ``{kind}/{split}/{city}/{stem}_{suffix}`` pattern::

    leftImg8bit_{H}x{W}/.../{stem}_leftImg8bit.png   8-bit RGB, the image resized (INTER_AREA)
    normal_{H}x{W}/.../{stem}_normal.png             16-bit RGB, see NORMAL encoding below
    edgeTexture_{H}x{W}/.../{stem}_edgeTexture.png   16-bit grey, edge = value / 65535

The model sees the prepared image, so every target lives on the working grid.

Where each target comes from, and why there:

* **S** (load time): ``labelIds`` through the 34-entry table below (from cityscapesScripts'
  ``helpers/labels.py``) to the 19 train ids, everything else 255. A table lookup is free,
  so the official file is read as it is (nothing to re-derive if the table changes); the
  loader resizes it (nearest) to the working grid. Another protocol over the same label ids is
  a class map (``class_map='cityscapes8'``: the 8-class VKITTI2 -> Cityscapes protocol of
  XTAM-UDA, Lopes et al. WACV 2023, with car and bus as 'car' and truck unlabelled,
  ``class_maps/cityscapes_to_cityscapes8.json``; ``'cityscapes8-labeldefs'``: the same 8 by
  Cityscapes' definitions, car alone; ``'cityscapes16'``: SYNTHIA's 16, for SYNTHIA ->
  Cityscapes). Each map's ``follows`` names the published table it transcribes.
* **D** (load time): disparity ``d = (p - 1) / 256`` px for ``p > 1`` (``p = 0`` is the
  official "invalid"; ``p = 1`` is d = 0, infinitely far), depth ``= baseline * fx / d``
  with the sample's own camera file (read once, in ``load_data_list``). Pixels labelled ego
  vehicle, rectification border or out of ROI (label ids 1, 2, 3) are invalid: the ego car's
  bonnet reflects the scene and its stereo disparity is not the scene's depth. The disparity
  is averaged over each working pixel (area resampling; a working pixel with any invalid
  source pixel is invalid) *before* inversion: disparity is affine on a plane, depth is not,
  so planes stay planes. Depths beyond ``max_depth`` (metres; the config passes the same
  number as the depth metric's ``max_depth``) are invalid: at 80 m the disparity is about 6
  px, and stereo depth error grows with the square of the distance.
* **N** (prep time): ``normals_from_depth`` of exactly that working-grid depth (capped at
  ``NORMAL_MAX_DEPTH``), with the camera intrinsics scaled to the working grid
  (``scale_intrinsics``); they need the whole depth map and its neighbourhoods, cost far more
  than a lookup and would lose accuracy if resized afterwards.
* **E** (prep time): ``texture_edges`` of the prepared working-grid RGB, the recipe of our
  synthetic scenes; its blur scales with the image size, so it must be computed at the
  resolution it is used at.

Evaluation: on whole working-resolution ``val`` images; depth within ``[min_depth,
max_depth]`` of the depth task's ``metric_cfg`` (the configs use 1e-3 to 80 m, the range in
which driving-scene depth is usually evaluated), pixel-pooled, no crop (the ego vehicle is
already masked by its labels); mIoU over the 19 classes.
"""
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from mtl_adapters.registry import DATASETS
from mtl_adapters.tasks import build_tasks
from mtl_adapters.utils import DataFileError, read_image
from .base import MultiTaskDataset
from .class_map import check_semantic_task, class_map_metainfo, load_class_map
from .prepared import decode_edges, decode_normals
from .geometry import depth_from_disparity, intrinsics_matrix

SPLITS = ('train', 'val', 'test')
#: (label id, name, train id) of the 34 labels of cityscapesScripts' helpers/labels.py
#: (train id 255: not a class of the benchmark; 'license plate', id -1, never in the files)
LABELS: Tuple[Tuple[int, str, int], ...] = (
    (0, 'unlabeled', 255), (1, 'ego vehicle', 255), (2, 'rectification border', 255),
    (3, 'out of roi', 255), (4, 'static', 255), (5, 'dynamic', 255), (6, 'ground', 255),
    (7, 'road', 0), (8, 'sidewalk', 1), (9, 'parking', 255), (10, 'rail track', 255),
    (11, 'building', 2), (12, 'wall', 3), (13, 'fence', 4), (14, 'guard rail', 255),
    (15, 'bridge', 255), (16, 'tunnel', 255), (17, 'pole', 5), (18, 'polegroup', 255),
    (19, 'traffic light', 6), (20, 'traffic sign', 7), (21, 'vegetation', 8),
    (22, 'terrain', 9), (23, 'sky', 10), (24, 'person', 11), (25, 'rider', 12), (26, 'car', 13),
    (27, 'truck', 14), (28, 'bus', 15), (29, 'caravan', 255), (30, 'trailer', 255),
    (31, 'train', 16), (32, 'motorcycle', 17), (33, 'bicycle', 18),
)
NUM_LABEL_IDS = len(LABELS)
#: the 19 evaluated classes, in train-id order
CITYSCAPES_CLASSES = tuple(name for _, name, train in sorted(LABELS, key=lambda r: r[2])
                           if train != 255)
IGNORE_INDEX = 255
#: label id -> train id, for every uint8 value (values beyond the table are refused)
LABEL_TO_TRAIN = np.full(256, IGNORE_INDEX, np.uint8)
for _id, _name, _train in LABELS:
    LABEL_TO_TRAIN[_id] = _train
#: label ids whose pixels show no scene depth: ego vehicle, rectification border, out of roi
VOID_LABEL_IDS = (1, 2, 3)
#: disparity PNG: d = (p - 1) / DISPARITY_SCALE pixels for p > 1
DISPARITY_SCALE = 256.0
#: prepared normals are derived only where the stereo depth is within this range (metres)
NORMAL_MAX_DEPTH = 80.0
# prepared normals and edges: the 16-bit encodings of datasets/prepared.py
#: the working resolution of the shipped configs and of data_prep/cityscapes.py (H, W)
DEFAULT_WORK_SIZE = (512, 1024)

_IMAGE_NAME = re.compile(r'^(?P<stem>.+_\d{6}_\d{6})_leftImg8bit\.png$')
#: task name -> the file kind that holds its ground truth
TASK_FILES = {'seg': 'label_ids', 'depth': 'disparity', 'normal': 'normal', 'edge': 'edge'}
ARCHIVES = {'leftImg8bit': 'leftImg8bit_trainvaltest.zip', 'gtFine': 'gtFine_trainvaltest.zip',
            'disparity': 'disparity_trainvaltest.zip', 'camera': 'camera_trainvaltest.zip'}


def size_tag(size: Sequence[int]) -> str:
    """``(512, 1024)`` -> ``'512x1024'`` (H x W), the suffix of the prepared folders."""
    h, w = (int(s) for s in size)
    return f'{h}x{w}'


def sample_files(root, split: str, city: str, stem: str, size: Sequence[int],
                 prepared_root=None) -> Dict[str, Path]:
    """Every file of one sample: the official inputs and the prepared outputs."""
    root = Path(root)
    prep = Path(prepared_root) if prepared_root is not None else root
    tag = size_tag(size)

    def official(kind: str, suffix: str) -> Path:
        return root / kind / split / city / f'{stem}_{suffix}'

    def prepared(kind: str, suffix: str) -> Path:
        return prep / f'{kind}_{tag}' / split / city / f'{stem}_{suffix}'

    return dict(image=official('leftImg8bit', 'leftImg8bit.png'),
                label_ids=official('gtFine', 'gtFine_labelIds.png'),
                disparity=official('disparity', 'disparity.png'),
                camera=official('camera', 'camera.json'),
                image_work=prepared('leftImg8bit', 'leftImg8bit.png'),
                normal=prepared('normal', 'normal.png'),
                edge=prepared('edgeTexture', 'edgeTexture.png'))


def list_samples(root, split: str, cities: Optional[Sequence[str]] = None
                 ) -> List[Tuple[str, str]]:
    """``[(city, stem)]`` of a split, from ``leftImg8bit/{split}/`` (sorted)."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    folder = Path(root) / 'leftImg8bit' / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f'{folder} does not exist: data_root must be the folder where the Cityscapes '
            f'archives {", ".join(ARCHIVES.values())} were unpacked (it holds leftImg8bit/, '
            'gtFine/, disparity/ and camera/). See `python data_prep/cityscapes.py --help`.')
    city_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if cities is not None:
        known = {p.name for p in city_dirs}
        unknown = sorted(set(cities) - known)
        if unknown:
            raise FileNotFoundError(f'cities {unknown} are not in {folder} (found '
                                    f'{sorted(known)})')
        city_dirs = [p for p in city_dirs if p.name in set(cities)]
    out = []
    for city_dir in city_dirs:
        for img in sorted(city_dir.iterdir()):
            m = _IMAGE_NAME.match(img.name)
            if m is not None:
                out.append((city_dir.name, m['stem']))
    return out


def read_camera(path) -> Dict[str, float]:
    """A ``_camera.json`` -> ``{'baseline', 'fx', 'fy', 'u0', 'v0'}`` (metres, pixels); an
    error naming the file if it is missing, not JSON, or lacks a positive field."""
    path = Path(path)
    fix = 'unpack camera_trainvaltest.zip into the data_root again'
    if not path.is_file():
        raise DataFileError(f'missing file: {path}. Fix: {fix}.')
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
        cam = dict(baseline=float(data['extrinsic']['baseline']))
        cam.update({k: float(data['intrinsic'][k]) for k in ('fx', 'fy', 'u0', 'v0')})
    except (ValueError, KeyError, TypeError) as err:
        raise DataFileError(f'cannot read camera file {path} ({type(err).__name__}: {err}): '
                            'expected {"extrinsic": {"baseline": ...}, "intrinsic": {"fx", '
                            f'"fy", "u0", "v0"}}. Fix: {fix}.') from err
    bad = {k: v for k, v in cam.items()
           if not np.isfinite(v) or (k in ('baseline', 'fx', 'fy') and v <= 0)}
    if bad:
        raise DataFileError(f'camera file {path} has non-positive or non-finite values {bad}. '
                            f'Fix: {fix}.')
    return cam


def camera_matrix(camera: Dict[str, float]) -> np.ndarray:
    """The 3x3 intrinsics of a camera file's values (at the original 2048x1024 grid)."""
    return intrinsics_matrix(camera['fx'], camera['fy'], camera['u0'], camera['v0'])


def _check_raw(raw: np.ndarray, dtype: str, channels: int, what: str) -> np.ndarray:
    got = 1 if raw.ndim == 2 else raw.shape[-1]
    if raw.dtype != np.dtype(dtype) or got != channels:
        raise ValueError(f'found {raw.dtype} with {got} channel(s), expected {dtype} with '
                         f'{channels} for a Cityscapes {what} file')
    return raw


def decode_label_ids(raw: np.ndarray, lut: np.ndarray = LABEL_TO_TRAIN) -> np.ndarray:
    """``gtFine_labelIds`` (uint8, ids 0..33) -> train ids (uint8, 255 = not evaluated) through
    ``lut`` (label id -> train id; default the 19 classes, else a class map's)."""
    raw = _check_raw(raw, 'uint8', 1, 'gtFine_labelIds')
    top = int(raw.max()) if raw.size else 0
    if top >= NUM_LABEL_IDS:
        hint = (' (255 everywhere unlabelled: this looks like a _gtFine_labelTrainIds file)'
                if top == 255 else '')
        raise ValueError(f'found label id {top}, expected official label ids 0..'
                         f'{NUM_LABEL_IDS - 1}{hint}: read the _gtFine_labelIds.png files')
    return lut[raw]


def void_mask(label_ids: np.ndarray) -> np.ndarray:
    """Pixels of the ego vehicle, the rectification border and out of ROI (no scene depth)."""
    label_ids = _check_raw(label_ids, 'uint8', 1, 'gtFine_labelIds')
    return np.isin(label_ids, VOID_LABEL_IDS)


def _area_resize_valid(value: np.ndarray, valid: np.ndarray, size: Sequence[int]):
    """Average ``value`` over each output pixel's area; an output pixel is valid only if every
    source pixel under it is (the average then uses valid values only)."""
    import cv2
    h, w = (int(s) for s in size)
    H, W = value.shape
    if h * W != w * H:
        raise ValueError(f'working size {h}x{w} does not have the aspect ratio of the '
                         f'{H}x{W} Cityscapes files')
    num = cv2.resize(np.where(valid, value, 0.0), (w, h), interpolation=cv2.INTER_AREA)
    den = cv2.resize(valid.astype(np.float64), (w, h), interpolation=cv2.INTER_AREA)
    ok = den > 1.0 - 1e-9
    return np.where(ok, num / np.maximum(den, 1e-12), 0.0), ok


def disparity_to_depth(raw: np.ndarray, baseline: float, fx: float,
                       size: Optional[Sequence[int]] = None, void: Optional[np.ndarray] = None,
                       max_depth: Optional[float] = None) -> np.ndarray:
    """A ``_disparity.png`` array -> z-depth in metres (float32, 0 = invalid), see the module
    docstring: ``p <= 1`` and ``void`` pixels invalid, disparity area-averaged to ``size``
    (H, W) in the original grid's pixel units, then ``baseline * fx / d`` with the original
    ``fx``, then depths beyond ``max_depth`` invalid."""
    raw = _check_raw(raw, 'uint16', 1, 'disparity')
    valid = raw > 1
    if void is not None:
        if void.shape != raw.shape:
            raise ValueError(f'label map {void.shape} and disparity {raw.shape} differ in size')
        valid &= ~void
    disp = np.where(valid, (raw.astype(np.float64) - 1.0) / DISPARITY_SCALE, 0.0)
    if size is not None and tuple(int(s) for s in size) != raw.shape:
        disp, valid = _area_resize_valid(disp, valid, size)
    depth = depth_from_disparity(np.where(valid, disp, 0.0), baseline, fx)
    if max_depth is not None:
        depth[depth > max_depth] = 0.0
    return depth


@DATASETS.register_module()
class CityscapesDataset(MultiTaskDataset):
    """Cityscapes with S (19 classes), D (stereo depth, metres), N and E (prepared).

    Args:
        data_root: where the official archives were unpacked (``leftImg8bit/``, ``gtFine/``,
            ``disparity/``, ``camera/``).
        tasks: task configs, declared once (see ``MultiTaskDataset``); their names must be
            among seg, depth, normal, edge; a SemanticTask must have the 19 classes.
        split: 'train', 'val' or 'test' (test: no seg ground truth, labels are not public).
        work_size: (H, W) the targets were prepared at (``data_prep/cityscapes.py --size``).
        prepared_root: where the prepared folders are (default ``data_root``; a relative path
            is taken under ``data_root``).
        max_depth: depths beyond this (metres) are invalid; None keeps every measured depth.
        cities: only these cities of the split.
        skip_missing: drop samples that lack a file (with a warning) instead of raising.
        class_map: None (default): the 19 train ids. Else another protocol over the 34
            official labels, ``class_maps/cityscapes_to_<name>.json`` (e.g. ``'cityscapes8'``,
            the 8 classes shared with Virtual KITTI 2, for VKITTI2 -> Cityscapes) or a JSON
            path (``datasets/class_map.py``); the seg task must have its classes, and only the
            classes some label maps to are evaluated (``metainfo['eval_classes']``).
    """

    METAINFO = dict(dataset='cityscapes', classes=CITYSCAPES_CLASSES)

    def __init__(self, data_root: str, tasks: Sequence, split: str = 'train',
                 work_size: Sequence[int] = DEFAULT_WORK_SIZE,
                 prepared_root: Optional[str] = None, max_depth: Optional[float] = None,
                 cities: Optional[Sequence[str]] = None, skip_missing: bool = False,
                 class_map: Optional[str] = None, **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        self.split = split
        self.work_size = tuple(int(s) for s in work_size)
        self.prepared_root = prepared_root
        self.max_depth = None if max_depth is None else float(max_depth)
        self.cities = list(cities) if cities is not None else None
        self.skip_missing = skip_missing
        self.class_map = None
        self._label_lut = LABEL_TO_TRAIN
        if class_map is not None:
            self.class_map = load_class_map(
                class_map, label_set='cityscapes', first_id=0,
                source_classes=[name for _, name, _ in LABELS], dataset='Cityscapes')
            self._label_lut = self.class_map.lut
            kwargs['metainfo'] = dict(kwargs.get('metainfo') or {},
                                      **class_map_metainfo(self.class_map, 'seg'))
            tasks = build_tasks(tasks)
            if 'seg' in tasks:      # before the base copies the tasks into the metainfo
                check_semantic_task(tasks['seg'], self.class_map, 'Cityscapes')
            tasks = list(tasks.values())
        super().__init__(tasks=tasks, data_root=data_root, **kwargs)

    def _check_tasks(self) -> None:
        unknown = [n for n in self.tasks if n not in TASK_FILES]
        if unknown:
            raise ValueError(f'CityscapesDataset provides {list(TASK_FILES)}, not {unknown}')
        seg = self.tasks.get('seg')
        if seg is not None and self.class_map is None and \
                getattr(seg, 'num_classes', None) != len(CITYSCAPES_CLASSES):
            raise ValueError(f'Cityscapes has {len(CITYSCAPES_CLASSES)} classes; the seg task '
                             f'says num_classes={getattr(seg, "num_classes", None)}')

    def _prepared_root(self) -> Path:
        root = Path(self.data_root)
        if self.prepared_root is None:
            return root
        prep = Path(self.prepared_root)
        return prep if prep.is_absolute() else root / prep

    def load_data_list(self) -> List[dict]:
        self._check_tasks()
        root = Path(self.data_root)
        data_list, missing = [], []
        for city, stem in list_samples(root, self.split, self.cities):
            files = sample_files(root, self.split, city, stem, self.work_size,
                                 self._prepared_root())
            names = [n for n in self.label_tasks if not (n == 'seg' and self.split == 'test')]
            needed = [files['image_work']] + [files[TASK_FILES[n]] for n in names]
            if 'depth' in names:            # its camera, and the labels that mask the ego car
                needed += [files['camera'], files['label_ids']]
            needed = list(dict.fromkeys(needed))
            absent = [str(p) for p in needed if not p.is_file()]
            if absent:
                missing.extend(absent)
                continue
            record = dict(img_path=str(files['image_work']), city=city, stem=stem,
                          label_ids_path=str(files['label_ids']), work_size=self.work_size,
                          task_paths={n: str(files[TASK_FILES[n]]) for n in names})
            if 'depth' in names:
                record['camera'] = read_camera(files['camera'])
            data_list.append(record)
        if missing and not self.skip_missing:
            prepared = [p for p in missing if f'_{size_tag(self.work_size)}' in p]
            fix = ('run `python data_prep/cityscapes.py --src DATA_ROOT --size '
                   f'{self.work_size[0]} {self.work_size[1]}` (it resumes)' if prepared else
                   f'unpack the official archives ({", ".join(ARCHIVES.values())}) again')
            raise FileNotFoundError(
                f'{len(missing)} Cityscapes file(s) missing for split {self.split!r}, first: '
                f'{missing[0]}. Fix: {fix}, or set skip_missing=True to drop those samples.')
        if missing:
            print_log(f'CityscapesDataset: skipped samples with {len(missing)} missing file(s), '
                      f'first: {missing[0]}', logger='current')
        if not data_list:
            raise FileNotFoundError(f'no Cityscapes images found for split {self.split!r} '
                                    f'under {root / "leftImg8bit" / self.split}')
        return data_list

    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """Cityscapes' encodings (module docstring): label lookup, stereo depth on the working
        grid, prepared normals and edges."""
        if name == 'seg':
            return decode_label_ids(raw, self._label_lut)
        if name == 'depth':
            cam = info['camera']
            labels = read_image(info['label_ids_path'], unchanged=True)
            return disparity_to_depth(raw, cam['baseline'], cam['fx'], size=info['work_size'],
                                      void=void_mask(labels), max_depth=self.max_depth)
        if name == 'normal':
            return decode_normals(raw)
        if name == 'edge':
            return decode_edges(raw)
        raise KeyError(f'CityscapesDataset has no ground truth for task {name!r}')
