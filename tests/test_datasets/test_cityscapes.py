"""Cityscapes: official layout and encodings, prepared targets, failures named, resume, training.

The fixture (``cityscapes_fixture.py``) writes the official files of a scene with known
geometry (road plane, wall, sky, ego vehicle, rectification border); preparation runs at half
resolution (64x128 -> 32x64), as the shipped config does (1024x2048 -> 512x1024).
"""
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from cityscapes_fixture import (BICYCLE, BUILDING, CAR, PARKING, ROAD, SAMPLES, SIDEWALK, SKY,
                                WALL_DEPTH, write_cityscapes_fixture)
from conftest import REPO

from mtl_adapters.data_generation.cityscapes import CityscapesPreparation
from mtl_adapters.data_generation.prepare import run_preparation
from mtl_adapters.datasets.cityscapes import (CITYSCAPES_CLASSES, LABEL_TO_TRAIN,
                                              CityscapesDataset, camera_matrix, sample_files)
from mtl_adapters.datasets.geometry import normals_from_depth, scale_intrinsics
from mtl_adapters.tasks.edge import texture_edges
from mtl_adapters.utils import DataFileError, read_image

WORK = (32, 64)
TASKS = [dict(type='SemanticTask', num_classes=19), dict(type='DepthTask'), 'NormalTask',
         'EdgeTask']
PREP_SCRIPT = REPO / 'data_prep' / 'cityscapes.py'
BASE_CONFIG = REPO / 'configs/_base_/datasets/cityscapes_sdne.py'
LEAF = REPO / 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_cityscapes-256x512_sdne.py'


def prepare(root, out=None, **kw):
    """Prepare every split of the fixture at WORK with one worker (deterministic order)."""
    prep = CityscapesPreparation(root, out=out, size=WORK, splits=('train', 'val', 'test'), **kw)
    return run_preparation(prep, workers=1, progress=False)


def dataset(root, split='train', pipeline=None, **kw):
    pipeline = pipeline or [dict(type='LoadMultiTaskImageAndAnnotations'),
                            dict(type='PackMultiTaskInputs')]
    return CityscapesDataset(data_root=str(root), tasks=TASKS, split=split, work_size=WORK,
                             max_depth=80.0, pipeline=pipeline, **kw)


