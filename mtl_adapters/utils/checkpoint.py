"""Checkpoints that are loaded without executing anything they contain.

A ``.pth`` is a pickle: loading one with ``torch.load(weights_only=False)`` runs whatever code
its author put in it. Every local checkpoint (``tools/test.py``, ``tools/infer.py``,
``load_from``, ``--resume``) is therefore loaded with ``weights_only=True`` and an explicit
allow-list of harmless types (:data:`SAFE_GLOBALS`: numpy arrays, dtypes and scalars). A file
that needs anything else is refused with :class:`UnsafeCheckpointError`, which names the types
and the way to trust that one file explicitly (``--trust-checkpoint`` in the tools, or
:func:`trust_checkpoint`).

mmengine's own checkpoints hold its ``HistoryBuffer`` objects, whose pickles call
``builtins.getattr`` (their bound statistics methods): an allow-list that admits ``getattr``
admits anything. So we make what we save need less instead of allowing more:
:class:`~mtl_adapters.engine.hooks.SafeCheckpointHook` stores the message hub's buffers as
plain lists before a checkpoint is written and rebuilds them after one is loaded (before the
Runner resumes from it).
"""
import glob
import os
import os.path as osp
import pickle
import re
import warnings
from typing import List, Optional, Set

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader


def _numpy_globals() -> list:
    """numpy's array/scalar reconstruction functions and dtype classes (numpy 1 and 2)."""
    try:
        from numpy._core import multiarray
    except ImportError:                                     # numpy < 2
        from numpy.core import multiarray
    dtypes = {type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDGSUV'}    # no object arrays
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]


#: what a weights-only load may construct besides tensors and builtin containers
SAFE_GLOBALS: list = _numpy_globals()
#: absolute paths the user has explicitly trusted (full pickle load)
_TRUSTED: Set[str] = set()
_REGISTERED = False
#: marker of a HistoryBuffer stored as plain data
_BUFFER_KEY = '__mtl_history_buffer__'
#: what every divergence error tells the user to do (``--resume-lr`` overrides the learning
#: rates the optimiser and the schedulers restore from the checkpoint)
RESUME_LOWER_LR = ('resume from the last checkpoint with a lower learning rate: '
                   '`python tools/train.py CONFIG --resume --resume-lr LR`')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs types outside the allow-list: refused, nothing of it was executed."""


def trust_checkpoint(path: str) -> None:
    """Allow a full (code-executing) pickle load of exactly this file, for checkpoints the user
    wrote themselves with other tools. Only the user can decide that: the tools expose it as
    ``--trust-checkpoint``."""
    _TRUSTED.add(os.path.realpath(path))


def unsafe_globals(filename: str) -> List[str]:
    """The globals in ``filename`` that a weights-only load with our allow-list refuses."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(filename))


def load_checkpoint_file(filename: str, map_location=None, logger=None):
    """Load a local checkpoint with ``weights_only=True`` and :data:`SAFE_GLOBALS`
    (a full pickle load only for files passed to :func:`trust_checkpoint`)."""
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    if os.path.realpath(filename) in _TRUSTED:
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            names = unsafe_globals(filename)
        except Exception:  # noqa: BLE001 - the file may not even be a zip; report the original
            names = []
        if not names:
            raise
        raise UnsafeCheckpointError(
            f'refused to load {filename}: it needs {", ".join(names)}, which a checkpoint '
            'loaded without running code may not construct (a pickle can execute anything on '
            'load). Only if you wrote this file yourself or trust its source, pass '
            '--trust-checkpoint to the tool (Python: mtl_adapters.utils.trust_checkpoint('
            'path)).') from err


def register_safe_checkpoint_loader() -> None:
    """Make mmengine's ``load_checkpoint``/``resume`` use :func:`load_checkpoint_file` for
    local files (the prefix '' matches plain paths)."""
    global _REGISTERED
    if not _REGISTERED:
        CheckpointLoader.register_scheme(prefixes='', force=True)(load_checkpoint_file)
        _REGISTERED = True


def plain_message_hub(state: dict) -> dict:
    """A message-hub state dict with every ``HistoryBuffer`` as plain lists (in place)."""
    scalars = state.get('log_scalars', {})
    for key, value in list(scalars.items()):
        if isinstance(value, HistoryBuffer):
            log, count = value.data
            scalars[key] = {_BUFFER_KEY: True, 'log_history': np.asarray(log).tolist(),
                            'count_history': np.asarray(count).tolist(),
                            'max_length': int(value.max_length)}
    return state


def plain_dataset_meta(meta: dict) -> dict:
    """A checkpoint's ``dataset_meta`` with the dataset's built tasks (objects, which would
    need code to unpickle) written as ``{name: class name}`` (in place). Nothing reads them
    back: a model builds its tasks from its config."""
    tasks = meta.get('tasks')
    if isinstance(tasks, dict):
        meta['tasks'] = {str(name): type(task).__name__ for name, task in tasks.items()}
    return meta


def restore_message_hub(state: dict) -> dict:
    """Inverse of :func:`plain_message_hub` (in place)."""
    scalars = state.get('log_scalars', {})
    for key, value in list(scalars.items()):
        if isinstance(value, dict) and value.get(_BUFFER_KEY):
            scalars[key] = HistoryBuffer(value['log_history'], value['count_history'],
                                         value['max_length'])
    return state


def newest_loadable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest checkpoint in ``work_dir`` that loads (``last_checkpoint`` first, then
    ``iter_*.pth`` / ``epoch_*.pth`` from the highest number down), or None if there is none.

    A checkpoint that does not load (truncated by a kill during writing, corrupt, refused) is
    skipped with a warning saying which and why; if every one fails, the error lists them all.
    """
    candidates: List[str] = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            candidates.append(f.read().strip())
    numbered = glob.glob(osp.join(work_dir, 'iter_*.pth')) + glob.glob(
        osp.join(work_dir, 'epoch_*.pth'))
    number = {p: int(re.search(r'_(\d+)\.pth$', p).group(1)) for p in numbered
              if re.search(r'_(\d+)\.pth$', p)}
    candidates += sorted(number, key=number.get, reverse=True)
    failures = []
    for path in dict.fromkeys(osp.abspath(c) for c in candidates if c):
        if not osp.isfile(path):
            failures.append(f'{path}: missing')
            continue
        try:
            load_checkpoint_file(path, map_location='cpu')
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, with reason
            failures.append(f'{path}: {type(err).__name__}: {err}')
            warnings.warn(f'resume: skipping {path}, it does not load ({type(err).__name__}: '
                          f'{str(err)[:200]}); trying an older checkpoint')
            continue
        return path
    if failures:
        raise RuntimeError('resume: no checkpoint in ' + work_dir + ' loads:\n  '
                           + '\n  '.join(failures))
    return None
