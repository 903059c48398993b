"""Tiny UDA data and configs shared by the UDA tests: a labelled Taskonomy-format source, an
unlabelled target whose label files are garbage or absent, and a tiny config inheriting the
shipped synthetic UDA base (narrow adapter model at 64 px, batch 2, no workers)."""
import json
import os
import uuid
from pathlib import Path

import numpy as np
from mmengine import Config

from conftest import REPO, write_taskonomy_fixture
from mtl_adapters.datasets.taskonomy import (INDEX_FORMAT, RGB_FOLDER, taskonomy_format,
                                             taskonomy_path)
from mtl_adapters.tasks import build_tasks

BASE = REPO / 'configs/_base_/uda/synthetic_default-to-alt_demo.py'
TASKS = build_tasks([dict(type='SemanticTask', num_classes=8), 'DepthTask', 'NormalTask',
                     'EdgeTask'])
BUILDINGS = ('t0', 't1', 't2')
VIEWS = 2

#: both strategies, small discriminators (64 px -> 4x4 patches)
BOTH = dict(adversarial=dict(lambda_adv=0.01, interval=1, steps=1,
                             discriminator=dict(type='OutputDiscriminator', channels=8,
                                                num_convs=4)),
            mean_teacher=dict(weight=1.0,
                              pseudo_labels=dict(classification=dict(threshold=0.0))))

TINY = """
_base_ = '{base}'
source_root = '{source}'
target_root = '{target}'
crop = (64, 64)
_albu = dict(type='MultiTaskAlbu',
             geometric=[dict(type='RandomResizedCrop', size=crop, scale=(0.5, 1.0)),
                        dict(type='HorizontalFlip', p=0.5)],
             photometric=[dict(type='ColorJitter', brightness=0.2, p=0.8)])
_loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
model = dict(
    encoder=dict(img_size=crop, model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)),
                 embed_dim=16, pretrained=None),  # narrower than the shipped trunk: random
    decoder=dict(depths=(1, 1, 1, 1), num_heads=(4, 2, 1, 1), img_size=crop, head_channels=8),
    uda_cfg={uda_cfg})
train_dataloader = dict(_loader, dataset=dict(
    data_root=source_root,
    pipeline=[dict(type='LoadMultiTaskImageAndAnnotations'), _albu,
              dict(type='PackMultiTaskInputs')]))
# the target: listed by an index file (no label-file checks), images only
train_cfg = dict(max_iters={max_iters}, val_interval=1000000, target_dataloader=dict(
    _loader, dataset=dict(
        data_root=target_root, split_file=None, index_file='index_train.json',
        pipeline=[dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False), _albu,
                  dict(type='PackMultiTaskInputs')])))
param_scheduler = []
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(interval={ckpt_interval}, max_keep_ckpts=100),
                     logger=dict(interval=1))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')], name='{vis_name}')
custom_hooks = {custom_hooks}
"""


def write_source(root) -> None:
    """A labelled Taskonomy-format source (64 px, 8 classes)."""
    write_taskonomy_fixture(str(root), buildings=('s0', 's1', 's2', 's3'), views=VIEWS,
                            num_classes=8)


def write_unlabelled_target(root) -> list:
    """A target set whose label files are unusable: every other one overwritten with garbage
    bytes, the others deleted; its views listed by ``index_train.json``. Returns the label
    paths (present or not)."""
    write_taskonomy_fixture(str(root), buildings=BUILDINGS + ('t3', 't4'), views=VIEWS,
                            num_classes=8, seed=1)
    rng = np.random.RandomState(0)
    labels = []
    for b in BUILDINGS:
        for p in range(VIEWS):
            for task in TASKS.values():
                fmt = taskonomy_format(task)
                labels.append(taskonomy_path(root, fmt.folder, b, p, 0, fmt.domain))
    for i, path in enumerate(labels):
        if i % 2:
            os.remove(path)
        else:
            Path(path).write_bytes(rng.bytes(300))
    folders = sorted({RGB_FOLDER} | {taskonomy_format(t).folder for t in TASKS.values()})
    index = dict(format=INDEX_FORMAT, split_file='splits.csv', split='train', layout='taskonomy',
                 folders=folders, buildings=[dict(name=b, views=[[p, 0] for p in range(VIEWS)])
                                             for b in BUILDINGS])
    (Path(root) / 'index_train.json').write_text(json.dumps(index))
    return labels


def write_tiny_config(path, source, target, max_iters: int, uda_cfg=None,
                      mean_teacher_hook: bool = True, ckpt_interval: int = 2,
                      vis_name: str = '') -> Path:
    """The tiny UDA config file (see the module docstring)."""
    uda_cfg = BOTH if uda_cfg is None else uda_cfg
    hooks = [dict(type='MeanTeacherHook', alpha=0.9)] if mean_teacher_hook else []
    Path(path).write_text(TINY.format(
        base=BASE, source=source, target=target, max_iters=max_iters, uda_cfg=repr(uda_cfg),
        ckpt_interval=ckpt_interval, custom_hooks=repr(hooks),
        vis_name=vis_name or f'uda_{uuid.uuid4().hex[:8]}'))
    return Path(path)


def tiny_config(tmp_path, source, target, max_iters: int, **kwargs) -> Config:
    """The tiny UDA config, loaded, with a work dir and a unique experiment name."""
    name = f'uda_{uuid.uuid4().hex[:8]}'
    path = write_tiny_config(tmp_path / f'{name}.py', source, target, max_iters,
                             vis_name=name, **kwargs)
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = name
    return cfg
