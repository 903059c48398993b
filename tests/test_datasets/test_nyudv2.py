"""NYUDv2: the MATLAB 7.3 .mat -> prepared PNGs -> canonical ground truth; class maps; the
Eigen crop; failures named while the run goes on; killed and resumed to identical bytes; the
paper-setting leaf trains and evaluates; the domain-generalisation leaf reads NYUDv2 test."""
import importlib.util
import json

import numpy as np
import pytest
from conftest import REPO, load_tool, tiny_leaf_config
from mmengine.config import Config
from nyudv2_fixture import NYU40, PLANE_NORMAL, SIZE, write_nyudv2_fixture

from mtl_adapters.data_generation.nyudv2 import NYUDv2Preparation
from mtl_adapters.data_generation.prepare import encode_png, run_preparation
from mtl_adapters.datasets.nyudv2 import (EIGEN_CROP, NYU_INTRINSICS, NYUDv2Dataset, crop_box,
                                          load_class_map, nyu_intrinsics)
from mtl_adapters.utils import read_image

TASKS = [dict(type='SemanticTask', num_classes=40), 'DepthTask', 'NormalTask', 'EdgeTask']
FOLDERS = ('rgb', 'label40', 'depth', 'normal', 'edge')
LEAF = REPO / 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_nyudv2-480x640_sdne.py'
DG_LEAF = REPO / ('configs/vtagml/'
                  'vtagml_swinv2-base_1xb8-40k_taskonomy-256x256-nyudv2-240x320_sdne.py')


def _prep(src, out, **kwargs):
    return NYUDv2Preparation(src / 'nyu_depth_v2_labeled.mat', src / 'splits.mat',
                             src / 'classMapping40.mat', out, **kwargs)


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def _dataset(root, split='train', tasks=TASKS, **kwargs):
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')]
    return NYUDv2Dataset(data_root=str(root), split=split, tasks=tasks, pipeline=pipeline,
                         **kwargs)


