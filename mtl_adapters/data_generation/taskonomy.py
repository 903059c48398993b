"""Taskonomy: validate an existing copy and index its views (``data_prep/taskonomy.py``).

Taskonomy ships every target the S/D/N/E tasks need (``segment_semantic``, ``depth_zbuffer``,
``normal``, ``edge_texture``), so nothing is converted: this preparation checks that every RGB
view of the split file's buildings has all its task files, each one readable and of the
dtype/channel count the loader expects (:data:`~mtl_adapters.datasets.taskonomy.TASKONOMY_FORMATS`),
with the RGB image's aspect ratio, and then writes index files that ``TaskonomyDataset`` reads
instead of scanning the folders (``index_file``).

Items are buildings. Each writes ``<out>/buildings/<building>.json`` (its views, in file-name
order, and the settings it was checked with); :meth:`TaskonomyIndex.finish` then writes
``<out>/index_<subset>_<split>.json`` for each split file and split (``subset``: ``tiny``
for ``train_val_test_tiny.csv``; format in ``datasets/taskonomy.py:read_taskonomy_index``),
only when no building failed. A building with a bad or missing file fails with the file's path
(the run goes on); ``drop_bad_views=True`` instead leaves such views out of the index and
lists them, with the reason, in the building's JSON.

Checks: ``decode`` (the default) reads every file and decodes it exactly as the loader does
(including the semantic class range); ``quick`` reads only the PNG header (size, bit depth,
colour type: what ``read_image`` returns), about a hundred times faster on the full dataset,
but blind to a file truncated after its header.

Known-bad buildings (:data:`KNOWN_BAD_BUILDINGS`) are left out of the index and listed in it.
The Taskonomy authors publish no official list; this is the ``forbidden_buildings`` list of
their Omnidata starter-dataset loader (EPFL-VILAB/omnidata, commit f69ff3a,
``omnidata_tools/dataset/starter_dataset/component_datasets/taskonomy/__init__.py``): no RGB
for ``tomkins``, ``darnestown``, ``brinnon``; ``rough`` "contains some wrong viewpoints";
``mosquito``, ``tansboro`` and ``woodbine`` without a stated reason (``woodbine`` is in the
tiny train split). Their other loaders use other lists (``omnidata_tools/torch/data/splits.py``
adds ``newfields``, ``ludlowville``, ``goodyear``, ``castroville`` for a down-sampled copy), so
the list is an argument (``--exclude-buildings``).
"""
import json
import os
import re
import struct
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mtl_adapters.datasets.taskonomy import (INDEX_FORMAT, LAYOUTS, RGB_FOLDER, SPLITS,
                                             TASKONOMY_FORMATS, building_dir, decode_taskonomy,
                                             detect_layout, read_split_csv, taskonomy_path)
from mtl_adapters.utils import DataFileError, atomic_write_bytes, json_bytes, read_image
from .prepare import PrepItem, PrepSummary, Preparation

#: see the module docstring for the source of each name
KNOWN_BAD_BUILDINGS = ('mosquito', 'tansboro', 'tomkins', 'darnestown', 'brinnon', 'rough',
                       'woodbine')
#: the task folders checked by default (all of S, D, N, E)
DEFAULT_FOLDERS = tuple(sorted(f.folder for f in TASKONOMY_FORMATS.values()))
#: the ``format`` field of a building's JSON
PART_FORMAT = 'mtl_adapters.taskonomy_building/1'
CHECKS = ('decode', 'quick')

#: the fix ``read_image`` names for an unreadable source file
_REDOWNLOAD = ('download its archive again (<building>_<domain>.tar, see `python '
               'data_prep/taskonomy.py --help`)')
