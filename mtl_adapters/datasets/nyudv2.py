"""NYUDv2 (the 1,449 densely labelled frames): semantic labels, depth, normals, texture edges.

Source: ``nyu_depth_v2_labeled.mat`` (https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html),
MATLAB 7.3, i.e. HDF5, with MATLAB's axes reversed: ``images`` (1449, 3, 640, 480) uint8,
``depths`` (1449, 640, 480) float32 metres (the in-painted depth projected onto the RGB
frame), ``labels`` (1449, 640, 480) uint16 ids of 894 classes (0 = unlabelled). The 1-based
splits ``trainNdxs`` (795) / ``testNdxs`` (654) come from ``splits.mat`` and the 894 -> 40
mapping from ``classMapping40.mat`` (Gupta et al.). ``data_prep/nyudv2.py`` extracts them once
into this layout (``data_root``), one file per task and sample, named by the 1-based index of
the frame in the .mat (``0001`` .. ``1449``)::

    rgb/<id>.png        8-bit RGB, 480x640
    label40/<id>.png    8-bit NYU40 ids: 0 = unlabelled, 1..40 (Gupta et al.'s 40 classes)
    depth/<id>.png      16-bit millimetres, 0 = no depth
    normal/<id>.png     8-bit RGB in Taskonomy's encoding (n = rgb / 255 * 2 - 1, OpenCV camera
                        frame, 128 grey = no normal)
    edge/<id>.png       16-bit texture edges / 65535 (Taskonomy's edge_texture encoding)
    splits/train.txt    the ids of splits.mat's trainNdxs (795), one per line
    splits/test.txt     the ids of testNdxs (654)

Decoding (canonical units):

* ``seg``: NYU40 ids through a class map of ``class_maps/`` (``class_map``): ``'nyu40'``
  (40 classes, the NYUD multi-task benchmarks' label set), ``'nyu13'`` (Couprie et al.'s 13)
  or ``'taskonomy17'`` (Taskonomy's background + 16 COCO classes, to evaluate a
  Taskonomy-trained model on NYUDv2). 0 and unmapped classes are 255. Labels are stored as
  NYU40, the label set every one of these maps starts from: one prepared copy serves all.
* ``depth``: millimetres / 1000 -> metres; 0 = invalid.
* ``normal``: Taskonomy's 8-bit encoding. Unless the user supplies normals, they are derived
  from the depth with the NYU Kinect RGB intrinsics (``NYU_INTRINSICS``) and blanked outside
  the Eigen crop, where the in-painted depth has no Kinect measurement behind it.
* ``edge``: texture edges (``tasks.edge.texture_edges`` of the RGB), as for Taskonomy and our
  other datasets. The NYUD-MT benchmarks' "edge" task is different: boundaries of the
  semantic/instance maps; we do not produce those.

Evaluation convention (``configs/_base_/datasets/nyudv2_sdne.py``): the 654 test frames at
480x640; depth metrics within the Eigen crop (rows 45:471, cols 41:601 of 480x640, given to
``DepthTask`` as ``metric_cfg['crop'] = EIGEN_CROP``, fractions of the height/width) and
0.001..10 m, pooled over all valid pixels of the split (``per_image=False``, the NYUD-MT
convention); normals within the same crop (the derived normals are blank outside it).
"""
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mtl_adapters.registry import DATASETS
from mtl_adapters.tasks import build_tasks
from .base import MultiTaskDataset
from .class_map import CLASS_MAP_DIR, ClassMap, check_semantic_task, class_map_metainfo
from .class_map import load_class_map as load_shared_class_map
from mtl_adapters.formats.taskonomy import decode_taskonomy

