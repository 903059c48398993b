"""A tiny SYNTHIA-RAND-CITYSCAPES in the archive's exact on-disk format, with known geometry.

Written as the real files are: ``RAND_CITYSCAPES/{RGB,GT/LABELS,GT/COLOR,Depth/Depth}/<7-digit
id>.png``; RGB 8-bit; labels 16-bit 3-channel written with OpenCV (class id in R, instance id
in G, B = 0); depth 16-bit with three equal channels, in centimetres. The frames are 1/10 of
the real 1280x760 (128x76), so the SYNTHIA camera scaled by 0.1 is their camera.

The scene: a fronto-parallel wall at ``WALL_Z`` metres (upper rows; normal (0, 0, -1)) and a
ground plane ``CAMERA_HEIGHT`` metres below the camera (lower rows; normal (0, -1, 0), y down);
a saturated (65535) and a zero depth patch in the top corners. The RGB wall has a vertical
colour step at the middle column; the ground is one flat grey (no texture edges).
"""
from pathlib import Path
from typing import Dict, Sequence

import cv2
import numpy as np

from mtl_adapters.datasets.synthia import synthia_intrinsics

FIXTURE_SIZE = (76, 128)                 # (H, W): 1/10 of 760x1280
CAMERA_HEIGHT = 1.5
WALL_Z = 20.0
FRAMES = ('0000000', '0000001', '0000002', '0000003', '0000004', '0000009')


def _imwrite(path: Path, array: np.ndarray) -> None:
    """cv2.imwrite exactly as the arrays are (BGR order for 3 channels, native dtype)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path


def scene_depth(size=FIXTURE_SIZE, wall_z: float = WALL_Z) -> np.ndarray:
    """z-depth (metres) of the wall + ground scene seen by the SYNTHIA camera at ``size``."""
    h, w = size
    K = synthia_intrinsics(size)
    v = np.arange(h, dtype=np.float64)[:, None] * np.ones((1, w))
    ray_y = (v - K[1, 2]) / K[1, 1]                      # y of the ray with z = 1
    with np.errstate(divide='ignore'):
        ground = np.where(ray_y > 0, CAMERA_HEIGHT / ray_y, np.inf)
    return np.minimum(ground, wall_z)


def write_synthia_fixture(root, frames: Sequence[str] = FRAMES, nested: bool = True,
                          seed: int = 0) -> Dict[str, dict]:
    """Write the frames under ``root`` (inside ``RAND_CITYSCAPES/`` if ``nested``, as the
    archive extracts). Returns ``{frame: dict(rgb, class_ids, instance_ids, depth_m,
    wall, ground)}`` (depth in metres as stored, 0 where invalid)."""
    base = Path(root) / 'RAND_CITYSCAPES' if nested else Path(root)
    rng = np.random.RandomState(seed)
    h, w = FIXTURE_SIZE
    truth = {}
    for i, frame in enumerate(frames):
        name = f'{frame}.png'
        wall_z = WALL_Z + i                               # every frame a little different
        depth = scene_depth(FIXTURE_SIZE, wall_z)
        wall = depth >= wall_z
        cm = np.round(depth * 100).astype(np.uint16)
        cm[:2, :3] = 65535                                # saturated: invalid
        cm[:2, -3:] = 0                                   # no depth: invalid
        _imwrite(base / 'Depth' / 'Depth' / name, np.repeat(cm[..., None], 3, axis=-1))

        class_ids = rng.randint(0, 23, (h, w)).astype(np.uint16)
        instance_ids = rng.randint(0, 23, (h, w)).astype(np.uint16)  # ids in range: a wrong
        label_bgr = np.stack([np.zeros_like(class_ids), instance_ids, class_ids], axis=-1)
        _imwrite(base / 'GT' / 'LABELS' / name, label_bgr)          # channel would decode
        colour = ((class_ids[..., None] * np.array([11, 53, 97])) % 256).astype(np.uint8)
        _imwrite(base / 'GT' / 'COLOR' / name, colour)

        rgb = np.empty((h, w, 3), np.uint8)
        rgb[:] = (90, 90, 90)                             # the ground: flat grey
        left, right = rng.randint(0, 256, 3), rng.randint(0, 256, 3)
        rgb[wall] = left
        rgb[wall & (np.arange(w)[None, :] >= w // 2)] = right
        _imwrite(base / 'RGB' / name, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        truth[frame] = dict(rgb=rgb, class_ids=class_ids, instance_ids=instance_ids,
                            depth_m=np.where((cm == 0) | (cm == 65535), 0, cm / 100.0),
                            wall=wall, ground=~wall)
    return truth
