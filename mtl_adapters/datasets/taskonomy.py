"""Taskonomy (and anything written in its on-disk format, e.g. our synthetic scenes).

On-disk layout (``<P>`` the point, ``<V>`` the view, both integers)::

    <data_root>/<folder>/<building>/point_<P>_view_<V>_domain_<domain>.png         'taskonomy'
    <data_root>/<folder>/taskonomy/<building>/point_<P>_view_<V>_domain_<domain>.png  'omnidata'

The release is one archive per building and folder, ``<building>_<folder>.tar`` holding
``<folder>/point_*.png``. The Omnidata download tool (``omnitools.download ... --components
taskonomy``, the download route the Taskonomy authors point to) unpacks them in the second
layout; archives unpacked by hand into ``<folder>/<building>/``, and our synthetic scenes, are
the first.
The RGB folder is ``rgb``; each task's folder and domain tag are in :data:`TASKONOMY_FORMATS`
(the quirk: the semantic folder is ``segment_semantic`` but its files say
``domain_segmentsemantic``).

Encodings: ``mtl_adapters/formats/taskonomy.py`` (:data:`TASKONOMY_FORMATS`,
:func:`decode_taskonomy`, :func:`encode_taskonomy`, re-exported here); normals there are the
project's camera frame as they are (x right, y down, z away from the camera; a wall facing the
camera is (128, 128, 0)).

Split files are CSVs ``id,train,val,test`` (one building per row, 1 = in that split) that the
official release writes with CR-only line endings (``train_val_test_{tiny,medium,full,
fullplus}.csv``); any line ending is accepted here. ``data_prep/taskonomy.py`` validates a copy
and writes per-split index files (:func:`read_taskonomy_index`) that the dataset reads instead
of scanning the folders (``index_file``), with the known-bad buildings left out
(``data_generation/taskonomy.py``). The configs (``configs/_base_/datasets/taskonomy_sdne.py``)
use the tiny split's index files; they validate on its val and test on its test buildings with
the whole 512 px image resized to 256 px, every valid pixel counted (depth pooled over the
split, in 0.001..128 m).
"""
import csv
import io
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from mtl_adapters.registry import DATASETS
from mtl_adapters.tasks import SemanticTask, build_tasks
from .base import MultiTaskDataset
from .class_map import check_semantic_task, class_map_metainfo, load_class_map
from mtl_adapters.formats.taskonomy import (  # noqa: F401  (re-exported)
    TASKONOMY_DEPTH_INVALID, TASKONOMY_DEPTH_SCALE, TASKONOMY_EDGE_SCALE, TASKONOMY_FORMATS,
    TaskonomyFormat, check_taskonomy_file, decode_taskonomy, encode_taskonomy, taskonomy_format)

RGB_FOLDER = 'rgb'
SPLITS = ('train', 'val', 'test')
#: folder levels between ``<data_root>/<folder>/`` and ``<building>/``, per layout
LAYOUTS: Dict[str, Tuple[str, ...]] = {'taskonomy': (), 'omnidata': ('taskonomy',)}
_NAME = re.compile(r'^point_(?P<point>\d+)_view_(?P<view>\d+)_domain_rgb\.png$')


# ---------------------------------------------------------------------------------- paths
def building_dir(root, folder: str, building: str, layout: str = 'taskonomy') -> Path:
    """The folder holding one building's files of one domain folder."""
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {sorted(LAYOUTS)}, got {layout!r}')
    return Path(root, folder, *LAYOUTS[layout], building)


def taskonomy_path(root, folder: str, building: str, point, view, domain: str,
                   layout: str = 'taskonomy') -> Path:
    """Path of one Taskonomy file."""
    return building_dir(root, folder, building, layout) / \
        f'point_{point}_view_{view}_domain_{domain}.png'


def detect_layout(root) -> str:
    """'omnidata' if ``<root>/rgb/taskonomy/`` exists, 'taskonomy' if ``<root>/rgb/`` does;
    otherwise a ``FileNotFoundError`` describing both."""
    rgb = Path(root) / RGB_FOLDER
    if (rgb / 'taskonomy').is_dir():
        return 'omnidata'
    if rgb.is_dir():
        return 'taskonomy'
    raise FileNotFoundError(
        f'{rgb} does not exist: data_root must hold rgb/ and one folder per task, either as '
        '<folder>/<building>/ (Taskonomy archives, our synthetic scenes) or as '
        '<folder>/taskonomy/<building>/ (the Omnidata download tool). Generate the synthetic '
        'scenes with `python data_prep/synthetic.py` or see `python data_prep/taskonomy.py '
        '--help` for the real data.')


