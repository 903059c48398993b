"""SYNTHIA-RAND-CITYSCAPES: the archive's format and quirks, prepared targets, splits, a leaf
config that trains and evaluates."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, tiny_leaf_config
from PIL import Image
from synthia_fixture import FIXTURE_SIZE, FRAMES, write_synthia_fixture

from mtl_adapters.data_generation.prepare import run_preparation
from mtl_adapters.data_generation.synthia import SynthiaPreparation, fix_backslash_names
from mtl_adapters.datasets.synthia import SynthiaDataset, load_synthia_class_map
from mtl_adapters.tasks.edge import texture_edges
from mtl_adapters.utils import read_image

WORK_SIZE = (38, 64)            # a working resolution of half the fixture's 76x128 frames
CLASSES16 = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
             'traffic sign', 'vegetation', 'sky', 'person', 'rider', 'car', 'bus',
             'motorcycle', 'bicycle')
TASKS = [dict(type='SemanticTask', num_classes=16, class_names=CLASSES16),
         dict(type='DepthTask', metric_cfg=dict(max_depth=80.0)), dict(type='NormalTask'),
         dict(type='EdgeTask')]
#: SYNTHIA id -> class index of the SYNTHIA->Cityscapes 16-class protocol (the table UDA code
#: bases use, e.g. ADVENT/ESL `num_classes == 16`); every other id is unlabelled
EXPECTED_16 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11,
               8: 12, 19: 13, 12: 14, 11: 15}
#: SYNTHIA id -> Cityscapes train id, the same 16 classes
# 'cityscapes19-shared16': the 16 in Cityscapes train ids; 'cityscapes19' (DAFormer's
# conversion) also keeps terrain, truck and train
EXPECTED_19_SHARED16 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11,
                        17: 12, 8: 13, 19: 15, 12: 17, 11: 18}
EXPECTED_19 = {**EXPECTED_19_SHARED16, 16: 9, 18: 14, 20: 16}


def _expected(ids: np.ndarray, table: dict) -> np.ndarray:
    out = np.full(ids.shape, 255, np.uint8)
    for k, v in table.items():
        out[ids == k] = v
    return out


def _dataset(root, split='all', pipeline=None, **kw):
    pipeline = pipeline or [dict(type='LoadMultiTaskImageAndAnnotations'),
                            dict(type='PackMultiTaskInputs')]
    kw.setdefault('serialize_data', False)        # mmengine's serialisation runs gc: slow
    return SynthiaDataset(data_root=str(root), split=split, tasks=TASKS, pipeline=pipeline, **kw)


def _prepare(root, out=None, size=WORK_SIZE, **kw):
    return run_preparation(SynthiaPreparation(root, out, size=size), progress=False, **kw)


def _frames(ds) -> list:
    return [ds.get_data_info(i)['frame'] for i in range(len(ds))]


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def _prep_cli():
    """``data_prep/synthia.py`` imported by path (its ``main`` runs in this process)."""
    spec = importlib.util.spec_from_file_location('data_prep_synthia',
                                                  REPO / 'data_prep' / 'synthia.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    """A fixture archive (nested in RAND_CITYSCAPES/, as extracted) and its derived targets."""
    root = tmp_path_factory.mktemp('synthia')
    truth = write_synthia_fixture(root)
    summary = _prepare(root)
    assert summary.ok and summary.processed == len(FRAMES)
    return root, truth


def test_label_files_are_16bit_colour_and_decoded_from_red(prepared):
    """The quirk: GT/LABELS are 16-bit 3-channel PNGs with the class id in R. OpenCV reads it
    (BGR: channel 2); PIL keeps the high byte of each channel and sees only class 0."""
    root, truth = prepared
    frame = FRAMES[1]
    path = root / 'RAND_CITYSCAPES' / 'GT' / 'LABELS' / f'{frame}.png'
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint16 and bgr.shape == FIXTURE_SIZE + (3,)
    np.testing.assert_array_equal(bgr[..., 2], truth[frame]['class_ids'])
    assert not np.asarray(Image.open(path)).any()            # PIL: every class id becomes 0
    seg = _dataset(root)[1]['data_samples'].get_gt('seg')[0].numpy()
    ids = truth[frame]['class_ids']
    np.testing.assert_array_equal(seg, _expected(ids, EXPECTED_16))
    assert (seg != _expected(truth[frame]['instance_ids'], EXPECTED_16)).mean() > 0.5


def test_class_maps():
    """The shipped protocols (class_maps/synthia_to_*.json, read by datasets/class_map.py):
    the SYNTHIA id -> class tables of the literature, and the classes each can evaluate."""
    map16, map19 = load_synthia_class_map('cityscapes16'), load_synthia_class_map('cityscapes19')
    ids = np.arange(256)
    np.testing.assert_array_equal(map16(ids), _expected(ids, EXPECTED_16))
    np.testing.assert_array_equal(map19(ids), _expected(ids, EXPECTED_19))
    shared = load_synthia_class_map('cityscapes19-shared16')
    np.testing.assert_array_equal(shared(ids), _expected(ids, EXPECTED_19_SHARED16))
    assert map16.class_names == CLASSES16 and len(map19.class_names) == 19
    assert map19.class_names[9] == 'terrain' and shared.class_names == map19.class_names
    assert [i for i in range(23) if map16.lut[i] == 255] == [0, 13, 14, 16, 18, 20, 22]
    assert map16.eval_classes == tuple(range(16))
    assert map19.eval_classes == tuple(range(19))
    assert shared.eval_classes == tuple(sorted(EXPECTED_19_SHARED16.values()))  # 16 of 19
    with pytest.raises(FileNotFoundError, match="'cityscapes18' of SYNTHIA"):
        load_synthia_class_map('cityscapes18')


def test_dataset_publishes_the_class_map(prepared):
    """A SemanticTask without names gets the class map's; the metainfo names the evaluated
    classes; 'cityscapes19' labels in Cityscapes train ids (and 'cityscapes19-shared16'
    evaluates only the 16 shared classes)."""
    root, truth = prepared
    tasks = [dict(type='SemanticTask', num_classes=19), dict(type='DepthTask')]
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')]
    ds = SynthiaDataset(data_root=str(root), split='all', tasks=tasks, class_map='cityscapes19',
                        serialize_data=False, pipeline=pipeline)
    assert ds.metainfo['eval_classes'] == {'seg': list(range(19))}
    assert ds.metainfo['classes'][9] == 'terrain' and ds.tasks['seg'].class_names[13] == 'car'
    seg = ds[0]['data_samples'].get_gt('seg')[0].numpy()
    np.testing.assert_array_equal(seg, _expected(truth[FRAMES[0]]['class_ids'], EXPECTED_19))
    assert _dataset(root).metainfo['eval_classes'] == {'seg': list(range(16))}
    ds = SynthiaDataset(data_root=str(root), split='all', tasks=tasks, serialize_data=False,
                        class_map='cityscapes19-shared16', pipeline=pipeline)
    assert ds.metainfo['eval_classes'] == {'seg': sorted(EXPECTED_19_SHARED16.values())}


def test_prepared_targets_in_canonical_units(prepared):
    """Depth from centimetres, normals of the known scene, texture edges of the known image."""
    root, truth = prepared
    ds = _dataset(root)
    assert _frames(ds) == list(FRAMES)
    for i in (0, 5):
        frame = FRAMES[i]
        ref = truth[frame]
        sample = ds[i]['data_samples']
        np.testing.assert_array_equal(ds[i]['inputs'].permute(1, 2, 0).numpy(), ref['rgb'])
        depth = sample.get_gt('depth')[0].numpy()
        np.testing.assert_allclose(depth, ref['depth_m'], rtol=0, atol=1e-5)
        assert depth[0, 0] == 0 and depth[0, -1] == 0           # 65535 and 0: invalid
        assert depth[5, 60] == pytest.approx(20.0 + i)         # the wall, metres
        normal = sample.get_gt('normal').permute(1, 2, 0).numpy()  # resized to 76x128
        w = FIXTURE_SIZE[1]
        for mask, n_true in ((ref['wall'], (0, 0, -1)), (ref['ground'], (0, -1, 0))):
            inner = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            inner[:, :6] = inner[:, -6:] = False
            inner[:6] = inner[-6:] = False               # no normal on the image border
            angle = np.degrees(np.arccos(np.clip(normal[inner] @ np.array(n_true), -1, 1)))
            assert inner.sum() > 300 and angle.max() < 2.0, angle.max()
        assert not normal[0, 0].any()                         # no normal at invalid depth
        edge = sample.get_gt('edge')[0].numpy()
        ground = cv2.erode(ref['ground'].astype(np.uint8), np.ones((15, 15), np.uint8))
        assert edge[ground.astype(bool)].max() < 1e-6         # flat grey: no texture edge
        step = ref['wall'].copy()
        step[:, :w // 2 - 2] = step[:, w // 2 + 2:] = False
        step[:8] = False
        assert edge[step].min() > 0.01                        # the colour step on the wall
    # the stored edge file is texture_edges of the RGB at the working resolution
    raw = read_image(root / 'derived' / 'edge' / f'{FRAMES[0]}.png')
    small = cv2.resize(truth[FRAMES[0]]['rgb'], WORK_SIZE[::-1], interpolation=cv2.INTER_AREA)
    assert raw.dtype == np.uint16 and raw.shape == WORK_SIZE
    np.testing.assert_allclose(raw / 65535.0, texture_edges(small), atol=0.5 / 65535)
    raw = read_image(root / 'derived' / 'normal' / f'{FRAMES[0]}.png')
    assert raw.dtype == np.uint16 and raw.shape == WORK_SIZE + (3,)
    assert (raw[0, 0] == 0).all()                          # (0, 0, 0): no normal
    meta = json.loads((root / 'derived' / 'meta.json').read_text())
    assert meta['size_hw'] == list(WORK_SIZE) and meta['frames'] == len(FRAMES)
    assert meta['K'][0][0] == pytest.approx(532.740352 * 64 / 1280)


def test_splits_roots_and_config_checks(prepared, tmp_path):
    root, _ = prepared
    assert _frames(_dataset(root, 'val')) == ['0000009']
    assert len(_dataset(root, 'train')) == 5 and len(_dataset(root, 'all')) == 6
    assert len(_dataset(root, frames=['0000002'])) == 1
    # data_root may be the archive's folder itself (derived_dir then given absolute)
    ds = _dataset(root / 'RAND_CITYSCAPES', derived_dir=str(root / 'derived'))
    assert len(ds) == 6
    with pytest.raises(ValueError, match=r"num_classes=16\) does not fit class map 'cityscapes19"):
        _dataset(root, class_map='cityscapes19')
    with pytest.raises(ValueError, match='split'):
        _dataset(root, 'test')
    with pytest.raises(FileNotFoundError, match='SYNTHIA_RAND_CITYSCAPES.rar'):
        _dataset(tmp_path)


def test_backslash_names_are_explained_and_fixed(tmp_path):
    """Some unrar builds write the archive's Windows paths as flat names ('RGB\\0000000.png')."""
    write_synthia_fixture(tmp_path / 'x', frames=FRAMES[:2], nested=False)
    flat = tmp_path / 'flat'
    flat.mkdir()
    for path in (tmp_path / 'x').rglob('*.png'):
        os.replace(path, flat / '\\'.join(path.relative_to(tmp_path / 'x').parts))
    with pytest.raises(FileNotFoundError, match='--fix-backslash-names'):
        _prepare(flat)
    assert fix_backslash_names(flat) == 8 and fix_backslash_names(flat) == 0
    assert _prepare(flat).processed == 2


