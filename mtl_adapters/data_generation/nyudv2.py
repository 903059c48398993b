"""NYUDv2 preparation: the labelled .mat -> one PNG per task and frame (``datasets/nyudv2.py``).

Inputs (see ``python data_prep/nyudv2.py --help`` for where to get them):

* ``nyu_depth_v2_labeled.mat``: MATLAB 7.3 = HDF5, read with h5py. MATLAB stores arrays
  column-major, so h5py sees every axis reversed: ``images`` (N, 3, W, H) uint8, ``depths``
  (N, W, H) float32 metres, ``labels`` (N, W, H) uint16 (0 = unlabelled, 1..894); frame ``i``
  is ``images[i].transpose(2, 1, 0)`` (H, W, 3). Opened lazily, once per worker process.
* ``splits.mat`` (classic MATLAB v5, scipy.io.loadmat): ``trainNdxs`` (795 x 1) and
  ``testNdxs`` (654 x 1), 1-based frame indices.
* ``classMapping40.mat`` (Gupta et al., v5): ``mapClass`` (1 x 894), the NYU40 id (1..40, 0 =
  unlabelled) of each of the 894 classes; ``className`` (1 x 40 cell), the 40 names.
* optionally a folder of surface normals ``<id>.png`` in our encoding (see below); without it
  the normals are derived from ``depths``.

One item per frame (its 1-based index, ``0001``..``1449``): RGB, NYU40 labels, depth in
millimetres, normals, texture edges (encodings: ``mtl_adapters/datasets/nyudv2.py``);
``finish`` writes ``splits/train.txt`` and ``splits/test.txt``. A frame whose labels fall
outside the 894 classes, or whose supplied normal file is missing or unreadable, fails alone
(named in the summary).
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from mtl_adapters.datasets.nyudv2 import (DEPTH_UNITS_PER_METRE, NUM_NYU40, NUM_RAW_CLASSES,
                                          RGB_DIR, SPLIT_DIR, TASK_DIRS, crop_box,
                                          nyu_intrinsics)
from mtl_adapters.formats.taskonomy import encode_taskonomy
from mtl_adapters.utils import DataFileError, atomic_write_bytes, read_image

from .prepare import Preparation, PrepItem, PrepSummary, encode_png

MAT_NAME = 'nyu_depth_v2_labeled.mat'
SPLITS_NAME = 'splits.mat'
MAPPING_NAME = 'classMapping40.mat'
#: where each input comes from (printed in errors and in ``--help``)
SOURCES = {
    MAT_NAME: 'http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat '
              '(2.8 GB; https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html)',
    SPLITS_NAME: 'http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat',
    MAPPING_NAME: 'the release of Gupta et al. (CVPR 2013), e.g. the copy in '
                  'https://github.com/ankurhanda/nyuv2-meta-data',
}
#: what each output folder must hold: (dtype, channels)
OUTPUT_SPECS = {RGB_DIR: ('uint8', 3), TASK_DIRS['seg']: ('uint8', 1),
                TASK_DIRS['depth']: ('uint16', 1), TASK_DIRS['normal']: ('uint8', 3),
                TASK_DIRS['edge']: ('uint16', 1)}

#: open .mat files of this process: (pid, path, inode, size, mtime) -> h5py.File
_OPEN_MATS: Dict[tuple, object] = {}


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f'{path} not found. Get {path.name} from {SOURCES[path.name]} '
                             if path.name in SOURCES else f'{path} not found')


def open_labeled_mat(path):
    """The h5py file of ``nyu_depth_v2_labeled.mat``, opened once per process (workers must
    not share an HDF5 handle across a fork) and reopened if the file changed."""
    import h5py
    path = Path(path)
    st = path.stat()
    key = (os.getpid(), str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _OPEN_MATS:
        try:
            _OPEN_MATS[key] = h5py.File(path, 'r')
        except OSError as err:
            raise DataFileError(f'{path} is not an HDF5 file ({err}): expected the labelled '
                                f'NYUDv2 .mat (MATLAB 7.3) from {SOURCES[MAT_NAME]}') from err
    return _OPEN_MATS[key]


def close_labeled_mats() -> None:
    """Close the .mat handles this process opened."""
    for key in [k for k in _OPEN_MATS if k[0] == os.getpid()]:
        _OPEN_MATS.pop(key).close()


def check_labeled_mat(path) -> Tuple[int, int, int]:
    """(frames, height, width) of the labelled .mat; a clear error if it is not that file."""
    import h5py
    path = Path(path)
    try:
        f = h5py.File(path, 'r')
    except OSError as err:
        raise DataFileError(f'{path} is not an HDF5 file ({err}): expected the labelled NYUDv2 '
                            f'.mat (MATLAB 7.3) from {SOURCES[MAT_NAME]}') from err
    with f:
        absent = [k for k in ('images', 'depths', 'labels') if k not in f]
        if absent:
            raise DataFileError(f'{path} has no {absent} (it has {sorted(f.keys())}): expected '
                                f'the labelled NYUDv2 .mat from {SOURCES[MAT_NAME]}')
        images, depths, labels = f['images'], f['depths'], f['labels']
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
            raise DataFileError(f'{path}: images is {images.dtype} {images.shape}, expected '
                                'uint8 (N, 3, W, H) (MATLAB H x W x 3 x N, axes reversed)')
        n, _, w, h = images.shape
        for name, ds, kinds in (('depths', depths, 'f'), ('labels', labels, 'ui')):
            if ds.shape != (n, w, h) or ds.dtype.kind not in kinds:
                raise DataFileError(f'{path}: {name} is {ds.dtype} {ds.shape}, expected '
                                    f'{(n, w, h)} like images {images.shape}')
    return n, h, w


def read_labeled_frame(f, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``index`` (0-based) of the open .mat -> RGB (H, W, 3) uint8, depth (H, W) float32
    metres, labels (H, W) (894 classes), undoing MATLAB's reversed axes."""
    rgb = np.ascontiguousarray(np.asarray(f['images'][index]).transpose(2, 1, 0))
    depth = np.ascontiguousarray(np.asarray(f['depths'][index], dtype=np.float32).T)
    labels = np.ascontiguousarray(np.asarray(f['labels'][index]).T)
    return rgb, depth, labels