def prep_cli():
    """``data_prep/cityscapes.py`` imported by path (in-process: no second interpreter)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('mtl_data_prep_cityscapes', PREP_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    """The fixture, prepared once (tests that change files work on a copy)."""
    root = tmp_path_factory.mktemp('cityscapes')
    truth = write_cityscapes_fixture(root)
    summary = prepare(root)
    assert summary.ok and summary.processed == len(SAMPLES)
    return root, truth


def copy_of(prepared, tmp_path) -> Path:
    shutil.copytree(prepared[0], tmp_path / 'cs')
    return tmp_path / 'cs'


def test_label_table_and_class_names():
    """The 34 official label ids -> 19 train ids (cityscapesScripts helpers/labels.py)."""
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(34):
        assert LABEL_TO_TRAIN[label_id] == expected.get(label_id, 255), label_id
    assert CITYSCAPES_CLASSES[:3] == ('road', 'sidewalk', 'building')
    assert CITYSCAPES_CLASSES[-1] == 'bicycle' and len(CITYSCAPES_CLASSES) == 19
    from mmengine import Config
    cfg = Config.fromfile(str(BASE_CONFIG))
    assert tuple(cfg.tasks[0]['class_names']) == CITYSCAPES_CLASSES
    assert cfg.tasks[1]['metric_cfg']['max_depth'] == cfg.train_dataloader.dataset.max_depth


def test_prepared_layout_and_loaded_ground_truth(prepared):
    root, truth = prepared
    stem = 'aachen_000001_000019'
    files = sample_files(root, 'train', 'aachen', stem, WORK)
    # the official names, and ours next to them
    assert files['label_ids'] == root / 'gtFine/train/aachen' / f'{stem}_gtFine_labelIds.png'
    assert files['disparity'] == root / 'disparity/train/aachen' / f'{stem}_disparity.png'
    assert files['camera'] == root / 'camera/train/aachen' / f'{stem}_camera.json'
    assert files['normal'] == root / 'normal_32x64/train/aachen' / f'{stem}_normal.png'
    for key in ('image_work', 'normal', 'edge'):
        assert files[key].is_file(), files[key]
    assert (root / 'edgeTexture_32x64' / 'test' / 'berlin').is_dir()
    ds = dataset(root)
    assert len(ds) == 3 and ds.get_data_info(1)['stem'] == stem
    assert ds.metainfo['classes'] == CITYSCAPES_CLASSES
    t = truth[stem]
    out = ds[1]
    sample = out['data_samples']
    cam = t['camera']
    assert ds.get_data_info(1)['camera']['baseline'] == cam['extrinsic']['baseline']

    # image: the original, area-averaged 2x2 (what the model sees)
    img = out['inputs'].permute(1, 2, 0).numpy()
    ref = t['rgb'].astype(np.float64).reshape(32, 2, 64, 2, 3).mean(axis=(1, 3))
    assert img.shape == (32, 64, 3) and np.abs(img - ref).max() <= 0.5 + 1e-9

    # seg: label ids -> train ids, nearest to the working grid (top-left of each 2x2 block)
    seg = sample.get_gt('seg')[0].numpy()
    np.testing.assert_array_equal(seg, LABEL_TO_TRAIN[t['label_ids'][::2, ::2]])
    values = dict(zip(t['label_ids'][::2, ::2].ravel().tolist(), seg.ravel().tolist()))
    assert values[ROAD] == 0 and values[SIDEWALK] == 1 and values[BUILDING] == 2
    assert values[CAR] == 13 and values[BICYCLE] == 18 and values[SKY] == 10
    assert values[PARKING] == 255 and values[0] == 255 and values[1] == 255 and values[2] == 255

    # depth: baseline * fx / mean of the 2x2 disparities, in metres
    depth = sample.get_gt('depth')[0].numpy()
    p = t['disparity'].astype(np.float64)
    d = ((p - 1) / 256).reshape(32, 2, 64, 2).mean(axis=(1, 3))
    void = np.isin(t['label_ids'], (1, 2, 3))
    ok = ((p > 1) & ~void).reshape(32, 2, 64, 2).all(axis=(1, 3))
    ref = np.where(ok, cam['extrinsic']['baseline'] * cam['intrinsic']['fx'] / np.where(
        ok, d, 1), 0)
    ref[ref > 80] = 0
    np.testing.assert_allclose(depth, ref, rtol=1e-5)
    wall = t['wall'].reshape(32, 2, 64, 2).all(axis=(1, 3)) & (depth > 0)
    assert wall.sum() > 100 and np.abs(depth[wall] - WALL_DEPTH).max() < 0.02
    assert not depth[t['ego'][::2, ::2]].any()         # the bonnet's garbage disparity
    assert not depth[:, 0].any()                       # the rectification border
    assert not depth[8:9, 40:42].any() and not depth[8:9, 45:47].any()   # p = 2 (far), p = 1
    assert not depth[t['sky'][::2, ::2]].any()         # p = 0

    # normals: exactly normals_from_depth of the loaded depth with the scaled intrinsics
    normal = sample.get_gt('normal').permute(1, 2, 0).numpy()
    K = scale_intrinsics(camera_matrix(ds.get_data_info(1)['camera']), 0.5, 0.5)
    ref = normals_from_depth(depth, K)
    assert np.array_equal(np.linalg.norm(normal, axis=-1) > 0.5,
                          np.linalg.norm(ref, axis=-1) > 0.5)
    valid = np.linalg.norm(ref, axis=-1) > 0.5
    cos = np.clip((normal[valid] * ref[valid]).sum(-1), -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 0.01        # 16-bit encoding
    # ... and the scene's: the road faces up (-y), the wall faces the camera (-z)
    ground = t['ground'].reshape(32, 2, 64, 2).all(axis=(1, 3)) & valid
    assert ground.sum() >= 30 and wall.sum() > 100
    up = np.degrees(np.arccos(np.clip(-normal[ground][:, 1], -1, 1)))
    assert np.median(up) < 1.0 and up.max() < 3.0
    facing = np.degrees(np.arccos(np.clip(-normal[wall & valid][:, 2], -1, 1)))
    assert facing.max() < 0.5

    # edges: texture_edges of the working-resolution image, 16-bit
    edge = sample.get_gt('edge')[0].numpy()
    np.testing.assert_allclose(edge, texture_edges(img), atol=0.6 / 65535)
    assert edge.max() > 0.05


def test_test_split_has_no_semantic_labels(prepared):
    """Cityscapes' test labels are not public: no seg ground truth; depth still masked."""
    root, truth = prepared
    ds = dataset(root, split='test')
    assert len(ds) == 1 and 'seg' not in ds.get_data_info(0)['task_paths']
    sample = ds[0]['data_samples']
    assert 'gt_seg' not in sample and sample.get_gt('depth').shape[-2:] == WORK
    ego = truth['berlin_000000_000019']['ego'][::2, ::2]
    assert not sample.get_gt('depth')[0].numpy()[ego].any()


