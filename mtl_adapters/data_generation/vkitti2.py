"""Virtual KITTI 2 preparation: the official archives -> the copy ``VKITTI2Dataset`` reads.

One item per frame (scene, variation, camera, frame). Inputs: the RGB JPEG, the depth PNG, the
colour-coded class PNG, and the sequence's ``colors.txt`` and ``intrinsic.txt``. Outputs, at
the working resolution (native 1242x375 by default; ``height`` downscales, width keeps the
aspect ratio), in the layout of :mod:`mtl_adapters.datasets.vkitti2`:

* ``rgb``: at native size the original JPEG bytes (no re-encoding); downscaled: area
  resampling, lossless PNG;
* ``depth``: at native size the original PNG bytes; downscaled: nearest (pixel-centre aligned,
  so every value is a real measurement and "no depth" stays 65535);
* ``classid``: the colours mapped to :data:`CATEGORIES` indices with the sequence's own
  ``colors.txt`` (nearest when downscaled); an unlisted colour fails the frame naming the file;
* ``normal``: ``geometry.normals_from_depth`` of the depth with the frame's and camera's
  ``intrinsic.txt`` line, at the native resolution the depth was rendered at; at a smaller
  working resolution, area-averaged over each working pixel and renormalised (no normal where
  any source pixel has none; :func:`normals_at` says why not from a resampled depth). The sky
  (no depth) has no normal. ``intrinsic.txt`` of the prepared copy is scaled to the working
  resolution (``geometry.scale_intrinsics``);
* ``edge``: ``tasks.edge.texture_edges`` of the RGB at the working resolution (the image the
  network sees).

``finish`` writes ``meta.json`` (categories, resolution, encodings) and, per sequence, its
``colors.txt`` and ``intrinsic.txt`` at the working resolution. Everything is deterministic, so
a killed run resumes to the same bytes (see ``prepare.py``).
"""
import functools
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mtl_adapters.datasets.geometry import normals_from_depth, scale_intrinsics
from mtl_adapters.datasets.vkitti2 import (CAMERAS, CATEGORIES, PREPARED_FORMAT,
                                           colours_to_categories, decode_depth,
                                           encode_edges, encode_normals, prepared_path,
                                           read_colors_txt, read_intrinsics_txt,
                                           write_intrinsics_txt)
from mtl_adapters.utils import DataFileError, atomic_write_bytes, read_image, write_json
from .prepare import PrepItem, Preparation, PrepSummary, encode_png

#: official page (format description, terms of use, download links)
OFFICIAL_PAGE = ('https://europe.naverlabs.com/research/computer-vision/'
                 'proxy-virtual-worlds-vkitti-2/')
DOWNLOAD_BASE = 'https://download.europe.naverlabs.com/virtual_kitti_2.0.3/'
#: the data types this preparation reads: folder (as in frames/<folder>) -> archive
ARCHIVES = {'rgb': 'vkitti_2.0.3_rgb.tar', 'depth': 'vkitti_2.0.3_depth.tar',
            'classSegmentation': 'vkitti_2.0.3_classSegmentation.tar',
            'textgt': 'vkitti_2.0.3_textgt.tar.gz'}
#: file name prefix inside frames/<folder>/Camera_<c>/
FILE_PREFIX = {'rgb': 'rgb', 'depth': 'depth', 'classSegmentation': 'classgt'}
FILE_SUFFIX = {'rgb': '.jpg', 'depth': '.png', 'classSegmentation': '.png'}
_SCENE = re.compile(r'^Scene\d+$')
_FRAME = re.compile(r'^rgb_(\d{5})\.jpg$')


def _child_ci(folder: Path, name: str) -> Path:
    """``folder/name``, matching ``name`` case-insensitively (``classSegmentation`` in the
    archive, ``classsegmentation`` in the format description); the exact name if absent."""
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name.lower() == name.lower():
                return child
    return folder / name


def frame_dir(base: Path, scene: str, variation: str, kind: str, camera: str) -> Path:
    """``<base>/<scene>/<variation>/frames/<kind>/<camera>`` (``kind`` case-insensitive)."""
    return _child_ci(Path(base) / scene / variation / 'frames', kind) / camera


def _holds(base: Path, kind: str) -> bool:
    """Does ``base`` hold the Scene tree of this data type?"""
    if not base.is_dir():
        return False
    for scene in base.iterdir():
        if not (scene.is_dir() and _SCENE.match(scene.name)):
            continue
        for variation in scene.iterdir():
            if kind == 'textgt':
                if (variation / 'intrinsic.txt').is_file():
                    return True
            elif _child_ci(variation / 'frames', kind).is_dir():
                return True
    return False


