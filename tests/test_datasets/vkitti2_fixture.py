"""A tiny Virtual KITTI 2 (2.0.3) in the official on-disk format, with known geometry.

Every frame is a ray-cast toy street seen from a camera 1.6 m above a flat road: the road
plane (Road, Terrain at the right border), fronto-parallel boxes (Building, Tree, Vegetation,
Car, Van, Truck, Pole, TrafficLight, TrafficSign, GuardRail, Misc, Undefined) and the sky (no
hit). So depth, categories and normals are known per pixel: the road's normal is (0, -1, 0)
(up, in the OpenCV camera frame), a box's (0, 0, -1).

Format, as in the archives: ``rgb_<fffff>.jpg`` 8-bit JPEG; ``depth_<fffff>.png`` uint16
centimetres of z-depth, 65535 for the sky; ``classgt_<fffff>.png`` 8-bit RGB coloured with the
official colour table; per sequence ``colors.txt`` ("Category r g b" header) and
``intrinsic.txt`` ("frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]" header, one line per frame
and camera, 0-based). Quirks reproduced: the class folder is ``classSegmentation`` (as in the
archive) except in Scene06, which uses the format description's ``classsegmentation``;
Scene02's ``colors.txt`` lists the categories in another order; the intrinsics differ per
frame (the file has one line per frame, so a reader must not take the first); the archives are
extracted either into one folder or each into its own ``vkitti_2.0.3_<type>/``.
"""
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np

#: the official colors.txt of Virtual KITTI 2.0.3 (name, r, g, b), in its order
OFFICIAL_COLOURS = (
    ('Terrain', 210, 0, 200), ('Sky', 90, 200, 255), ('Tree', 0, 199, 0),
    ('Vegetation', 90, 240, 0), ('Building', 140, 140, 140), ('Road', 100, 60, 100),
    ('GuardRail', 250, 100, 255), ('TrafficSign', 255, 255, 0), ('TrafficLight', 200, 200, 0),
    ('Pole', 255, 130, 0), ('Misc', 80, 80, 80), ('Truck', 160, 60, 60), ('Car', 255, 127, 80),
    ('Van', 0, 139, 139), ('Undefined', 0, 0, 0))
NAMES = [c[0] for c in OFFICIAL_COLOURS]
CAMERA_HEIGHT = 1.6
SIZE = (30, 100)               # (H, W): about the aspect ratio of the real 375x1242
#: fronto-parallel boxes: (category, depth in m, u0, u1, v0, v1) in pixels of SIZE
BOXES = (('Building', 30.0, 0, 45, 0, 16), ('Tree', 15.0, 45, 60, 0, 17),
         ('Vegetation', 12.0, 60, 70, 2, 18), ('Car', 8.0, 20, 35, 12, 26),
         ('Van', 10.0, 70, 80, 11, 23), ('Pole', 6.0, 38, 41, 6, 28),
         ('TrafficLight', 6.0, 38, 41, 2, 6), ('TrafficSign', 14.0, 50, 55, 3, 8),
         ('Truck', 11.0, 82, 90, 9, 18), ('GuardRail', 9.0, 90, 100, 18, 24),
         ('Misc', 7.0, 55, 58, 20, 25), ('Undefined', 5.0, 0, 2, 0, 2))
#: (scene, variation) -> frames; Camera_1 only for Scene01/clone
SEQUENCES = {('Scene01', 'clone'): 2, ('Scene01', 'fog'): 2, ('Scene02', 'clone'): 2,
             ('Scene06', 'clone'): 2, ('Scene18', 'clone'): 2, ('Scene20', 'clone'): 2}
ARCHIVE_DIRS = dict(rgb='vkitti_2.0.3_rgb', depth='vkitti_2.0.3_depth',
                    classSegmentation='vkitti_2.0.3_classSegmentation',
                    textgt='vkitti_2.0.3_textgt')


