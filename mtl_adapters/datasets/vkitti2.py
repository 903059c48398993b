"""Virtual KITTI 2 (Naver Labs Europe): S, D, N, E from the official archives, prepared once.

Official release (version 2.0.3), one archive per data type: ``vkitti_2.0.3_rgb.tar``,
``vkitti_2.0.3_depth.tar``, ``vkitti_2.0.3_classSegmentation.tar`` and
``vkitti_2.0.3_textgt.tar.gz``, each holding the same tree::

    Scene<X>/<variation>/frames/rgb/Camera_<c>/rgb_<fffff>.jpg
    Scene<X>/<variation>/frames/depth/Camera_<c>/depth_<fffff>.png
    Scene<X>/<variation>/frames/classSegmentation/Camera_<c>/classgt_<fffff>.png
    Scene<X>/<variation>/colors.txt       "Category r g b" header, one "Name r g b" per line
    Scene<X>/<variation>/intrinsic.txt    "frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]" header,
                                          one line per frame and camera

with X in {01, 02, 06, 18, 20}, variation in {clone, fog, morning, overcast, rain, sunset,
15-deg-left, 15-deg-right, 30-deg-left, 30-deg-right}, c in {0, 1} (left; right, 0.532725 m to
the right) and frame numbers from 0, five digits. Formats: RGB 8-bit JPEG; depth 16-bit
grey PNG in centimetres of z-depth ("distance to the camera plane", from the z-buffer) with a
fixed far plane at 655.35 m, so the sky and anything farther is 65535; class segmentation an
8-bit RGB PNG whose colours ``colors.txt`` names (one file per scene and variation, each read
on its own; the public loaders all show one table of 15 categories: Terrain, Sky, Tree,
Vegetation, Building, Road, GuardRail, TrafficSign, TrafficLight, Pole, Misc, Truck, Car, Van,
Undefined). Images are 1242x375.

Verified against the format description of the official page
(https://europe.naverlabs.com/research/computer-vision/proxy-virtual-worlds-vkitti-2/), which
could not be fetched from here but is quoted verbatim in public code on GitHub (docstrings of
Virtual KITTI 2 readers; the depth paragraph in a depth-dataset reader): the tree and file
names, the scene/variation/camera names, 0-based indices, the right camera's 0.532725 m
offset, the depth encoding ("a pixel intensity of 1 corresponds to a distance of 1cm to the
camera plane", max 655.35 m, sky = far plane) and the ``intrinsic.txt``/``colors.txt``
headers; the 15-row colour table as reproduced in several public loaders; the archive names
from the official download links (https://download.europe.naverlabs.com/virtual_kitti_2.0.3/);
1242x375 and K = (725.0087, 725.0087, 620.5, 187) from public readers. Quirks handled:

* the format description writes the folder ``classsegmentation``, while the archive has
  ``classSegmentation`` (the spelling of the public loaders that read the files): frame
  folders are found case-insensitively;
* the archives may be extracted into one folder (trees merged) or each into its own
  ``vkitti_2.0.3_<type>/`` folder (both occur in public loaders): both layouts are read;
* 65535 in depth is not a measurement (sky, far plane): it becomes 0 = invalid here.

Preparation (``python data_prep/vkitti2.py``, :mod:`mtl_adapters.data_generation.vkitti2`)
writes a self-contained copy that this dataset reads, at the working resolution (native by
default, ``--height`` to downscale)::

    <data_root>/meta.json                                  categories, resolution, encodings
    <data_root>/Scene<X>/<variation>/intrinsic.txt         K at the working resolution
    <data_root>/Scene<X>/<variation>/colors.txt            the source's colour table
    <data_root>/Scene<X>/<variation>/frames/<kind>/Camera_<c>/<kind>_<fffff>.<ext>

``kind``: ``rgb`` (the original JPEG bytes at native resolution, else a PNG), ``depth``
(uint16 centimetres, 65535 = no depth, as the archive), ``classid`` (uint8 index into
:data:`CATEGORIES`, 255 = a colour that ``colors.txt`` does not list), ``normal`` (uint8 RGB,
``n = rgb / 255 * 2 - 1`` in the OpenCV camera frame, grey 128 = no normal; from the depth and
the frame's intrinsics, see the preparation) and ``edge`` (uint16, value / 65535, Taskonomy's
texture edges of the RGB at the working resolution, ``tasks.edge.texture_edges``).

Why category ids rather than decoding colours at load: the colour -> category lookup (with each
scene's own ``colors.txt``) and its validation run once, an unknown colour is reported by the
preparation with its file instead of failing a training step, and one prepared copy serves
every label protocol: the protocol is a lookup table applied at load (``class_map``).

Label protocols (``class_maps/vkitti2_to_<name>.json``, read by ``datasets/class_map.py``):
``cityscapes8`` (default; the 8-class VKITTI2 -> Cityscapes protocol of XTAM-UDA, Lopes et al.
WACV 2023, the UDA baseline of the paper's UDA table: road, building, pole, traffic light,
traffic sign, vegetation, sky, car, with Truck, Car and Van all 'car'),
``cityscapes8-labeldefs`` (the same 8 by Cityscapes' label definitions: Van is car, Truck
unlabelled) and ``cityscapes19`` (Cityscapes train ids, by Cityscapes' definitions). Each
map's ``follows`` names the published table it transcribes.
Unmapped categories are unlabelled (255); Cityscapes classes that no category maps to (with
``cityscapes19``: sidewalk, wall, ...) are left out of the evaluation (``eval_classes``).

Splits, by scene (no official split exists; frames of one scene are strongly correlated, and
its variations are re-renderings of the same frames, so splits never share a scene):
train = Scene01, Scene02, Scene06; val = Scene18; test = Scene20 (the longest sequence);
``all`` = every scene (e.g. as the labelled source domain of VKITTI2 -> Cityscapes).
Variations and cameras are selectable (``variations=None``: every prepared variation;
``cameras``: Camera_0 by default).

Evaluation convention of the configs (``configs/_base_/datasets/vkitti2_sdne.py``): whole
frames at the native 1242x375; semantic mIoU over the 8 shared classes; depth on pixels with a
depth in (1e-3, 80] m (KITTI's 80 m cap; ``max_depth=80`` also unlabels farther depths for
training), no crop, pooled over all pixels; normals on pixels with a normal; edges L1.
"""
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from mtl_adapters.registry import DATASETS
from mtl_adapters.tasks import build_tasks
from .base import MultiTaskDataset
from .class_map import ClassMap, check_semantic_task, class_map_metainfo
from .class_map import load_class_map as load_shared_class_map