#: prepared layout: task name -> folder (all PNG, one file per sample)
RGB_DIR = 'rgb'
TASK_DIRS = {'seg': 'label40', 'depth': 'depth', 'normal': 'normal', 'edge': 'edge'}
SPLIT_DIR = 'splits'
SPLITS = ('train', 'test')
NATIVE_SIZE = (480, 640)                     # (H, W) of every labelled frame
NUM_RAW_CLASSES = 894                        # label ids of nyu_depth_v2_labeled.mat
NUM_NYU40 = 40
DEPTH_UNITS_PER_METRE = 1000.0               # depth PNGs hold millimetres
IGNORE = 255
#: NYU Kinect RGB camera at 640x480 (fx, fy, cx, cy): camera_params.m of the NYU Depth V2
#: toolbox (fx_rgb, fy_rgb, cx_rgb, cy_rgb), calibrated with OpenCV-based RGBDemo, i.e.
#: pixel centres at integer coordinates, as ``geometry.py`` has it.
NYU_INTRINSICS = (5.1885790117450188e+02, 5.1946961112127485e+02,
                  3.2558244941119034e+02, 2.5373616633400465e+02)
#: the Eigen crop (rows 45:471, cols 41:601 of 480x640) as (top, bottom, left, right)
#: fractions of the height and width (``DepthTask`` ``metric_cfg['crop']``); ``int(f * size)``
#: gives back exactly these rows and columns at 480x640.
EIGEN_CROP = (45 / 480, 471 / 480, 41 / 640, 601 / 640)
CLASS_MAPS = ('nyu40', 'nyu13', 'taskonomy17')


def nyu_intrinsics(height: int = NATIVE_SIZE[0], width: int = NATIVE_SIZE[1]) -> np.ndarray:
    """The NYU RGB camera's 3x3 intrinsics for frames resized (cv2 style) to ``height`` x
    ``width`` (the native 480x640 gives ``NYU_INTRINSICS``)."""
    from .geometry import scale_intrinsics
    fx, fy, cx, cy = NYU_INTRINSICS
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return scale_intrinsics(K, width / NATIVE_SIZE[1], height / NATIVE_SIZE[0])


def crop_box(height: int, width: int, crop: Sequence[float] = EIGEN_CROP) -> Tuple[int, ...]:
    """``(top, bottom, left, right)`` pixel bounds of a fractional crop, as ``DepthTask``
    computes them (``int(fraction * size)``)."""
    top, bottom, left, right = crop
    return int(top * height), int(bottom * height), int(left * width), int(right * width)


def load_class_map(name: str) -> ClassMap:
    """Read ``class_maps/nyu40_to_<name>.json`` (``name`` in ``CLASS_MAPS``, or a path to a
    JSON file of the same form) and check it (``datasets/class_map.py``): every NYU40 class
    listed once, in id order, each mapped to one of ``class_names`` or to null (unlabelled).
    Stored NYU40 id k (1..40) is ``nyu40_classes[k - 1]``; 0 is unlabelled."""
    if Path(name).suffix != '.json' and name not in CLASS_MAPS:
        raise ValueError(f'unknown NYUDv2 class map {name!r}: use one of {CLASS_MAPS} or '
                         'the path of a JSON file like class_maps/nyu40_to_nyu13.json')
    reference = json.loads((CLASS_MAP_DIR / 'nyu40_to_nyu40.json').read_text())
    return load_shared_class_map(name, label_set='nyu40', first_id=1,
                                 source_classes=reference['nyu40_classes'], dataset='NYUDv2')