# --------------------------------------------------------------------------------- splits
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
        if not any(c.strip() for c in row):         # a blank line
            continue
        if len(row) != len(header):
            raise ValueError(f'{path}, row {line}: {len(row)} cells, expected {len(header)} '
                             f'(the header {",".join(header)}), got {",".join(row)!r}: fix '
                             'or remove this row')
        rec = dict(zip(header, (c.strip() for c in row)))
        building = rec['id']
        if not building:
            raise ValueError(f'{path}, row {line}: the id cell is empty; give the building')
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
    """Write a split CSV with the official CR-only line endings (and a final CR)."""
    from mtl_adapters.utils import atomic_write_bytes
    lines = ['id,train,val,test']
    for split in SPLITS:
        for building in splits.get(split, ()):
            lines.append(','.join([building] + ['1' if s == split else '0' for s in SPLITS]))
    atomic_write_bytes(path, ('\r'.join(lines) + '\r').encode())


# ---------------------------------------------------------------------------------- index
#: the ``format`` field of an index file written by ``data_prep/taskonomy.py``
INDEX_FORMAT = 'mtl_adapters.taskonomy_index/1'


def read_taskonomy_index(path) -> dict:
    """Read and check an index file: ``{'format', 'split_file', 'split', 'layout', 'folders',
    'excluded_buildings', 'num_views', 'buildings': [{'name', 'views': [[point, view], ...]}]}``
    (buildings in split-file order, views in file-name order, as a folder scan lists them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'index file not found: {path}. Write it with `python '
                                'data_prep/taskonomy.py --src <data_root>` (see --help).')
    try:
        index = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f'{path} is not valid JSON ({err}); re-run data_prep/taskonomy.py') \
            from err
    if not isinstance(index, dict) or index.get('format') != INDEX_FORMAT:
        raise ValueError(f'{path} is not a Taskonomy index of format {INDEX_FORMAT!r} (format '
                         f'{index.get("format") if isinstance(index, dict) else None!r}); '
                         're-run data_prep/taskonomy.py')
    missing = {'split', 'layout', 'folders', 'buildings'} - set(index)
    if missing or index['layout'] not in LAYOUTS:
        raise ValueError(f'{path}: incomplete index (missing {sorted(missing)} or unknown '
                         f'layout); re-run data_prep/taskonomy.py')
    return index


@DATASETS.register_module()
class TaskonomyDataset(MultiTaskDataset):
    """Taskonomy-format multi-task dataset.

    Args:
        data_root: the folder holding ``rgb/`` and one folder per task.
        tasks: task configs (or names), declared once for the whole pipeline: they are built
            here, kept in ``metainfo['tasks']`` (the metric reads them there) and handed to
            every sample as ``results['tasks']`` (the transforms read them there). Every
            sample gets one path per task.
        split_file: split CSV (relative to ``data_root`` or absolute).
        split: 'train', 'val' or 'test' (default 'train'; with ``index_file``: the index's
            split, and a different one is an error).
        buildings: use these buildings instead of reading ``split_file``.
        skip_missing: drop views that lack a task file (with a warning) instead of raising.
        index_file: an index written by ``data_prep/taskonomy.py`` (relative to ``data_root``
            or absolute): its views are used as they are, without scanning the folders (the
            preparation checked them). Exclusive with ``split_file`` and ``buildings``.
        layout: 'taskonomy' (``<folder>/<building>/``, the default) or 'omnidata'
            (``<folder>/taskonomy/<building>/``); with ``index_file``: the index's.
        exclude_buildings: buildings of the split file left out (known-bad ones).
        class_map: the semantic files' label set mapped to the model's classes, a JSON file
            of ``datasets/class_maps/`` (e.g. ``'synthetic_to_merged-furniture.json'``) or a
            path (format: ``datasets/class_map.py``; file value ``v >= 1`` is the map's class
            ``v - 1``, 0 unlabelled). None (default): train id = file value - 1. With a map the
            dataset publishes the classes it can evaluate (``metainfo['eval_classes']``) and
            the metric reports only those (domain generalisation to a label set that is not
            the model's, e.g. ``configs/generalisation/dg_*``).
    """

    METAINFO = dict(dataset='taskonomy')

    def __init__(self, data_root: str, tasks: Sequence, split_file: Optional[str] = None,
                 split: Optional[str] = None, buildings: Optional[Sequence[str]] = None,
                 skip_missing: bool = False, index_file: Optional[str] = None,
                 layout: Optional[str] = None, exclude_buildings: Sequence[str] = (),
                 class_map: Optional[str] = None, **kwargs):
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {sorted(LAYOUTS)}, got {layout!r}')
        if index_file is not None and (split_file is not None or buildings is not None):
            raise ValueError('TaskonomyDataset: give `index_file` or `split_file`/`buildings`, '
                             'not both (the index already lists the views of one split)')
        if split_file is None and buildings is None and index_file is None:
            raise ValueError('TaskonomyDataset needs `index_file`, `split_file` or `buildings`')
        self.split_file = split_file
        self.index_file = index_file
        self.split = split
        self.layout = layout
        self.buildings = list(buildings) if buildings is not None else None
        self.exclude_buildings = set(exclude_buildings)
        self.skip_missing = skip_missing
        self.class_map = None
        tasks = build_tasks(tasks)
        if class_map is not None:
            # where the data declares its classes (meta.json 'classes', written by
            # data_prep/synthetic.py), the map must list exactly those, in stored-id order
            meta = Path(data_root or '', 'meta.json')
            declared = json.loads(meta.read_text()).get('classes') if meta.is_file() else None
            self.class_map = load_class_map(class_map, first_id=1, dataset='TaskonomyDataset',
                                            source_classes=declared)
            semantic = [n for n, t in tasks.items() if isinstance(t, SemanticTask)]
            for name in semantic:
                check_semantic_task(tasks[name], self.class_map, 'TaskonomyDataset')
            kwargs['metainfo'] = dict(kwargs.get('metainfo') or {}, **class_map_metainfo(
                self.class_map, semantic[0] if semantic else 'seg'))
        super().__init__(tasks=list(tasks.values()), data_root=data_root, **kwargs)

    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """Taskonomy's encodings (:func:`decode_taskonomy`); semantic labels through the
        class map when one is set."""
        if self.class_map is None or not isinstance(task, SemanticTask):
            return decode_taskonomy(task, raw)
        raw = check_taskonomy_file(task, raw)
        known = len(self.class_map.source_classes)
        if int(raw.max(initial=0)) > known:
            values = np.unique(raw[raw > known])[:10].tolist()
            raise ValueError(f'found class values {values} above the {known} classes of class '
                             f'map {self.class_map.name!r} (file values 1..{known}, 0 = '
                             'unlabelled): another label set than the class map\'s')
        return self.class_map(raw)

    def _resolve(self, path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else Path(self.data_root) / path

    def _folders(self) -> Dict[str, Tuple[str, str]]:
        """``{task name: (folder, domain)}`` of the tasks whose files are listed."""
        return {name: (taskonomy_format(t).folder, taskonomy_format(t).domain)
                for name, t in self.label_tasks.items()}

    def load_data_list(self) -> List[dict]:
        if self.index_file is not None:
            return self._load_from_index()
        root = Path(self.data_root)
        layout = self.layout or 'taskonomy'
        split = self.split or 'train'
        if not (root / RGB_FOLDER).is_dir():
            detect_layout(root)                       # raises, explaining the layouts
        buildings = self.buildings
        if buildings is None:
            buildings = read_split_csv(self._resolve(self.split_file))[split]
        folders = self._folders()
        data_list, missing = [], []
        for building in buildings:
            if building in self.exclude_buildings:
                continue
            bdir = building_dir(root, RGB_FOLDER, building, layout)
            if not bdir.is_dir():
                hint = (" (data_root looks like the Omnidata tool's layout: set "
                        "layout='omnidata')" if layout == 'taskonomy' and
                        (root / RGB_FOLDER / 'taskonomy').is_dir() else '')
                raise FileNotFoundError(f'building {building!r} of split {split!r} has no '
                                        f'folder {bdir}{hint}. Fix the split file or the '
                                        'data_root, or list it in exclude_buildings.')
            for img in sorted(bdir.iterdir()):
                m = _NAME.match(img.name)
                if m is None:
                    continue
                paths = {name: taskonomy_path(root, folder, building, m['point'], m['view'],
                                              domain, layout)
                         for name, (folder, domain) in folders.items()}
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
            raise FileNotFoundError(f'no images found for split {split!r} under {root}')
        return data_list

    def _load_from_index(self) -> List[dict]:
        """The views listed by the index, with no folder scan and no file checks."""
        path = self._resolve(self.index_file)
        index = read_taskonomy_index(path)
        if self.split is not None and self.split != index['split']:
            raise ValueError(f'{path} indexes split {index["split"]!r}, not {self.split!r}: '
                             f'use index file of the {self.split!r} split')
        if self.layout is not None and self.layout != index['layout']:
            raise ValueError(f'{path} was written for layout {index["layout"]!r}, not '
                             f'{self.layout!r}')
        folders = self._folders()
        absent = sorted({f for f, _ in folders.values()} - set(index['folders']))
        if absent:
            raise ValueError(f'{path} was written for the folders {index["folders"]}, but the '
                             f'tasks also need {absent}: re-run data_prep/taskonomy.py with '
                             'those folders')
        root, layout = Path(self.data_root), index['layout']
        data_list = []
        for entry in index['buildings']:
            building = entry['name']
            if building in self.exclude_buildings:
                continue
            for point, view in entry['views']:
                img = taskonomy_path(root, RGB_FOLDER, building, point, view, 'rgb', layout)
                paths = {name: str(taskonomy_path(root, folder, building, point, view, domain,
                                                  layout))
                         for name, (folder, domain) in folders.items()}
                data_list.append(dict(img_path=str(img), building=building, task_paths=paths))
        if not data_list:
            raise FileNotFoundError(f'{path} lists no views')
        return data_list
