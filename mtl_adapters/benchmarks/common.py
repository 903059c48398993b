"""Helpers shared by the benchmarks, among them the identity of a resumable benchmark's cells.

A resumable benchmark (``--matrix``, ``--weighting``, ``--generalisation``) skips a cell whose
test metrics exist. A cell is therefore named by everything that defines it
(:func:`define_cell`): the config it trains, fully resolved (budget: iterations, schedule,
image size, batch, seed, data roots, decoder type, every override, and whatever the inherited
base files say), plus the content of the weights it starts from (the sha256 of every
``pretrained`` file it names: a shipped trunk replaced under the same name makes new cells),
plus how it runs (launcher, processes, the checkpoint a test-only cell tests). Its config and
work dir carry the definition's key, so a rerun with another budget gets cells of its own and a
finished cell is reused only by the same definition.
"""
import hashlib
import json
import os.path as osp
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Union

from mtl_adapters.utils import atomic_write_bytes

if TYPE_CHECKING:                   # the CPU-only benchmarks (render, boundary) import no torch
    import torch

#: hex digits of a cell's key in its file names
KEY_LENGTH = 12


def random_samples(model, batch: int, size, device='cpu',
                   generator: Optional['torch.Generator'] = None) -> List:
    """Data samples with random but valid targets (``task.random_gt``) for every task."""
    from mtl_adapters.structures import MultiTaskDataSample
    samples = []
    for _ in range(batch):
        sample = MultiTaskDataSample(metainfo=dict(img_shape=tuple(size)))
        for name, task in model.tasks.items():
            sample.set_gt(name, task.random_gt(tuple(size), generator=generator).to(device))
        samples.append(sample)
    return samples


def write_json(path: Union[str, Path], result, **kwargs) -> Path:
    """Write a benchmark's result as indented strict JSON (``utils.write_json``: atomic,
    parent folders made, NaN refused; ``kwargs`` as there) and say where."""
    from mtl_adapters.utils.io import write_json as write_strict_json
    out = write_strict_json(path, result, **kwargs)
    print(f'wrote {out}')
    return out


def write_text(path: Union[str, Path], text: str) -> Path:
    """Write a benchmark's table (markdown, csv) atomically, parent folders made."""
    atomic_write_bytes(path, text.encode())
    return Path(path)


@lru_cache(maxsize=None)
def _resolved(config_text: str) -> str:
    from mmengine.config import Config
    return json.dumps(Config.fromstring(config_text, '.py').to_dict(), sort_keys=True,
                      default=repr)


@lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a weights file, hashed once per (size, modification time)."""
    from mtl_adapters.models.backbones.embedded_trunk import sha256_of
    return sha256_of(path)


def _pretrained_weights(node, found: dict) -> dict:
    """``{value: sha256}`` of every string ``pretrained`` entry under ``node`` that names a
    shipped trunk (its recorded sha256) or an existing file (hashed); other values (a model
    name, a missing path) are part of the config text already."""
    from mtl_adapters.models.backbones.embedded_trunk import resolve_trunk
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'pretrained' and isinstance(value, str) and value:
                try:
                    path, expected = resolve_trunk(value)
                except KeyError:                    # an unknown shipped name: the run says so
                    continue
                if expected is not None:
                    found[value] = expected
                elif path.is_file():
                    stat = path.stat()
                    found[value] = _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)
            else:
                _pretrained_weights(value, found)
    elif isinstance(node, list):
        for value in node:
            _pretrained_weights(value, found)
    return found


def definition_key(config_text: str, part: Optional[str] = None, **extra) -> str:
    """The key of a cell: a hash of ``config_text`` resolved (its ``_base_`` files merged in,
    so their content counts, not their names; only its top-level key ``part`` if given, e.g.
    ``'model'`` for what a parameter count depends on), of the weights its ``pretrained``
    entries name (their sha256; none named: the key is the config's alone) and of ``extra``
    (JSON-able: how the cell runs)."""
    config = json.loads(_resolved(config_text))
    if part is not None:
        config = config.get(part)
    weights = _pretrained_weights(config, {})
    if weights:
        extra = dict(extra, weights=weights)
    definition = json.dumps(dict(config=config, **extra), sort_keys=True, default=repr)
    return hashlib.sha256(definition.encode()).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class CellPaths:
    """Where a defined cell lives: its derived config, its work dir, its key."""
    config: str
    work_dir: str
    key: str

    @property
    def metrics_path(self) -> str:
        """Exists once the cell has finished (``tools/test.py --out``)."""
        return osp.join(self.work_dir, 'test_metrics.json')


def define_cell(parent: str, name: str, config_text: str, write: bool = True,
                **extra) -> CellPaths:
    """A resumable benchmark's cell ``name`` under ``parent``, named by its definition (module
    docstring): config ``<parent>/configs/<name>-<key>.py``, work dir ``<parent>/<name>-<key>``.

    ``config_text`` is the derived config (``_base_`` an absolute path); ``extra`` what else
    defines the cell (launcher, GPUs, a tested checkpoint). ``write=False`` computes the paths
    only (a report writes nothing); a config once written never changes, as its name is its
    content's key, so a running cell's config is never rewritten under it.
    """
    key = definition_key(config_text, **extra)
    parent = osp.abspath(parent)
    paths = CellPaths(osp.join(parent, 'configs', f'{name}-{key}.py'),
                      osp.join(parent, f'{name}-{key}'), key)
    if write and not osp.isfile(paths.config):
        atomic_write_bytes(paths.config, config_text.encode())
    return paths


def mean_teacher_schedule(iters: int) -> str:
    """``model`` keys that scale the mean teacher's pseudo-label warm-up and ramp-up to a run
    of ``iters`` iterations, a quarter each, as the shipped configs do of their ``max_iters``
    (a benchmark shortens a run through ``train_cfg.max_iters``, which does not re-derive
    them)."""
    quarter = max(iters // 4, 1)
    return f'uda_cfg=dict(mean_teacher=dict(warmup_iters={quarter}, ramp_iters={quarter}))'