def test_bad_inputs_are_named_and_the_run_goes_on(tmp_path, capsys):
    truth = write_synthia_fixture(tmp_path)
    base = tmp_path / 'RAND_CITYSCAPES'
    corrupt = base / 'GT' / 'LABELS' / f'{FRAMES[1]}.png'
    corrupt.write_bytes(corrupt.read_bytes()[:200])          # cut short, as by a bad unrar
    eight_bit = base / 'GT' / 'LABELS' / f'{FRAMES[2]}.png'   # re-saved by PIL: 8-bit
    Image.fromarray(truth[FRAMES[2]]['class_ids'].astype(np.uint8)).save(eight_bit)
    gone = base / 'Depth' / 'Depth' / f'{FRAMES[3]}.png'
    gone.unlink()
    cli = _prep_cli()
    code = cli.main(['--src', str(tmp_path), '--size', *map(str, WORK_SIZE), '--workers', '1',
                     '--no-progress'])
    out = capsys.readouterr().out
    assert code == 1
    assert 'processed 3' in out and 'failed 3' in out
    for path in (corrupt, eight_bit, gone):
        assert str(path) in out
    assert 'expected a 16-bit 3-channel' in out
    assert sorted(p.stem for p in (tmp_path / 'derived' / 'normal').glob('*.png')) == \
        [FRAMES[0], FRAMES[4], FRAMES[5]]
    # the dataset names the first missing file and the fix; skip_missing drops those frames
    with pytest.raises(FileNotFoundError, match=r'data_prep/synthia\.py'):
        _dataset(tmp_path)
    assert len(_dataset(tmp_path, skip_missing=True)) == 3
    code = cli.main(['--src', str(tmp_path), '--size', *map(str, WORK_SIZE), '--check',
                     '--no-progress'])
    assert code == 1 and 'skipped 3 (already done), failed 3' in capsys.readouterr().out


