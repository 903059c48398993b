"""Writer of the synthetic datasets: ``generate`` and its Taskonomy-format files.

Scene and file names, the train/val/test split, ``meta.json``, the refusal of folders left by
other settings, and the process pool that renders the views (resumable, atomic writes).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .layout import HFOV_DEG, SYNTHETIC_CLASSES, Size, _as_size, camera_intrinsics, scene_seed
from .render import render_view
from .textures import STYLES

#: default image size (H, W) of ``generate``
DEFAULT_SIZE = (256, 256)
#: default split of the scenes: 25/5/5 of 35 buildings, like Taskonomy's tiny split
DEFAULT_SPLITS = (0.7, 0.15, 0.15)

_SPLIT_NAMES = ('train', 'val', 'test')


def scene_name(scene: int, style: str = 'default') -> str:
    """Building name of scene ``scene``: ``scene_0000`` (``alt_scene_0000`` for style 'alt')."""
    return f'scene_{scene:04d}' if style == 'default' else f'{style}_scene_{scene:04d}'


_TASKS = None


def synthetic_tasks() -> dict:
    """The four task objects ``generate`` encodes in Taskonomy's format, keyed by task name."""
    global _TASKS
    if _TASKS is None:
        from mtl_adapters.tasks import DepthTask, EdgeTask, NormalTask, SemanticTask
        _TASKS = dict(seg=SemanticTask(num_classes=len(SYNTHETIC_CLASSES),
                                       class_names=SYNTHETIC_CLASSES),
                      depth=DepthTask(), normal=NormalTask(), edge=EdgeTask())
    return _TASKS


def view_paths(out_dir, building: str, point: int) -> Dict[str, Path]:
    """Paths of the five files of one view: 'rgb' and one per task name."""
    from mtl_adapters.datasets.taskonomy import RGB_FOLDER, taskonomy_format, taskonomy_path
    formats = {name: taskonomy_format(t) for name, t in synthetic_tasks().items()}
    paths = {name: taskonomy_path(out_dir, f.folder, building, point, 0, f.domain)
             for name, f in formats.items()}
    paths['rgb'] = taskonomy_path(out_dir, RGB_FOLDER, building, point, 0, 'rgb')
    return paths


def _generate_view(job: tuple) -> str:
    """Render and write one view unless its five files exist; returns 'rendered' or 'skipped'."""
    from mtl_adapters.datasets.taskonomy import encode_taskonomy
    from mtl_adapters.utils.io import write_png
    out_dir, building, point, seed, size, style = job
    paths = view_paths(out_dir, building, point)
    if all(p.is_file() for p in paths.values()):
        return 'skipped'
    sample = render_view(seed, size, style, view=point)
    for name, task in synthetic_tasks().items():
        write_png(paths[name], encode_taskonomy(task, sample[name]))
    write_png(paths['rgb'], sample['rgb'])  # last: the loader lists views by their RGB file
    return 'rendered'


def _refuse_stale_views(out: Path, wanted: set, num_scenes: int, views_per_scene: int) -> None:
    """Refuse a folder holding views these settings would not write (an earlier run with more
    scenes or views): the loader would read them too, while meta.json describes fewer."""
    rgb = out / 'rgb'
    if not rgb.is_dir():
        return
    stale = []
    for path in sorted(rgb.glob('*/point_*_view_0_domain_rgb.png')):
        point = int(path.name.split('_')[1])
        if (path.parent.name, point) not in wanted:
            stale.append(str(path.relative_to(out)))
    if stale:
        raise ValueError(
            f'{out} holds {len(stale)} views that {num_scenes} scenes x {views_per_scene} views '
            f'would not write (e.g. {stale[:3]}), left by an earlier run with more scenes or '
            'views; the dataset would load them too. Use another output folder, ask for at '
            'least as many scenes and views as before, or delete the folder.')


def _split_counts(num_scenes: int, splits: Sequence[float]) -> Tuple[int, int, int]:
    """Fractions (summing to 1) or explicit integer counts (summing to num_scenes) -> counts."""
    if len(splits) != 3:
        raise ValueError(f'splits must be (train, val, test), got {splits}')
    if all(isinstance(s, (int, np.integer)) for s in splits) and sum(splits) == num_scenes:
        return tuple(int(s) for s in splits)
    fr = np.asarray(splits, dtype=np.float64)
    if np.any(fr < 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f'splits {tuple(splits)}: give fractions summing to 1 or integer counts '
                         f'summing to num_scenes={num_scenes}')
    val, test = (int(round(f * num_scenes)) for f in fr[1:])
    # a split with a positive fraction gets at least one scene when there are enough scenes
    if num_scenes >= int((fr > 0).sum()):
        val, test = max(val, int(fr[1] > 0)), max(test, int(fr[2] > 0))
    train = num_scenes - val - test
    if train < int(fr[0] > 0):
        raise ValueError(f'splits {tuple(splits)} leave no training scene of {num_scenes}')
    return train, val, test


