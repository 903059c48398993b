"""Taskonomy (and anything written in its on-disk format, e.g. our synthetic scenes).

Layout: ``<root>/<folder>/<building>/point_<P>_view_<V>_domain_<domain>.png`` where the RGB
folder is ``rgb`` and each task's folder/domain come from its Task class (the quirk: the
semantic folder is ``segment_semantic`` but its files say ``domain_segmentsemantic``).
Split files are CSVs ``id,train,val,test`` (one building per row, 1 = in that split) that the
official release writes with CR-only line endings; any line ending is accepted here.
"""
import csv
import io
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from mtl_adapters.registry import DATASETS
from .base import MultiTaskDataset

RGB_FOLDER = 'rgb'
SPLITS = ('train', 'val', 'test')
_NAME = re.compile(r'^point_(?P<point>\d+)_view_(?P<view>\d+)_domain_rgb\.png$')


def taskonomy_path(root, folder: str, building: str, point, view, domain: str) -> Path:
    """Path of one Taskonomy file."""
    return Path(root) / folder / building / f'point_{point}_view_{view}_domain_{domain}.png'


def read_split_csv(path) -> Dict[str, List[str]]:
    """Read a Taskonomy split CSV (any line ending) -> ``{'train': [...], 'val': [...], ...}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'split file not found: {path}. It lists buildings as '
                                '"id,train,val,test" rows (see README, "Real data").')
    text = path.read_bytes().decode('utf-8-sig').replace('\r\n', '\n').replace('\r', '\n')
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header[:1] != ['id'] or not set(SPLITS) <= set(header):
        raise ValueError(f'{path}: expected a header "id,train,val,test", got {rows[:1]}')
    out: Dict[str, List[str]] = {s: [] for s in SPLITS}
    seen: Dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        rec = dict(zip(header, (c.strip() for c in row)))
        building = rec['id']
        if building in seen:
            raise ValueError(f'{path}, row {line}: building {building!r} is listed again (first '
                             f'at row {seen[building]}); each building must appear once')
        seen[building] = line
        member = [sp for sp in SPLITS if _split_flag(rec.get(sp, ''), path, line, sp)]
        if len(member) > 1:
            raise ValueError(f'{path}, row {line}: building {building!r} is in {member}; a '
                             'building may be in one split only (its views would leak)')
        for split in member:
            out[split].append(building)
    return out


#: the values a split column may hold (the official CSVs use 0/1)
_FLAGS = {'1': True, '1.0': True, 'true': True, '0': False, '0.0': False, 'false': False,
          '': False}


def _split_flag(value: str, path, line: int, split: str) -> bool:
    """A split cell -> membership; anything but 0/1/true/false is an error naming the cell."""
    flag = _FLAGS.get(value.strip().lower())
    if flag is None:
        raise ValueError(f'{path}, row {line}, column {split!r}: {value!r} is not a split flag; '
                         'use 1/0 (or true/false)')
    return flag


def write_split_csv(path, splits: Dict[str, Sequence[str]]) -> None:
    """Write a split CSV the way the official release does (CR-only line endings)."""
    from mtl_adapters.utils import atomic_write_bytes
    lines = ['id,train,val,test']
    for split in SPLITS:
        for building in splits.get(split, ()):
            lines.append(','.join([building] + ['1' if s == split else '0' for s in SPLITS]))
    atomic_write_bytes(path, ('\r'.join(lines) + '\r').encode())


@DATASETS.register_module()
class TaskonomyDataset(MultiTaskDataset):
    """Taskonomy-format multi-task dataset.

    Args:
        data_root: the folder holding ``rgb/`` and one folder per task.
        split_file: split CSV (relative to ``data_root`` or absolute).
        split: 'train', 'val' or 'test'.
        tasks: task configs (or names), declared once for the whole pipeline: they are built
            here, kept in ``metainfo['tasks']`` (the metric reads them there) and handed to
            every sample as ``results['tasks']`` (the transforms read them there). Every
            sample gets one path per task.
        buildings: use these buildings instead of reading ``split_file``.
        skip_missing: drop views that lack a task file (with a warning) instead of raising.
    """

    METAINFO = dict(dataset='taskonomy')

    def __init__(self, data_root: str, tasks: Sequence, split_file: Optional[str] = None,
                 split: str = 'train', buildings: Optional[Sequence[str]] = None,
                 skip_missing: bool = False, **kwargs):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split_file is None and buildings is None:
            raise ValueError('TaskonomyDataset needs `split_file` or `buildings`')
        self.split_file = split_file
        self.split = split
        self.buildings = list(buildings) if buildings is not None else None
        self.skip_missing = skip_missing
        super().__init__(tasks=tasks, data_root=data_root, **kwargs)

    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """Taskonomy's encodings (``task.decode_taskonomy``)."""
        return task.decode_taskonomy(raw)

    def load_data_list(self) -> List[dict]:
        root = Path(self.data_root)
        if not (root / RGB_FOLDER).is_dir():
            raise FileNotFoundError(
                f'{root / RGB_FOLDER} does not exist: data_root must hold rgb/ and one folder '
                'per task. Generate the synthetic scenes with `python data_prep/synthetic.py` '
                'or point data_root at your Taskonomy copy.')
        buildings = self.buildings
        if buildings is None:
            split_path = Path(self.split_file)
            if not split_path.is_absolute():
                split_path = root / split_path
            buildings = read_split_csv(split_path)[self.split]
        data_list, missing = [], []
        for building in buildings:
            bdir = root / RGB_FOLDER / building
            if not bdir.is_dir():
                raise FileNotFoundError(f'building {building!r} of split {self.split!r} has no '
                                        f'folder {bdir}. Fix the split file or the data_root.')
            for img in sorted(bdir.iterdir()):
                m = _NAME.match(img.name)
                if m is None:
                    continue
                paths = {name: taskonomy_path(root, t.taskonomy_folder, building, m['point'],
                                              m['view'], t.taskonomy_domain)
                         for name, t in self.tasks.items()}
                absent = [str(p) for p in paths.values() if not p.is_file()]
                if absent:
                    missing.extend(absent)
                    continue
                data_list.append(dict(img_path=str(img), building=building,
                                      task_paths={k: str(v) for k, v in paths.items()}))
        if missing and not self.skip_missing:
            raise FileNotFoundError(
                f'{len(missing)} label file(s) missing, first: {missing[0]}. Fix: re-run the '
                'data preparation (it resumes), or set skip_missing=True to drop those views.')
        if missing:
            print_log(f'TaskonomyDataset: skipped {len(missing)} view(s) with missing labels, '
                      f'first: {missing[0]}', logger='current')
        if not data_list:
            raise FileNotFoundError(f'no images found for split {self.split!r} under {root}')
        return data_list
