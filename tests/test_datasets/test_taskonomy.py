"""Taskonomy format: naming quirks, split CSVs, decoding, clear errors for bad files."""
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import TEST_TASKS, write_taskonomy_fixture

from mtl_adapters.datasets import TaskonomyDataset, read_split_csv, taskonomy_path
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
    assert seg.decode_taskonomy(raw).tolist() == [[255, 0, 4, 255, 255]]
    # a single-channel label stored as three equal channels decodes the same
    assert seg.decode_taskonomy(np.stack([raw] * 3, -1)).tolist() == [[255, 0, 4, 255, 255]]
