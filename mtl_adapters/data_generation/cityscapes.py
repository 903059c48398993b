"""Cityscapes preparation: the working-resolution image, surface normals and texture edges.

One item per image of the chosen splits. Inputs: the official ``leftImg8bit``, ``disparity``,
``camera`` and ``gtFine_labelIds`` files (the labels only mask the ego vehicle out of the
depth). Outputs, at the working resolution ``H x W`` (``size_tag``), in the layout of
``mtl_adapters.datasets.cityscapes`` (its docstring defines the encodings):

* ``leftImg8bit_{H}x{W}``: the image resized with ``INTER_AREA`` (what the model sees);
* ``normal_{H}x{W}``: ``normals_from_depth`` of the working-grid stereo depth (the very
  ``disparity_to_depth`` the dataset decodes at load time, capped at ``NORMAL_MAX_DEPTH``) with
  the intrinsics scaled to the working grid;
* ``edgeTexture_{H}x{W}``: ``texture_edges`` of the working-resolution image.

Labels and depth are decoded from the official files at load time (see the dataset), so they
are not written here. Everything else (atomic writes, resume, ``--check``, workers, the
summary) is the shared runner's (``prepare.py``).
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from mtl_adapters.datasets.cityscapes import (DEFAULT_WORK_SIZE, NORMAL_MAX_DEPTH, SPLITS,
                                              camera_matrix, disparity_to_depth, list_samples,
                                              read_camera, sample_files, size_tag, void_mask)
from mtl_adapters.datasets.prepared import encode_edges, encode_normals
from mtl_adapters.datasets.geometry import normals_from_depth, scale_intrinsics
from mtl_adapters.utils import DataFileError, read_image
from .prepare import PrepItem, Preparation, encode_png


def derive_targets(rgb: np.ndarray, disparity: np.ndarray, label_ids: np.ndarray,
                   camera: Dict[str, float], size: Sequence[int]) -> Dict[str, np.ndarray]:
    """One sample's prepared arrays at ``size`` (H, W): ``image`` (uint8 RGB), ``depth``
    (float32 metres, what normals are computed from), ``normal`` (HxWx3 float32), ``edge``."""
    import cv2

    from mtl_adapters.tasks.edge import texture_edges
    H, W = rgb.shape[:2]
    h, w = (int(s) for s in size)
    if h * W != w * H:
        raise ValueError(f'--size {h} {w} does not have the aspect ratio of the {H}x{W} image')
    image = rgb if (h, w) == (H, W) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    depth = disparity_to_depth(disparity, camera['baseline'], camera['fx'], size=(h, w),
                               void=void_mask(label_ids), max_depth=NORMAL_MAX_DEPTH)
    K = scale_intrinsics(camera_matrix(camera), w / W, h / H)
    return dict(image=image, depth=depth, normal=normals_from_depth(depth, K),
                edge=texture_edges(image))


def _read(path: Path, dtype: str, channels: int, shape=None) -> np.ndarray:
    """Read an official file and check its format; errors name the file."""
    raw = read_image(path, unchanged=True,
                     hint='unpack the Cityscapes archive that holds it again')
    got = 1 if raw.ndim == 2 else raw.shape[-1]
    if raw.dtype != np.dtype(dtype) or got != channels:
        raise DataFileError(f'{path}: found {raw.dtype} with {got} channel(s), expected '
                            f'{dtype} with {channels}')
    if shape is not None and raw.shape[:2] != tuple(shape):
        raise DataFileError(f'{path}: {raw.shape[1]}x{raw.shape[0]} pixels, but its image is '
                            f'{shape[1]}x{shape[0]}')
    return raw


class CityscapesPreparation(Preparation):
    """Prepare the working-resolution image, normals and edges of Cityscapes.

    Args:
        root: where the official archives were unpacked.
        out: where the prepared folders go (default ``root``; the dataset's ``prepared_root``).
        size: working resolution (H, W), the aspect ratio of the images (2:1).
        splits: which splits to prepare.
        cities: only these cities (all by default).
    """

    name = 'cityscapes'

    def __init__(self, root, out=None, size: Sequence[int] = DEFAULT_WORK_SIZE,
                 splits: Sequence[str] = ('train', 'val'),
                 cities: Optional[Sequence[str]] = None):
        self.root = str(root)
        self.out = str(out if out is not None else root)
        self.size = tuple(int(s) for s in size)
        if len(self.size) != 2 or min(self.size) < 3:
            raise ValueError(f'size must be (H, W) of at least 3 pixels each, got {size}')
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ValueError(f'unknown split(s) {bad}; Cityscapes has {SPLITS}')
        self.splits = tuple(splits)
        self.cities = list(cities) if cities is not None else None

    def items(self) -> List[PrepItem]:
        items = []
        for split in self.splits:
            samples = list_samples(self.root, split, self.cities)
            for city, stem in samples:
                f = sample_files(self.root, split, city, stem, self.size, self.out)
                items.append(PrepItem(
                    key=f'{split}/{city}/{stem}',
                    inputs=(f['image'], f['disparity'], f['camera'], f['label_ids']),
                    outputs=(f['image_work'], f['normal'], f['edge'])))
        return items

    def process(self, item: PrepItem) -> Dict[Path, bytes]:
        img_path, disp_path, cam_path, label_path = item.inputs
        rgb = _read(img_path, 'uint8', 3)
        disparity = _read(disp_path, 'uint16', 1, rgb.shape[:2])
        label_ids = _read(label_path, 'uint8', 1, rgb.shape[:2])
        camera = read_camera(cam_path)
        try:
            t = derive_targets(rgb, disparity, label_ids, camera, self.size)
        except ValueError as err:
            raise DataFileError(f'{img_path}: {err}') from err
        out_img, out_normal, out_edge = item.outputs
        return {out_img: encode_png(t['image']),
                out_normal: encode_png(encode_normals(t['normal'])),
                out_edge: encode_png(encode_edges(t['edge']))}

    def check_outputs(self, item: PrepItem) -> Optional[str]:
        """Every output exists, decodes, and has its dtype, channels and the working size."""
        expected = (('uint8', 3), ('uint16', 3), ('uint16', 1))
        for path, (dtype, channels) in zip(item.outputs, expected):
            if not path.is_file():
                return f'missing output {path}'
            try:
                _read(path, dtype, channels, self.size)
            except DataFileError as err:
                return str(err)
        return None

    def describe(self) -> str:
        """One line for the CLI: what is prepared, from where, to where."""
        return (f'Cityscapes {"/".join(self.splits)} from {self.root} -> {self.out} '
                f'(*_{size_tag(self.size)}/)')
