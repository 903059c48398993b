"""Taskonomy's on-disk encodings: what each task's PNG holds and how it maps to the task's
canonical ground truth (and back, for files we write: synthetic scenes, NYUDv2's prepared
normals, saved predictions).

Every file is a PNG; the table :data:`TASKONOMY_FORMATS`, keyed by task class, is the only
place that knows the encodings (tasks themselves are dataset-agnostic):

* ``segment_semantic``: uint8, 0 = uncertain (ignored), 1 = background, 2..17 = 16 COCO
  classes; train id = value - 1. May be stored at a lower resolution than the RGB (same aspect
  ratio): the loader upsamples it to the image with nearest-neighbour interpolation.
* ``depth_zbuffer``: uint16 z-depth in units of 1/512 m (range 128 m); 65535 = no
  measurement (windows, holes in the mesh), decoded to 0 (invalid).
* ``normal``: uint8 RGB, ``n = rgb / 255 * 2 - 1``: the unit normal in the camera frame with
  x to the right of the image, y down and z away from the camera, the surface facing the
  camera, which is the project convention (``NormalTask``, ``datasets/geometry.py``) as it
  is, no axis flipped. A wall facing the camera is (128, 128, 0), a floor seen by a level
  camera (128, 0, 128), a ceiling (128, 255, 128), a wall on the left of the picture (facing
  right) (255, 128, 128), one on the right (0, 128, 128). Checked on published data: the
  statistics of a released file in StanfordVL/taskonomy
  (``code/tools/script/preprocess/info/normal.txt``: blue mean 65, max 191; blue stays below
  128 except on surfaces seen obliquely near the image border) and the Omnidata annotator's
  sample views (``omnidata_annotator/assets/hm3d``: their normals agree with
  ``geometry.normals_from_depth`` of their own ``depth_zbuffer`` to a median 0.8-2 degrees
  read this way, 64-128 degrees with z flipped). A vector shorter than 0.5 (e.g. grey
  (128, 128, 128)) is "no normal" (0).
* ``edge_texture``: uint16, ``edge = value / 65535``.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

#: Taskonomy stores depth_zbuffer as uint16 in units of 1/512 m; 65535 means no measurement.
TASKONOMY_DEPTH_SCALE = 512.0
TASKONOMY_DEPTH_INVALID = 65535
#: edge_texture: uint16, edge = value / 65535
TASKONOMY_EDGE_SCALE = 65535.0


# ------------------------------------------------------------------------------ encodings
def _decode_semantic(task, raw: np.ndarray) -> np.ndarray:
    # checked on the file values at their full bit depth (a 16-bit 256 is not label 255 =
    # "unlabelled", nor 0 after a cast to 8 bits)
    raw = raw.astype(np.int64)
    outside = raw > task.num_classes
    if outside.any() and not task.out_of_range_ignore:
        values = np.unique(raw[outside])[:10].tolist()
        raise ValueError(
            f'found class values {values} ({int(outside.sum())} pixels) above the '
            f'{task.num_classes} classes of this task (file values 1..{task.num_classes}, '
            '0 = unlabelled): wrong num_classes, or another label set. To count them as '
            'unlabelled set out_of_range_ignore=True in the SemanticTask config.')
    label = np.where((raw == 0) | outside, int(task.ignore_value), raw - 1)
    return label.astype(np.uint8)


def _encode_semantic(task, value: np.ndarray) -> np.ndarray:
    value = value.astype(np.int32)
    return np.where(value == int(task.ignore_value), 0, value + 1).astype(np.uint8)


def _decode_depth(task, raw: np.ndarray) -> np.ndarray:
    depth = raw.astype(np.float32) / TASKONOMY_DEPTH_SCALE
    depth[raw == TASKONOMY_DEPTH_INVALID] = 0.0
    return depth


def _encode_depth(task, value: np.ndarray) -> np.ndarray:
    raw = np.clip(np.round(value * TASKONOMY_DEPTH_SCALE), 1, TASKONOMY_DEPTH_INVALID - 1)
    raw[~(value > 0) | ~np.isfinite(value)] = TASKONOMY_DEPTH_INVALID
    return raw.astype(np.uint16)


def _decode_normal(task, raw: np.ndarray) -> np.ndarray:
    """8-bit RGB -> unit normals in the project frame (no axis flipped, see the docstring)."""
    n = raw[..., :3].astype(np.float32) / 255.0 * 2.0 - 1.0
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(norm > 0.5, n / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def _encode_normal(task, value: np.ndarray) -> np.ndarray:
    return np.clip(np.round((value + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def _decode_edge(task, raw: np.ndarray) -> np.ndarray:
    return raw.astype(np.float32) / TASKONOMY_EDGE_SCALE


def _encode_edge(task, value: np.ndarray) -> np.ndarray:
    return np.clip(np.round(value * TASKONOMY_EDGE_SCALE), 0,
                   TASKONOMY_EDGE_SCALE).astype(np.uint16)


@dataclass(frozen=True)
class TaskonomyFormat:
    """How one task type is stored in Taskonomy's format."""

    #: folder under ``data_root`` and the domain tag inside the file names
    folder: str
    domain: str
    #: what a file must hold (as ``read_image`` returns it): dtypes and channel counts
    dtypes: Tuple[str, ...]
    channels: Tuple[int, ...]
    #: ``(task, checked raw array) -> canonical ground truth`` and its inverse
    decode: Callable
    encode: Callable


