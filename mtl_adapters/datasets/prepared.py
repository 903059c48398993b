"""How our preparations store the targets a dataset's archive lacks (normals derived from depth,
texture edges from RGB), when they are not stored in Taskonomy's encoding: 16-bit PNGs, so the
quantisation stays far below the targets' own error (0.002° for a normal).

* normals: 16-bit RGB, ``value = round((n + 1) / 2 * 65535)`` per component of the unit normal
  (OpenCV camera frame, see ``geometry.py``); (0, 0, 0) = no normal;
* edges: 16-bit grey, ``edge = value / 65535``.

Used by the Cityscapes and SYNTHIA preparations and datasets (one encoding, one place).
"""
import numpy as np

#: full scale of the 16-bit encodings
SCALE = 65535.0


def _expect(raw: np.ndarray, channels: int, what: str) -> np.ndarray:
    got = 1 if raw.ndim == 2 else raw.shape[-1]
    if raw.dtype != np.uint16 or got != channels:
        raise ValueError(f'found {raw.dtype} with {got} channel(s), expected the 16-bit '
                         f'{"RGB" if channels == 3 else "grey"} of a prepared {what} file '
                         '(re-run the data preparation: it resumes)')
    return raw


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """HxWx3 unit normals (zero vector = none) -> uint16 HxWx3."""
    n = np.asarray(normals, dtype=np.float64)
    raw = np.clip(np.round((n + 1.0) / 2.0 * SCALE), 0, SCALE).astype(np.uint16)
    raw[np.linalg.norm(n, axis=-1) < 0.5] = 0
    return raw


def decode_normals(raw: np.ndarray) -> np.ndarray:
    """uint16 HxWx3 -> HxWx3 float32 unit normals, 0 = none."""
    raw = _expect(raw, 3, 'normal')
    n = raw.astype(np.float32) / SCALE * 2.0 - 1.0
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    valid = (raw != 0).any(axis=-1, keepdims=True) & (norm > 0.5)
    return np.where(valid, n / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def encode_edges(edges: np.ndarray) -> np.ndarray:
    """HxW edges in [0, 1] -> uint16 HxW."""
    return np.clip(np.round(np.asarray(edges, np.float64) * SCALE), 0, SCALE).astype(np.uint16)


def decode_edges(raw: np.ndarray) -> np.ndarray:
    """uint16 HxW -> HxW float32 edges in [0, 1]."""
    return _expect(raw, 1, 'edge').astype(np.float32) / SCALE
