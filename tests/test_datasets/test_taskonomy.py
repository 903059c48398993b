"""Taskonomy format: naming quirks, split CSVs, decoding, clear errors for bad files."""
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import TEST_TASKS, tiny_leaf_config, write_taskonomy_fixture

from mtl_adapters.datasets import TaskonomyDataset, read_split_csv, taskonomy_path
from mtl_adapters.datasets.taskonomy import decode_taskonomy
from mtl_adapters.utils import DataFileError, write_png


def _dataset(root, split='train', **kw):
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations', tasks=TEST_TASKS),
                dict(type='PackMultiTaskInputs', tasks=TEST_TASKS)]
    return TaskonomyDataset(data_root=root, split_file='splits.csv', split=split,
                            tasks=TEST_TASKS, pipeline=pipeline, **kw)


def test_split_csv_cr_only(tmp_path):
    write_taskonomy_fixture(str(tmp_path), buildings=('a', 'b', 'c', 'd'), views=1)
    raw = (tmp_path / 'splits.csv').read_bytes()
    assert b'\r' in raw and b'\n' not in raw          # the official CR-only line endings
    assert read_split_csv(tmp_path / 'splits.csv') == dict(train=['a', 'b'], val=['c'],
                                                           test=['d'])
    (tmp_path / 'crlf.csv').write_bytes(raw.replace(b'\r', b'\r\n'))
    assert read_split_csv(tmp_path / 'crlf.csv')['train'] == ['a', 'b']


def test_round_trip_with_quirks(tmp_path):
    truth = write_taskonomy_fixture(str(tmp_path), buildings=('b0', 'b1', 'b2'), views=2,
                                    size=(64, 64), seg_size=(32, 32))
    # the semantic quirk: folder segment_semantic, files domain_segmentsemantic
    assert (tmp_path / 'segment_semantic' / 'b0' /
            'point_0_view_0_domain_segmentsemantic.png').is_file()
    assert (tmp_path / 'depth_zbuffer' / 'b0' / 'point_1_view_0_domain_depth_zbuffer.png').is_file()
    ds = _dataset(str(tmp_path))
    assert len(ds) == 2                                   # building b0, two views
    sample = ds[1]['data_samples']
    ref = truth[('b0', 1)]
    assert tuple(ds[1]['inputs'].shape) == (3, 64, 64)
    np.testing.assert_array_equal(ds[1]['inputs'].permute(1, 2, 0).numpy(), ref['rgb'])
    # 32x32 semantic maps are resized (nearest) to the image: every 2x2 block is one label
    seg = sample.get_gt('seg')[0].numpy()
    np.testing.assert_array_equal(seg[::2, ::2], ref['seg'])
    np.testing.assert_array_equal(seg[1::2, 1::2], ref['seg'])
    depth = sample.get_gt('depth')[0].numpy()
    np.testing.assert_allclose(depth, ref['depth'], atol=1 / 1024)
    assert depth[-1, -1] == 0                             # 65535 -> invalid
    normal = sample.get_gt('normal').permute(1, 2, 0).numpy()
    assert np.degrees(np.arccos(np.clip((normal * ref['normal']).sum(-1), -1, 1))).max() < 1.0
    np.testing.assert_allclose(sample.get_gt('edge')[0].numpy(), ref['edge'], atol=1e-4)


def test_tasks_are_declared_once(tmp_path):
    """The dataset builds the tasks once; the pipeline lists none and reads the dataset's;
    the metric reads them from the dataset's metainfo and evaluates what the model predicts."""
    from mtl_adapters.evaluation import MultiTaskMetric
    write_taskonomy_fixture(str(tmp_path))
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations'),
                dict(type='MultiTaskAlbu', geometric=[dict(type='HorizontalFlip', p=1.0)]),
                dict(type='PackMultiTaskInputs')]
    ds = TaskonomyDataset(data_root=str(tmp_path), split_file='splits.csv', split='train',
                          tasks=TEST_TASKS, pipeline=pipeline)
    assert list(ds.metainfo['tasks']) == ['seg', 'depth', 'normal', 'edge']
    assert ds.get_data_info(0)['tasks'] is ds.get_data_info(1)['tasks'] is ds.tasks
    sample = ds[0]['data_samples']
    assert sample.get_gt('normal').shape[0] == 3 and sample.get_gt('seg').dtype == torch.long
    metric = MultiTaskMetric()
    with pytest.raises(KeyError, match='dataset_meta'):
        metric.tasks
    metric.dataset_meta = ds.metainfo                    # what mmengine's loops do
    sample.set_pred('depth', sample.get_gt('depth'))    # a model narrowed to one task
    metric.process({}, [sample])
    results = metric.compute_metrics(metric.results)
    assert results['depth/rmse'] == 0 and not any(k.startswith('seg/') for k in results)
    with pytest.raises(KeyError, match='PackMultiTaskInputs'):
        from mtl_adapters.datasets.transforms import PackMultiTaskInputs
        PackMultiTaskInputs()(dict(img=np.zeros((4, 4, 3), np.uint8), gt={'depth': None}))


