"""Virtual KITTI 2: official layout and quirks in, canonical S/D/N/E out; failures named;
a killed preparation resumes to the same bytes; the leaf config trains and evaluates."""
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO
from scipy import ndimage
from vkitti2_fixture import BOXES, NAMES, write_vkitti2_fixture

from mtl_adapters.data_generation.prepare import run_preparation
from mtl_adapters.data_generation.vkitti2 import VKITTI2Preparation, find_sources
from mtl_adapters.datasets.geometry import scale_intrinsics
from mtl_adapters.datasets.vkitti2 import (CATEGORIES, VKITTI2Dataset, load_class_map,
                                           read_intrinsics_txt)
from mtl_adapters.tasks.edge import texture_edges
from mtl_adapters.utils import read_image

LEAF = 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdne.py'
TASKS8 = [dict(type='SemanticTask', num_classes=8), dict(type='DepthTask'),
          dict(type='NormalTask'), dict(type='EdgeTask')]
PIPELINE = [dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')]


def _cli():
    """data_prep/vkitti2.py, imported by path."""
    spec = importlib.util.spec_from_file_location('mtl_data_prep_vkitti2',
                                                  REPO / 'data_prep' / 'vkitti2.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def _dataset(root, tasks=TASKS8, **kw):
    return VKITTI2Dataset(data_root=str(root), tasks=tasks, pipeline=PIPELINE, **kw)


def _angles(a, b):
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1, 1)))