def find_sources(src) -> Dict[str, Path]:
    """``{data type: folder holding its Scene tree}``: ``src`` itself (archives extracted into
    one folder) or ``src/vkitti_2.0.3_<type>/`` (each archive in its own folder)."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f'--src {src} is not a folder: extract the Virtual KITTI 2 '
                                f'archives there (data_prep/vkitti2.py --help)')
    found, missing = {}, []
    for kind, archive in ARCHIVES.items():
        stem = archive.split('.tar')[0]
        base = next((b for b in (src / stem, src) if _holds(b, kind)), None)
        if base is None:
            missing.append(f'{archive} (expected {src}/Scene*/<variation>/'
                           + ('intrinsic.txt' if kind == 'textgt' else f'frames/{kind}/')
                           + f' or the same under {src / stem}/)')
        else:
            found[kind] = base
    if missing:
        raise FileNotFoundError(
            f'Virtual KITTI 2 data not found under {src}; missing: ' + '; '.join(missing)
            + f'. Download the archives from {OFFICIAL_PAGE} ({DOWNLOAD_BASE}<archive>) and '
            'extract them there.')
    return found


@functools.lru_cache(maxsize=64)
def _colors(path: str) -> Dict[Tuple[int, int, int], str]:
    return read_colors_txt(path)


@functools.lru_cache(maxsize=64)
def _intrinsics(path: str) -> Dict[Tuple[int, int], np.ndarray]:
    return read_intrinsics_txt(path)


def _png_problem(path: Path, size: Tuple[int, int]) -> Optional[str]:
    """None if ``path`` is a complete PNG of ``size`` (H, W): header and tail only."""
    with open(path, 'rb') as f:
        head = f.read(24)
        f.seek(max(0, path.stat().st_size - 12))
        tail = f.read(12)
    if head[:8] != b'\x89PNG\r\n\x1a\n' or head[12:16] != b'IHDR' or tail[4:8] != b'IEND':
        return f'{path} is not a complete PNG'
    got = (int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big'))
    if got != tuple(size):
        return f'{path} is {got[1]}x{got[0]}, expected {size[1]}x{size[0]}'
    return None


def working_size(native: Tuple[int, int], height: Optional[int]) -> Tuple[int, int]:
    """(H, W) of the prepared files: native, or ``height`` with the aspect ratio kept."""
    h, w = native
    if height is None or height == h:
        return h, w
    if not 0 < height <= h:
        raise ValueError(f'--height {height}: must be between 1 and the native height {h}')
    return height, max(1, int(round(w * height / h)))


def normals_at(depth: np.ndarray, K: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Unit normals (H', W', 3) at ``size`` from native z-depth (metres, 0 = none) and its K.

    The normals are computed where the depth was rendered (native pixels, the frame's own K)
    and, at a smaller working size, averaged over each working pixel's footprint (area
    resampling) and renormalised; a working pixel whose footprint holds a pixel without a
    normal has none. Computing them from a resampled depth instead loses accuracy: nearest
    sampling moves each sample up to half a source pixel off the ray that the scaled K assigns
    it, and any interpolation spreads a depth step over two pixels, which can hide it from the
    curvature test and leave a false slanted surface between the two objects."""
    import cv2
    normals = normals_from_depth(depth, K)
    H, W = depth.shape
    h, w = size
    if (h, w) == (H, W):
        return normals
    valid = (np.linalg.norm(normals, axis=-1) > 0.5).astype(np.float64)
    mean = cv2.resize(normals.astype(np.float64), (w, h), interpolation=cv2.INTER_AREA)
    ok = cv2.resize(valid, (w, h), interpolation=cv2.INTER_AREA) > 1 - 1e-9
    norm = np.linalg.norm(mean, axis=-1, keepdims=True)
    ok &= norm[..., 0] > 1e-6
    return np.where(ok[..., None], mean / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


class VKITTI2Preparation(Preparation):
    """Virtual KITTI 2 archives (extracted under ``src``) -> the prepared copy under ``out``.

    Args:
        src: where the archives were extracted (``find_sources``).
        out: the prepared folder (the dataset's ``data_root``).
        height: working height (None: native); width keeps the aspect ratio.
        scenes / variations: subsets (None: every one found); cameras: 'Camera_0'/'Camera_1'.
        allow_unknown_colors: mark class colours that colors.txt does not list as unlabelled
            (255) instead of failing the frame.
    """

    name = 'vkitti2'

    def __init__(self, src, out, height: Optional[int] = None,
                 scenes: Optional[Sequence[str]] = None,
                 variations: Optional[Sequence[str]] = None,
                 cameras: Sequence[str] = ('Camera_0',), allow_unknown_colors: bool = False):
        for camera in cameras:
            if camera not in CAMERAS:
                raise ValueError(f'unknown camera {camera!r}; choose from {CAMERAS}')
        if height is not None and height < 1:
            raise ValueError(f'height must be positive, got {height}')
        self.src, self.out = Path(src), Path(out)
        self.height = height
        self.scenes = list(scenes) if scenes else None
        self.variations = list(variations) if variations else None
        self.cameras = list(cameras)
        self.allow_unknown_colors = allow_unknown_colors

    # --------------------------------------------------------------------------- items
    def _sequences(self, bases: Dict[str, Path]) -> List[Tuple[str, str]]:
        rgb = bases['rgb']
        found = sorted(p.name for p in rgb.iterdir() if p.is_dir() and _SCENE.match(p.name))
        scenes = self.scenes or found
        absent = [s for s in scenes if s not in found]
        if absent:
            raise FileNotFoundError(f'scene(s) {absent} not found in {rgb} (found {found})')
        sequences = []
        for scene in scenes:
            have = sorted(p.name for p in (rgb / scene).iterdir() if (p / 'frames').is_dir())
            wanted = self.variations or have
            absent = [v for v in wanted if v not in have]
            if absent:
                raise FileNotFoundError(f'variation(s) {absent} not found in {rgb / scene} '
                                        f'(found {have})')
            sequences += [(scene, variation) for variation in wanted]
        return sequences

    def items(self) -> List[PrepItem]:
        bases = find_sources(self.src)
        items = []
        for scene, variation in self._sequences(bases):
            text = bases['textgt'] / scene / variation
            for camera in self.cameras:
                rgb_dir = frame_dir(bases['rgb'], scene, variation, 'rgb', camera)
                if not rgb_dir.is_dir():
                    raise FileNotFoundError(f'camera folder {rgb_dir} not found')
                frames = sorted(int(m.group(1)) for m in map(_FRAME.match, (
                    p.name for p in rgb_dir.iterdir())) if m)
                dirs = {kind: frame_dir(bases[kind], scene, variation, kind, camera)
                        for kind in FILE_PREFIX}
                native = self._native_size(rgb_dir, frames)
                size = working_size(native, self.height) if native else None
                out_rgb = '.jpg' if size == native else '.png'
                for frame in frames:
                    inputs = tuple(dirs[k] / f'{FILE_PREFIX[k]}_{frame:05d}{FILE_SUFFIX[k]}'
                                   for k in FILE_PREFIX) + (text / 'colors.txt',
                                                            text / 'intrinsic.txt')
                    outputs = tuple(
                        prepared_path(self.out, scene, variation, camera, kind, frame,
                                      out_rgb if kind == 'rgb' else '.png')
                        for kind in ('rgb', 'depth', 'classid', 'normal', 'edge'))
                    items.append(PrepItem(
                        key=f'{scene}/{variation}/{camera}/{frame:05d}', inputs=inputs,
                        outputs=outputs,
                        extra=dict(camera_id=int(camera[-1]), frame=frame, native=native,
                                   size=size)))
        return items

    @staticmethod
    def _native_size(rgb_dir: Path, frames: Sequence[int]) -> Optional[Tuple[int, int]]:
        """(H, W) of the sequence's images, from the first JPEG header that reads."""
        from PIL import Image
        for frame in frames:
            try:
                with Image.open(rgb_dir / f'rgb_{frame:05d}.jpg') as img:
                    return img.size[1], img.size[0]
            except (OSError, ValueError):
                continue
        return None

    # ------------------------------------------------------------------------- process
    def process(self, item: PrepItem) -> Dict[Path, bytes]:
        import cv2

        from mtl_adapters.tasks.edge import texture_edges
        rgb_path, depth_path, class_path, colors_path, intr_path = item.inputs
        native, size = item.extra['native'], item.extra['size']
        rgb = read_image(rgb_path, unchanged=False)
        if native is None or rgb.shape[:2] != tuple(native):
            raise DataFileError(f'{rgb_path} is {rgb.shape[1]}x{rgb.shape[0]}, the other '
                                f'frames of its sequence are {native and native[::-1]}')
        depth_raw = read_image(depth_path, unchanged=True)
        if depth_raw.dtype != np.uint16 or depth_raw.ndim != 2:
            raise DataFileError(f'{depth_path}: expected a 16-bit grey PNG (centimetres), got '
                                f'{depth_raw.dtype} {depth_raw.shape}')
        class_rgb = read_image(class_path, unchanged=True)
        for path, arr in ((depth_path, depth_raw), (class_path, class_rgb)):
            if arr.shape[:2] != rgb.shape[:2]:
                raise DataFileError(f'{path} is {arr.shape[1]}x{arr.shape[0]} but its image '
                                    f'{rgb_path} is {rgb.shape[1]}x{rgb.shape[0]}')
        table = _colors(str(colors_path))
        key = (item.extra['frame'], item.extra['camera_id'])
        K = _intrinsics(str(intr_path)).get(key)
        if K is None:
            raise DataFileError(f'{intr_path} has no line for frame {key[0]}, camera {key[1]}')
        category = colours_to_categories(class_rgb, table, where=str(class_path),
                                         allow_unknown=self.allow_unknown_colors)
        normals = normals_at(decode_depth(depth_raw), K, size)
        out_rgb, out_depth, out_class, out_normal, out_edge = item.outputs
        if tuple(size) == tuple(native):
            rgb_bytes, depth_bytes = Path(rgb_path).read_bytes(), Path(depth_path).read_bytes()
        else:
            h, w = size
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            rgb_bytes = encode_png(rgb)
            depth_bytes = encode_png(cv2.resize(depth_raw, (w, h),
                                                interpolation=cv2.INTER_NEAREST_EXACT))
            category = cv2.resize(category, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        return {out_rgb: rgb_bytes, out_depth: depth_bytes,
                out_class: encode_png(category),
                out_normal: encode_png(encode_normals(normals)),
                out_edge: encode_png(encode_edges(texture_edges(rgb)))}

    def check_outputs(self, item: PrepItem) -> Optional[str]:
        """Every output exists and is complete at the item's working size, read from file
        headers and tails only (a resume checks every frame, serially): a PNG has its size in
        its IHDR header and ends with an IEND chunk; a copied original has its source's size
        in bytes. (Outputs are written atomically, so damage would come from elsewhere.)"""
        size = item.extra['size']
        if size is None:
            return 'the sequence has no readable image (its size is unknown)'
        copies = {item.outputs[0]: item.inputs[0], item.outputs[1]: item.inputs[1]}
        for path in item.outputs:
            if not path.is_file():
                return f'missing output {path}'
            if path.suffix == '.jpg' or (tuple(size) == tuple(item.extra['native'])
                                         and path in copies):
                src = Path(copies[path])
                if not src.is_file() or path.stat().st_size != src.stat().st_size:
                    return f'{path} is not a complete copy of {src}'
                continue
            problem = _png_problem(path, size)
            if problem:
                return problem
        return None

    # -------------------------------------------------------------------------- finish
    def finish(self, items: Sequence[PrepItem], summary: PrepSummary) -> None:
        """``meta.json`` and, per sequence, ``colors.txt`` and ``intrinsic.txt`` (scaled)."""
        meta = dict(
            dataset='Virtual KITTI 2 (2.0.3)', format=PREPARED_FORMAT,
            categories=list(CATEGORIES), height=self.height,
            encodings=dict(
                rgb='original JPEG at native size, else PNG (area-resampled)',
                depth='uint16 centimetres of z-depth, 65535 = none (sky, far plane)',
                classid='uint8 index into categories, 255 = colour not in colors.txt',
                normal='uint8 RGB, n = rgb / 255 * 2 - 1, OpenCV camera frame, grey = none',
                edge='uint16, value / 65535, texture_edges of the prepared RGB'),
            source=OFFICIAL_PAGE)
        write_json(self.out / 'meta.json', meta, indent=1)
        sequences = {}
        for item in items:
            seq = tuple(item.key.split('/')[:2])
            sequences.setdefault(seq, item)
        for (scene, variation), item in sorted(sequences.items()):
            colors, intrinsic = item.inputs[3], item.inputs[4]
            folder = self.out / scene / variation
            if not folder.is_dir() or item.extra['size'] is None:
                continue
            try:
                if colors.is_file():
                    atomic_write_bytes(folder / 'colors.txt', colors.read_bytes())
                if intrinsic.is_file():
                    (h, w), (H, W) = item.extra['size'], item.extra['native']
                    data = (intrinsic.read_bytes() if (h, w) == (H, W) else write_intrinsics_txt(
                        {k: scale_intrinsics(K, w / W, h / H)
                         for k, K in _intrinsics(str(intrinsic)).items()}))
                    atomic_write_bytes(folder / 'intrinsic.txt', data)
            except ValueError:      # a broken intrinsic.txt: its frames failed, naming it
                continue