def test_missing_label_names_the_file(tmp_path):
    write_taskonomy_fixture(str(tmp_path))
    victim = taskonomy_path(tmp_path, 'normal', 'bldA', 1, 0, 'normal')
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=str(victim)):
        _dataset(str(tmp_path))
    ds = _dataset(str(tmp_path), skip_missing=True)       # opt-in: drop the view, keep going
    assert len(ds) == 2


@pytest.mark.parametrize('what', ['rgb', 'depth_zbuffer'])
def test_corrupt_or_vanished_file_names_the_file(tmp_path, what):
    write_taskonomy_fixture(str(tmp_path))
    ds = _dataset(str(tmp_path))
    domain = 'rgb' if what == 'rgb' else 'depth_zbuffer'
    victim = taskonomy_path(tmp_path, what, 'bldA', 0, 0, domain)
    victim.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    with pytest.raises(DataFileError, match=str(victim)):
        ds[0]
    os.remove(victim)
    with pytest.raises(DataFileError, match='missing file.*' + str(victim)):
        ds[0]


def test_bad_split_and_root_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match='rgb'):
        _dataset(str(tmp_path))
    write_taskonomy_fixture(str(tmp_path))
    shutil.rmtree(tmp_path / 'rgb' / 'bldC')
    with pytest.raises(FileNotFoundError, match='bldC'):
        _dataset(str(tmp_path), split='test')
    with pytest.raises(ValueError, match='split'):
        _dataset(str(tmp_path), split='training')


@pytest.mark.parametrize('rows,message', [
    ('a,True,False,False\rb,False,True,False\r', None),        # true/false accepted
    ('a,1,0,0\ra,1,0,0\r', r"row 3: building 'a' is listed again \(first at row 2\)"),
    ('a,1,1,0\r', r"row 2: building 'a' is in \['train', 'val'\]"),
    ('a,yes,0,0\r', r"row 2, column 'train': 'yes' is not a split flag"),
    ('a,1,0,0\r,,,\rb,0,1,0\r', None),                        # an empty row is blank
    # a row with too few or too many cells: never dropped or truncated
    ('a,1,0,0\rb,0,1\r',
     r"splits.csv, row 3: 3 cells, expected 4 \(the header id,train,val,test\), got 'b,0,1'"),
    ('a,1,0,0,1\r', r"row 2: 5 cells, expected 4"),
    (',1,0,0\r', r"row 2: the id cell is empty"),
])
def test_split_csv_values_are_validated(tmp_path, rows, message):
    path = tmp_path / 'splits.csv'
    path.write_bytes(('id,train,val,test\r' + rows).encode())
    if message is None:
        assert read_split_csv(path) == dict(train=['a'], val=['b'], test=[])
    else:
        with pytest.raises(ValueError, match=message):
            read_split_csv(path)


def _rewrite(root, folder, domain, array):
    """Replace building bldA's view 0 of one task with ``array`` (as a PNG)."""
    path = taskonomy_path(root, folder, 'bldA', 0, 0, domain)
    write_png(path, array)
    return path