def _data_prep_cli():
    """``data_prep/nyudv2.py`` imported by path."""
    spec = importlib.util.spec_from_file_location('nyudv2_cli', REPO / 'data_prep/nyudv2.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    src = tmp_path_factory.mktemp('nyudv2')
    truth = write_nyudv2_fixture(src)
    summary = run_preparation(_prep(src, src / 'prepared'), progress=False)
    assert summary.ok and summary.processed == 6
    return src, src / 'prepared', truth


def test_inputs_are_in_the_released_formats(prepared):
    import h5py
    import scipy.io
    src, _, truth = prepared
    mat = src / 'nyu_depth_v2_labeled.mat'
    assert mat.read_bytes()[:19] == b'MATLAB 7.3 MAT-file'
    with pytest.raises(NotImplementedError):           # v7.3 is HDF5: scipy refuses it
        scipy.io.loadmat(str(mat))
    with h5py.File(mat, 'r') as f:                     # MATLAB's axes, reversed
        h, w = SIZE
        assert f['images'].shape == (6, 3, w, h) and f['images'].dtype == np.uint8
        assert f['depths'].shape == (6, w, h) and f['depths'].dtype == np.float32
        assert f['labels'].shape == (6, w, h) and f['labels'].dtype == np.uint16
        np.testing.assert_array_equal(f['images'][2].transpose(2, 1, 0), truth[3]['rgb'])
    splits = scipy.io.loadmat(str(src / 'splits.mat'))
    assert splits['trainNdxs'].shape == (4, 1) and splits['trainNdxs'].min() == 1
    assert scipy.io.loadmat(str(src / 'classMapping40.mat'))['mapClass'].shape == (1, 894)


def test_prepared_files_decode_to_known_values(prepared):
    from mtl_adapters.tasks.edge import texture_edges
    _, out, truth = prepared
    for folder, (dtype, channels) in zip(FOLDERS, [('uint8', 3), ('uint8', 1), ('uint16', 1),
                                                   ('uint8', 3), ('uint16', 1)]):
        array = read_image(out / folder / '0004.png')
        shape = SIZE + ((channels,) if channels > 1 else ())
        assert array.dtype == dtype and array.shape == shape
    assert (out / 'splits/train.txt').read_text() == '0001\n0003\n0004\n0006\n'
    assert (out / 'splits/test.txt').read_text() == '0002\n0005\n'
    ds = _dataset(out)
    assert len(ds) == 4 and ds.class_map.name == 'nyu40'
    assert ds.tasks['seg'].class_names == NYU40          # named by the dataset's class map
    item = ds[0]                                          # frame 0001: the tilted plane
    ref = truth[1]
    np.testing.assert_array_equal(item['inputs'].permute(1, 2, 0).numpy(), ref['rgb'])
    sample = item['data_samples']
    seg = sample.get_gt('seg')[0].numpy()
    np.testing.assert_array_equal(seg, np.where(ref['nyu40'] > 0, ref['nyu40'] - 1, 255))
    assert (seg == 255).any() and seg[ref['raw'] == 5].tolist() == [4] * (ref['raw'] == 5).sum()
    depth = sample.get_gt('depth')[0].numpy()
    np.testing.assert_allclose(depth, ref['depth'], atol=0.5e-3 + 1e-6)   # millimetres
    normal = sample.get_gt('normal').permute(1, 2, 0).numpy()
    top, bottom, left, right = crop_box(*SIZE)
    inner = normal[top + 1:bottom - 1, left + 1:right - 1]
    angle = np.degrees(np.arccos(np.clip(inner @ PLANE_NORMAL, -1, 1)))
    assert angle.max() < 1.0                              # 8-bit encoding: < 0.5 deg
    outside = np.ones(SIZE, bool)
    outside[top:bottom, left:right] = False
    assert not normal[outside].any()                      # blank outside the Eigen crop
    np.testing.assert_allclose(sample.get_gt('edge')[0].numpy(), texture_edges(ref['rgb']),
                               atol=1 / 65535 + 1e-7)
    test = _dataset(out, split='test')
    assert [test.get_data_info(i)['sample'] for i in range(len(test))] == ['0002', '0005']
    assert (test[0]['data_samples'].get_gt('depth')[0, 0, :3] == 0).all()   # no depth: 0


def test_class_maps():
    nyu40 = load_class_map('nyu40')
    assert nyu40.class_names == tuple(NYU40)
    assert nyu40.lut[0] == 255 and nyu40.lut[1:41].tolist() == list(range(40))
    nyu13 = load_class_map('nyu13')
    assert len(nyu13.class_names) == 13
    by_name = {c: nyu13.class_names[nyu13.lut[i]] for i, c in enumerate(NYU40, start=1)}
    assert (by_name['door'], by_name['books'], by_name['television'], by_name['cabinet'],
            by_name['otherprop']) == ('wall', 'books', 'tv', 'furniture', 'objects')
    t17 = load_class_map('taskonomy17')
    assert t17.class_names[:3] == ('background', 'bottle', 'chair') and len(t17.class_names) == 17
    lut = {c: t17.lut[i] for i, c in enumerate(NYU40, start=1)}
    assert (lut['wall'], lut['chair'], lut['sofa'], lut['table'], lut['books'],
            lut['television'], lut['refridgerator']) == (0, 2, 3, 6, 14, 8, 13)
    assert lut['desk'] == lut['pillow'] == lut['otherprop'] == t17.lut[0] == 255
    np.testing.assert_array_equal(t17(np.array([[0, 5], [40, 1]])), [[255, 2], [255, 0]])


def test_class_map_choice_and_errors(prepared, tmp_path):
    _, out, truth = prepared
    ds = _dataset(out, tasks=[dict(type='SemanticTask', num_classes=17)],
                  class_map='taskonomy17')
    seg = ds[0]['data_samples'].get_gt('seg')[0].numpy()
    nyu40 = truth[1]['nyu40']
    assert (seg[nyu40 == 5] == 2).all() and (seg[nyu40 == 1] == 0).all()       # chair, wall
    assert (seg[(nyu40 == 0) | (nyu40 == 40)] == 255).all()
    with pytest.raises(ValueError, match="does not fit class map 'nyu13'"):
        _dataset(out, class_map='nyu13')
    spec = json.loads((REPO / 'mtl_adapters/datasets/class_maps/nyu40_to_nyu13.json').read_text())
    del spec['nyu40_to_class']['desk']
    (tmp_path / 'mine.json').write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"missing \['desk'\]"):
        load_class_map(str(tmp_path / 'mine.json'))
    with pytest.raises(ValueError, match='unknown NYUDv2 class map'):
        load_class_map('nyu41')