#: the Taskonomy format of each task type, keyed by task class name (a subclass of a listed
#: class uses its parent's entry); a new task type readable from Taskonomy adds a line here
TASKONOMY_FORMATS: Dict[str, TaskonomyFormat] = {
    'SemanticTask': TaskonomyFormat('segment_semantic', 'segmentsemantic', ('uint8', 'uint16'),
                                    (1, 3), _decode_semantic, _encode_semantic),
    # 8-bit depth files would be read as ~0.5 m: refused
    'DepthTask': TaskonomyFormat('depth_zbuffer', 'depth_zbuffer', ('uint16',), (1, 3),
                                 _decode_depth, _encode_depth),
    # RGB (an alpha channel is dropped by read_image)
    'NormalTask': TaskonomyFormat('normal', 'normal', ('uint8',), (3, 4),
                                  _decode_normal, _encode_normal),
    'EdgeTask': TaskonomyFormat('edge_texture', 'edge_texture', ('uint16',), (1, 3),
                                _decode_edge, _encode_edge),
}


def taskonomy_format(task) -> TaskonomyFormat:
    """The :class:`TaskonomyFormat` of a built task (looked up along its class hierarchy)."""
    for cls in type(task).__mro__:
        if cls.__name__ in TASKONOMY_FORMATS:
            return TASKONOMY_FORMATS[cls.__name__]
    raise ValueError(f'{type(task).__name__} ({task.name!r}) has no Taskonomy format: '
                     f'Taskonomy-format files exist for {sorted(TASKONOMY_FORMATS)}; add an '
                     'entry to TASKONOMY_FORMATS in mtl_adapters/formats/taskonomy.py')


def check_taskonomy_file(task, raw: np.ndarray) -> np.ndarray:
    """Refuse a file ``task`` cannot be decoded from (wrong bit depth or channel count):
    decoding it anyway gives plausible wrong values. A single-channel task's file may repeat
    its channel; it comes back as one (H, W) channel."""
    fmt = taskonomy_format(task)
    channels = 1 if raw.ndim == 2 else raw.shape[-1]
    if fmt.dtypes and raw.dtype.name not in fmt.dtypes:
        raise ValueError(f'found {raw.dtype} values, expected {" or ".join(fmt.dtypes)} for '
                         f'{task.name} (Taskonomy {fmt.folder}/ format)')
    if channels not in fmt.channels:
        raise ValueError(f'found {channels} channel(s), expected '
                         f'{" or ".join(map(str, fmt.channels))} for {task.name}')
    if raw.ndim == 3 and task.gt_channels == 1:
        if not all(np.array_equal(raw[..., 0], raw[..., c]) for c in range(1, channels)):
            raise ValueError(f'found {channels} different channels, expected one channel '
                             f'(or equal ones) for {task.name}')
        raw = raw[..., 0]
    return raw


def decode_taskonomy(task, raw: np.ndarray) -> np.ndarray:
    """An array read from a Taskonomy-format PNG (``read_image(path, unchanged=True)``) ->
    ``task``'s canonical ground truth; a wrong dtype/channel count is a ``ValueError``
    saying what was expected."""
    return taskonomy_format(task).decode(task, check_taskonomy_file(task, raw))


def encode_taskonomy(task, value: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decode_taskonomy`: canonical ground truth -> array to write as PNG."""
    return taskonomy_format(task).encode(task, value)