def _meta(classes, size, style, seed, K, num_scenes, views_per_scene, split_scenes) -> dict:
    """Content of meta.json (deterministic: no timestamps)."""
    from mtl_adapters.datasets.taskonomy import taskonomy_format
    formats = {name: taskonomy_format(t) for name, t in synthetic_tasks().items()}
    return dict(dataset='synthetic_scenes', format='taskonomy', classes=list(classes),
                num_classes=len(classes), seg_encoding='segment_semantic value = train id + 1',
                size=list(size), style=style, seed=int(seed), K=np.asarray(K).tolist(),
                hfov_deg=HFOV_DEG, num_scenes=num_scenes, views_per_scene=views_per_scene,
                splits={k: len(v) for k, v in split_scenes.items()},
                tasks={name: dict(folder=f.folder, domain=f.domain)
                       for name, f in formats.items()})


def generate(out_dir, num_scenes: int = 35, views_per_scene: int = 20,
             size: Size = DEFAULT_SIZE, seed: int = 0, style: str = 'default',
             splits: Sequence[float] = DEFAULT_SPLITS, workers: Optional[int] = None,
             progress: bool = True) -> dict:
    """Write ``num_scenes`` x ``views_per_scene`` synthetic views in Taskonomy's format.

    Layout: ``<out_dir>/rgb/<scene>/point_<P>_view_0_domain_rgb.png`` and, per task,
    ``<out_dir>/<folder>/<scene>/point_<P>_view_0_domain_<domain>.png``
    (``datasets.taskonomy.encode_taskonomy``), ``splits.csv`` (``id,train,val,test``,
    CR-only) and ``meta.json``.
    ``splits``: (train, val, test) fractions or integer scene counts. Resumable: views whose
    five files exist are skipped; files are written atomically. Deterministic for any
    ``workers`` (default ``min(2, os.cpu_count())``). Returns a summary dict.
    """
    from tqdm import tqdm

    from mtl_adapters.datasets.taskonomy import read_split_csv, write_split_csv
    from mtl_adapters.utils.io import atomic_write_bytes, json_bytes

    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    if num_scenes < 1 or views_per_scene < 1:
        raise ValueError(f'num_scenes ({num_scenes}) and views_per_scene ({views_per_scene}) '
                         'must be >= 1')
    size = _as_size(size)
    out = Path(out_dir)
    meta_path = out / 'meta.json'
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        theirs = {k: old.get(k) for k in ('size', 'style', 'seed', 'classes')}
        ours = dict(size=list(size), style=style, seed=int(seed), classes=list(SYNTHETIC_CLASSES))
        if theirs != ours:
            raise ValueError(f'{meta_path} was generated with {theirs}, not {ours}: the views '
                             'would not match. Use another output folder or delete this one.')
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    counts = _split_counts(num_scenes, splits)
    scenes = [scene_name(i, style) for i in range(num_scenes)]
    bounds = np.cumsum((0,) + counts)
    split_scenes = {name: scenes[bounds[i]:bounds[i + 1]] for i, name in enumerate(_SPLIT_NAMES)}
    jobs = [(str(out), scenes[i], p, scene_seed(seed, i), size, style)
            for i in range(num_scenes) for p in range(views_per_scene)]
    _refuse_stale_views(out, {(job[1], job[2]) for job in jobs}, num_scenes, views_per_scene)

    K = camera_intrinsics(size)
    meta = _meta(SYNTHETIC_CLASSES, size, style, seed, K, num_scenes, views_per_scene, split_scenes)
    meta_bytes = json_bytes(meta, what=str(meta_path), indent=2, sort_keys=True)
    if not meta_path.is_file() or meta_path.read_bytes() != meta_bytes:
        # first, so an interrupted run resumed with other settings is caught by the check above
        atomic_write_bytes(meta_path, meta_bytes)

    synthetic_tasks()  # import the task classes once, before any fork
    start = time.perf_counter()
    status = []
    bar = dict(total=len(jobs), disable=not progress, desc=f'synthetic {style} {size[0]}x{size[1]}',
               unit='view')
    if workers > 1:
        # a process pool that notices a dead worker (multiprocessing.Pool would wait forever
        # for the lost task): the run fails at once and, resumable, can simply be run again
        methods = mp.get_all_start_methods()
        ctx = mp.get_context('fork' if 'fork' in methods else None)
        chunk = max(1, min(16, len(jobs) // (workers * 4)))
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            try:
                for res in tqdm(pool.map(_generate_view, jobs, chunksize=chunk), **bar):
                    status.append(res)
            except BrokenProcessPool as err:
                raise RuntimeError(
                    f'a rendering worker died (killed, or out of memory) after {len(status)} '
                    f'of {len(jobs)} views; every view written so far is complete (atomic '
                    f'writes). Run the same command again to resume.') from err
    else:
        for job in tqdm(jobs, **bar):
            status.append(_generate_view(job))
    seconds = time.perf_counter() - start

    csv_path = out / 'splits.csv'
    if not csv_path.is_file() or read_split_csv(csv_path) != split_scenes:
        write_split_csv(csv_path, split_scenes)
    rendered = status.count('rendered')
    return dict(out_dir=str(out), style=style, seed=int(seed), size=list(size),
                num_scenes=num_scenes, views_per_scene=views_per_scene, num_views=len(jobs),
                rendered=rendered, skipped=status.count('skipped'), workers=workers,
                seconds=seconds, images_per_s=rendered / seconds if seconds > 0 else float('nan'),
                splits={k: len(v) for k, v in split_scenes.items()}, K=K.tolist())