def _loadmat(path: Path, what: str) -> dict:
    import scipy.io
    try:
        return scipy.io.loadmat(str(path))
    except Exception as err:      # noqa: BLE001 -- scipy raises several types for bad files
        raise DataFileError(f'cannot read {path} as a MATLAB file ({err}): expected {what} '
                            f'from {SOURCES.get(path.name, "its source")}') from err


def read_splits(path, num_frames: int) -> Dict[str, List[int]]:
    """``splits.mat`` -> ``{'train': [...], 'test': [...]}`` of 1-based frame indices."""
    path = Path(path)
    mat = _loadmat(path, 'the NYUDv2 splits (trainNdxs, testNdxs)')
    out = {}
    for split, key in (('train', 'trainNdxs'), ('test', 'testNdxs')):
        if key not in mat:
            raise DataFileError(f'{path} has no {key!r} (variables: '
                                f'{sorted(k for k in mat if not k.startswith("__"))})')
        ids = np.asarray(mat[key]).ravel()
        if ids.size == 0 or not np.all(ids == np.round(ids)) or ids.min() < 1 \
                or ids.max() > num_frames:
            raise DataFileError(f'{path}: {key} must hold 1-based frame indices 1..{num_frames}'
                                f' (the .mat has {num_frames} frames)')
        out[split] = [int(i) for i in ids]
    both = set(out['train']) & set(out['test'])
    if both:
        raise DataFileError(f'{path}: frames {sorted(both)[:5]} are in both trainNdxs and '
                            'testNdxs')
    return out


def read_class_mapping40(path) -> np.ndarray:
    """``classMapping40.mat`` -> a (895,) lookup table: raw label id (0..894) -> NYU40 id."""
    path = Path(path)
    mat = _loadmat(path, "the 894 -> 40 class mapping ('mapClass')")
    if 'mapClass' not in mat:
        raise DataFileError(f"{path} has no 'mapClass' (variables: "
                            f'{sorted(k for k in mat if not k.startswith("__"))})')
    mapping = np.asarray(mat['mapClass'], dtype=np.float64).ravel()
    if mapping.size != NUM_RAW_CLASSES or not np.all(mapping == np.round(mapping)) \
            or mapping.min() < 0 or mapping.max() > NUM_NYU40:
        raise DataFileError(f'{path}: mapClass must map each of the {NUM_RAW_CLASSES} classes to '
                            f'0..{NUM_NYU40}, got {mapping.size} values in '
                            f'[{mapping.min()}, {mapping.max()}]')
    return np.concatenate([[0], mapping]).astype(np.uint8)


def depth_to_millimetres(depth: np.ndarray) -> np.ndarray:
    """Metres (float) -> uint16 millimetres; 0 where the depth is not finite and positive."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    mm = np.clip(np.round(np.where(valid, depth, 0.0) * DEPTH_UNITS_PER_METRE), 1, 65535)
    return np.where(valid, mm, 0).astype(np.uint16)


def derived_normals(depth: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) from the in-painted depth with the NYU RGB intrinsics, blank (0)
    outside the Eigen crop: the border of the labelled frames has no Kinect depth behind it."""
    from mtl_adapters.datasets.geometry import normals_from_depth
    h, w = depth.shape
    normals = normals_from_depth(depth, nyu_intrinsics(h, w))
    top, bottom, left, right = crop_box(h, w)
    keep = np.zeros((h, w), dtype=bool)
    keep[top:bottom, left:right] = True
    normals[~keep] = 0.0
    return normals


