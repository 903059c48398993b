"""Trunk weights shipped with the package, and the trunk file format that carries them.

A *trunk file* is a safetensors file holding exactly a timm Swin-V2 trunk's ``state_dict()``
(built with ``num_classes=0``: no classifier), stored in fp16 or fp32, with the metadata
``{'format': TRUNK_FORMAT, 'model_name': ..., 'model_kwargs': <json>}``. ``tools/pretrain.py``
writes one (:func:`save_trunk`); the encoders' ``pretrained`` option reads one
(:func:`load_trunk`) either by name, ``'embedded://<name>'`` (a file of
``mtl_adapters/weights/`` listed in :data:`EMBEDDED_TRUNKS`), or by path.

Loading is strict: every key of the trunk must be in the file with the trunk's shape, and the
file must hold nothing else; fp16 values are upcast to the trunk's dtype. A shipped file (by
name, or a copy under its file name) must have the sha256 recorded here; a corrupted or
replaced copy is refused, naming the file and both hashes.
"""
import hashlib
import json
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from mtl_adapters.utils.io import atomic_write_bytes

#: the ``format`` metadata entry of a trunk file
TRUNK_FORMAT = 'mtl_adapters.swinv2_trunk'
#: ``pretrained='embedded://<name>'`` names a shipped trunk
EMBEDDED_PREFIX = 'embedded://'
#: the package folder of the shipped weights
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / 'weights'


class EmbeddedTrunk(NamedTuple):
    """A shipped trunk: its file in :data:`WEIGHTS_DIR` and the file's sha256."""
    file: str
    sha256: str


#: shipped trunks by name (mtl_adapters/weights/README.md says how each was made)
EMBEDDED_TRUNKS: Dict[str, EmbeddedTrunk] = {
    'swinv2-tiny-narrow-synthetic': EmbeddedTrunk(
        'swinv2-tiny-narrow_synthetic-pretrain.safetensors',
        '0521f5d0e81b9b1914ad5482fb75514b93166053a193c6b782ed6403e80f18c3'),
}


def sha256_of(path) -> str:
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def is_trunk_file(path) -> bool:
    """Whether ``path`` is a safetensors trunk file (metadata ``format == TRUNK_FORMAT``)."""
    path = Path(path)
    if path.suffix != '.safetensors' or not path.is_file():
        return False
    with safe_open(str(path), framework='pt') as f:
        return (f.metadata() or {}).get('format') == TRUNK_FORMAT


def resolve_trunk(pretrained: str) -> Tuple[Path, Optional[str]]:
    """``'embedded://<name>'`` or a path -> (file, expected sha256 or None).

    A path whose file name is a shipped trunk's is held to that trunk's sha256 too."""
    if pretrained.startswith(EMBEDDED_PREFIX):
        name = pretrained[len(EMBEDDED_PREFIX):]
        if name not in EMBEDDED_TRUNKS:
            raise KeyError(f'no embedded trunk {name!r}; the package ships '
                           f'{sorted(EMBEDDED_PREFIX + n for n in EMBEDDED_TRUNKS)}')
        entry = EMBEDDED_TRUNKS[name]
        path = WEIGHTS_DIR / entry.file
        if not path.is_file():
            raise FileNotFoundError(
                f'the embedded trunk {pretrained!r} is missing: {path} does not exist. '
                'Reinstall the package (setup.cfg package_data ships mtl_adapters/weights/), '
                'or set model.encoder.pretrained=None for a random trunk.')
        return path, entry.sha256
    path = Path(pretrained).expanduser()
    shipped = {e.file: e.sha256 for e in EMBEDDED_TRUNKS.values()}
    return path, shipped.get(path.name)


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse ``path`` unless its sha256 is ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f'{path}: sha256 {actual} does not match the expected {expected}: the file is '
            'corrupted or was replaced. Restore it (reinstall the package, or re-run the '
            'command in mtl_adapters/weights/README.md), or set model.encoder.pretrained=None '
            'for a random trunk.')


def _few(items, n: int = 8) -> str:
    """The first ``n`` of a list or dict, and how many more."""
    shown = dict(list(items.items())[:n]) if isinstance(items, dict) else list(items)[:n]
    return f'{shown}' + (f' (and {len(items) - n} more)' if len(items) > n else '')


def load_trunk(swin: nn.Module, pretrained: str) -> Path:
    """Load the trunk file named by ``pretrained`` into ``swin``, strictly; returns its path.

    Every trunk key must be in the file with the trunk's shape and the file must hold no other
    key (each mismatch is named); a shipped trunk's sha256 is checked first."""
    path, expected = resolve_trunk(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f'trunk file not found: {path}')
    if expected is not None:
        verify_sha256(path, expected)
    with safe_open(str(path), framework='pt') as f:
        meta = f.metadata() or {}
        if meta.get('format') != TRUNK_FORMAT:
            raise ValueError(f'{path} is not a trunk file (metadata format != {TRUNK_FORMAT!r})')
        state = {k: f.get_tensor(k) for k in f.keys()}
    own = swin.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = {k: (tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state and state[k].shape != v.shape}
    if missing or unexpected or shapes:
        raise ValueError(
            f'{path} does not fit the trunk: missing keys {_few(missing)}, unexpected keys '
            f'{_few(unexpected)}, shape mismatches (file, trunk) {_few(shapes)}. Build the '
            f'encoder with the architecture the file was made for (its metadata: {meta}), or '
            'set model.encoder.pretrained=None for a random trunk.')
    swin.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return path


def save_trunk(swin: nn.Module, path, model_name: str, model_kwargs: Optional[dict] = None,
               dtype: torch.dtype = torch.float16) -> str:
    """Write ``swin``'s state dict to the trunk file ``path`` (atomically, ``dtype`` storage);
    returns the file's sha256."""
    tensors = {k: v.detach().to('cpu', dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in swin.state_dict().items()}
    meta = dict(format=TRUNK_FORMAT, model_name=model_name,
                model_kwargs=json.dumps(model_kwargs or {}, sort_keys=True))
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return sha256_of(path)