#: the categories of colors.txt (2.0.3), in its order: index = value of a prepared classid PNG
CATEGORIES = ('Terrain', 'Sky', 'Tree', 'Vegetation', 'Building', 'Road', 'GuardRail',
              'TrafficSign', 'TrafficLight', 'Pole', 'Misc', 'Truck', 'Car', 'Van', 'Undefined')
#: classid value of a pixel whose colour colors.txt does not list (and "ignore" after mapping)
UNLABELLED = 255
SCENES = ('Scene01', 'Scene02', 'Scene06', 'Scene18', 'Scene20')
VARIATIONS = ('clone', 'fog', 'morning', 'overcast', 'rain', 'sunset', '15-deg-left',
              '15-deg-right', '30-deg-left', '30-deg-right')
CAMERAS = ('Camera_0', 'Camera_1')
#: the scene split (module docstring)
SPLITS = dict(train=('Scene01', 'Scene02', 'Scene06'), val=('Scene18',), test=('Scene20',),
              all=SCENES)
#: depth PNG units per metre, and the value of "no depth" (sky, beyond the 655.35 m far plane)
DEPTH_UNITS_PER_M = 100.0
DEPTH_NONE = 65535
EDGE_SCALE = 65535.0
#: version of the prepared layout (meta.json 'format')
PREPARED_FORMAT = 1
#: task name -> folder (= file prefix) of the prepared copy
TASK_FOLDERS = dict(seg='classid', depth='depth', normal='normal', edge='edge')
_RGB_NAME = re.compile(r'^rgb_(?P<frame>\d{5})\.(?:jpg|png)$')


# ------------------------------------------------------------------------------ source files
def read_colors_txt(path) -> Dict[Tuple[int, int, int], str]:
    """``colors.txt`` ("Category r g b" header, then "Name r g b" lines) -> {(r, g, b): name}."""
    path = Path(path)
    table: Dict[Tuple[int, int, int], str] = {}
    lines = path.read_text(encoding='utf-8-sig').splitlines()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or (number == 1 and fields[0].lower() == 'category'):
            continue
        try:
            name, rgb = fields[0], tuple(int(v) for v in fields[1:])
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise ValueError(f'{path}, line {number}: expected "Category r g b" (0-255), '
                             f'got {line!r}')
        if rgb in table and table[rgb] != name:
            raise ValueError(f'{path}, line {number}: colour {rgb} is both {table[rgb]!r} and '
                             f'{name!r}')
        table[rgb] = name
    if not table:
        raise ValueError(f'{path}: no "Category r g b" lines')
    return table