def intrinsics(frame: int) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a frame, as written in intrinsic.txt (differs per frame)."""
    return 58.0 + 4.0 * frame, 58.0 + 4.0 * frame, 49.5, 14.5 + frame


def render(frame: int, size=SIZE) -> Dict[str, np.ndarray]:
    """Category index (into NAMES), z-depth (inf = sky), analytic normal, surface id."""
    h, w = size
    fx, fy, cx, cy = intrinsics(frame)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    dy = (v - cy) / fy
    depth = np.where(dy > 0, CAMERA_HEIGHT / np.where(dy > 0, dy, 1.0), np.inf)  # road plane
    category = np.where(u < 85, NAMES.index('Road'), NAMES.index('Terrain'))
    category = np.where(np.isfinite(depth), category, NAMES.index('Sky'))
    surface = np.where(np.isfinite(depth), 0, -1)
    for i, (name, z, u0, u1, v0, v1) in enumerate(BOXES, start=1):
        inside = (u >= u0) & (u < u1) & (v >= v0) & (v < v1) & (z < depth)
        depth = np.where(inside, z, depth)
        category = np.where(inside, NAMES.index(name), category)
        surface = np.where(inside, i, surface)
    normal = np.zeros((h, w, 3), np.float32)
    normal[surface == 0] = (0, -1, 0)
    normal[surface > 0] = (0, 0, -1)
    return dict(category=category.astype(np.uint8), depth=depth, normal=normal,
                surface=surface)


def _texture(category: np.ndarray, rng) -> np.ndarray:
    """An RGB image: a colour per category with a random texture (gives texture edges)."""
    base = np.array([[80 + 11 * i % 150, 60 + 37 * i % 170, 40 + 53 * i % 190]
                     for i in range(len(NAMES))], np.float64)
    img = base[category] + rng.normal(0, 12, category.shape + (3,))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _png(img: np.ndarray) -> bytes:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)       # OpenCV writes BGR
    return cv2.imencode('.png', img)[1].tobytes()


def write_vkitti2_fixture(root, layout: str = 'merged', sequences=None, seed: int = 0):
    """Write the archives' trees under ``root`` (``layout``: 'merged' = extracted into one
    folder, 'per_archive' = each into its vkitti_2.0.3_<type>/ folder).

    Returns ``{(scene, variation, camera, frame): dict(rgb=decoded JPEG, category, depth
    (metres as stored, 0 = sky), normal, surface, K)}``.
    """
    root = Path(root)
    rng = np.random.RandomState(seed)
    truth = {}

    def base(kind: str) -> Path:
        return root / ARCHIVE_DIRS[kind] if layout == 'per_archive' else root

    for (scene, variation), frames in (sequences or SEQUENCES).items():
        cameras = ('Camera_0', 'Camera_1') if (scene, variation) == ('Scene01', 'clone') \
            else ('Camera_0',)
        class_folder = 'classsegmentation' if scene == 'Scene06' else 'classSegmentation'
        text = base('textgt') / scene / variation
        order = OFFICIAL_COLOURS[::-1] if scene == 'Scene02' else OFFICIAL_COLOURS
        _write(text / 'colors.txt', ('Category r g b\n' + ''.join(
            f'{n} {r} {g} {b}\n' for n, r, g, b in order)).encode())
        rows = ['frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]']
        for frame in range(frames):
            for cam in range(2):
                rows.append(f'{frame} {cam} ' + ' '.join(f'{x:g}' for x in intrinsics(frame)))
        _write(text / 'intrinsic.txt', ('\n'.join(rows) + '\n').encode())
        for camera in cameras:
            for frame in range(frames):
                r = render(frame)
                rgb = _texture(r['category'], rng)
                jpg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                cm = np.where(np.isfinite(r['depth']),
                              np.clip(np.round(r['depth'] * 100), 1, 65534), 65535)
                colours = np.array([c[1:] for c in OFFICIAL_COLOURS], np.uint8)[r['category']]
                frames_dir = Path(scene) / variation / 'frames'
                name = f'{frame:05d}'
                _write(base('rgb') / frames_dir / 'rgb' / camera / f'rgb_{name}.jpg', jpg)
                _write(base('depth') / frames_dir / 'depth' / camera / f'depth_{name}.png',
                       _png(cm.astype(np.uint16)))
                _write(base('classSegmentation') / frames_dir / class_folder / camera
                       / f'classgt_{name}.png', _png(colours))
                fx, fy, cx, cy = intrinsics(frame)
                decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8),
                                                    cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                truth[(scene, variation, camera, frame)] = dict(
                    rgb=decoded, category=r['category'],
                    depth=np.where(cm == 65535, 0, cm / 100.0).astype(np.float32),
                    normal=r['normal'], surface=r['surface'],
                    K=np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]))
    return truth
