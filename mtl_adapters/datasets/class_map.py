"""Class maps: one dataset's own label set -> the classes a model is trained on, as data.

A dataset stores labels in its own label set (NYUDv2's 40 classes, Virtual KITTI 2's 15
categories, Cityscapes' 34 label ids, the synthetic scenes' 8 classes); a protocol says which
model class each of them is (``class_maps/<label set>_to_<protocol>.json``). One place reads,
checks and applies them, for every dataset: :func:`load_class_map` -> :class:`ClassMap`.

File format (every key required but ``follows``)::

    {"description": "...", "follows": "the published table (paper, code) this protocol
     transcribes, or 'no published table: ...'", "source": "...",
     "<label set>_classes": [the dataset's classes, in the order of their stored ids],
     "class_names": [the model's classes, in train-id order],
     "<label set>_to_class": {every dataset class: a model class name, or null}}

Shipped maps name in ``follows`` the published table they transcribe (tested entry by entry
against it, tests/test_datasets/test_class_map_protocols.py); where papers disagree, the default
name is the protocol of the work a user compares numbers with and the others are named
variants (``<protocol>-<variant>``, e.g. ``cityscapes8`` / ``cityscapes8-labeldefs``).

``null`` means unlabelled (train id 255): a dataset class that is no model class, or that may
be any of several (NYU40's 'desk' may or may not be a COCO 'dining table'). The direction is
always *dataset label -> model class*, never the reverse: predictions are never remapped, so a
model is scored on exactly the classes it was trained to tell apart.

Evaluated classes. A model class that no dataset class maps to never occurs in the mapped
ground truth: its IoU could only count false positives (0 when it is predicted on a labelled
pixel), which says nothing about the target data. :attr:`ClassMap.eval_classes` lists the model
classes that *do* occur; a dataset with a class map publishes them in its metainfo
(``eval_classes = {task name: [train ids]}``, :func:`class_map_metainfo`) and
``MultiTaskMetric`` reports mIoU, aAcc and per-class IoU over those classes only.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

#: the folder of the shipped class maps
CLASS_MAP_DIR = Path(__file__).resolve().with_name('class_maps')
#: train id of an unlabelled pixel
IGNORE = 255
#: metainfo key of the evaluated classes (``{task name: [train ids]}``)
EVAL_CLASSES_KEY = 'eval_classes'


@dataclass(frozen=True)
class ClassMap:
    """A checked class map: ``lut[stored id]`` is the train id (255 = unlabelled)."""

    #: protocol name (the file stem after ``<label set>_to_``)
    name: str
    #: the dataset's label set (the JSON key prefix, e.g. 'nyu40')
    label_set: str
    #: the dataset's classes, in stored-id order (``source_classes[i]`` is stored as
    #: ``first_id + i``)
    source_classes: Tuple[str, ...]
    #: the model's classes, in train-id order
    class_names: Tuple[str, ...]
    #: (256,) uint8: stored id -> train id (255 for unlabelled and unlisted ids)
    lut: np.ndarray
    #: stored id of ``source_classes[0]``
    first_id: int = 0
    #: the published table the map follows (the file's ``follows``; '' when not given)
    follows: str = ''

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        """Stored ids (any integer array, values 0..255) -> uint8 train ids."""
        return self.lut[np.asarray(ids, dtype=np.int64)]

    @property
    def num_classes(self) -> int:
        """Number of model classes."""
        return len(self.class_names)

    @property
    def eval_classes(self) -> Tuple[int, ...]:
        """Train ids that some dataset class maps to (the classes that can be evaluated)."""
        ids = self.lut[self.first_id:self.first_id + len(self.source_classes)]
        return tuple(sorted(int(i) for i in set(ids.tolist()) - {IGNORE}))

    def mapping(self) -> Dict[str, int]:
        """``{dataset class: train id or 255}`` over every dataset class."""
        return {c: int(self.lut[self.first_id + i]) for i, c in enumerate(self.source_classes)}


def resolve_class_map(spec: Union[str, Path], label_set: Optional[str] = None,
                      directory: Path = CLASS_MAP_DIR) -> Path:
    """The file of a class map: a path ending in ``.json`` (as given, else in ``directory``),
    or a protocol name ``<label set>_to_<name>.json`` in ``directory``."""
    path = Path(spec)
    if path.suffix == '.json':
        return path if path.is_file() or path.is_absolute() else directory / path
    if label_set is None:
        raise ValueError(f'class map {str(spec)!r}: give a JSON file (a name in {directory} or '
                         'a path); a bare protocol name needs the dataset\'s label set')
    return directory / f'{label_set}_to_{spec}.json'


def known_class_maps(label_set: str, directory: Path = CLASS_MAP_DIR) -> Tuple[str, ...]:
    """The protocol names shipped for ``label_set``."""
    prefix = f'{label_set}_to_'
    return tuple(sorted(p.stem[len(prefix):] for p in directory.glob(f'{prefix}*.json')))


def load_class_map(spec: Union[str, Path], label_set: Optional[str] = None,
                   first_id: int = 0, source_classes: Optional[Sequence[str]] = None,
                   dataset: str = 'this dataset') -> ClassMap:
    """Read and check a class map (module docstring).

    Args:
        spec: protocol name (``class_maps/<label_set>_to_<spec>.json``) or a JSON file.
        label_set: the dataset's label set; the file's keys must be ``<label_set>_classes``
            and ``<label_set>_to_class`` (None: whatever label set the file declares).
        first_id: the stored id of the first dataset class (1 where 0 means unlabelled).
        source_classes: the dataset's classes in stored-id order; the file must list exactly
            these (None: the file's list is taken as it is).
        dataset: the dataset's name, for the error messages.
    """
    path = resolve_class_map(spec, label_set)
    if not path.is_file():
        known = known_class_maps(label_set) if label_set else ()
        raise FileNotFoundError(f'class map {str(spec)!r} of {dataset} not found ({path}); '
                                f'choose one of {list(known)} or give the path of a JSON file '
                                f'like {CLASS_MAP_DIR / "nyu40_to_nyu13.json"}')
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f'{path} is not valid JSON: {err}') from err
    prefixes = [k[:-len('_to_class')] for k in data if k.endswith('_to_class')]
    if len(prefixes) != 1 or (label_set is not None and prefixes != [label_set]):
        want = label_set or '<label set>'
        raise ValueError(f'{path}: expected one "{want}_to_class" key (and "{want}_classes"), '
                         f'found {sorted(k for k in data if k.endswith("_to_class"))}')
    prefix = prefixes[0]
    source, names = data.get(f'{prefix}_classes'), data.get('class_names')
    mapping = data.get(f'{prefix}_to_class')
    if not isinstance(source, list) or len(set(source)) != len(source) or not source:
        raise ValueError(f'{path}: "{prefix}_classes" must list the dataset\'s distinct classes '
                         f'in stored-id order, got {source}')
    if source_classes is not None and list(source) != list(source_classes):
        raise ValueError(f'{path}: "{prefix}_classes" must list the {len(source_classes)} '
                         f'classes of {dataset} in stored-id order {list(source_classes)}, got '
                         f'{source}')
    if first_id < 0 or first_id + len(source) > IGNORE:
        raise ValueError(f'{path}: {len(source)} classes from stored id {first_id} do not fit '
                         f'in 0..{IGNORE - 1}')
    if not names or len(set(names)) != len(names) or len(names) > IGNORE:
        raise ValueError(f'{path}: "class_names" must be distinct names, got {names}')
    if not isinstance(mapping, dict) or set(mapping) != set(source):
        missing = sorted(set(source) - set(mapping or {}))
        extra = sorted(set(mapping or {}) - set(source))
        raise ValueError(f'{path}: "{prefix}_to_class" must map every {prefix} class once; '
                         f'missing {missing}, unknown {extra}')
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for i, cls in enumerate(source):
        target = mapping[cls]
        if target is None:
            continue
        if target not in names:
            raise ValueError(f'{path}: {prefix} class {cls!r} maps to {target!r}, which is not '
                             f'one of its class_names {names}')
        lut[first_id + i] = names.index(target)
    name = path.stem[len(prefix) + 4:] if path.stem.startswith(f'{prefix}_to_') else path.stem
    follows = data.get('follows', '')
    if not isinstance(follows, str):
        raise ValueError(f'{path}: "follows" must be a string naming the published table the '
                         f'map follows, got {follows!r}')
    return ClassMap(name=name, label_set=prefix, source_classes=tuple(source),
                    class_names=tuple(names), lut=lut, first_id=int(first_id), follows=follows)


def class_map_metainfo(class_map: ClassMap, task_name: str) -> dict:
    """The metainfo a dataset with a class map publishes: the model's class names and the
    evaluated classes of its semantic task (``{task_name: [train ids]}``)."""
    return dict(classes=class_map.class_names,
                **{EVAL_CLASSES_KEY: {task_name: list(class_map.eval_classes)}})


def check_semantic_task(task, class_map: ClassMap, dataset: str = 'the dataset') -> None:
    """The semantic task fits the class map: same number of classes; its class names are the
    map's (a task without names of its own gets them, as mmseg datasets name their classes)."""
    names = list(class_map.class_names)
    if task.num_classes != len(names):
        raise ValueError(f'SemanticTask(num_classes={task.num_classes}) does not fit class map '
                         f'{class_map.name!r} of {dataset}: class_map {class_map.name!r} has '
                         f'{len(names)} classes ({", ".join(names)}); make them agree')
    if list(task.class_names) == [f'class_{i}' for i in range(task.num_classes)]:
        task.class_names = names
    elif list(task.class_names) != names:
        raise ValueError(f'SemanticTask class_names {list(task.class_names)} differ from those '
                         f'of class map {class_map.name!r}: {names}')