class NYUDv2Preparation(Preparation):
    """The labelled NYUDv2 frames -> ``out_dir`` in the layout ``NYUDv2Dataset`` reads.

    Args:
        mat_file: ``nyu_depth_v2_labeled.mat``.
        splits_file: ``splits.mat``.
        class_mapping_file: ``classMapping40.mat``.
        out_dir: the prepared dataset (``data_root``).
        normals_dir: optional folder of ``<id>.png`` normals (8-bit RGB, Taskonomy encoding,
            OpenCV camera frame, the frame's aspect ratio) used instead of normals from depth.
    """

    name = 'nyudv2'

    def __init__(self, mat_file, splits_file, class_mapping_file, out_dir,
                 normals_dir: Optional[str] = None):
        self.mat_file = Path(mat_file)
        self.splits_file = Path(splits_file)
        self.class_mapping_file = Path(class_mapping_file)
        self.out_dir = Path(out_dir)
        self.normals_dir = Path(normals_dir) if normals_dir else None
        self.lut40: Tuple[int, ...] = ()
        self.splits: Dict[str, List[int]] = {}

    def items(self) -> List[PrepItem]:
        for path in (self.mat_file, self.splits_file, self.class_mapping_file):
            if not path.is_file():
                raise _missing(path)
        if self.normals_dir is not None and not self.normals_dir.is_dir():
            raise FileNotFoundError(f'--normals-dir {self.normals_dir} is not a folder')
        num_frames, _, _ = check_labeled_mat(self.mat_file)
        self.splits = read_splits(self.splits_file, num_frames)
        self.lut40 = tuple(int(v) for v in read_class_mapping40(self.class_mapping_file))
        items = []
        for index in range(num_frames):
            sample = f'{index + 1:04d}'
            inputs = [self.mat_file]
            if self.normals_dir is not None:
                inputs.append(self.normals_dir / f'{sample}.png')
            outputs = tuple(self.out_dir / folder / f'{sample}.png' for folder in OUTPUT_SPECS)
            items.append(PrepItem(key=sample, inputs=tuple(inputs), outputs=outputs,
                                  extra=dict(index=index)))
        return items

    def process(self, item: PrepItem) -> Dict[Path, bytes]:
        from mtl_adapters.tasks import EdgeTask, NormalTask
        from mtl_adapters.tasks.edge import texture_edges
        index = item.extra['index']
        rgb, depth, raw = read_labeled_frame(open_labeled_mat(self.mat_file), index)
        if int(raw.max(initial=0)) > NUM_RAW_CLASSES:
            bad = np.unique(raw[raw > NUM_RAW_CLASSES])
            raise DataFileError(f'{self.mat_file}, frame {index + 1}: label ids '
                                f'{bad[:5].tolist()} above the {NUM_RAW_CLASSES} classes')
        label40 = np.asarray(self.lut40, dtype=np.uint8)[raw.astype(np.int64)]
        if self.normals_dir is not None:
            normal_png = self._supplied_normals(self.normals_dir / f'{item.key}.png', rgb.shape)
        else:
            normal_png = encode_taskonomy(NormalTask(), derived_normals(depth))
        arrays = {RGB_DIR: rgb, TASK_DIRS['seg']: label40,
                  TASK_DIRS['depth']: depth_to_millimetres(depth),
                  TASK_DIRS['normal']: normal_png,
                  TASK_DIRS['edge']: encode_taskonomy(EdgeTask(), texture_edges(rgb))}
        return {self.out_dir / folder / f'{item.key}.png': encode_png(array)
                for folder, array in arrays.items()}

    @staticmethod
    def _supplied_normals(path: Path, frame_shape) -> np.ndarray:
        """A user's normal PNG, checked (8-bit RGB, the frame's aspect ratio), as an array."""
        normals = read_image(path, unchanged=True, hint='fix or replace this normals file')
        h, w = frame_shape[:2]
        if normals.dtype != np.uint8 or normals.ndim != 3 or normals.shape[2] != 3:
            raise DataFileError(f'{path}: {normals.dtype} {normals.shape}, expected 8-bit RGB '
                                'normals (n = rgb / 255 * 2 - 1)')
        if normals.shape[0] * w != normals.shape[1] * h:
            raise DataFileError(f'{path}: {normals.shape[1]}x{normals.shape[0]} normals for a '
                                f'{w}x{h} frame (the aspect ratio must match)')
        return normals

    def check_outputs(self, item: PrepItem) -> Optional[str]:
        """Every output exists, decodes, has its dtype and channels, and all share one size."""
        shapes = set()
        for path, (dtype, channels) in zip(item.outputs, OUTPUT_SPECS.values()):
            if not path.is_file():
                return f'missing output {path}'
            try:
                array = read_image(path, unchanged=True)
            except DataFileError as err:
                return str(err)
            found = 1 if array.ndim == 2 else array.shape[2]
            if array.dtype.name != dtype or found != channels:
                return (f'{path}: {array.dtype} with {found} channel(s), expected {dtype} with '
                        f'{channels}')
            shapes.add(array.shape[:2])
        if len(shapes) > 1 and self.normals_dir is None:
            return f'outputs of {item.key} differ in size: {sorted(shapes)}'
        return None

    def finish(self, items: List[PrepItem], summary: PrepSummary) -> None:
        """``splits/train.txt`` and ``splits/test.txt`` (sample ids, one per line)."""
        for split, ids in self.splits.items():
            text = ''.join(f'{i:04d}\n' for i in ids)
            atomic_write_bytes(self.out_dir / SPLIT_DIR / f'{split}.txt', text.encode())
        close_labeled_mats()