def test_killed_and_resumed_gives_identical_bytes(tmp_path, monkeypatch):
    """At the frames' own size (the default for real data: nothing is resized)."""
    truth = write_synthia_fixture(tmp_path)
    assert _prepare(tmp_path, tmp_path / 'clean', FIXTURE_SIZE).ok
    original = SynthiaPreparation.process
    calls = []

    def dies_at_four(self, item):
        calls.append(item.key)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, item)

    monkeypatch.setattr(SynthiaPreparation, 'process', dies_at_four)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tmp_path, tmp_path / 'resumed', FIXTURE_SIZE, workers=1)
    assert len(_tree(tmp_path / 'resumed')) == 6               # 3 frames x 2 files, no meta
    monkeypatch.setattr(SynthiaPreparation, 'process', original)
    again = _prepare(tmp_path, tmp_path / 'resumed', FIXTURE_SIZE, workers=1)
    assert (again.processed, again.skipped) == (3, 3)
    clean, resumed = _tree(tmp_path / 'clean'), _tree(tmp_path / 'resumed')
    assert sorted(clean) == sorted(resumed) and len(clean) == 2 * len(FRAMES) + 1
    assert all(clean[k] == resumed[k] for k in clean)
    edge = read_image(tmp_path / 'clean' / 'edge' / f'{FRAMES[2]}.png')
    np.testing.assert_allclose(edge / 65535.0, texture_edges(truth[FRAMES[2]]['rgb']),
                               atol=0.5 / 65535)
    # another working size is not "done": those outputs are made again
    assert _prepare(tmp_path, tmp_path / 'clean').processed == len(FRAMES)