def test_wrong_label_file_is_refused(prepared, tmp_path):
    """labelTrainIds passed as labelIds would silently swap classes (train id 7 = sign, label
    id 7 = road): refused, naming the file."""
    root = copy_of(prepared, tmp_path)
    label = root / 'gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png'
    shutil.copy(str(label).replace('labelIds', 'labelTrainIds'), label)
    ds = dataset(root)
    with pytest.raises(DataFileError, match=rf'{label}.*labelTrainIds'):
        ds[0]


def test_missing_files_are_named_with_the_fix(prepared, tmp_path):
    root = copy_of(prepared, tmp_path)
    normal = root / 'normal_32x64/train/bochum/bochum_000000_000313_normal.png'
    normal.unlink()
    with pytest.raises(FileNotFoundError, match=rf'{normal}.*data_prep/cityscapes.py'):
        dataset(root)
    assert len(dataset(root, skip_missing=True)) == 2
    camera = root / 'camera/train/aachen/aachen_000000_000019_camera.json'
    camera.unlink()
    with pytest.raises(FileNotFoundError, match=rf'{camera}.*camera_trainvaltest.zip'):
        dataset(root, cities=['aachen'])
    with pytest.raises(FileNotFoundError, match='leftImg8bit_trainvaltest.zip'):
        dataset(tmp_path / 'nowhere')
    with pytest.raises(ValueError, match='num_classes=5'):
        CityscapesDataset(data_root=str(root), tasks=[dict(type='SemanticTask', num_classes=5)],
                          work_size=WORK, pipeline=[])


def test_bad_inputs_are_named_and_the_run_goes_on(tmp_path, capsys):
    root = tmp_path / 'cs'
    write_cityscapes_fixture(root)
    disparity = root / 'disparity/train/aachen/aachen_000001_000019_disparity.png'
    disparity.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    camera = root / 'camera/train/bochum/bochum_000000_000313_camera.json'
    camera.unlink()
    bad_dtype = root / 'disparity/val/frankfurt/frankfurt_000000_000294_disparity.png'
    cv2.imwrite(str(bad_dtype), np.zeros((64, 128), np.uint8))        # 8-bit: not a disparity
    code = prep_cli().main(['--src', str(root), '--size', '32', '64', '--workers', '1',
                            '--no-progress'])
    out = capsys.readouterr().out
    assert code == 1, out
    assert 'processed 1' in out and 'failed 3' in out
    for path in (disparity, camera, bad_dtype):
        assert str(path) in out, (path, out)
    assert 'expected uint16' in out
    assert (root / 'normal_32x64/train/aachen/aachen_000000_000019_normal.png').is_file()


def test_killed_preparation_resumes_to_identical_bytes(prepared, tmp_path, monkeypatch):
    root = tmp_path / 'cs'
    write_cityscapes_fixture(root)
    original = CityscapesPreparation.process
    calls = []

    def dies_at_three(self, item):
        calls.append(item.key)
        if len(calls) == 3:
            raise KeyboardInterrupt               # Ctrl-C in the middle of the run
        return original(self, item)

    monkeypatch.setattr(CityscapesPreparation, 'process', dies_at_three)
    with pytest.raises(KeyboardInterrupt):
        prepare(root, out=tmp_path / 'resumed')
    assert len(tree(tmp_path / 'resumed')) == 6                # two samples, three files each
    monkeypatch.setattr(CityscapesPreparation, 'process', original)
    again = prepare(root, out=tmp_path / 'resumed')
    assert (again.processed, again.skipped) == (3, 2)
    clean = prepare(root, out=tmp_path / 'clean')
    assert clean.processed == 5
    resumed, reference = tree(tmp_path / 'resumed'), tree(tmp_path / 'clean')
    assert len(reference) == 15 and resumed == reference
    # and the same bytes as the module's run into the dataset root (the fixture is seeded)
    assert all(reference[k] == (prepared[0] / k).read_bytes() for k in reference)


def test_check_finds_outputs_of_another_size(prepared, tmp_path):
    root = copy_of(prepared, tmp_path)
    edge = root / 'edgeTexture_32x64/val/frankfurt/frankfurt_000000_000294_edgeTexture.png'
    cv2.imwrite(str(edge), np.zeros((16, 32), np.uint16))
    prep = CityscapesPreparation(root, size=WORK)
    summary = run_preparation(prep, check_only=True, progress=False)
    assert [key for key, _ in summary.failed] == ['val/frankfurt/frankfurt_000000_000294']
    assert '32x16 pixels' in summary.failed[0][1]
    assert run_preparation(prep, progress=False).processed == 1      # a normal run repairs it
    assert read_image(edge).shape == WORK


