"""A tiny Cityscapes in the official on-disk format, with a scene whose geometry is known.

Each image shows a flat road seen from a camera 1.2 m above it, meeting a fronto-parallel wall
20 m ahead, sky above, the ego vehicle's bonnet along the bottom and the rectification border on
the left (both with garbage disparity, as a bonnet reflecting the scene gives). Files and
encodings as the archives unpack (cityscapesScripts README, helpers/labels.py):
``leftImg8bit`` 8-bit RGB, ``gtFine`` ``labelIds`` 8-bit grey plus the ``color``,
``instanceIds`` (16-bit), ``polygons.json`` and ``labelTrainIds`` (255 = ignore) files that
sit next to it, ``disparity`` 16-bit grey ``p = 256 d + 1`` (0 = invalid), ``camera`` JSON with
``extrinsic``/``intrinsic`` objects. The images are 64x128 instead of 1024x2048 (same 1:2
aspect ratio); the test split's ``labelIds`` mark only the void regions (labels not public).
"""
import json
from pathlib import Path

import numpy as np

from mtl_adapters.utils import write_png

#: (split, city, stem) of the fixture; two cities in train, the official city names
SAMPLES = (('train', 'aachen', 'aachen_000000_000019'),
           ('train', 'aachen', 'aachen_000001_000019'),
           ('train', 'bochum', 'bochum_000000_000313'),
           ('val', 'frankfurt', 'frankfurt_000000_000294'),
           ('test', 'berlin', 'berlin_000000_000019'))
FULL_SIZE = (64, 128)
CAMERA_HEIGHT = 1.2
WALL_DEPTH = 20.0
#: label ids used by the scene
ROAD, SIDEWALK, PARKING, BUILDING, CAR, SKY, BICYCLE, UNLABELED, EGO, BORDER = (
    7, 8, 9, 11, 26, 23, 33, 0, 1, 2)


def camera_for(city: str, size=FULL_SIZE) -> dict:
    """A plausible camera file: the real Cityscapes values scaled to the fixture's width, with
    a small per-city change (so a sample read with another city's camera is caught)."""
    s = size[1] / 2048.0
    k = 1.0 + 0.01 * (sum(map(ord, city)) % 7)
    return dict(extrinsic=dict(baseline=0.209313 * k, pitch=0.038, roll=0.0, x=1.7, y=0.1,
                               yaw=-0.0195, z=1.18),
                intrinsic=dict(fx=2262.52 * s * k, fy=2265.3017905988554 * s * k,
                               u0=1096.98 * s, v0=513.137 * s))


def scene(camera: dict, size=FULL_SIZE, rng=None, test_split=False):
    """label ids (uint8), raw disparity (uint16), rgb (uint8) and masks of the scene."""
    H, W = size
    intr, base = camera['intrinsic'], camera['extrinsic']['baseline']
    fx, fy, v0 = intr['fx'], intr['fy'], intr['v0']
    v = np.arange(H, dtype=np.float64)[:, None] * np.ones((1, W))
    u = np.ones((H, 1)) * np.arange(W, dtype=np.float64)[None, :]
    # depth of the road plane (y = CAMERA_HEIGHT, y down) where the ray points down
    with np.errstate(divide='ignore'):
        road_z = np.where(v > v0, CAMERA_HEIGHT * fy / np.maximum(v - v0, 1e-9), np.inf)
    ground = road_z < WALL_DEPTH
    sky = v < H // 8
    ego = v >= H - H // 8
    border = u < 2
    wall = ~ground & ~sky
    depth = np.where(ground, road_z, WALL_DEPTH)
    disp = base * fx / depth
    raw = np.round(disp * 256.0 + 1.0)
    raw[sky] = 0                                     # no stereo match in the sky
    rng = rng or np.random.RandomState(0)
    raw[ego | border] = rng.randint(2, 30000, size=int((ego | border).sum()))   # garbage
    labels = np.full((H, W), BUILDING, np.uint8)
    labels[ground & (u < W // 2)] = ROAD
    labels[ground & (u >= W // 2)] = SIDEWALK
    labels[ground & (u >= W - 12)] = PARKING
    labels[wall & (u >= 20) & (u < 40) & (v >= H // 2 - 8)] = CAR
    labels[wall & (u >= 60) & (u < 66)] = BICYCLE
    labels[wall & (u >= 100) & (u < 104)] = UNLABELED
    labels[sky] = SKY
    labels[ego] = EGO
    labels[border] = BORDER
    # a patch far beyond any depth cap (p = 2: 1/256 px) and one with p = 1 (d = 0)
    raw[H // 4:H // 4 + 2, 80:84] = 2
    raw[H // 4:H // 4 + 2, 90:94] = 1
    if test_split:
        labels = np.where(ego, EGO, np.where(border, BORDER, UNLABELED)).astype(np.uint8)
    rgb = rng.randint(0, 256, (H, W, 3)).astype(np.uint8)
    rgb[..., 2] = np.where(sky, 230, rgb[..., 2])
    return dict(label_ids=labels, disparity=raw.astype(np.uint16), rgb=rgb, ground=ground,
                wall=wall, sky=sky, ego=ego, border=border)


def write_cityscapes_fixture(root, samples=SAMPLES, size=FULL_SIZE, seed=0) -> dict:
    """Write the official files of ``samples`` under ``root``; returns ``{stem: truth}``."""
    root = Path(root)
    rng = np.random.RandomState(seed)
    truth = {}
    for split, city, stem in samples:
        camera = camera_for(city, size)
        s = scene(camera, size, rng, test_split=(split == 'test'))

        def path(kind, suffix):
            return root / kind / split / city / f'{stem}_{suffix}'

        write_png(path('leftImg8bit', 'leftImg8bit.png'), s['rgb'])
        write_png(path('gtFine', 'gtFine_labelIds.png'), s['label_ids'])
        write_png(path('disparity', 'disparity.png'), s['disparity'])
        cam_path = path('camera', 'camera.json')
        cam_path.parent.mkdir(parents=True, exist_ok=True)
        cam_path.write_text(json.dumps(camera, indent=4))
        # the other gtFine files of the archive (never to be read as labelIds)
        from mtl_adapters.datasets.cityscapes import LABEL_TO_TRAIN
        write_png(path('gtFine', 'gtFine_color.png'),
                  np.stack([s['label_ids'] * 7, s['label_ids'] * 3, s['label_ids']], -1))
        write_png(path('gtFine', 'gtFine_instanceIds.png'),
                  s['label_ids'].astype(np.uint16) * 1000)
        write_png(path('gtFine', 'gtFine_labelTrainIds.png'), LABEL_TO_TRAIN[s['label_ids']])
        path('gtFine', 'gtFine_polygons.json').write_text(json.dumps(
            dict(imgHeight=size[0], imgWidth=size[1], objects=[])))
        truth[stem] = dict(s, camera=camera, split=split, city=city)
    return truth