def test_eigen_crop_and_camera():
    import torch

    from mtl_adapters.tasks import DepthTask
    assert crop_box(480, 640) == (45, 471, 41, 601)
    mask = DepthTask(metric_cfg=dict(crop=EIGEN_CROP))._eval_mask(torch.ones(1, 480, 640))[0]
    rows, cols = np.nonzero(mask.any(1).numpy())[0], np.nonzero(mask.any(0).numpy())[0]
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (45, 471, 41, 601)
    cfg = Config.fromfile(str(LEAF))
    depth = cfg.test_dataloader.dataset.tasks[1]
    assert tuple(depth.metric_cfg.crop) == EIGEN_CROP and depth.metric_cfg.per_image is False
    assert depth.metric_cfg.max_depth == 10.0
    K = nyu_intrinsics()
    assert (K[0, 0], K[1, 1], K[0, 2], K[1, 2]) == NYU_INTRINSICS


def test_bad_inputs_are_named_and_the_run_goes_on(tmp_path, capsys):
    src = tmp_path / 'src'
    write_nyudv2_fixture(src, bad_label_frame=3)
    normals = tmp_path / 'normals'
    normals.mkdir()
    mine = np.zeros(SIZE + (3,), np.uint8)
    mine[..., 2] = 255                                  # n = (-1, -1, 1): any 8-bit RGB
    for i in (1, 3, 4, 5, 6):                           # 0002.png is missing
        (normals / f'{i:04d}.png').write_bytes(encode_png(mine))
    cli = _data_prep_cli()
    args = ['--src', str(src), '--out', str(tmp_path / 'out'), '--workers', '1', '--no-progress']
    assert cli.main(args + ['--check']) == 1 and not (tmp_path / 'out').exists()   # writes none
    capsys.readouterr()
    assert cli.main(args + ['--normals-dir', str(normals)]) == 1
    log = capsys.readouterr().out
    assert 'processed 4, skipped 0 (already done), failed 2' in log
    assert f'FAILED 0002: missing input file {normals / "0002.png"}' in log
    assert f'FAILED 0003: DataFileError: {src / "nyu_depth_v2_labeled.mat"}, frame 3: label ' \
           'ids [900] above the 894 classes' in log
    assert sorted(p.name for p in (tmp_path / 'out/normal').iterdir()) == \
        ['0001.png', '0004.png', '0005.png', '0006.png']
    np.testing.assert_array_equal(read_image(tmp_path / 'out/normal/0001.png'), mine)
    (src / 'splits.mat').unlink()
    assert cli.main(args) == 2
    assert 'indoor_seg_sup/splits.mat' in capsys.readouterr().err        # where to get it