@pytest.mark.parametrize('folder,domain,array,message', [
    # 8-bit depth would be divided by 512 as if it were 16-bit
    ('depth_zbuffer', 'depth_zbuffer', np.full((64, 64), 200, np.uint8),
     'found uint8 values, expected uint16 for depth'),
    # a 16-bit normal map would be decoded as 8-bit
    ('normal', 'normal', np.full((64, 64, 3), 30000, np.uint16),
     'found uint16 values, expected uint8 for normal'),
    # a grayscale normal map used to crash inside the loss
    ('normal', 'normal', np.full((64, 64), 128, np.uint8), 'found 1 channel.*expected 3 or 4'),
    ('edge_texture', 'edge_texture', np.zeros((64, 64), np.uint8), 'expected uint16 for edge'),
    # labels beyond num_classes (5 here) used to become "ignore" silently
    ('segment_semantic', 'segmentsemantic', np.full((64, 64), 9, np.uint8),
     r'class values \[9\].*above the 5 classes'),
    # another aspect ratio used to be stretched onto the image
    ('segment_semantic', 'segmentsemantic', np.ones((32, 64), np.uint8), '64x32 but its image'),
])
def test_label_files_are_validated(tmp_path, folder, domain, array, message):
    write_taskonomy_fixture(str(tmp_path))
    path = _rewrite(tmp_path, folder, domain, array)
    ds = _dataset(str(tmp_path))
    with pytest.raises(DataFileError, match=message) as err:
        ds[0]
    assert str(path) in str(err.value)


def test_out_of_range_classes_ignored_only_when_asked(tmp_path):
    from mtl_adapters.tasks import build_tasks
    seg = build_tasks([dict(type='SemanticTask', num_classes=5,
                            out_of_range_ignore=True)])['seg']
    raw = np.array([[0, 1, 5, 6, 9]], np.uint8)
    assert decode_taskonomy(seg, raw).tolist() == [[255, 0, 4, 255, 255]]
    # a single-channel label stored as three equal channels decodes the same
    assert decode_taskonomy(seg, np.stack([raw] * 3, -1)).tolist() == [[255, 0, 4, 255, 255]]


# ------------------------------------------------------------- standalone loading (no dataset)
def test_standalone_loader_reads_taskonomy_format(tmp_path):
    """LoadMultiTaskImageAndAnnotations outside a dataset (gt_format='taskonomy') decodes with
    datasets/taskonomy.py's table; a task type without an entry is an error naming it."""
    from mtl_adapters.datasets.transforms import LoadMultiTaskImageAndAnnotations
    from mtl_adapters.tasks import BaseTask
    truth = write_taskonomy_fixture(str(tmp_path), views=1)
    names = dict(seg=('segment_semantic', 'segmentsemantic'), depth=('depth_zbuffer',) * 2,
                 normal=('normal',) * 2, edge=('edge_texture',) * 2)
    results = dict(img_path=str(taskonomy_path(tmp_path, 'rgb', 'bldA', 0, 0, 'rgb')),
                   task_paths={k: str(taskonomy_path(tmp_path, f, 'bldA', 0, 0, d))
                               for k, (f, d) in names.items()})
    out = LoadMultiTaskImageAndAnnotations(tasks=TEST_TASKS)(dict(results))
    ref = truth[('bldA', 0)]
    np.testing.assert_array_equal(out['gt']['seg'], ref['seg'])
    np.testing.assert_allclose(out['gt']['depth'], ref['depth'], atol=1 / 1024)

    class Albedo(BaseTask):
        name = 'albedo'

        def default_loss(self):
            return dict(type='MaskedL1Loss')

    with pytest.raises(ValueError, match='Albedo.*no Taskonomy format'):
        LoadMultiTaskImageAndAnnotations(tasks=[Albedo()])(dict(results))


# -------------------------------------------------------- data_prep/taskonomy.py (the index)
def _prep_main(argv):
    """data_prep/taskonomy.py's main, imported by path."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / 'data_prep' / 'taskonomy.py'
    spec = importlib.util.spec_from_file_location('data_prep_taskonomy', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def copy_root(tmp_path_factory):
    """A tiny Taskonomy copy in the Omnidata tool's layout, indexed once (do not modify)."""
    from taskonomy_prep_fixture import write_taskonomy_copy
    root = tmp_path_factory.mktemp('taskonomy_copy')
    truth = write_taskonomy_copy(root)
    assert _prep_main(['--src', str(root), '--workers', '1', '--no-progress']) == 0
    return root, truth


