"""Joint augmentation and per-task padding."""
import numpy as np
import pytest
import torch
from conftest import TEST_TASKS

from mtl_adapters.datasets.transforms import MultiTaskAlbu, PackMultiTaskInputs
from mtl_adapters.models import MultiTaskDataPreprocessor
from mtl_adapters.tasks import build_tasks


def sphere_scene(h, w, cx_world, f=40.0, radius=1.0, z0=3.0, cy_world=0.0):
    """Analytic depth and normals of a sphere at (cx_world, cy_world, z0) seen by a pinhole
    camera with the principal point at the image centre; background = a fronto-parallel wall."""
    u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
    d = np.stack([u / f, v / f, np.ones_like(u)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    c = np.array([cx_world, cy_world, z0])
    b = (d @ c)
    disc = b ** 2 - (c @ c - radius ** 2)
    t = np.where(disc > 0, b - np.sqrt(np.maximum(disc, 0)), np.inf)
    hit = np.isfinite(t)
    p = d * t[..., None]
    normal = np.where(hit[..., None], (p - c) / radius, np.array([0.0, 0.0, -1.0]))
    depth = np.where(hit, p[..., 2], 6.0)
    label = hit.astype(np.uint8)
    return depth.astype(np.float32), normal.astype(np.float32), label


def test_flipped_normal_map_is_normal_map_of_flipped_scene():
    h, w = 48, 64
    depth, normal, label = sphere_scene(h, w, cx_world=0.7)
    m_depth, m_normal, m_label = sphere_scene(h, w, cx_world=-0.7)   # the mirrored scene
    albu = MultiTaskAlbu(tasks=TEST_TASKS, geometric=[dict(type='HorizontalFlip', p=1.0)])
    res = albu.transform(dict(img=np.zeros((h, w, 3), np.uint8),
                              gt=dict(seg=label, depth=depth, normal=normal)))
    assert res['flip'] is True
    np.testing.assert_array_equal(res['gt']['seg'], m_label)
    np.testing.assert_allclose(res['gt']['depth'], m_depth, atol=1e-5)
    np.testing.assert_allclose(res['gt']['normal'], m_normal, atol=1e-5)
    assert not np.allclose(res['gt']['normal'], normal[:, ::-1])   # mirroring alone is wrong


def test_geometry_shared_labels_nearest_photometric_rgb_only():
    rng = np.random.RandomState(0)
    h, w = 40, 56
    img = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
    seg = rng.randint(0, 5, (h, w)).astype(np.uint8)
    depth = np.tile(np.linspace(1, 5, w, dtype=np.float32), (h, 1))
    gt = dict(seg=seg, depth=depth, edge=np.zeros((h, w), np.float32))
    albu = MultiTaskAlbu(tasks=TEST_TASKS,
                         geometric=[dict(type='RandomResizedCrop', size=(32, 32),
                                         scale=(0.3, 0.6))],
                         photometric=[dict(type='ColorJitter', brightness=0.5, p=1.0)])
    res = albu.transform(dict(img=img, gt=gt))
    assert res['img'].shape == (32, 32, 3) and res['gt']['depth'].shape == (32, 32)
    assert set(np.unique(res['gt']['seg'])) <= set(range(5))      # nearest: no new labels
    assert np.all(np.diff(res['gt']['depth'], axis=1) >= -1e-5)   # same geometry, bilinear
    assert np.all(res['gt']['edge'] == 0)                          # photometric left gt alone


def test_rotation_with_normals_is_refused():
    with pytest.raises(ValueError, match='normal'):
        MultiTaskAlbu(tasks=TEST_TASKS, geometric=[dict(type='Rotate', limit=30)])
    with pytest.raises(KeyError, match='NoSuchAug'):
        MultiTaskAlbu(tasks=TEST_TASKS, geometric=[dict(type='NoSuchAug')])


@pytest.mark.parametrize('where,cfg', [
    ('photometric', dict(type='HorizontalFlip', p=1.0)),       # moves the image only
    ('photometric', dict(type='RandomResizedCrop', size=(8, 8))),
    ('geometric', dict(type='ColorJitter')),                  # would jitter depth and normals
    ('geometric', dict(type='Affine', rotate=10)),             # normals not rotated
    ('geometric', dict(type='ElasticTransform'))])
def test_each_list_refuses_transforms_of_unknown_effect_by_name(where, cfg):
    name = cfg['type']
    for tasks in (TEST_TASKS, ['DepthTask']):                 # whatever the tasks
        with pytest.raises(ValueError, match=rf'{where}\[0\]: {name} .*HorizontalFlip'):
            MultiTaskAlbu(tasks=tasks, **{where: [cfg]})


@pytest.mark.parametrize('transform', ['SquareSymmetry', 'D4', 'RandomRotate90', 'Transpose',
                                       'VerticalFlip', 'HorizontalFlip'])
def test_flips_turns_and_transpositions_move_normals_with_the_scene(transform):
    """Every D4 element the transform draws gives the maps of the correspondingly moved scene
    (the sphere's centre moves with the pixel offsets; n_z and depth stay)."""
    from mtl_adapters.datasets.transforms.albu import _D4
    size, centre = 40, np.array([0.7, 0.3])
    depth, normal, label = sphere_scene(size, size, *centre[:1], cy_world=centre[1])
    albu = MultiTaskAlbu(tasks=TEST_TASKS, geometric=[dict(type=transform, p=1.0)])
    seen = set()
    for seed in range(40):
        np.random.seed(seed)
        res = albu.transform(dict(img=np.zeros((size, size, 3), np.uint8),
                                  gt=dict(seg=label, depth=depth, normal=normal)))
        moved = None
        for key, matrix in _D4.items():
            m = np.array(matrix)
            m_depth, m_normal, m_label = sphere_scene(size, size, (m @ centre)[0],
                                                      cy_world=(m @ centre)[1])
            if np.array_equal(res['gt']['seg'], m_label):
                assert moved is None, 'the test scene must tell the 8 elements apart'
                moved = key
                np.testing.assert_allclose(res['gt']['depth'], m_depth, atol=1e-5)
                np.testing.assert_allclose(res['gt']['normal'], m_normal, atol=1e-5)
                assert res['flip'] is bool(np.linalg.det(m) < 0)
        assert moved is not None
        seen.add(moved)
    expected = {'SquareSymmetry': 8, 'D4': 8, 'RandomRotate90': 4}.get(transform, 1)
    assert len(seen) == expected, seen


def test_each_task_padded_with_its_own_value():
    tasks = build_tasks(TEST_TASKS)
    pack = PackMultiTaskInputs(tasks=TEST_TASKS)
    h, w = 30, 45
    gt = dict(seg=np.ones((h, w), np.uint8), depth=np.full((h, w), 2.0, np.float32),
              normal=np.tile(np.array([0, 0, -1], np.float32), (h, w, 1)),
              edge=np.full((h, w), 0.5, np.float32))
    packed = pack.transform(dict(img=np.zeros((h, w, 3), np.uint8), gt=gt, img_shape=(h, w)))
    pre = MultiTaskDataPreprocessor(tasks=TEST_TASKS, size_divisor=32)
    out = pre(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), True)
    assert tuple(out['inputs'].shape) == (1, 3, 32, 64)
    sample = out['data_samples'][0]
    for name, task in tasks.items():
        g = sample.get_gt(name)
        assert tuple(g.shape[-2:]) == (32, 64)
        assert torch.all(g[..., h:, :] == task.ignore_value), name
        assert torch.all(g[..., :, w:] == task.ignore_value), name
        assert not task.valid_mask(g[None])[..., h:, :].any()
        assert task.valid_mask(g[None])[..., :h, :w].all()
    assert torch.all(out['inputs'][0, :, :h, :w] != 0)   # normalised image, zero padding
    assert torch.all(out['inputs'][0, :, h:, :] == 0)


def test_resampling_never_invents_depth_or_labels_from_invalid_or_padded_pixels():
    tasks = build_tasks(TEST_TASKS)
    h, w = 40, 40
    depth = np.full((h, w), 10.0, np.float32)
    depth[:, :20] = 0.0                                   # left half: no measurement
    normal = np.zeros((h, w, 3), np.float32)
    normal[:, 20:] = (0.0, 0.6, -0.8)
    seg = np.full((h, w), 3, np.uint8)
    gt = dict(seg=seg, depth=depth, normal=normal, edge=np.full((h, w), 0.1, np.float32))
    albu = MultiTaskAlbu(tasks=TEST_TASKS, geometric=[
        dict(type='RandomResizedCrop', size=(31, 29), scale=(0.5, 0.9)),
        dict(type='PadIfNeeded', min_height=48, min_width=48, border_mode=0,
             position='top_left')])
    for seed in range(5):
        np.random.seed(seed)
        res = albu.transform(dict(img=np.zeros((h, w, 3), np.uint8), gt=dict(gt)))['gt']
        d = res['depth']
        assert set(np.unique(d).tolist()) <= {0.0, 10.0}, np.unique(d)   # no blends with 0
        n = res['normal']
        norms = np.linalg.norm(n, axis=-1)
        assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))          # unit or invalid
        # padding: ignored for every task (albumentations filled it with 0)
        assert np.all(res['seg'][31:, :] == 255) and np.all(res['seg'][:, 29:] == 255)
        assert np.all(res['edge'][31:, :] == tasks['edge'].ignore_value)
        assert set(np.unique(res['seg'][:31, :29]).tolist()) <= {3, 255}


