"""SYNTHIA-RAND-CITYSCAPES preparation: the targets the archive lacks (normals, texture edges).

One item per frame of ``RGB/``: its RGB, label and depth files are read and validated (so
``--check`` and every run name a corrupt or missing file), and two files are written at the
working resolution ``size`` (H, W; default the native 760x1280, the resolution the configs
train and evaluate at):

* ``<out>/normal/<id>.png``: surface normals from the depth (``normals_from_depth``) with the
  SYNTHIA intrinsics scaled to ``size`` (at another size the depth is first resized bilinearly,
  invalid pixels kept out); 16-bit RGB, ``round((n + 1) / 2 * 65535)``, (0, 0, 0) = none;
* ``<out>/edge/<id>.png``: ``texture_edges`` of the RGB at ``size`` (area interpolation when
  resized); 16-bit grey, value / 65535.

``finish`` writes ``<out>/meta.json`` (working size, intrinsics, encodings). The labels and the
depth are read by ``SynthiaDataset`` from the archive itself; every format is documented in
``mtl_adapters/datasets/synthia.py``.
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from mtl_adapters.datasets.prepared import encode_edges, encode_normals
from mtl_adapters.datasets.synthia import (DERIVED_DIRS, NATIVE_SIZE, SYNTHIA_INTRINSICS,
                                           decode_synthia_depth, decode_synthia_label,
                                           list_frames, load_synthia_class_map,
                                           resolve_synthia_root, synthia_intrinsics,
                                           synthia_paths)
from mtl_adapters.utils import DataFileError, read_image, write_json
from .prepare import PrepItem, Preparation, PrepSummary, encode_png

#: working resolution (H, W) of the derived targets: SYNTHIA's own 760x1280
DEFAULT_SIZE = NATIVE_SIZE


def fix_backslash_names(folder) -> int:
    """Move files named ``a\\b\\c.png`` (an archive's Windows paths extracted as flat names) to
    ``a/b/c.png`` under ``folder``; returns how many were moved. Safe to re-run."""
    moved = 0
    folder = Path(folder)
    for path in sorted(folder.iterdir()):
        if '\\' in path.name and path.is_file():
            target = folder.joinpath(*[p for p in path.name.split('\\') if p])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved += 1
    return moved


def _read(path: Path, what: str) -> np.ndarray:
    return read_image(path, unchanged=True,
                      hint=f're-extract {what} from SYNTHIA_RAND_CITYSCAPES.rar')


class SynthiaPreparation(Preparation):
    """Derive normals and texture edges for every SYNTHIA-RAND-CITYSCAPES frame.

    Args:
        root: the extracted archive (``RAND_CITYSCAPES/`` or its parent).
        out: output folder (the dataset's ``derived_dir``); default ``<root>/derived``.
        size: working resolution (H, W), the aspect ratio of 1280x760.
        intrinsics: (focal, cx, cy) in pixels at 1280x760.
    """

    name = 'synthia'

    def __init__(self, root, out=None, size: Sequence[int] = DEFAULT_SIZE,
                 intrinsics: Sequence[float] = SYNTHIA_INTRINSICS):
        self.root = Path(root)
        self.out = Path(out) if out is not None else self.root / 'derived'
        self.size = (int(size[0]), int(size[1]))
        h, w = self.size
        if h < 3 or w < 3 or abs(h / w - NATIVE_SIZE[0] / NATIVE_SIZE[1]) > 0.01:
            raise ValueError(f'size {h}x{w} (HxW) must keep the aspect ratio of SYNTHIA\'s '
                             f'{NATIVE_SIZE[0]}x{NATIVE_SIZE[1]} (e.g. 760 1280 or 380 640)')
        self.intrinsics = tuple(float(v) for v in intrinsics)
        self.lut = load_synthia_class_map('cityscapes16').lut

    def items(self) -> List[PrepItem]:
        root = resolve_synthia_root(self.root)
        items = []
        for frame in list_frames(root):
            paths = synthia_paths(root, self.out, frame)
            items.append(PrepItem(key=frame, inputs=(paths['img'], paths['seg'], paths['depth']),
                                  outputs=(paths['normal'], paths['edge'])))
        if not items:
            raise FileNotFoundError(f'no frames (7-digit <id>.png) in {root / "RGB"}')
        return items

    def process(self, item: PrepItem) -> Dict[Path, bytes]:
        import cv2

        from mtl_adapters.datasets.geometry import normals_from_depth
        from mtl_adapters.tasks.edge import texture_edges
        rgb_path, label_path, depth_path = item.inputs
        rgb = _read(rgb_path, 'RGB')
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DataFileError(f'{rgb_path}: {rgb.dtype} {rgb.shape}, expected 8-bit RGB')
        decoded = {}
        decoders = (('label', label_path, lambda raw: decode_synthia_label(raw, self.lut)),
                    ('depth', depth_path, decode_synthia_depth))
        for name, path, decode in decoders:
            raw = _read(path, name)
            try:
                decoded[name] = decode(raw)
            except ValueError as err:
                raise DataFileError(f'{path}: {err}') from err
            if decoded[name].shape != rgb.shape[:2]:
                raise DataFileError(f'{path} is {raw.shape[1]}x{raw.shape[0]} but its image '
                                    f'{rgb_path} is {rgb.shape[1]}x{rgb.shape[0]}')
        h, w = self.size
        depth = decoded['depth']
        if depth.shape != (h, w):     # bilinear; a pixel touching an invalid one is invalid
            valid = cv2.resize((depth > 0).astype(np.float32), (w, h),
                               interpolation=cv2.INTER_LINEAR)
            depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)
            depth[valid < 1 - 1e-3] = 0.0
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        normals = normals_from_depth(depth, synthia_intrinsics((h, w), self.intrinsics))
        return {item.outputs[0]: encode_png(encode_normals(normals)),
                item.outputs[1]: encode_png(encode_edges(texture_edges(rgb)))}

    def check_outputs(self, item: PrepItem) -> Optional[str]:
        problem = super().check_outputs(item)
        if problem is not None:
            return problem
        for path in item.outputs:              # made at another --size: redo
            shape = read_image(path).shape[:2]
            if shape != self.size:
                return f'{path} is {shape[1]}x{shape[0]}, not the working size ' \
                       f'{self.size[1]}x{self.size[0]}'
        return None

    def finish(self, items: Sequence[PrepItem], summary: PrepSummary) -> None:
        h, w = self.size
        meta = dict(
            dataset='SYNTHIA-RAND-CITYSCAPES', size_hw=[h, w], frames=len(items),
            intrinsics_native=dict(zip(('focal', 'cx', 'cy'), self.intrinsics),
                                   size_hw=list(NATIVE_SIZE)),
            K=np.round(synthia_intrinsics((h, w), self.intrinsics), 9).tolist(),
            normal=f'{DERIVED_DIRS["normal"]}/<id>.png: uint16 RGB, value = round((n + 1) / 2 '
                   '* 65535), unit normal in the OpenCV camera frame, (0, 0, 0) = no normal',
            edge=f'{DERIVED_DIRS["edge"]}/<id>.png: uint16, texture edge = value / 65535')
        write_json(self.out / 'meta.json', meta, sort_keys=True)