def test_prep_indexes_splits_without_the_bad_building(copy_root, capsys):
    import json
    from taskonomy_prep_fixture import MISSING_BAD, SPLITS
    root, truth = copy_root
    raw = (root / 'splits' / 'train_val_test_tiny.csv').read_bytes()
    assert b'\n' not in raw and not raw.endswith(b'\r')      # as released
    index = {s: json.loads((root / 'index' / f'index_tiny_{s}.json').read_text())
             for s in ('train', 'val', 'test')}
    train = index['train']
    assert train['layout'] == 'omnidata' and train['split_file'] == 'train_val_test_tiny.csv'
    assert train['excluded_buildings'] == [MISSING_BAD]
    assert [b['name'] for b in train['buildings']] == SPLITS['train']       # CSV order
    # file-name order, as a folder scan lists them: point_10 sorts before point_1
    assert train['buildings'][0]['views'] == [[0, 0], [10, 1], [1, 0]]
    assert train['num_views'] == 6 and index['test']['num_views'] == 3
    assert set(_tree(root / 'index')) == {
        'index_tiny_train.json', 'index_tiny_val.json', 'index_tiny_test.json',
        *(f'buildings/{b}.json' for s in SPLITS.values() for b in s)}
    # --check: everything is done and valid, nothing is written
    before = _tree(root / 'index')
    assert _prep_main(['--src', str(root), '--workers', '1', '--no-progress',
                       '--check']) == 0
    assert 'skipped 4' in capsys.readouterr().out and _tree(root / 'index') == before
    # without the exclusion the absent building fails, named with its missing folder
    assert _prep_main(['--src', str(root), '--workers', '1', '--no-progress',
                       '--check', '--exclude-buildings']) == 1
    assert f'rgb/taskonomy/{MISSING_BAD}' in capsys.readouterr().out