def read_intrinsics_txt(path) -> Dict[Tuple[int, int], np.ndarray]:
    """``intrinsic.txt`` ("frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]" header, one line per
    frame and camera) -> {(frame, camera id): 3x3 K}."""
    path = Path(path)
    out: Dict[Tuple[int, int], np.ndarray] = {}
    lines = path.read_text(encoding='utf-8-sig').splitlines()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or (number == 1 and fields[0].lower() == 'frame'):
            continue
        try:
            frame, camera = int(fields[0]), int(fields[1])
            fx, fy, cx, cy = (float(v) for v in fields[2:6])
            if len(fields) != 6:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f'{path}, line {number}: expected "frame cameraID K[0,0] K[1,1] '
                             f'K[0,2] K[1,2]", got {line!r}') from None
        out[(frame, camera)] = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if not out:
        raise ValueError(f'{path}: no intrinsics lines')
    return out


def write_intrinsics_txt(rows: Dict[Tuple[int, int], np.ndarray]) -> bytes:
    """The bytes of an ``intrinsic.txt`` (official header and column order) for ``rows``."""
    lines = ['frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]']
    for (frame, camera), K in sorted(rows.items()):
        values = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        lines.append(f'{frame} {camera} ' + ' '.join(f'{v:.6g}' for v in values))
    return ('\n'.join(lines) + '\n').encode()


def colours_to_categories(rgb: np.ndarray, table: Dict[Tuple[int, int, int], str],
                          where='', allow_unknown: bool = False) -> np.ndarray:
    """An HxWx3 uint8 RGB class-segmentation image -> HxW uint8 :data:`CATEGORIES` indices.

    ``table`` is the scene's ``colors.txt``. A colour it does not list is an error naming
    ``where`` and the colour, unless ``allow_unknown`` (then :data:`UNLABELLED`)."""
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise ValueError(f'{where}: expected an 8-bit RGB class segmentation, got '
                         f'{rgb.dtype} {rgb.shape}')
    unknown_names = sorted(set(table.values()) - set(CATEGORIES))
    if unknown_names:
        raise ValueError(f'{where}: colors.txt names categories {unknown_names} that Virtual '
                         f'KITTI 2.0.3 does not have ({", ".join(CATEGORIES)})')
    keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in table), dtype=np.int64)
    ids = np.array([CATEGORIES.index(table[((k >> 16) & 255, (k >> 8) & 255, k & 255)])
                    for k in keys], dtype=np.uint8)
    px = rgb[..., :3].astype(np.int64)
    packed = (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]  # (H, W)
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    found = keys[pos] == packed
    out = np.where(found, ids[pos], UNLABELLED).astype(np.uint8)
    if not found.all() and not allow_unknown:
        bad = np.unique(packed[~found])
        colours = [((int(k) >> 16) & 255, (int(k) >> 8) & 255, int(k) & 255) for k in bad[:5]]
        raise ValueError(f'{where}: {int((~found).sum())} pixel(s) with colours not in '
                         f'colors.txt, e.g. RGB {colours}. Wrong colors.txt for this scene, '
                         'or a damaged file (--allow-unknown-colors marks them unlabelled)')
    return out


