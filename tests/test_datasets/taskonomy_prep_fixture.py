"""A tiny Taskonomy copy as the download tools leave it, for ``data_prep/taskonomy.py`` tests.

Built on ``conftest.write_taskonomy_fixture`` (random but valid values in Taskonomy's encodings),
then made like a real copy:

* layout 'omnidata' (``<folder>/taskonomy/<building>/``, what ``omnitools.download`` writes) or
  'taskonomy' (``<folder>/<building>/``);
* several views per point and point numbers whose file names do not sort numerically
  (``point_10_view_1`` sorts before ``point_1_view_0``);
* ``segment_semantic`` at half the RGB resolution (the loader upsamples it, nearest);
* the split CSV as released: ``splits/train_val_test_tiny.csv``, CR-only line endings, no final
  line ending, and a known-bad building (``woodbine``, in the real tiny train split) listed but
  absent from the disk;
* one view with hand-picked raw values (:data:`KNOWN_RAW`) whose canonical values are known
  (:data:`KNOWN_CANONICAL`): uncertain/background/last-class labels, 16-bit depth with the
  65535 "no depth" value, a normal facing the camera, edge extremes.
"""
import os
import shutil

import numpy as np
from conftest import write_taskonomy_fixture

from mtl_adapters.utils import write_png

SIZE = (64, 64)
SEG_SIZE = (32, 32)
#: buildings on disk per split, and the known-bad one listed in the CSV's train split
SPLITS = dict(train=['hanson', 'merom'], val=['collierville'], test=['ihlen'])
MISSING_BAD = 'woodbine'
FOLDERS = {'rgb': 'rgb', 'segment_semantic': 'segmentsemantic',
           'depth_zbuffer': 'depth_zbuffer', 'normal': 'normal', 'edge_texture': 'edge_texture'}
#: (building, point, view) of the view with known raw values
KNOWN_VIEW = ('merom', 1, 0)


def _known_raw():
    h, w = SIZE
    seg = np.ones(SEG_SIZE, np.uint8)                 # background
    seg[:, :8] = 0                                    # uncertain -> ignored
    seg[:8, 8:] = 17                                  # vase, the last class
    seg[8:16, 8:16] = 2                               # bottle, the first object class
    depth = np.full((h, w), 1024, np.uint16)          # 2 m
    depth[0, :] = 65535                               # no depth
    depth[-1, :] = 256                                # 0.5 m
    normal = np.zeros((h, w, 3), np.uint8)
    normal[...] = (128, 128, 0)                       # facing the camera: n ~ (0, 0, -1)
    normal[:, w // 2:] = (255, 128, 128)              # facing right: n ~ (1, 0, 0)
    edge = np.zeros((h, w), np.uint16)
    edge[:, w // 2:] = 65535
    return dict(segment_semantic=seg, depth_zbuffer=depth, normal=normal, edge_texture=edge)


#: raw arrays (as read_image returns them) written for KNOWN_VIEW, per folder
KNOWN_RAW = _known_raw()


def _known_canonical():
    seg = np.zeros(SEG_SIZE, np.uint8)
    seg[:, :8] = 255
    seg[:8, 8:] = 16
    seg[8:16, 8:16] = 1
    depth = np.full(SIZE, 2.0, np.float32)
    depth[0, :] = 0.0
    depth[-1, :] = 0.5
    normal = np.zeros(SIZE + (3,), np.float32)
    normal[...] = (0, 0, -1)
    normal[:, SIZE[1] // 2:] = (1, 0, 0)
    edge = np.zeros(SIZE, np.float32)
    edge[:, SIZE[1] // 2:] = 1.0
    # the semantic map at the image resolution: each label covers a 2x2 block (nearest)
    return dict(seg=seg.repeat(2, 0).repeat(2, 1), depth=depth, normal=normal, edge=edge)


#: the canonical ground truth of KNOWN_VIEW, by task name, at the image resolution
KNOWN_CANONICAL = _known_canonical()


def official_split_csv(splits) -> bytes:
    """A split CSV byte for byte as released: CR-only, no final line ending."""
    rows = ['id,train,val,test']
    for split in ('train', 'val', 'test'):
        for b in splits[split]:
            rows.append(','.join([b] + ['1' if s == split else '0'
                                        for s in ('train', 'val', 'test')]))
    return '\r'.join(rows).encode()


def view_file(root, folder, building, point, view, layout='omnidata'):
    """Path of one file of the copy."""
    mid = ('taskonomy',) if layout == 'omnidata' else ()
    return os.path.join(root, folder, *mid, building,
                        f'point_{point}_view_{view}_domain_{FOLDERS[folder]}.png')


def write_taskonomy_copy(root, layout='omnidata', seed=0):
    """Write the copy under ``root``; returns ``{(building, point, view): {'rgb': ..., task
    name: canonical array at the image resolution}}``."""
    root = str(root)
    buildings = tuple(b for s in ('train', 'val', 'test') for b in SPLITS[s])
    truth = write_taskonomy_fixture(root, buildings=buildings, views=3, size=SIZE,
                                    seg_size=SEG_SIZE, seed=seed, num_classes=17)
    os.remove(os.path.join(root, 'splits.csv'))
    out = {}
    for (b, p), values in truth.items():
        point, view = (10, 1) if p == 2 else (p, 0)
        for folder, domain in FOLDERS.items():
            src = os.path.join(root, folder, b, f'point_{p}_view_0_domain_{domain}.png')
            dst = os.path.join(root, folder, b, f'point_{point}_view_{view}_domain_{domain}.png')
            os.replace(src, dst)
        values = dict(values, seg=values['seg'].repeat(2, 0).repeat(2, 1))
        out[(b, point, view)] = values
    b, point, view = KNOWN_VIEW
    for folder, raw in KNOWN_RAW.items():
        write_png(os.path.join(root, folder, b,
                               f'point_{point}_view_{view}_domain_{FOLDERS[folder]}.png'), raw)
    out[KNOWN_VIEW] = dict(out[KNOWN_VIEW], **KNOWN_CANONICAL)
    if layout == 'omnidata':
        for folder in FOLDERS:
            os.makedirs(os.path.join(root, folder, 'taskonomy'))
            for b in buildings:
                shutil.move(os.path.join(root, folder, b), os.path.join(root, folder,
                                                                        'taskonomy', b))
    splits = dict(SPLITS, train=SPLITS['train'] + [MISSING_BAD])
    os.makedirs(os.path.join(root, 'splits'))
    with open(os.path.join(root, 'splits', 'train_val_test_tiny.csv'), 'wb') as f:
        f.write(official_split_csv(splits))
    return out