def test_index_loads_canonical_units_like_a_scan(copy_root):
    """The dataset reads the index (no scan) and gets exactly what a scan finds; the known
    view decodes to known canonical values: the 32x32 semantic map upsampled nearest to the
    64x64 image, 16-bit depth in metres with 65535 masked, unit normals, edges in [0, 1]."""
    from taskonomy_prep_fixture import KNOWN_CANONICAL, KNOWN_VIEW, MISSING_BAD
    root, truth = copy_root
    pipeline = [dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')]
    tasks = [dict(type='SemanticTask', num_classes=17), 'DepthTask', 'NormalTask', 'EdgeTask']
    indexed = TaskonomyDataset(data_root=str(root), index_file='index/index_tiny_train.json',
                               tasks=tasks, pipeline=pipeline)
    scanned = TaskonomyDataset(data_root=str(root), layout='omnidata', tasks=tasks,
                               split_file='splits/train_val_test_tiny.csv', split='train',
                               exclude_buildings=[MISSING_BAD], pipeline=pipeline)
    assert [indexed.get_data_info(i)['task_paths'] for i in range(len(indexed))] == \
        [scanned.get_data_info(i)['task_paths'] for i in range(len(scanned))]
    assert len(indexed) == 6
    i = [indexed.get_data_info(k)['img_path'] for k in range(6)].index(str(
        root / 'rgb' / 'taskonomy' / 'merom' / 'point_1_view_0_domain_rgb.png'))
    assert KNOWN_VIEW == ('merom', 1, 0)
    sample = indexed[i]['data_samples']
    np.testing.assert_array_equal(sample.get_gt('seg')[0].numpy(), KNOWN_CANONICAL['seg'])
    depth = sample.get_gt('depth')[0].numpy()
    np.testing.assert_array_equal(depth, KNOWN_CANONICAL['depth'])     # 2 m, 0.5 m, 0 = none
    normal = sample.get_gt('normal').permute(1, 2, 0).numpy()
    cos = (normal * KNOWN_CANONICAL['normal']).sum(-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.5
    np.testing.assert_array_equal(sample.get_gt('edge')[0].numpy(), KNOWN_CANONICAL['edge'])
    # a random view against its written values
    j = [indexed.get_data_info(k)['img_path'] for k in range(6)].index(str(
        root / 'rgb' / 'taskonomy' / 'hanson' / 'point_10_view_1_domain_rgb.png'))
    ref = truth[('hanson', 10, 1)]
    got = indexed[j]
    np.testing.assert_array_equal(got['inputs'].permute(1, 2, 0).numpy(), ref['rgb'])
    np.testing.assert_array_equal(got['data_samples'].get_gt('seg')[0].numpy(), ref['seg'])


def test_index_mismatches_are_explained(copy_root):
    root, _ = copy_root
    kw = dict(data_root=str(root), tasks=TEST_TASKS)
    with pytest.raises(ValueError, match="indexes split 'train', not 'val'"):
        TaskonomyDataset(index_file='index/index_tiny_train.json', split='val', **kw)
    with pytest.raises(ValueError, match='not both'):
        TaskonomyDataset(index_file='index/index_tiny_train.json', split_file='x.csv', **kw)
    with pytest.raises(FileNotFoundError, match='data_prep/taskonomy.py'):
        TaskonomyDataset(index_file='index/index_medium_train.json', **kw)
    with pytest.raises(FileNotFoundError, match="layout='omnidata'"):     # scan, wrong layout
        TaskonomyDataset(split_file='splits/train_val_test_tiny.csv', **kw)


def test_bad_files_are_named_and_the_run_goes_on(tmp_path, capsys):
    """A truncated depth PNG, a missing normal, an 8-bit edge map: each building fails with the
    file's path, the others are indexed, no index file is written and the exit code is 1;
    --drop-bad-views then indexes the rest and lists the dropped views with why."""
    import json
    from taskonomy_prep_fixture import view_file, write_taskonomy_copy
    write_taskonomy_copy(tmp_path)
    truncated = view_file(tmp_path, 'depth_zbuffer', 'hanson', 0, 0)
    with open(truncated, 'r+b') as f:
        f.truncate(60)
    missing = view_file(tmp_path, 'normal', 'ihlen', 1, 0)
    os.remove(missing)
    eight_bit = view_file(tmp_path, 'edge_texture', 'collierville', 10, 1)
    write_png(eight_bit, np.zeros((64, 64), np.uint8))
    args = ['--src', str(tmp_path), '--workers', '1', '--no-progress']
    assert _prep_main(args) == 1
    out = capsys.readouterr().out
    for path in (truncated, missing, eight_bit):
        assert path in out
    assert 'expected uint16 for edge' in out and 'NOT written' in out
    assert 'processed 1, skipped 0 (already done), failed 3' in out
    assert sorted(os.listdir(tmp_path / 'index' / 'buildings')) == ['merom.json']
    assert not list((tmp_path / 'index').glob('index_*.json'))
    # the quick check reads PNG headers only: blind to the truncated data, not to the rest
    quick = args + ['--check', '--quick', '--out', str(tmp_path / 'quick')]
    assert _prep_main(quick) == 1
    out = capsys.readouterr().out
    assert 'checked 2, skipped 0 (already done), failed 2' in out
    assert missing in out and eight_bit in out and truncated not in out
    assert _prep_main(args + ['--drop-bad-views']) == 0
    index = json.loads((tmp_path / 'index' / 'index_tiny_train.json').read_text())
    assert index['dropped_views'] == 1 and index['num_views'] == 5
    part = json.loads((tmp_path / 'index' / 'buildings' / 'hanson.json').read_text())
    assert part['dropped'][0]['view'] == [0, 0] and truncated in part['dropped'][0]['problems'][0]


def test_killed_run_resumes_to_identical_bytes(tmp_path, monkeypatch):
    from taskonomy_prep_fixture import write_taskonomy_copy

    from mtl_adapters.data_generation.taskonomy import TaskonomyIndex
    write_taskonomy_copy(tmp_path / 'data', layout='taskonomy')
    args = ['--src', str(tmp_path / 'data'), '--workers', '1', '--no-progress']
    assert _prep_main(args + ['--out', str(tmp_path / 'clean')]) == 0
    original = TaskonomyIndex.process
    calls = []

    def dies_at_three(self, item):
        calls.append(item.key)
        if len(calls) == 3:
            raise KeyboardInterrupt           # Ctrl-C in the middle of the run
        return original(self, item)

    monkeypatch.setattr(TaskonomyIndex, 'process', dies_at_three)
    with pytest.raises(KeyboardInterrupt):
        _prep_main(args + ['--out', str(tmp_path / 'resumed')])
    assert len(_tree(tmp_path / 'resumed')) == 2           # two buildings, no index yet
    monkeypatch.setattr(TaskonomyIndex, 'process', original)
    assert _prep_main(args + ['--out', str(tmp_path / 'resumed')]) == 0
    clean = _tree(tmp_path / 'clean')
    assert len(clean) == 7 and _tree(tmp_path / 'resumed') == clean
    # other settings: the buildings are checked again (not taken as done)
    assert _prep_main(args + ['--out', str(tmp_path / 'resumed'), '--quick']) == 0
    assert _tree(tmp_path / 'resumed') != clean


def test_png_header_agrees_with_read_image(tmp_path):
    """The quick check's dtype/channels from the PNG header are what read_image returns."""
    import warnings

    from PIL import Image

    from mtl_adapters.data_generation.taskonomy import png_header
    from mtl_adapters.utils import DataFileError, read_image
    a = np.random.RandomState(0).randint(0, 255, (5, 7)).astype(np.uint8)
    images = {'L': Image.fromarray(a), 'RGB': Image.fromarray(np.stack([a] * 3, -1)),
              'RGBA': Image.fromarray(np.stack([a] * 4, -1)),
              'P': Image.fromarray(a).convert('P'), 'LA': Image.fromarray(a).convert('LA'),
              '1': Image.fromarray(a > 100), 'I16': Image.fromarray(a.astype(np.uint16) * 250)}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name, img in images.items():
            img.save(tmp_path / f'{name}.png')
    write_png(tmp_path / 'rgb16.png', np.zeros((5, 7, 3), np.uint16))
    for path in sorted(tmp_path.glob('*.png')):
        h, w, dtype, channels = png_header(path)
        img = read_image(path)
        assert (h, w, dtype, channels) == (*img.shape[:2], img.dtype.name,
                                           1 if img.ndim == 2 else img.shape[2]), path.name
    (tmp_path / 'bad.png').write_bytes(b'GIF89a')
    with pytest.raises(DataFileError, match='bad.png'):
        png_header(tmp_path / 'bad.png')


def test_leaf_config_trains_and_evaluates(copy_root, tmp_path):
    """The paper-setting S-D-N-E leaf (tiny model overrides) trains 2 iterations on the indexed
    copy and evaluates on its val building."""
    import json
    from pathlib import Path

    from conftest import load_tool
    root, _ = copy_root
    leaf = Path(__file__).resolve().parents[2] / \
        'configs/vtagml/vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py'
    cfg = tmp_path / 'tiny_taskonomy.py'
    cfg.write_text(tiny_leaf_config(leaf, f'taskonomy_{tmp_path.name}', root))
    runner = load_tool('train').main([
        str(cfg), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'train_dataloader.dataset.pipeline.1.geometric.0.size=(32,32)',
        'val_dataloader.dataset.pipeline.1.geometric.0.height=32',
        'val_dataloader.dataset.pipeline.1.geometric.0.width=32'])
    assert runner.iter == 2 and (tmp_path / 'work' / 'iter_2.pth').is_file()
    scalars = [json.loads(line) for line in
               next((tmp_path / 'work').rglob('vis_data/scalars.json')).read_text().splitlines()]
    val = [s for s in scalars if 'seg/mIoU' in s]
    assert len(val) == 1, scalars
    for key in ('seg/mIoU', 'depth/rmse', 'normal/mean', 'edge/l1'):
        assert np.isfinite(val[0][key]), key
    shutil.rmtree(tmp_path / 'work')


def test_unlabelled_target_needs_only_the_images(tiny_taskonomy, tmp_path):
    """with_labels=False (split file, and an index written for the rgb folder only): every
    task folder deleted, the split still loads; a labels-loading pipeline is refused."""
    from conftest import IMAGES_ONLY, check_images_only, delete_all_but
    root = tmp_path / 'taskonomy'
    shutil.copytree(tiny_taskonomy, root)
    assert delete_all_but(root, lambda p: p.startswith('rgb/') or p == 'splits.csv') > 0
    ds = TaskonomyDataset(data_root=str(root), split_file='splits.csv', tasks=TEST_TASKS,
                          pipeline=IMAGES_ONLY, with_labels=False)
    check_images_only(ds, 3)
    with pytest.raises(FileNotFoundError, match='label file'):
        TaskonomyDataset(data_root=str(root), split_file='splits.csv', tasks=TEST_TASKS)
    loads_labels = TaskonomyDataset(
        data_root=str(root), split_file='splits.csv', tasks=TEST_TASKS, with_labels=False,
        pipeline=[dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')])
    with pytest.raises(ValueError, match='with_labels=False'):
        loads_labels[0]