def test_leaf_config_trains_and_evaluates(prepared, tmp_path):
    """The paper-setting leaf (tiny model overrides) trains 2 iterations on the fixture and
    evaluates on its val frame."""
    from conftest import load_tool
    root, _ = prepared
    leaf = REPO / 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_synthia-256x512_sdne.py'
    cfg = tmp_path / 'tiny_synthia.py'
    cfg.write_text(tiny_leaf_config(leaf, 'synthia_leaf_visualizer', root,
                                    train_dataset="split='all'"))
    runner = load_tool('train').main([
        str(cfg), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'train_dataloader.dataset.pipeline.1.geometric.1.height=32',
        'train_dataloader.dataset.pipeline.1.geometric.1.width=64'])
    assert runner.iter == 2 and (tmp_path / 'work' / 'iter_2.pth').is_file()
    scalars = [json.loads(line) for line in
               next((tmp_path / 'work').rglob('vis_data/scalars.json')).read_text().splitlines()]
    val = [s for s in scalars if 'seg/mIoU' in s]
    assert len(val) == 1, scalars
    for key in ('seg/mIoU', 'depth/rmse', 'normal/mean', 'edge/l1'):
        assert np.isfinite(val[0][key]), key
    shutil.rmtree(tmp_path / 'work')


def test_unlabelled_target_needs_only_the_images(prepared, tmp_path):
    """with_labels=False: labels, depth and the derived normals/edges deleted, every frame
    still loads (its RGB only)."""
    from conftest import IMAGES_ONLY, check_images_only, delete_all_but
    root = tmp_path / 'synthia'
    shutil.copytree(prepared[0], root)
    assert delete_all_but(root, lambda p: '/RGB/' in f'/{p}') > 0
    check_images_only(_dataset(root, pipeline=IMAGES_ONLY, with_labels=False), len(FRAMES))
    with pytest.raises(FileNotFoundError, match='missing'):
        _dataset(root)
