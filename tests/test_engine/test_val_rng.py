"""Validation never changes what training draws: losses equal bit for bit with and without it."""
import json
from pathlib import Path

from conftest import load_tool, tiny_leaf_config

#: the shipped real-data leaves resize in their validation pipelines (MultiTaskAlbu)
VAL = """
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type='TaskonomyDataset', data_root={root!r},
                                   split_file='splits.csv', split='val', tasks=_base_.tasks,
                                   pipeline=[
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu', geometric=[dict(type='Resize', height=32, width=32)]),
    dict(type='PackMultiTaskInputs')]))
"""
LEAF = Path(__file__).resolve().parents[2] / \
    'configs/troa/troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def _train_losses(tmp_path, root, name, val_interval):
    cfg = tmp_path / f'{name}.py'
    cfg.write_text(tiny_leaf_config(LEAF, f'val_rng_{name}_{tmp_path.name}', root, iters=3,
                                    lines=VAL.format(root=str(root))))
    work = tmp_path / name
    load_tool('train').main([
        str(cfg), '--work-dir', str(work), '--cfg-options',
        f'train_cfg.val_interval={val_interval}', 'model.decoder.drop_path_rate=0.3',
        'train_dataloader.dataset.pipeline.1.geometric.0.size=(32,32)'])
    scalars = [json.loads(line) for line in
               next(work.rglob('vis_data/scalars.json')).read_text().splitlines()]
    train = [{k: v for k, v in s.items() if 'loss' in k} for s in scalars
             if 'loss' in s]
    vals = [s for s in scalars if 'seg/mIoU' in s]
    return train, vals


def test_validation_leaves_training_randomness_alone(tiny_taskonomy, tmp_path):
    """num_workers=0: validation runs in the training process; it must not consume the
    generators the training augmentation (numpy) and drop-path (torch) draw from."""
    without, no_val = _train_losses(tmp_path, tiny_taskonomy, 'without', 1000)
    with_val, val = _train_losses(tmp_path, tiny_taskonomy, 'with', 1)
    assert len(val) == 3 and len(no_val) == 1        # validated after every iteration
    assert len(without) == 3 and without == with_val  # bit for bit: floats from the same JSON


def test_isolated_rng_restores_every_global_generator():
    import random

    import numpy as np
    import torch

    from mtl_adapters.utils import isolated_rng
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    with isolated_rng():
        random.random(), np.random.rand(), torch.rand(1)
    after = (random.getstate(), np.random.get_state()[1], torch.get_rng_state())
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