# ------------------------------------------------------------------------ prepared encodings
def decode_depth(raw: np.ndarray) -> np.ndarray:
    """uint16 centimetres -> float32 metres; 65535 (sky, far plane) and 0 -> 0 (invalid)."""
    _expect(raw, 'uint16', 1, 'depth (16-bit centimetres)')
    depth = raw.astype(np.float32) / DEPTH_UNITS_PER_M
    depth[raw == DEPTH_NONE] = 0.0
    return depth


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """float metres (0 = invalid) -> uint16 centimetres with 65535 for "no depth"."""
    cm = np.clip(np.round(np.nan_to_num(depth) * DEPTH_UNITS_PER_M), 1, DEPTH_NONE - 1)
    cm[~(depth > 0)] = DEPTH_NONE
    return cm.astype(np.uint16)


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """HxWx3 unit normals (zero vector = none) -> uint8 RGB, ``rgb = (n + 1) / 2 * 255``."""
    return np.clip(np.round((normals + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def decode_normals(raw: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 unit normals; grey (a vector shorter than 0.5) -> zero (none)."""
    _expect(raw, 'uint8', 3, 'normal (8-bit RGB)')
    n = raw[..., :3].astype(np.float32) / 255.0 * 2.0 - 1.0
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(norm > 0.5, n / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def encode_edges(edges: np.ndarray) -> np.ndarray:
    """float edges in [0, 1] -> uint16 (value * 65535)."""
    return np.clip(np.round(edges * EDGE_SCALE), 0, EDGE_SCALE).astype(np.uint16)


def decode_edges(raw: np.ndarray) -> np.ndarray:
    """uint16 -> float32 edges in [0, 1]."""
    _expect(raw, 'uint16', 1, 'edge (16-bit)')
    return raw.astype(np.float32) / EDGE_SCALE


def _expect(raw: np.ndarray, dtype: str, channels: int, what: str) -> None:
    got = 1 if raw.ndim == 2 else raw.shape[-1]
    if raw.dtype.name != dtype or (got != channels and not (channels == 3 and got == 4)):
        raise ValueError(f'found {raw.dtype} with {got} channel(s), expected {dtype} with '
                         f'{channels} for {what}: not a prepared Virtual KITTI 2 file')


def load_class_map(class_map: Union[str, Path]) -> Tuple[List[str], Dict[str, int]]:
    """A label protocol (``'cityscapes8'``, ``'cityscapes19'`` or a JSON path) ->
    (class names, {category: class id or 255}); read and checked by
    :func:`mtl_adapters.datasets.class_map.load_class_map`."""
    cmap = load_vkitti2_class_map(class_map)
    return list(cmap.class_names), cmap.mapping()


def load_vkitti2_class_map(class_map: Union[str, Path]) -> ClassMap:
    """The :class:`ClassMap` of a label protocol (``class_maps/vkitti2_to_<name>.json``) over
    the prepared category ids (index into :data:`CATEGORIES`)."""
    return load_shared_class_map(class_map, label_set='vkitti2', first_id=0,
                                 source_classes=CATEGORIES, dataset='Virtual KITTI 2')


def prepared_path(root, scene: str, variation: str, camera: str, kind: str, frame: int,
                  suffix: str = '.png') -> Path:
    """Path of one file of the prepared copy."""
    return (Path(root) / scene / variation / 'frames' / kind / camera
            / f'{kind}_{int(frame):05d}{suffix}')


@DATASETS.register_module()
class VKITTI2Dataset(MultiTaskDataset):
    """Virtual KITTI 2, prepared by ``data_prep/vkitti2.py`` (module docstring).

    Args:
        data_root: the prepared folder (holds ``meta.json`` and the Scene folders).
        tasks: task configs (or names), declared once; any of seg, depth, normal, edge.
        split: 'train', 'val', 'test' or 'all' (the scene split, :data:`SPLITS`).
        scenes: use these scenes instead of the split's.
        variations: these variations (None: every prepared variation of each scene).
        cameras: 'Camera_0' (left, default) and/or 'Camera_1'.
        class_map: label protocol, 'cityscapes8' (default), 'cityscapes8-labeldefs',
            'cityscapes19' or a JSON path;
            its number of classes must be the semantic task's ``num_classes``.
        max_depth: depths beyond it (metres) count as "no depth" for training and evaluation
            (None: keep every rendered depth, up to the 655.35 m far plane).
        skip_missing: drop frames that lack a task file (with a warning) instead of raising.
    """

    METAINFO = dict(dataset='vkitti2')

    def __init__(self, data_root: str, tasks: Sequence, split: str = 'train',
                 scenes: Optional[Sequence[str]] = None,
                 variations: Optional[Sequence[str]] = None,
                 cameras: Sequence[str] = ('Camera_0',), class_map: str = 'cityscapes8',
                 max_depth: Optional[float] = None, skip_missing: bool = False, **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {tuple(SPLITS)}, got {split!r}')
        for camera in cameras:
            if camera not in CAMERAS:
                raise ValueError(f'unknown camera {camera!r}; choose from {CAMERAS}')
        self.split = split
        self.scenes = list(scenes) if scenes is not None else list(SPLITS[split])
        self.variations = list(variations) if variations is not None else None
        self.cameras = list(cameras)
        self.skip_missing = skip_missing
        self.max_depth = max_depth
        self.label_map = load_vkitti2_class_map(class_map)
        self.class_names = list(self.label_map.class_names)
        self.category_to_id = self.label_map.mapping()
        self.class_map = class_map
        # the model classes this protocol can evaluate (metric: only these are reported)
        metainfo = dict(kwargs.pop('metainfo', None) or {},
                        **class_map_metainfo(self.label_map, 'seg'))
        tasks = build_tasks(tasks)
        if 'seg' in tasks:          # before the base copies the tasks into the metainfo
            check_semantic_task(tasks['seg'], self.label_map, 'Virtual KITTI 2')
        super().__init__(tasks=list(tasks.values()), data_root=data_root, metainfo=metainfo,
                         **kwargs)

    def _check_tasks(self) -> None:
        unknown = [name for name in self.tasks if name not in TASK_FOLDERS]
        if unknown:
            raise ValueError(f'VKITTI2Dataset has no ground truth for task(s) {unknown}; it '
                             f'provides {list(TASK_FOLDERS)}')

    # ------------------------------------------------------------------------- decoding
    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """The prepared encodings (module docstring) -> canonical units."""
        if name == 'seg':
            _expect(raw, 'uint8', 1, 'classid (8-bit category index)')
            return self._lut[raw]
        if name == 'depth':
            depth = decode_depth(raw)
            if self.max_depth is not None:
                depth[depth > self.max_depth] = 0.0
            return depth
        if name == 'normal':
            return decode_normals(raw)
        return decode_edges(raw)

    def _read_meta(self, root: Path) -> dict:
        path = root / 'meta.json'
        if not path.is_file():
            raise FileNotFoundError(
                f'{path} does not exist: data_root must be a folder prepared by '
                '`python data_prep/vkitti2.py --src <extracted archives> --out <data_root>` '
                '(see its --help for the archives and where to get them)')
        meta = json.loads(path.read_text())
        if meta.get('format') != PREPARED_FORMAT:
            raise ValueError(f'{path}: prepared format {meta.get("format")!r}, this code reads '
                             f'{PREPARED_FORMAT}; prepare the data again with this version')
        return meta

    def load_data_list(self) -> List[dict]:
        self._check_tasks()
        root = Path(self.data_root)
        meta = self._read_meta(root)
        lut = np.full(256, UNLABELLED, np.uint8)
        for i, category in enumerate(meta['categories']):
            lut[i] = self.category_to_id.get(category, UNLABELLED)
        self._lut = lut
        data_list, missing = [], []
        for scene in self.scenes:
            if not (root / scene).is_dir():
                raise FileNotFoundError(
                    f'scene {scene!r} (split {self.split!r}) is not prepared: no folder '
                    f'{root / scene}. Prepare it (data_prep/vkitti2.py --scenes) or choose '
                    'other scenes.')
            variations = self.variations or sorted(
                p.name for p in (root / scene).iterdir() if (p / 'frames').is_dir())
            for variation in variations:
                for camera in self.cameras:
                    rgb_dir = root / scene / variation / 'frames' / 'rgb' / camera
                    if not rgb_dir.is_dir():
                        raise FileNotFoundError(
                            f'{scene}/{variation}/{camera} is not prepared: no folder '
                            f'{rgb_dir}. Prepare it (data_prep/vkitti2.py --variations/'
                            '--cameras) or choose other variations/cameras.')
                    for img in sorted(rgb_dir.iterdir()):
                        m = _RGB_NAME.match(img.name)
                        if m is None:
                            continue
                        frame = int(m['frame'])
                        paths = {name: prepared_path(root, scene, variation, camera,
                                                     TASK_FOLDERS[name], frame)
                                 for name in self.label_tasks}
                        absent = [str(p) for p in paths.values() if not p.is_file()]
                        if absent:
                            missing.extend(absent)
                            continue
                        data_list.append(dict(
                            img_path=str(img), scene=scene, variation=variation,
                            camera=camera, frame=frame,
                            sample_key=f'{scene}/{variation}/{camera}/{frame:05d}',
                            task_paths={k: str(v) for k, v in paths.items()}))
        if missing and not self.skip_missing:
            raise FileNotFoundError(
                f'{len(missing)} label file(s) missing, first: {missing[0]}. Fix: re-run '
                'data_prep/vkitti2.py (it resumes), or set skip_missing=True to drop those '
                'frames.')
        if missing:
            print_log(f'VKITTI2Dataset: skipped {len(missing)} frame(s) with missing labels, '
                      f'first: {missing[0]}', logger='current')
        if not data_list:
            raise FileNotFoundError(f'no frames found for scenes {self.scenes} under {root}')
        return data_list
