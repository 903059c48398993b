"""File I/O with clear errors: image reading that names the file and the fix, atomic writes,
strict JSON."""
import json
import math
import os
import tempfile
from pathlib import Path
from typing import List, Union

import cv2
import numpy as np

PathLike = Union[str, os.PathLike]


class DataFileError(RuntimeError):
    """A dataset file is missing or cannot be decoded; the message names the file and the fix."""


def to_uint8_image(img: np.ndarray) -> np.ndarray:
    """An image read at its stored bit depth -> uint8 with the same look.

    16-bit: values up to 255 throughout are 8-bit content stored in 16 bits (kept as they
    are; scaling them by 255/65535 would make the picture black); otherwise the full 16-bit
    range, ``round(v * 255 / 65535)`` (an 8-bit picture saved as 16-bit, ``v * 257``, comes
    back exactly).
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype != np.uint16:
        raise ValueError(f'expected an 8- or 16-bit image, found {img.dtype}')
    if int(img.max(initial=0)) <= 255:
        return img.astype(np.uint8)
    return np.round(img.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)


def read_image(path: PathLike, unchanged: bool = True, hint: str = '') -> np.ndarray:
    """Read a PNG/JPEG with OpenCV; RGB order for colour images.

    ``unchanged``: the stored channels at their stored dtype (ground-truth files). Otherwise
    an HxWx3 uint8 RGB picture (input images): grey is repeated, alpha dropped, and a 16-bit
    file is brought to 8 bits by :func:`to_uint8_image` (OpenCV's own colour reading shifts
    16-bit values right by 8 bits, so 8-bit content stored in 16 bits reads as black).

    Raises :class:`DataFileError` naming the file when it is missing, empty or corrupt.
    """
    path = Path(path)
    fix = hint or 're-run the data preparation script for this dataset (it resumes)'
    if not path.is_file():
        raise DataFileError(f'missing file: {path}. Fix: {fix}.')
    if path.stat().st_size == 0:
        raise DataFileError(f'empty file: {path}. Fix: delete it and {fix}.')
    flag = cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, flag)
    if img is None:
        raise DataFileError(f'cannot decode image file (corrupt or not an image): {path}. '
                            f'Fix: delete it and {fix}.')
    if img.ndim == 3 and img.shape[2] >= 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if not unchanged:
        try:
            img = to_uint8_image(img)
        except ValueError as err:
            raise DataFileError(f'{path}: {err}; an input image must be an 8- or 16-bit '
                                'PNG or a JPEG') from err
    return img


def _umask() -> int:
    """The process umask (read without leaving it changed)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half-written.

    ``mkstemp`` creates its file with mode 0600; the finished file gets the mode an ordinary
    ``open(path, 'w')`` would give it (0666 less the umask), so prepared datasets, predictions
    and checkpoints can be shared with a group as any other file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def non_finite_entries(obj, where: str = '') -> List[str]:
    """Where ``obj`` (nested dicts / lists of numbers) holds NaN or inf: ``['a.b[2]', ...]``."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [where or '<value>']
    if isinstance(obj, dict):
        return [e for k, v in obj.items()
                for e in non_finite_entries(v, f'{where}.{k}' if where else str(k))]
    if isinstance(obj, (list, tuple)):
        return [e for i, v in enumerate(obj) for e in non_finite_entries(v, f'{where}[{i}]')]
    return []


def json_bytes(obj, what: str = 'JSON', **kwargs) -> bytes:
    """Strict JSON text of ``obj`` plus a newline, as bytes (``json.dumps`` keyword arguments
    pass through). NaN and inf are not JSON: they are an error naming the entries (``what``
    names the destination), never a bare ``NaN`` that other JSON readers reject."""
    bad = non_finite_entries(obj)
    if bad:
        raise ValueError(f'{what}: non-finite numbers at {bad} cannot be written as JSON; '
                         'report an undefined value as null (None) with a message saying why')
    return (json.dumps(obj, allow_nan=False, **kwargs) + '\n').encode()


def write_json(path: PathLike, obj, indent: Union[int, None] = 2, **kwargs) -> Path:
    """Write ``obj`` as strict JSON (``json_bytes``) to ``path`` atomically; returns the path.
    The one JSON writer of the project."""
    atomic_write_bytes(path, json_bytes(obj, what=str(path), indent=indent, **kwargs))
    return Path(path)


def write_png(path: PathLike, img: np.ndarray) -> None:
    """Atomically write a uint8/uint16 array as PNG (RGB order for 3-channel arrays)."""
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode {img.dtype} {img.shape} as PNG for {path}')
    atomic_write_bytes(path, buf.tobytes())


def save_figure(fig, path: PathLike, **kwargs) -> Path:
    """Atomically write a Matplotlib figure (format from the suffix; ``kwargs`` to
    ``savefig``): rendered in memory, then renamed into place, so an interrupted plot never
    leaves a truncated picture where a previous one was."""
    import io
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip('.') or 'png', **kwargs)
    atomic_write_bytes(path, buf.getvalue())
    return path