_RGB_NAME = re.compile(r'^point_(?P<point>\d+)_view_(?P<view>\d+)_domain_rgb\.png$')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: PNG colour type -> channels ``read_image`` returns (grey, RGB, palette, grey+alpha, RGBA:
#: OpenCV expands palettes and grey+alpha to colour, ``read_image`` drops alpha)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 3, 6: 3}


def png_header(path) -> Tuple[int, int, str, int]:
    """``(height, width, dtype name, channels)`` of a PNG from its IHDR chunk alone, as
    ``read_image(path, unchanged=True)`` would return them; ``DataFileError`` naming the file
    if it is missing or not a PNG."""
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            head = f.read(26)
    except FileNotFoundError:
        raise DataFileError(f'missing file: {path}') from None
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b'IHDR':
        raise DataFileError(f'not a PNG file (or truncated): {path}')
    width, height, depth, colour = struct.unpack('>IIBB', head[16:26])
    if colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise DataFileError(f'invalid PNG header (bit depth {depth}, colour type {colour}): '
                            f'{path}')
    return height, width, 'uint16' if depth == 16 else 'uint8', _PNG_CHANNELS[colour]


def subset_name(split_file) -> str:
    """``train_val_test_tiny.csv`` -> ``tiny`` (any other file: its stem)."""
    stem = Path(split_file).stem
    return stem[len('train_val_test_'):] if stem.startswith('train_val_test_') else stem


class TaskonomyIndex(Preparation):
    """Check a Taskonomy copy building by building and write its per-split index files.

    Args:
        data_root: the folder holding ``rgb/`` and the task folders.
        split_files: official split CSVs (absolute, or relative to the current folder or to
            ``data_root``).
        out_dir: where the index goes (default ``<data_root>/index``).
        layout: 'taskonomy', 'omnidata' or 'auto' (``rgb/taskonomy/`` present: 'omnidata').
        folders: the task folders to check and index (default: all four).
        exclude_buildings: left out of the index (default :data:`KNOWN_BAD_BUILDINGS`).
        checks: 'decode' (every pixel, as the loader reads it) or 'quick' (PNG headers).
        drop_bad_views: leave views with a bad or missing file out instead of failing their
            building.
    """

    name = 'taskonomy'

    def __init__(self, data_root, split_files: Sequence = ('splits/train_val_test_tiny.csv',),
                 out_dir=None, layout: str = 'auto', folders: Optional[Sequence[str]] = None,
                 exclude_buildings: Sequence[str] = KNOWN_BAD_BUILDINGS,
                 checks: str = 'decode', drop_bad_views: bool = False):
        known = {f.folder: cls for cls, f in TASKONOMY_FORMATS.items()}
        folders = sorted(set(folders or DEFAULT_FOLDERS))
        unknown = [f for f in folders if f not in known]
        if unknown:
            raise ValueError(f'unknown task folder(s) {unknown}; Taskonomy folders with a task: '
                             f'{sorted(known)}')
        if layout != 'auto' and layout not in LAYOUTS:
            raise ValueError(f"layout must be 'auto' or one of {sorted(LAYOUTS)}, got {layout!r}")
        if checks not in CHECKS:
            raise ValueError(f'checks must be one of {CHECKS}, got {checks!r}')
        self.data_root = Path(data_root)
        self.split_files = [self._find(f) for f in split_files]
        self.out_dir = Path(out_dir) if out_dir is not None else self.data_root / 'index'
        self.layout = None if layout == 'auto' else layout
        self.folders = folders
        self.task_types = {f: known[f] for f in folders}      # folder -> task class name
        self.exclude = sorted(set(exclude_buildings))
        self.checks = checks
        self.drop_bad_views = bool(drop_bad_views)
        self._tasks = None

    def _find(self, path) -> Path:
        path = Path(path)
        if path.is_absolute() or path.is_file():
            return path
        return self.data_root / path

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict:
        """What a building's JSON must have been made with to count as done."""
        return dict(layout=self.layout, folders=self.folders, checks=self.checks,
                    drop_bad_views=self.drop_bad_views)

    def tasks(self) -> Dict[str, object]:
        """``{folder: task}`` with default options (17 classes: Taskonomy's label set)."""
        if self._tasks is None:
            from mtl_adapters.registry import TASKS
            self._tasks = {f: TASKS.build(dict(type=cls)) for f, cls in self.task_types.items()}
        return self._tasks

    def __getstate__(self) -> dict:          # built tasks stay out of the worker pickles
        return dict(self.__dict__, _tasks=None)

    # --------------------------------------------------------------------- items
    def splits(self) -> Dict[Path, Dict[str, List[str]]]:
        """``{split file: {split: [buildings]}}`` as the files list them."""
        return {f: read_split_csv(f) for f in self.split_files}

    def items(self) -> List[PrepItem]:
        if self.layout is None:
            self.layout = detect_layout(self.data_root)
        for folder in [RGB_FOLDER] + self.folders:
            top = building_dir(self.data_root, folder, '', self.layout)
            if not top.is_dir():
                raise FileNotFoundError(
                    f'{top} does not exist: the Taskonomy domain {folder!r} is not under '
                    f'{self.data_root} ({self.layout!r} layout). Download it (see `python '
                    'data_prep/taskonomy.py --help`) or leave it out with --folders.')
        buildings: List[str] = []
        for splits in self.splits().values():
            for split in SPLITS:
                buildings += [b for b in splits[split]
                              if b not in self.exclude and b not in buildings]
        return [PrepItem(key=b, inputs=(), outputs=(self.out_dir / 'buildings' / f'{b}.json',),
                         extra=dict(building=b)) for b in buildings]

    def check_inputs(self, item: PrepItem) -> Optional[str]:
        building = item.extra['building']
        absent = [str(building_dir(self.data_root, folder, building, self.layout))
                  for folder in [RGB_FOLDER] + self.folders
                  if not building_dir(self.data_root, folder, building, self.layout).is_dir()]
        if absent:
            return (f'missing folder(s) {", ".join(absent)}: building {building!r} was not '
                    'downloaded or unpacked for those domains (or list it in '
                    '--exclude-buildings)')
        return None

    # ------------------------------------------------------------------- process
    def _shape(self, path: Path, folder: Optional[str] = None) -> Tuple[int, int]:
        """Check one file of ``folder`` (None: the RGB image); its (height, width)."""
        task = None if folder is None else self.tasks()[folder]
        if self.checks == 'quick':
            h, w, dtype, channels = png_header(path)
            if task is not None:
                fmt = TASKONOMY_FORMATS[self.task_types[folder]]
                if dtype not in fmt.dtypes:
                    raise ValueError(f'found {dtype} values, expected {" or ".join(fmt.dtypes)} '
                                     f'for {task.name} (Taskonomy {fmt.folder}/ format)')
                if channels not in fmt.channels:
                    raise ValueError(f'found {channels} channel(s), expected '
                                     f'{" or ".join(map(str, fmt.channels))} for {task.name}')
            return h, w
        if task is None:
            return read_image(path, unchanged=False, hint=_REDOWNLOAD).shape[:2]
        raw = read_image(path, unchanged=True, hint=_REDOWNLOAD)
        return decode_taskonomy(task, raw).shape[:2]

    def _check_view(self, building: str, point: str, view: str) -> List[str]:
        """Problems of one view (each naming its file); empty if it is complete and valid."""
        rgb = taskonomy_path(self.data_root, RGB_FOLDER, building, point, view, 'rgb',
                             self.layout)
        try:
            h, w = self._shape(rgb)
        except Exception as err:                   # noqa: BLE001 -- reported, run goes on
            return [_problem(rgb, err)]
        problems = []
        for folder in self.folders:
            domain = TASKONOMY_FORMATS[self.task_types[folder]].domain
            path = taskonomy_path(self.data_root, folder, building, point, view, domain,
                                  self.layout)
            if not path.is_file():
                problems.append(f'missing file {path}')
                continue
            try:
                gh, gw = self._shape(path, folder)
            except Exception as err:               # noqa: BLE001
                problems.append(_problem(path, err))
                continue
            if gh * w != gw * h:
                problems.append(f'{path}: {gw}x{gh}, but its image {rgb.name} is {w}x{h} (a '
                                'label map may be another resolution of the image, never '
                                'another aspect ratio)')
        return problems

    def process(self, item: PrepItem) -> Dict[Path, bytes]:
        building = item.extra['building']
        rgb_dir = building_dir(self.data_root, RGB_FOLDER, building, self.layout)
        names = [m for m in (_RGB_NAME.match(n) for n in sorted(os.listdir(rgb_dir))) if m]
        if not names:
            raise DataFileError(f'no point_<P>_view_<V>_domain_rgb.png files in {rgb_dir}')
        views, dropped, problems = [], [], []
        for m in names:
            found = self._check_view(building, m['point'], m['view'])
            view = [int(m['point']), int(m['view'])]
            if not found:
                views.append(view)
            elif self.drop_bad_views:
                dropped.append(dict(view=view, problems=found))
            else:
                problems += found
        if problems:
            shown = '; '.join(p.rstrip('. ') for p in problems[:3])
            more = f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''
            raise DataFileError(f'{shown}{more}. Fix or re-download those files, or run with '
                                '--drop-bad-views to leave their views out of the index')
        if not views:
            raise DataFileError(f'building {building!r}: every view has a bad file (first: '
                                f'{dropped[0]["problems"][0]})')
        part = dict(format=PART_FORMAT, building=building, settings=self.settings(),
                    views=views, dropped=dropped)
        return {item.outputs[0]: _json_bytes(part)}

    def check_outputs(self, item: PrepItem) -> Optional[str]:
        path = item.outputs[0]
        if not path.is_file():
            return f'missing output {path}'
        try:
            part = json.loads(path.read_text())
        except ValueError:
            return f'unreadable output {path}'
        if part.get('format') != PART_FORMAT or part.get('building') != item.extra['building']:
            return f'{path} is not this building\'s index part'
        if part.get('settings') != self.settings():
            return f'{path} was written with other settings ({part.get("settings")})'
        return None

    # -------------------------------------------------------------------- finish
    def finish(self, items: Sequence[PrepItem], summary: PrepSummary) -> None:
        """Write the per-split index files from the buildings' JSON, if no building failed."""
        if summary.failed:
            print(f'{self.name}: index files NOT written: {len(summary.failed)} building(s) '
                  'failed (listed below); fix them, or run again with --drop-bad-views')
            return
        parts = {item.extra['building']: json.loads(item.outputs[0].read_text())
                 for item in items}
        for split_file, splits in self.splits().items():
            for split in SPLITS:
                names = splits[split]
                entries = [dict(name=b, views=parts[b]['views']) for b in names if b in parts]
                if not entries:
                    continue
                index = dict(
                    format=INDEX_FORMAT, split_file=split_file.name, split=split,
                    layout=self.layout, folders=sorted([RGB_FOLDER] + self.folders),
                    checks=self.checks,
                    excluded_buildings=[b for b in names if b in self.exclude],
                    dropped_views=sum(len(parts[b]['dropped']) for b in names if b in parts),
                    num_views=sum(len(e['views']) for e in entries), buildings=entries)
                path = self.out_dir / f'index_{subset_name(split_file)}_{split}.json'
                atomic_write_bytes(path, _json_bytes(index))
                print(f'{self.name}: {path}: {index["num_views"]} views of {len(entries)} '
                      f'building(s), {index["dropped_views"]} dropped, excluded '
                      f'{index["excluded_buildings"] or "none"}')


def _problem(path: Path, err: Exception) -> str:
    """One line naming the file (DataFileError messages name it already)."""
    text = str(err)
    return text if str(path) in text else f'{path}: {text}'


def _json_bytes(obj) -> bytes:
    """Deterministic, compact JSON (no timestamps: a resumed run writes the same bytes)."""
    return json_bytes(obj, what='a Taskonomy index', sort_keys=True, separators=(',', ':'))