def read_split(path) -> List[str]:
    """Sample ids of a split file: one id per line (one cell), blank lines ignored; a line
    with more cells is an error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'split file not found: {path}. `python data_prep/nyudv2.py` '
                                'writes splits/train.txt and splits/test.txt from splits.mat')
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        cells = line.split()
        if len(cells) > 1:
            raise ValueError(f'{path}, line {number}: {len(cells)} cells, expected 1 (one '
                             f'sample id per line), got {line!r}: fix or remove this line')
        ids += cells
    return ids


@DATASETS.register_module()
class NYUDv2Dataset(MultiTaskDataset):
    """NYUDv2 as ``data_prep/nyudv2.py`` writes it (layout and encodings: module docstring).

    Args:
        data_root: the prepared folder (``rgb/``, ``label40/``, ..., ``splits/``).
        tasks: task configs (built once here; see ``MultiTaskDataset``). The semantic task's
            ``num_classes`` must be the class map's; if it has no ``class_names`` it gets the
            class map's.
        split: ``'train'`` (795 frames) or ``'test'`` (654).
        split_file: a file of sample ids to use instead (relative to ``data_root`` or
            absolute).
        class_map: ``'nyu40'``, ``'nyu13'``, ``'taskonomy17'`` or a JSON path (``load_class_map``).
    """

    METAINFO = dict(dataset='nyudv2')

    def __init__(self, data_root: str, tasks: Sequence, split: str = 'train',
                 split_file: Optional[str] = None, class_map: str = 'nyu40', **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r} (NYUDv2 has no '
                             "validation split: the NYUD benchmarks validate on 'test')")
        self.split = split
        self.split_file = split_file
        self.class_map = load_class_map(class_map)
        tasks = build_tasks(tasks)
        self._check_tasks(tasks)
        # mmengine reads a str metainfo value as a file name: only the class names and the
        # evaluated classes (those some NYU40 class maps to) go there
        metainfo = dict(kwargs.pop('metainfo', None) or {},
                        **class_map_metainfo(self.class_map, 'seg'))
        super().__init__(tasks=list(tasks.values()), data_root=data_root, metainfo=metainfo,
                         **kwargs)

    def _check_tasks(self, tasks) -> None:
        """Every task has a folder; the semantic task fits the class map (and gets its names
        if it has none, as mmseg datasets name their classes)."""
        unknown = [name for name in tasks if name not in TASK_DIRS]
        if unknown:
            raise ValueError(f'NYUDv2Dataset has no ground truth for task(s) {unknown}; it has '
                             f'{sorted(TASK_DIRS)}')
        seg = tasks.get('seg')
        if seg is None:
            return
        check_semantic_task(seg, self.class_map, 'NYUDv2')

    def load_data_list(self) -> List[dict]:
        root = Path(self.data_root)
        if not (root / RGB_DIR).is_dir():
            raise FileNotFoundError(
                f'{root / RGB_DIR} does not exist: data_root must be the folder written by '
                '`python data_prep/nyudv2.py` (see `python data_prep/nyudv2.py --help`).')
        split_path = Path(self.split_file or f'{SPLIT_DIR}/{self.split}.txt')
        if not split_path.is_absolute():
            split_path = root / split_path
        data_list, missing = [], []
        for sample in read_split(split_path):
            img = root / RGB_DIR / f'{sample}.png'
            paths = {name: root / TASK_DIRS[name] / f'{sample}.png' for name in self.label_tasks}
            missing += [str(p) for p in [img, *paths.values()] if not p.is_file()]
            data_list.append(dict(img_path=str(img), sample=sample,
                                  task_paths={k: str(v) for k, v in paths.items()}))
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} NYUDv2 file(s) of split {split_path} missing, first: '
                f'{missing[0]}. Fix: re-run `python data_prep/nyudv2.py` (it resumes).')
        if not data_list:
            raise FileNotFoundError(f'split file {split_path} lists no samples')
        return data_list

    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """The prepared files' encodings (module docstring) -> canonical units."""
        return getattr(self, f'_decode_{name}')(task, raw)

    def _decode_seg(self, task, raw: np.ndarray) -> np.ndarray:
        if raw.ndim != 2 or raw.dtype not in (np.uint8, np.uint16):
            raise ValueError(f'found {raw.dtype} values with shape {raw.shape}, expected one '
                             'channel of 8-bit NYU40 ids (label40/)')
        if int(raw.max(initial=0)) > NUM_NYU40:
            raise ValueError(f'found label {int(raw.max())}, above the {NUM_NYU40} NYU40 '
                             'classes: is this a raw 894-class label map?')
        return self.class_map(raw)

    @staticmethod
    def _decode_depth(task, raw: np.ndarray) -> np.ndarray:
        if raw.ndim != 2 or raw.dtype != np.uint16:
            raise ValueError(f'found {raw.dtype} values with shape {raw.shape}, expected one '
                             'channel of 16-bit millimetres (depth/)')
        return raw.astype(np.float32) / DEPTH_UNITS_PER_METRE

    @staticmethod
    def _decode_normal(task, raw: np.ndarray) -> np.ndarray:
        return decode_taskonomy(task, raw)        # prepared in Taskonomy's normal encoding

    @staticmethod
    def _decode_edge(task, raw: np.ndarray) -> np.ndarray:
        return decode_taskonomy(task, raw)        # prepared in Taskonomy's edge encoding
