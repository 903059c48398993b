"""A tiny NYUDv2 download in the exact on-disk formats of the three input files.

* ``nyu_depth_v2_labeled.mat``: MATLAB 7.3, i.e. an HDF5 file behind a 512-byte user block
  that starts with MATLAB's text header; MATLAB writes arrays column-major, so h5py sees the
  axes reversed: ``images`` (N, 3, W, H) uint8, ``depths`` / ``rawDepths`` (N, W, H) float32
  metres, ``labels`` (N, W, H) uint16 (0 = unlabelled, 1..894), ``instances`` (N, W, H) uint8;
  every variable carries a ``MATLAB_class`` attribute; ``names`` is a cell array (object
  references into ``#refs#``, each a uint16 char column).
* ``splits.mat``: classic MATLAB (v5), ``trainNdxs`` / ``testNdxs`` 1-based column vectors.
* ``classMapping40.mat``: v5, ``mapClass`` (1 x 894 double, NYU40 id of each class),
  ``className`` (1 x 40 cell), ``allClassName`` (1 x 894 cell).

Frames are 48x64 (a tenth of 480x640). Frame 1 (1-based) sees a tilted plane, so its normals
are known exactly; the others hold random depth. ``mapClass`` has the real entries of a few
classes (book, bottle, cabinet, chair, floor, table, wall, sofa, bed) and made-up ones for the
rest.
"""
import time
from pathlib import Path

import numpy as np

SIZE = (48, 64)
#: real entries of mapClass (raw NYUDv2 class id -> NYU40 id); the rest is made up
REAL_MAP = {1: 23, 2: 40, 3: 3, 5: 5, 11: 2, 19: 7, 21: 1, 83: 6, 157: 4}
#: NYU40 class names in id order (className of classMapping40.mat)
NYU40 = ['wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
         'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser',
         'pillow', 'mirror', 'floor mat', 'clothes', 'ceiling', 'books', 'refridgerator',
         'television', 'paper', 'towel', 'shower curtain', 'box', 'whiteboard', 'person',
         'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag', 'otherstructure',
         'otherfurniture', 'otherprop']
#: the plane of frame 1: unit normal (facing the camera) and n . X = OFFSET
PLANE_NORMAL = np.array([0.3, -0.5, -0.8]) / np.linalg.norm([0.3, -0.5, -0.8])
PLANE_OFFSET = -2.0


def map_class() -> np.ndarray:
    """The fixture's mapClass: (894,) NYU40 ids."""
    ids = np.arange(1, 895)
    mapping = (ids * 7) % 41                       # made up, with some 0 (unlabelled)
    for raw, nyu40 in REAL_MAP.items():
        mapping[raw - 1] = nyu40
    return mapping


def plane_depth(K: np.ndarray, size=SIZE) -> np.ndarray:
    """z-depth of the plane ``PLANE_NORMAL . X = PLANE_OFFSET`` seen with intrinsics K."""
    h, w = size
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T     # z = 1
    return (PLANE_OFFSET / (rays @ PLANE_NORMAL)).astype(np.float32)


def _matlab_header() -> bytes:
    """The 128-byte MATLAB 7.3 header at the start of the HDF5 user block."""
    stamp = time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(0))
    text = f'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {stamp} HDF5 schema 1.00 .'
    return text.ljust(116).encode() + b'\x00' * 8 + b'\x00\x02' + b'IM'


def _put(f, name, array, matlab_class):
    ds = f.create_dataset(name, data=array)
    ds.attrs['MATLAB_class'] = np.bytes_(matlab_class)
    return ds


def write_labeled_mat(path, rgb, depth, labels, names=('book', 'bottle', 'cabinet')):
    """Write N frames ((N, H, W, 3) uint8, (N, H, W) metres, (N, H, W) raw ids) the way
    MATLAB 7.3 stores them."""
    import h5py
    path = Path(path)
    with h5py.File(path, 'w', userblock_size=512) as f:
        _put(f, 'images', np.asarray(rgb, np.uint8).transpose(0, 3, 2, 1), 'uint8')
        _put(f, 'depths', np.asarray(depth, np.float32).transpose(0, 2, 1), 'single')
        _put(f, 'rawDepths', np.asarray(depth, np.float32).transpose(0, 2, 1), 'single')
        _put(f, 'labels', np.asarray(labels, np.uint16).transpose(0, 2, 1), 'uint16')
        _put(f, 'instances', np.zeros(np.asarray(labels).transpose(0, 2, 1).shape, np.uint8),
             'uint8')
        refs = f.create_group('#refs#')
        cell = []
        for i, name in enumerate(names):
            char = _put(refs, f'n{i}', np.array([[ord(c)] for c in name], np.uint16), 'char')
            char.attrs['MATLAB_int_decode'] = np.int32(2)
            cell.append(char.ref)
        _put(f, 'names', np.array([cell], dtype=h5py.ref_dtype), 'cell')
    with open(path, 'r+b') as f:
        f.write(_matlab_header())


def write_nyudv2_fixture(root, num_frames=6, train=(1, 3, 4, 6), test=(2, 5), seed=0,
                         bad_label_frame=None, size=SIZE):
    """Write the three inputs into ``root``; return the truth ``{1-based id: {...}}`` with
    ``rgb``, ``depth`` (metres), ``raw`` (894-class ids), ``nyu40`` and the mapping.
    ``bad_label_frame``: that frame gets a label id outside the 894 classes."""
    import scipy.io
    from mtl_adapters.datasets.nyudv2 import nyu_intrinsics
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    h, w = size
    mapping = map_class()
    rgb = rng.randint(0, 256, (num_frames, h, w, 3)).astype(np.uint8)
    rgb[:, :, : w // 2] //= 3                        # a vertical texture edge
    depth = rng.uniform(0.7, 9.9, (num_frames, h, w)).astype(np.float32)
    depth[0] = plane_depth(nyu_intrinsics(h, w), size)
    depth[1, 0, :3] = 0.0                            # no depth (the in-painted maps have none)
    classes = np.array([0, 1, 2, 3, 5, 11, 19, 21, 83, 157, 600, 894])
    labels = classes[rng.randint(0, len(classes), (num_frames, h, w))].astype(np.uint16)
    if bad_label_frame is not None:
        labels[bad_label_frame - 1, 5, 7] = 900
    write_labeled_mat(root / 'nyu_depth_v2_labeled.mat', rgb, depth, labels)
    scipy.io.savemat(root / 'splits.mat', dict(trainNdxs=np.array(train, np.float64)[:, None],
                                               testNdxs=np.array(test, np.float64)[:, None]))
    cell40 = np.empty((1, 40), dtype=object)
    cell40[0, :] = NYU40
    cell894 = np.empty((1, 894), dtype=object)
    cell894[0, :] = [f'class{i}' for i in range(1, 895)]
    scipy.io.savemat(root / 'classMapping40.mat', dict(
        mapClass=mapping[None].astype(np.float64), className=cell40, allClassName=cell894))
    lut = np.concatenate([[0], mapping])
    return {i + 1: dict(rgb=rgb[i], depth=depth[i], raw=labels[i],
                        nyu40=lut[np.minimum(labels[i], 894)]) for i in range(num_frames)}
