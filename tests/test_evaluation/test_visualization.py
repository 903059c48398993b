"""Prediction grids (size, colour maps, captions), per-image prediction files, and the
visualisation hook run by a real Runner (pictures written once, by the visualiser's backend)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_model_cfg
from mtl_adapters.tasks import build_tasks
from mtl_adapters.tasks.depth import turbo
from mtl_adapters.tasks.semantic import label_palette
from mtl_adapters.utils import read_image
from mtl_adapters.visualization import make_prediction_grid, read_depth_png, save_predictions
from mtl_adapters.visualization.grid import CAPTION_HEIGHT, grid_shape

H, W = 20, 28
TASKS = build_tasks([dict(type='SemanticTask', num_classes=4), 'DepthTask', 'NormalTask',
                     'EdgeTask'])


def _maps():
    """Constant-valued (C, H, W) ground truth and prediction of every task."""
    gts = dict(seg=torch.full((1, H, W), 2), depth=torch.linspace(1, 5, H * W).view(1, H, W),
               normal=torch.tensor([0.0, 0.0, -1.0]).view(3, 1, 1).expand(3, H, W).clone(),
               edge=torch.linspace(0, 0.5, H * W).view(1, H, W))
    preds = dict(seg=torch.full((1, H, W), 3), depth=gts['depth'].clone(),
                 normal=torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, H, W).clone(),
                 edge=gts['edge'] * 0.5)
    return gts, preds


def _tile(grid, row, col, gap=2):
    """The image part (caption removed) of tile (row, col)."""
    top = row * (H + CAPTION_HEIGHT + gap) + CAPTION_HEIGHT
    left = col * (W + gap)
    return grid[top:top + H, left:left + W]


def test_grid_size_and_colour_maps():
    img = np.random.RandomState(0).randint(0, 256, (H, W, 3)).astype(np.uint8)
    gts, preds = _maps()
    grid = make_prediction_grid(img, gts, preds, TASKS)
    assert grid.dtype == np.uint8 and grid.shape == grid_shape((H, W), 4) + (3,)
    palette = label_palette(4)
    for row in range(4):
        assert (_tile(grid, row, 0) == img).all()  # the input in the first column
        caption = grid[row * (H + CAPTION_HEIGHT + 2):row * (H + CAPTION_HEIGHT + 2)
                       + CAPTION_HEIGHT]
        assert caption.max() > 0  # cv2.putText drew a label
    assert (_tile(grid, 0, 1) == palette[2]).all() and (_tile(grid, 0, 2) == palette[3]).all()
    depth = gts['depth'][0].numpy()
    lo, hi = np.percentile(depth, [2, 98])
    assert (_tile(grid, 1, 1) == turbo((depth - lo) / (hi - lo))).all()  # turbo, gt scale
    assert (_tile(grid, 2, 1) == [128, 128, 0]).all()  # normal (0, 0, -1) -> RGB
    assert (_tile(grid, 2, 2) == [255, 128, 128]).all()  # normal (1, 0, 0) -> RGB
    edge_tile = _tile(grid, 3, 2)
    assert (edge_tile[..., 0] == edge_tile[..., 1]).all() and \
        (edge_tile[..., 1] == edge_tile[..., 2]).all()  # grey
    assert edge_tile.mean() < _tile(grid, 3, 1).mean()  # half the edges: darker on gt scale


def test_grid_without_ground_truth_has_grey_tiles():
    img = np.zeros((H, W, 3), np.uint8)
    _, preds = _maps()
    grid = make_prediction_grid(torch.as_tensor(img).permute(2, 0, 1), {}, preds, TASKS)
    assert grid.shape == grid_shape((H, W), 4) + (3,)
    assert (_tile(grid, 1, 1) == 64).all()


def test_saved_prediction_files_round_trip(tmp_path):
    _, preds = _maps()
    tasks = build_tasks([dict(type='SemanticTask', num_classes=4), 'NormalTask', 'EdgeTask',
                         dict(type='DepthTask', metric_cfg=dict(max_depth=20.0))])
    files = save_predictions(preds, tasks, tmp_path / 'sub' / 'img0')
    assert files['depth'].name == 'img0_depth_mm.png'  # 16-bit millimetres
    far = save_predictions(dict(depth=preds['depth'] * 20), TASKS, tmp_path / 'far')
    assert far['depth'].name == 'far_depth_cm.png'  # max_depth 128 m does not fit mm
    assert np.abs(read_depth_png(far['depth']) - preds['depth'][0].numpy() * 20).max() <= 0.005
    seg = Image.open(files['seg'])
    assert seg.mode == 'P' and (np.asarray(seg) == 3).all()
    assert np.array_equal(np.asarray(seg.getpalette()[:12]).reshape(4, 3), label_palette(4))
    depth = read_depth_png(files['depth'])
    assert np.abs(depth - preds['depth'][0].numpy()).max() <= 0.0005 + 1e-9
    normal = read_image(files['normal'])
    assert normal.dtype == np.uint8 and (normal == [255, 128, 128]).all()
    edge = read_image(files['edge'])
    assert edge.dtype == np.uint16
    assert np.abs(edge / 65535.0 - preds['edge'][0].numpy()).max() <= 1 / 65535


def test_visualization_hook_in_runner(tiny_taskonomy, tmp_path):
    from mmengine.runner import Runner
    tasks = [dict(type='SemanticTask', num_classes=5), 'DepthTask', 'NormalTask', 'EdgeTask']
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations', tasks=tasks),
                dict(type='PackMultiTaskInputs', tasks=tasks)]
    runner = Runner(
        model=tiny_model_cfg(tasks), work_dir=str(tmp_path), default_scope='mtl_adapters',
        test_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='TaskonomyDataset', data_root=tiny_taskonomy,
                         split_file='splits.csv', split='train', tasks=tasks,
                         pipeline=pipeline)),
        test_evaluator=dict(type='MultiTaskMetric', tasks=tasks), test_cfg=dict(type='TestLoop'),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')],
                        name=f'vis_{tmp_path.name}'),
        custom_hooks=[dict(type='MultiTaskVisualizationHook', interval=2, max_samples=2)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)))
    metrics = runner.test()  # the train split: 3 images
    assert 'seg/mIoU' in metrics and 'depth/rmse' in metrics
    vis_dir = Path(runner.log_dir) / 'vis_data' / 'vis_image'
    names = sorted(p.name for p in vis_dir.iterdir())
    assert names == ['test_sample0_0.png', 'test_sample2_0.png']
    pic = read_image(vis_dir / names[0])
    assert pic.shape == grid_shape((64, 64), 4) + (3,)
    # one copy of every picture: nothing else under the work dir
    assert sorted(p.name for p in tmp_path.rglob('*.png')) == names


@pytest.mark.parametrize('interval,max_samples,expected', [(1, -1, 3), (1, 1, 1)])
def test_visualization_hook_selection(interval, max_samples, expected, tmp_path):
    from types import SimpleNamespace

    from mtl_adapters.engine.hooks import MultiTaskVisualizationHook
    from mtl_adapters.structures import MultiTaskDataSample
    hook = MultiTaskVisualizationHook(interval=interval, max_samples=max_samples)
    drawn = {}
    visualizer = SimpleNamespace(
        add_image=lambda name, image, step=0: drawn.setdefault(f'{name}_{step}', image))
    runner = SimpleNamespace(model=SimpleNamespace(tasks=TASKS), work_dir=str(tmp_path),
                             visualizer=visualizer)
    gts, preds = _maps()
    samples = []
    for _ in range(3):
        s = MultiTaskDataSample()
        for n in TASKS:
            s.set_gt(n, gts[n]), s.set_pred(n, preds[n])
        samples.append(s)
    hook.before_val(runner)
    hook.after_val_iter(runner, 0, dict(inputs=[torch.zeros(3, H, W, dtype=torch.uint8)] * 3),
                        samples)
    assert len(drawn) == expected and 'val_sample0_0' in drawn
    assert drawn['val_sample0_0'].shape == grid_shape((H, W), 4) + (3,)


def test_visualization_hook_during_training_validation(tiny_taskonomy, tmp_path):
    from mmengine.runner import Runner
    tasks = [dict(type='SemanticTask', num_classes=5), 'DepthTask', 'NormalTask', 'EdgeTask']
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations', tasks=tasks),
                dict(type='PackMultiTaskInputs', tasks=tasks)]

    def loader(split, sampler):
        return dict(batch_size=2, num_workers=0, sampler=dict(type=sampler, shuffle=False),
                    dataset=dict(type='TaskonomyDataset', data_root=tiny_taskonomy,
                                 split_file='splits.csv', split=split, tasks=tasks,
                                 pipeline=pipeline))

    runner = Runner(
        model=tiny_model_cfg(tasks), work_dir=str(tmp_path), default_scope='mtl_adapters',
        train_dataloader=loader('train', 'InfiniteSampler'),
        val_dataloader=loader('val', 'DefaultSampler'),
        val_evaluator=dict(type='MultiTaskMetric', tasks=tasks),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')],
                        name=f'vis_{tmp_path.name}'),
        custom_hooks=[dict(type='MultiTaskVisualizationHook', interval=1, max_samples=2)],
        default_hooks=dict(checkpoint=None))
    runner.train()
    names = sorted(p.name for p in (Path(runner.log_dir) / 'vis_data' / 'vis_image').iterdir())
    assert names == ['val_sample0_2.png', 'val_sample1_2.png']  # the val split: 3 images


def test_prediction_files_of_repeated_image_names_do_not_collide():
    """Virtual KITTI 2 repeats ``Camera_0/rgb_00000`` in every scene and variation: the
    dataset's ``sample_key`` names the files instead."""
    from mtl_adapters.structures import MultiTaskDataSample
    from mtl_adapters.visualization.save_predictions import sample_stem
    stems = {sample_stem(MultiTaskDataSample(metainfo=dict(
        img_path=f'/d/{scene}/clone/frames/rgb/Camera_0/rgb_00000.jpg',
        sample_key=f'{scene}/clone/Camera_0/00000')), 0) for scene in ('Scene01', 'Scene02')}
    assert stems == {'Scene01/clone/Camera_0/00000', 'Scene02/clone/Camera_0/00000'}
    plain = MultiTaskDataSample(metainfo=dict(img_path='/d/rgb/bldA/point_0_view_0.png'))
    assert sample_stem(plain, 3) == 'bldA/point_0_view_0'