def test_loading_resize_keeps_invalid_pixels_out():
    task = build_tasks(['DepthTask'])['depth']
    depth = np.zeros((8, 8), np.float32)
    depth[:, 4:] = 10.0
    out = task.resize(depth, (6, 6))
    assert set(np.unique(out).tolist()) <= {0.0, 10.0}
    assert (out == 10.0).any() and (out == 0).any()


@pytest.mark.parametrize('scale', [1, 257])
def test_input_image_stored_as_16bit_looks_like_its_8bit_version(tmp_path, scale):
    """An RGB (or grey) input PNG stored at 16 bits is read as its 8-bit version: 8-bit values
    kept as they are (``scale=1``: OpenCV alone reads them as black), full-range values
    scaled (``scale=257``: 8-bit v saved as 16-bit)."""
    import cv2

    from mtl_adapters.datasets.transforms import LoadMultiTaskImageAndAnnotations
    rgb = np.random.RandomState(0).randint(0, 256, (6, 8, 3)).astype(np.uint8)
    rgb[0, 0] = 255                                # full-scale white somewhere
    load = LoadMultiTaskImageAndAnnotations(with_labels=False, tasks=TEST_TASKS)
    for name, stored in (('rgb', rgb), ('grey', rgb[..., 1])):
        path = tmp_path / f'{name}16_{scale}.png'
        wide = stored.astype(np.uint16) * scale
        cv2.imwrite(str(path), wide[..., ::-1] if wide.ndim == 3 else wide)
        img = load.transform(dict(img_path=str(path)))['img']
        expected = stored if stored.ndim == 3 else np.repeat(stored[..., None], 3, -1)
        assert img.dtype == np.uint8 and img.shape == (6, 8, 3)
        np.testing.assert_array_equal(img, expected)