def test_help_explains_archives_and_layout(capsys):
    with pytest.raises(SystemExit) as exit_:
        prep_cli().parse_args(['--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for text in ('https://www.cityscapes-dataset.com/downloads/', 'leftImg8bit_trainvaltest.zip',
                 'gtFine_trainvaltest.zip', 'disparity_trainvaltest.zip',
                 'camera_trainvaltest.zip', 'normal_<H>x<W>', 'edgeTexture_<H>x<W>',
                 'leftImg8bit_<H>x<W>', '--size', '--check', '--workers'):
        assert text in out, text


TINY = """
_base_ = '{leaf}'
data_root = '{root}'
model = dict(
    encoder=dict(pretrained=None, model_name='swinv2_tiny_window8_256', img_size=(32, 64),
                 model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)), embed_dim=16),
    decoder=dict(depths=(1, 1, 1, 1), num_heads=(4, 2, 1, 1), img_size=(32, 64),
                 head_channels=8))
param_scheduler = []
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
# a visualizer of its own: mmengine reuses an instance of the same name across Runners
visualizer = dict(name='cityscapes_leaf_visualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
custom_hooks = []
_loader = dict(batch_size=2, num_workers=0, persistent_workers=False,
               dataset=dict(data_root=data_root, work_size=(32, 64)))
train_dataloader = _loader
val_dataloader = _loader
test_dataloader = _loader
"""


def test_leaf_config_trains_and_evaluates(prepared, tmp_path):
    """The shipped S-D-N-E leaf (tiny model and crop) trains 2 iterations on the prepared
    fixture and evaluates every task on val."""
    from mmengine.runner import Runner

    from mtl_adapters.utils import load_config
    cfg_path = tmp_path / 'tiny.py'
    cfg_path.write_text(TINY.format(leaf=LEAF, root=prepared[0]))
    cfg = load_config(str(cfg_path), {
        'train_dataloader.dataset.pipeline.1.geometric.1.height': 32,
        'train_dataloader.dataset.pipeline.1.geometric.1.width': 64,
        'val_dataloader.dataset.pipeline.1.geometric.0.height': 32,
        'val_dataloader.dataset.pipeline.1.geometric.0.width': 64,
        'test_dataloader.dataset.pipeline.1.geometric.0.height': 32,
        'test_dataloader.dataset.pipeline.1.geometric.0.width': 64},
        work_dir=str(tmp_path / 'work'))
    geometric = cfg.train_dataloader.dataset.pipeline[1].geometric
    assert [g['type'] for g in geometric] == ['RandomScale', 'RandomCrop', 'HorizontalFlip']
    assert cfg.val_dataloader.dataset.split == 'val' and cfg.test_dataloader.dataset.split == 'val'
    # the test pipeline's resize to work_size is an exact no-op on the prepared images
    plain, tested = dataset(prepared[0], split='val'), dataset(
        prepared[0], split='val', pipeline=cfg.test_dataloader.dataset.pipeline)
    a, b = plain[0], tested[0]
    assert a['inputs'].equal(b['inputs'])
    for task in ('seg', 'depth', 'normal', 'edge'):
        assert a['data_samples'].get_gt(task).equal(b['data_samples'].get_gt(task)), task
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    for key in ('seg/mIoU', 'depth/rmse', 'depth/abs_rel', 'normal/mean', 'edge/l1'):
        assert math.isfinite(metrics[key]), (key, metrics)
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()


def test_unlabelled_target_needs_only_the_prepared_images(prepared, tmp_path):
    """with_labels=False (the UDA target): gtFine, disparity, camera and the prepared normals
    and edges all deleted, the split still lists and loads every image."""
    from conftest import IMAGES_ONLY, check_images_only, delete_all_but
    root = copy_of(prepared, tmp_path)
    tag = f'leftImg8bit_{WORK[0]}x{WORK[1]}/'
    assert delete_all_but(root, lambda p: p.startswith(('leftImg8bit/', tag))) > 0
    train = sum(1 for split, _, _ in SAMPLES if split == 'train')
    check_images_only(dataset(root, pipeline=IMAGES_ONLY, with_labels=False), train)
    with pytest.raises(FileNotFoundError, match='missing'):      # the labelled dataset needs them
        dataset(root)