def test_killed_and_resumed_gives_identical_bytes(tmp_path, monkeypatch):
    src = tmp_path / 'src'
    write_nyudv2_fixture(src)
    assert run_preparation(_prep(src, tmp_path / 'clean'), progress=False).ok
    original = NYUDv2Preparation.process
    calls = []

    def dies_at_four(self, item):
        calls.append(item.key)
        if len(calls) == 4:
            raise KeyboardInterrupt                     # Ctrl-C in the middle of the run
        return original(self, item)

    monkeypatch.setattr(NYUDv2Preparation, 'process', dies_at_four)
    with pytest.raises(KeyboardInterrupt):
        run_preparation(_prep(src, tmp_path / 'resumed'), workers=1, progress=False)
    partial = _tree(tmp_path / 'resumed')
    assert len(partial) == 3 * len(FOLDERS) and not any(k.endswith('.tmp') for k in partial)
    monkeypatch.setattr(NYUDv2Preparation, 'process', original)
    again = run_preparation(_prep(src, tmp_path / 'resumed'), workers=1, progress=False)
    assert (again.processed, again.skipped) == (3, 3)
    clean, resumed = _tree(tmp_path / 'clean'), _tree(tmp_path / 'resumed')
    assert sorted(clean) == sorted(resumed) and len(clean) == 6 * len(FOLDERS) + 2
    assert all(clean[k] == resumed[k] for k in clean)


def test_leaf_config_trains_and_evaluates(prepared, tmp_path):
    """The NYUDv2 paper-setting leaf (tiny model overrides) trains 2 iterations on the fixture
    and evaluates on its 2 test frames."""
    _, out, _ = prepared
    cfg = tmp_path / 'tiny_nyudv2.py'
    cfg.write_text(tiny_leaf_config(LEAF, 'nyudv2_leaf_visualizer', out))
    runner = load_tool('train').main([
        str(cfg), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'train_dataloader.dataset.pipeline.1.geometric.0.size=(32,48)'])
    assert runner.iter == 2 and (tmp_path / 'work' / 'iter_2.pth').is_file()
    scalars = [json.loads(line) for line in
               next((tmp_path / 'work').rglob('vis_data/scalars.json')).read_text().splitlines()]
    val = [s for s in scalars if 'seg/mIoU' in s]
    assert len(val) == 1, scalars
    for key in ('seg/mIoU', 'depth/rmse', 'depth/d1', 'normal/mean', 'edge/l1'):
        assert np.isfinite(val[0][key]), key
    assert 'seg/IoU.wall' in val[0]                     # class names from the class map


def test_domain_generalisation_leaf_reads_nyudv2_test(prepared):
    from mtl_adapters.registry import DATASETS
    _, out, truth = prepared
    cfg = Config.fromfile(str(DG_LEAF))
    assert cfg.train_dataloader.dataset.type == 'TaskonomyDataset'
    assert cfg.model.tasks[0].num_classes == cfg.test_dataloader.dataset.tasks[0].num_classes
    ds = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(out)))
    assert ds.class_map.name == 'taskonomy17' and len(ds) == 2
    sample = ds[0]['data_samples']                      # frame 0002, resized to 240x320
    seg = sample.get_gt('seg')[0].numpy()
    assert seg.shape == (240, 320) and set(np.unique(seg)) <= set(range(17)) | {255}
    assert tuple(sample.get_gt('depth').shape) == (1, 240, 320)


def test_split_file_rows_have_one_cell(tmp_path):
    """One sample id per line; a line with more cells is an error naming file, line and
    counts (never an id with a space in it, nor a silently cut line)."""
    from mtl_adapters.datasets.nyudv2 import read_split
    path = tmp_path / 'train.txt'
    path.write_text('0001\n\n0002\n')
    assert read_split(path) == ['0001', '0002']
    path.write_text('0001\n0002 0003\n')
    with pytest.raises(ValueError, match=r"train.txt, line 2: 2 cells, expected 1"):
        read_split(path)


def test_unlabelled_target_needs_only_the_images(prepared, tmp_path):
    """with_labels=False: label40, depth, normal and edge deleted, the split still loads."""
    import shutil
    from conftest import IMAGES_ONLY, check_images_only, delete_all_but
    root = tmp_path / 'nyudv2'
    shutil.copytree(prepared[1], root)
    assert delete_all_but(root, lambda p: p.startswith(('rgb/', 'splits/'))) > 0
    check_images_only(NYUDv2Dataset(data_root=str(root), split='train', tasks=TASKS,
                                    pipeline=IMAGES_ONLY, with_labels=False), 4)
    with pytest.raises(FileNotFoundError, match='missing'):
        _dataset(root)