def _interior(surface, factor=1):
    """Working-resolution pixels whose native neighbourhood is one surface (no crease, no
    discontinuity in reach of the central differences)."""
    size = 3 * factor + 2
    same = ndimage.maximum_filter(surface, size, mode='nearest') == \
        ndimage.minimum_filter(surface, size, mode='nearest')
    keep = same & (surface >= 0)
    return keep[factor // 2::factor, factor // 2::factor]


@pytest.fixture(scope='module')
def fixture(tmp_path_factory):
    """The raw tree (archives extracted into one folder), its truth, and its native preparation
    (shared: do not modify)."""
    root = tmp_path_factory.mktemp('vkitti2')
    truth = write_vkitti2_fixture(root / 'src')
    summary = run_preparation(VKITTI2Preparation(root / 'src', root / 'out'), progress=False)
    assert summary.ok and summary.processed == 12, summary.format('vkitti2')
    return root / 'src', root / 'out', truth


def test_layouts_and_text_files(tmp_path):
    """Either extraction layout; classSegmentation in any case; per-frame intrinsics."""
    write_vkitti2_fixture(tmp_path / 'per', layout='per_archive')
    bases = find_sources(tmp_path / 'per')
    assert bases['classSegmentation'] == tmp_path / 'per' / 'vkitti_2.0.3_classSegmentation'
    assert bases['textgt'] == tmp_path / 'per' / 'vkitti_2.0.3_textgt'
    items = VKITTI2Preparation(tmp_path / 'per', tmp_path / 'out').items()
    scene06 = [i for i in items if i.key.startswith('Scene06')][0]
    assert 'frames/classsegmentation/Camera_0' in str(scene06.inputs[2])   # the doc's spelling
    assert scene06.inputs[2].is_file()
    K = read_intrinsics_txt(tmp_path / 'per/vkitti_2.0.3_textgt/Scene01/clone/intrinsic.txt')
    assert K[(1, 0)][0, 0] == 62.0 and K[(1, 0)][1, 2] == 15.5 and K[(0, 1)][0, 0] == 58.0
    shutil.rmtree(tmp_path / 'per' / 'vkitti_2.0.3_textgt')
    with pytest.raises(FileNotFoundError, match='vkitti_2.0.3_textgt.tar.gz.*naverlabs'):
        find_sources(tmp_path / 'per')


def test_ground_truth_in_canonical_units(fixture):
    src, out, truth = fixture
    names8, map8 = load_class_map('cityscapes8')
    lut8 = np.array([map8.get(n, 255) for n in NAMES], np.uint8)
    ds = _dataset(out)
    assert {(ds.get_data_info(i)['scene'], ds.get_data_info(i)['variation'])
            for i in range(len(ds))} == {('Scene01', 'clone'), ('Scene01', 'fog'),
                                         ('Scene02', 'clone'), ('Scene06', 'clone')}
    assert len(ds) == 8
    for i in range(len(ds)):
        info, sample = ds.get_data_info(i), ds[i]
        ref = truth[(info['scene'], info['variation'], info['camera'], info['frame'])]
        gt = sample['data_samples']
        np.testing.assert_array_equal(sample['inputs'].permute(1, 2, 0).numpy(), ref['rgb'])
        # colours -> categories with the scene's colors.txt (Scene02 lists them reversed),
        # then the 8-class protocol: Tree/Vegetation -> vegetation, Van -> car, others 255
        np.testing.assert_array_equal(gt.get_gt('seg')[0].numpy(), lut8[ref['category']])
        depth = gt.get_gt('depth')[0].numpy()
        np.testing.assert_allclose(depth, ref['depth'], atol=1e-6)
        assert depth[0, 99] == 0 and ref['category'][0, 99] == NAMES.index('Sky')
        assert depth[0, 0] == 5.0 and abs(depth[29, 50] - 1.6 / ((29 - 14.5 - info['frame'])
                                                                 / (58 + 4 * info['frame']))
                                          ) < 0.006          # the road, in metres
        normal = gt.get_gt('normal').permute(1, 2, 0).numpy()
        has = np.linalg.norm(normal, axis=-1) > 0.5
        inner = _interior(ref['surface'])
        assert (has & inner).sum() > 0.85 * inner.sum()          # nearly all have a normal
        assert _angles(normal, ref['normal'])[has & inner].max() < 0.5    # 8-bit encoding
        assert not has[ref['category'] == NAMES.index('Sky')].any()
        edge = gt.get_gt('edge')[0].numpy()
        np.testing.assert_allclose(edge, texture_edges(ref['rgb']), atol=0.6 / 65535)
    # 19 Cityscapes train ids from the same prepared files
    ds19 = _dataset(out, tasks=[dict(type='SemanticTask', num_classes=19)],
                    class_map='cityscapes19', split='test')
    info = ds19.get_data_info(0)
    ref = truth[(info['scene'], info['variation'], info['camera'], info['frame'])]
    seg = ds19[0]['data_samples'].get_gt('seg')[0].numpy()
    for name, train_id in (('Terrain', 9), ('Truck', 14), ('Van', 13), ('Tree', 8),
                           ('GuardRail', 255), ('Misc', 255), ('Undefined', 255)):
        assert (seg[ref['category'] == NAMES.index(name)] == train_id).all(), name


def test_splits_and_selection(fixture):
    _, out, _ = fixture
    assert len(_dataset(out, split='val')) == 2 and len(_dataset(out, split='test')) == 2
    assert len(_dataset(out, split='all')) == 12
    near = _dataset(out, max_depth=10.0)[0]['data_samples'].get_gt('depth')[0].numpy()
    assert near.max() <= 10.0 and near[0, 0] == 5.0 and near[5, 5] == 0      # building: 30 m
    fog = _dataset(out, scenes=['Scene01'], variations=['fog'])
    assert {fog.get_data_info(i)['variation'] for i in range(len(fog))} == {'fog'}
    with pytest.raises(FileNotFoundError, match='Camera_1 is not prepared'):
        _dataset(out, scenes=['Scene01'], cameras=['Camera_1'])
    with pytest.raises(ValueError, match='split must be'):
        _dataset(out, split='training')
    with pytest.raises(ValueError, match="class_map 'cityscapes8' has 8 classes"):
        _dataset(out, tasks=[dict(type='SemanticTask', num_classes=19)])
    with pytest.raises(FileNotFoundError, match='data_prep/vkitti2.py'):
        _dataset(out / 'Scene01')


def test_working_resolution_and_cameras(fixture, tmp_path):
    src, _, truth = fixture
    code = _cli().main(['--src', str(src), '--out', str(tmp_path / 'out'), '--height', '15',
                        '--scenes', 'Scene01', '--variations', 'clone', '--cameras',
                        'Camera_0', 'Camera_1', '--workers', '1', '--no-progress'])
    assert code == 0
    files = sorted((tmp_path / 'out').rglob('*.png'))
    assert len(files) == 2 * 2 * 5 and all(read_image(p).shape[:2] == (15, 50) for p in files)
    K = read_intrinsics_txt(tmp_path / 'out/Scene01/clone/intrinsic.txt')[(1, 1)]
    np.testing.assert_allclose(K, scale_intrinsics(truth[('Scene01', 'clone', 'Camera_1', 1)]
                                                   ['K'], 0.5, 0.5), atol=1e-6)
    ds = _dataset(tmp_path / 'out', scenes=['Scene01'], cameras=['Camera_0', 'Camera_1'])
    assert len(ds) == 4
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        ref = truth[(info['scene'], info['variation'], info['camera'], info['frame'])]
        gt = ds[i]['data_samples']
        normal = gt.get_gt('normal').permute(1, 2, 0).numpy()
        has, inner = np.linalg.norm(normal, axis=-1) > 0.5, _interior(ref['surface'], 2)
        assert (has & inner).sum() > 0.6 * inner.sum()
        assert _angles(normal, ref['normal'][1::2, 1::2])[has & inner].max() < 0.5
        depth = gt.get_gt('depth')[0].numpy()           # nearest: real measurements only
        assert set(np.unique(depth)) <= set(np.unique(ref['depth']))
        seg = gt.get_gt('seg')[0].numpy()
        assert set(np.unique(seg)) <= {0, 1, 2, 3, 4, 5, 6, 7, 255}


def test_bad_inputs_are_named_and_the_run_goes_on(fixture, tmp_path, capsys):
    src = tmp_path / 'src'
    shutil.copytree(fixture[0], src)
    frames = src / 'Scene02' / 'clone' / 'frames'
    broken = frames / 'depth' / 'Camera_0' / 'depth_00001.png'
    broken.write_bytes(broken.read_bytes()[:60])                      # truncated download
    gone = frames / 'classSegmentation' / 'Camera_0' / 'classgt_00000.png'
    gone.unlink()
    odd = src / 'Scene06/clone/frames/classsegmentation/Camera_0/classgt_00001.png'
    img = read_image(odd)
    img[3, 4] = (1, 2, 3)                                             # a colour not listed
    odd.write_bytes(cv2.imencode('.png', cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes())
    argv = ['--src', str(src), '--out', str(tmp_path / 'out'), '--workers', '1',
            '--no-progress']
    assert _cli().main(argv) == 1
    report = capsys.readouterr().out
    assert 'processed 9' in report and 'failed 3' in report, report
    for path in (broken, gone, odd):
        assert str(path) in report, report
    assert 'RGB [(1, 2, 3)]' in report
    assert _cli().main(argv + ['--allow-unknown-colors']) == 1       # only the 2 files left
    assert 'processed 1' in capsys.readouterr().out
    seg = read_image(tmp_path / 'out/Scene06/clone/frames/classid/Camera_0/classid_00001.png')
    assert seg[3, 4] == 255 and seg[3, 5] == CATEGORIES.index('Building')


def test_killed_preparation_resumes_to_identical_bytes(fixture, tmp_path, monkeypatch):
    src, clean, _ = fixture
    original = VKITTI2Preparation.process
    calls = []

    def dies_at_five(self, item):
        calls.append(item.key)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, item)

    monkeypatch.setattr(VKITTI2Preparation, 'process', dies_at_five)
    with pytest.raises(KeyboardInterrupt):
        run_preparation(VKITTI2Preparation(src, tmp_path / 'out'), progress=False)
    assert not (tmp_path / 'out' / 'meta.json').exists()
    monkeypatch.setattr(VKITTI2Preparation, 'process', original)
    again = run_preparation(VKITTI2Preparation(src, tmp_path / 'out'), progress=False)
    assert (again.processed, again.skipped) == (8, 4)
    assert _tree(tmp_path / 'out') == _tree(clean)
    # damaged outputs (not from our atomic writes) are found from headers/tails and redone
    out = tmp_path / 'out' / 'Scene02' / 'clone' / 'frames'
    normal = out / 'normal' / 'Camera_0' / 'normal_00001.png'
    normal.write_bytes(normal.read_bytes()[:-20])
    depth = out / 'depth' / 'Camera_0' / 'depth_00000.png'
    depth.write_bytes(depth.read_bytes()[:-1])
    repaired = run_preparation(VKITTI2Preparation(src, tmp_path / 'out'), progress=False)
    assert (repaired.processed, repaired.skipped) == (2, 10)
    assert _tree(tmp_path / 'out') == _tree(clean)


def test_class_maps_and_help(capsys):
    names8, map8 = load_class_map('cityscapes8')
    names19, map19 = load_class_map('cityscapes19')
    assert set(map8) == set(map19) == set(CATEGORIES) == set(NAMES)
    from mmengine import Config
    cfg = Config.fromfile(str(REPO / LEAF))
    assert list(cfg.tasks[0]['class_names']) == names8
    assert names19[13] == 'car' and names19[10] == 'sky' and len(names19) == 19
    assert {b[0] for b in BOXES} | {'Road', 'Terrain', 'Sky'} == set(CATEGORIES)
    with pytest.raises(SystemExit):
        _cli().parse_args(['--help'])
    text = capsys.readouterr().out
    for needle in ('vkitti_2.0.3_rgb.tar', 'vkitti_2.0.3_depth.tar', 'classSegmentation.tar',
                   'vkitti_2.0.3_textgt.tar.gz', 'europe.naverlabs.com', 'classgt_00000.png',
                   'meta.json'):
        assert needle in text, needle


def test_leaf_config_trains_and_evaluates(fixture, tmp_path):
    """The paper-setting leaf, with a tiny random trunk: 2 iterations, then the test split."""
    from mmengine import Config
    from mmengine.runner import Runner
    _, out, _ = fixture
    cfg = Config.fromfile(str(REPO / LEAF))
    cfg.merge_from_dict(dict(
        model=dict(encoder=dict(model_name='swinv2_tiny_window8_256', pretrained=None,
                                img_size=(32, 64), embed_dim=16,
                                model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8))),
                   decoder=dict(depths=(1, 1, 1, 1), num_heads=(4, 2, 1, 1), img_size=(32, 64),
                                head_channels=8)),
        param_scheduler=[], custom_hooks=[], work_dir=str(tmp_path / 'work'),
        train_cfg=dict(max_iters=2, val_interval=1000),
        visualizer=dict(name=f'vkitti2_{abs(hash(str(tmp_path)))}',
                        vis_backends=[dict(type='LocalVisBackend')]),
        experiment_name=f'vkitti2_{abs(hash(str(tmp_path)))}'))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(out)
        geometric = loader.dataset.pipeline[1].geometric[0]
        if name == 'train_dataloader':
            geometric.size = (32, 64)
        else:
            geometric.update(height=32, width=106)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    for key in ('seg/mIoU', 'depth/rmse', 'normal/mean', 'edge/l1'):
        assert np.isfinite(metrics[key]), (key, metrics)
    assert metrics['depth/rmse'] > 0 and 'seg/IoU.traffic light' in metrics
    assert json.loads((out / 'meta.json').read_text())['categories'] == list(CATEGORIES)


def test_unlabelled_target_needs_only_the_images(fixture, tmp_path):
    """with_labels=False: every prepared label file deleted, the scenes still load."""
    from conftest import IMAGES_ONLY, check_images_only, delete_all_but
    root = tmp_path / 'out'
    shutil.copytree(fixture[1], root)
    assert delete_all_but(root, lambda p: p == 'meta.json' or '/frames/rgb/' in p) > 0
    labelled = _dataset(fixture[1], split='all')
    unlabelled = VKITTI2Dataset(data_root=str(root), tasks=TASKS8, split='all',
                                pipeline=IMAGES_ONLY, with_labels=False)
    check_images_only(unlabelled, len(labelled))
    with pytest.raises(FileNotFoundError, match='missing'):
        _dataset(root, split='all')
