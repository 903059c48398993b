"""Synthetic scenes: determinism, physically consistent targets, the Taskonomy layout, resume."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from mtl_adapters.data_generation.synthetic import (SYNTHETIC_CLASSES, camera_intrinsics,
                                                    generate, render_view, scene_name,
                                                    scene_seed)
from mtl_adapters.data_generation.synthetic.writer import _split_counts
from mtl_adapters.datasets.geometry import normals_from_depth, scale_intrinsics, unproject
from mtl_adapters.datasets.taskonomy import decode_taskonomy, read_split_csv, taskonomy_format
from mtl_adapters.tasks import DepthTask, EdgeTask, NormalTask, SemanticTask
from mtl_adapters.utils import read_image

SIZE = (48, 64)  # (H, W), deliberately not square
PLANAR = [SYNTHETIC_CLASSES.index(c) for c in ('floor', 'wall', 'ceiling', 'table', 'cabinet')]
TASKS = dict(seg=SemanticTask(num_classes=len(SYNTHETIC_CLASSES)), depth=DepthTask(),
             normal=NormalTask(), edge=EdgeTask())
REPO = Path(__file__).resolve().parents[2]


def _angles_deg(a, b):
    """Angle in degrees between rows of two (..., 3) unit-vector arrays."""
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1)))


def _files(root):
    """Relative paths of all files under root."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*') if p.is_file())


def _snapshot(root):
    """{relative path: (mtime_ns, bytes)} of every file under root."""
    root = Path(root)
    return {rel: ((root / rel).stat().st_mtime_ns, (root / rel).read_bytes())
            for rel in _files(root)}


# ------------------------------------------------------------------------------ render_view
def test_render_deterministic_per_seed():
    a, b, c = render_view(3, SIZE), render_view(3, SIZE), render_view(4, SIZE)
    for key in ('rgb', 'depth', 'normal', 'seg', 'edge', 'K'):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a['rgb'], c['rgb'])
    assert not np.array_equal(a['depth'], c['depth'])
    assert not np.array_equal(a['depth'], render_view(3, SIZE, view=1)['depth'])  # other pose


@pytest.mark.parametrize('seed', [0, 1, 2, 5])
def test_render_shapes_dtypes_ranges(seed):
    H, W = SIZE
    s = render_view(seed, SIZE)
    assert s['rgb'].shape == (H, W, 3) and s['rgb'].dtype == np.uint8
    assert s['depth'].shape == (H, W) and s['depth'].dtype == np.float32
    assert s['normal'].shape == (H, W, 3) and s['normal'].dtype == np.float32
    assert s['seg'].shape == (H, W) and s['seg'].dtype == np.uint8
    assert s['edge'].shape == (H, W) and s['edge'].dtype == np.float32
    np.testing.assert_array_equal(s['K'], camera_intrinsics(SIZE))
    assert s['K'].dtype == np.float64
    assert np.isfinite(s['depth']).all() and s['depth'].min() > 0.05 and s['depth'].max() < 20
    np.testing.assert_allclose(np.linalg.norm(s['normal'], axis=-1), 1.0, atol=1e-5)
    rays = unproject(np.ones(SIZE), s['K'])  # (H, W, 3) K^-1 [u, v, 1]
    assert (np.sum(s['normal'] * rays, axis=-1) < 0).all()  # every normal faces the camera
    assert s['seg'].max() < len(SYNTHETIC_CLASSES)
    assert s['edge'].min() >= 0 and s['edge'].max() <= 1 and s['edge'].max() > 0.01
    assert s['edge'][0].max() == 0 and s['edge'][:, -1].max() == 0
    assert s['rgb'].std() > 5  # lit and textured, not a flat picture


def test_depth_positive_everywhere():
    for seed in range(12):
        d = render_view(seed, (24, 32), view=seed % 3)['depth']
        assert (d > 0).all() and np.isfinite(d).all()


def test_normals_from_depth_match_rendered_normals():
    """The geometry check: normals of the rendered z-depth agree with the rendered normals."""
    planar_med, all_med = [], []
    for seed in range(6):
        s = render_view(seed, (96, 96), view=seed % 2)
        n = normals_from_depth(s['depth'], s['K'])
        has = np.linalg.norm(n, axis=-1) > 0.5
        interior = np.zeros(s['seg'].shape, bool)
        for cls in PLANAR:
            interior |= ndimage.binary_erosion(s['seg'] == cls, iterations=2)
        err = _angles_deg(n, s['normal'])
        planar_med.append(np.median(err[interior & has]))
        all_med.append(np.median(err[has]))
        assert has[interior].mean() > 0.9  # planes keep their normals
    assert max(planar_med) < 2.0, planar_med
    assert max(all_med) < 2.0, all_med


def test_alt_style_changes_appearance_not_geometry():
    sat = {'default': [], 'alt': []}
    for seed in range(6):
        ref = render_view(seed, SIZE, 'default')
        alt = render_view(seed, SIZE, 'alt')
        for key in ('depth', 'normal', 'seg'):
            np.testing.assert_array_equal(ref[key], alt[key])
        assert np.abs(ref['rgb'].astype(float) - alt['rgb']).mean() > 20
        for style, s in (('default', ref), ('alt', alt)):
            rgb = s['rgb'].astype(float)
            sat[style].append(((rgb.max(-1) - rgb.min(-1)) / np.maximum(rgb.max(-1), 1)).mean())
    assert np.mean(sat['alt']) > np.mean(sat['default']) + 0.15, sat
    with pytest.raises(ValueError, match='style'):
        render_view(0, SIZE, 'nope')


def _colour_classifier_accuracy(train_style: str, test_style: str, seeds=range(8)) -> float:
    """Balanced accuracy of a nearest-class-mean colour classifier: class means of the pixels'
    RGB in ``train_style`` views, applied to the same scenes in ``test_style``."""
    def pixels(style):
        views = [render_view(seed, SIZE, style) for seed in seeds]
        rgb = np.concatenate([v['rgb'].reshape(-1, 3) for v in views]).astype(float)
        seg = np.concatenate([v['seg'].reshape(-1) for v in views])
        return rgb[seg < 255], seg[seg < 255]
    x, y = pixels(train_style)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    x, y = pixels(test_style)
    pred = classes[np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), 1)]
    return float(np.mean([(pred[y == c] == c).mean() for c in classes if (y == c).any()]))


def test_shifted_style_moves_the_class_looks_but_keeps_them_informative():
    """The claims study's target: geometry as the default's, appearance still telling the
    classes apart (unlike 'alt', whose colours ignore the class), but not by the default's
    colours."""
    for seed in range(3):
        ref, shifted = render_view(seed, SIZE, 'default'), render_view(seed, SIZE, 'shifted')
        for key in ('depth', 'normal', 'seg'):
            np.testing.assert_array_equal(ref[key], shifted[key])
        assert np.abs(ref['rgb'].astype(float) - shifted['rgb']).mean() > 20
    within = {style: _colour_classifier_accuracy(style, style)
              for style in ('default', 'shifted', 'alt')}
    # measured: default 0.70, shifted 0.64, alt 0.36
    assert within['shifted'] > within['alt'] + 0.15 and within['shifted'] > 0.55, within
    # the default's class colours do not carry over: a real shift
    assert _colour_classifier_accuracy('default', 'shifted') < within['shifted'] - 0.2


# ---------------------------------------------------------------------------------- geometry
def test_scale_intrinsics_matches_renderer_camera():
    np.testing.assert_allclose(scale_intrinsics(camera_intrinsics(64), 2, 2),
                               camera_intrinsics(128))
    np.testing.assert_allclose(scale_intrinsics(camera_intrinsics(128), 0.5, 0.5),
                               camera_intrinsics(64))


def test_normals_from_depth_plane_and_invalid():
    K = camera_intrinsics((40, 50))
    rays = unproject(np.ones((40, 50)), K)  # (H, W, 3)
    normal = np.array([0.3, -0.5, -0.8])
    normal /= np.linalg.norm(normal)
    depth = -3.0 / (rays @ normal)  # plane n . X = -3: n faces the camera at the origin
    depth[10, 10] = 0  # a hole
    depth[:, 40:] *= 1.5  # a depth discontinuity at column 40
    n = normals_from_depth(depth, K)
    assert n.dtype == np.float32 and n.shape == (40, 50, 3)
    valid = np.linalg.norm(n, axis=-1) > 0
    assert not valid[0].any() and not valid[-1].any() and not valid[:, 0].any()
    assert not valid[10, 9:12].any() and not valid[9:12, 10].any()  # hole and 4-neighbours
    assert not valid[:, 39:41].any()  # both sides of the discontinuity
    assert _angles_deg(n[valid], normal).max() < 1e-3
    assert valid.sum() > 0.8 * valid.size


# ---------------------------------------------------------------------------------- generate
@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """A tiny generated dataset: 3 scenes x 2 views, one scene per split (do not modify)."""
    root = tmp_path_factory.mktemp('synthetic')
    summary = generate(root, num_scenes=3, views_per_scene=2, size=SIZE, seed=11,
                       splits=(1, 1, 1), workers=1, progress=False)
    return root, summary


def test_generate_writes_taskonomy_layout(dataset):
    root, summary = dataset
    assert summary['rendered'] == 6 and summary['skipped'] == 0 and summary['num_views'] == 6
    expected = {'meta.json', 'splits.csv'}
    for scene in ('scene_0000', 'scene_0001', 'scene_0002'):
        for p in range(2):
            expected |= {f'rgb/{scene}/point_{p}_view_0_domain_rgb.png',
                         f'segment_semantic/{scene}/point_{p}_view_0_domain_segmentsemantic.png',
                         f'depth_zbuffer/{scene}/point_{p}_view_0_domain_depth_zbuffer.png',
                         f'normal/{scene}/point_{p}_view_0_domain_normal.png',
                         f'edge_texture/{scene}/point_{p}_view_0_domain_edge_texture.png'}
    assert set(_files(root)) == expected  # nothing else (no temporary files left)

    raw = (root / 'splits.csv').read_bytes()
    assert raw == b'id,train,val,test\rscene_0000,1,0,0\rscene_0001,0,1,0\rscene_0002,0,0,1\r'
    assert read_split_csv(root / 'splits.csv') == dict(
        train=['scene_0000'], val=['scene_0001'], test=['scene_0002'])
    meta = json.loads((root / 'meta.json').read_text())
    assert meta['classes'] == list(SYNTHETIC_CLASSES) and meta['size'] == list(SIZE)
    assert meta['style'] == 'default' and meta['seed'] == 11
    np.testing.assert_allclose(meta['K'], camera_intrinsics(SIZE))


def test_generate_decodes_back_to_rendered_arrays(dataset):
    root, _ = dataset
    H, W = SIZE
    for i in range(3):
        for p in range(2):
            ref = render_view(scene_seed(11, i), SIZE, view=p)
            scene = scene_name(i)
            rgb = read_image(root / 'rgb' / scene / f'point_{p}_view_0_domain_rgb.png')
            assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
            np.testing.assert_array_equal(rgb, ref['rgb'])
            raw = {name: read_image(root / taskonomy_format(t).folder / scene /
                                    f'point_{p}_view_0_domain_{taskonomy_format(t).domain}.png')
                   for name, t in TASKS.items()}
            assert raw['depth'].dtype == np.uint16 and raw['depth'].shape == (H, W)
            assert raw['edge'].dtype == np.uint16 and raw['edge'].shape == (H, W)
            assert raw['normal'].dtype == np.uint8 and raw['normal'].shape == (H, W, 3)
            assert raw['seg'].dtype == np.uint8 and raw['seg'].shape == (H, W)
            assert raw['seg'].min() >= 1  # 0 (uncertain) is never written
            out = {name: decode_taskonomy(TASKS[name], raw[name]) for name in TASKS}
            np.testing.assert_array_equal(out['seg'], ref['seg'])
            np.testing.assert_allclose(out['depth'], ref['depth'], atol=0.5 / 512 + 1e-6)
            np.testing.assert_allclose(out['edge'], ref['edge'], atol=0.5 / 65535 + 1e-7)
            assert _angles_deg(out['normal'], ref['normal']).max() < 1.0


def test_generate_resume_is_noop_and_repairs(tmp_path):
    kw = dict(num_scenes=2, views_per_scene=2, size=32, seed=5, workers=1, progress=False)
    generate(tmp_path, **kw)
    before = _snapshot(tmp_path)
    again = generate(tmp_path, **kw)
    assert again['rendered'] == 0 and again['skipped'] == 4
    assert _snapshot(tmp_path) == before  # views, meta.json and content untouched
    victim = 'depth_zbuffer/scene_0001/point_1_view_0_domain_depth_zbuffer.png'
    (tmp_path / victim).unlink()
    repair = generate(tmp_path, **kw)
    assert repair['rendered'] == 1 and repair['skipped'] == 3
    after = _snapshot(tmp_path)
    assert after.keys() == before.keys()
    assert after[victim][1] == before[victim][1]  # regenerated identically
    untouched = [k for k in before if 'scene_0000' in k]
    assert all(after[k][0] == before[k][0] for k in untouched)
    with pytest.raises(ValueError, match='another output folder'):
        generate(tmp_path, **dict(kw, seed=6))


def test_generate_same_files_for_any_worker_count(tmp_path):
    kw = dict(num_scenes=2, views_per_scene=3, size=24, seed=2, style='alt', progress=False)
    one = generate(tmp_path / 'one', workers=1, **kw)
    two = generate(tmp_path / 'two', workers=2, **kw)
    assert one['rendered'] == two['rendered'] == 6 and two['workers'] == 2
    a, b = _snapshot(tmp_path / 'one'), _snapshot(tmp_path / 'two')
    assert a.keys() == b.keys() and all(a[k][1] == b[k][1] for k in a)
    assert 'rgb/alt_scene_0001/point_2_view_0_domain_rgb.png' in a


def test_split_counts():
    assert _split_counts(35, (0.7, 0.15, 0.15)) == (25, 5, 5)
    assert _split_counts(3, (0.8, 0.1, 0.1)) == (1, 1, 1)
    assert _split_counts(4, (2, 2, 0)) == (2, 2, 0)
    assert _split_counts(2, (1.0, 0.0, 0.0)) == (2, 0, 0)
    with pytest.raises(ValueError, match='splits'):
        _split_counts(10, (0.5, 0.2, 0.2))


def test_cli_writes_a_dataset(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('synthetic_cli',
                                                  REPO / 'data_prep' / 'synthetic.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    summary = cli.main(['--out', str(tmp_path), '--num-scenes', '1', '--views-per-scene', '2',
                        '--size', '24', '32', '--workers', '1', '--splits', '1', '0', '0',
                        '--no-progress'])
    assert summary['rendered'] == 2 and summary['size'] == [24, 32] and summary['seed'] == 0
    assert 'wrote 2 view(s)' in capsys.readouterr().out
    assert read_split_csv(tmp_path / 'splits.csv')['train'] == ['scene_0000']


def test_interrupted_run_resumed_with_other_settings_is_refused(tmp_path, monkeypatch):
    import mtl_adapters.data_generation.synthetic.writer as writer

    def crash(job):
        raise RuntimeError('killed')

    monkeypatch.setattr(writer, '_generate_view', crash)
    with pytest.raises(RuntimeError, match='killed'):
        writer.generate(tmp_path, num_scenes=1, views_per_scene=1, size=(32, 32), workers=1,
                        progress=False)
    assert (tmp_path / 'meta.json').is_file()          # written before any view
    monkeypatch.undo()
    with pytest.raises(ValueError, match='meta.json'):
        writer.generate(tmp_path, num_scenes=1, views_per_scene=1, size=(48, 48), workers=1,
                        progress=False)


def test_rerun_with_fewer_scenes_or_views_is_refused(tmp_path):
    """Views an earlier, larger run left behind would be loaded while meta.json says fewer."""
    kw = dict(size=24, seed=3, workers=1, progress=False)
    generate(tmp_path, num_scenes=3, views_per_scene=2, splits=(1, 1, 1), **kw)
    with pytest.raises(ValueError, match=r'holds 3 views that 3 scenes x 1 views would not'):
        generate(tmp_path, num_scenes=3, views_per_scene=1, splits=(1, 1, 1), **kw)
    with pytest.raises(ValueError, match=r'scene_0002/point_0'):
        generate(tmp_path, num_scenes=2, views_per_scene=2, splits=(1, 1, 0), **kw)
    more = generate(tmp_path, num_scenes=3, views_per_scene=3, splits=(1, 1, 1), **kw)
    assert more['rendered'] == 3 and more['skipped'] == 6          # growing is a resume


def test_a_killed_worker_fails_the_run_instead_of_hanging(tmp_path):
    """SIGKILL one rendering worker: the run stops within seconds with a clear error, and the
    same command resumes it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    cmd = [sys.executable, str(REPO / 'data_prep' / 'synthetic.py'), '--out', str(tmp_path),
           '--num-scenes', '40', '--views-per-scene', '20', '--size', '96', '--workers', '2',
           '--no-progress']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    children = []
    while time.time() < deadline and not children:
        time.sleep(0.2)
        kids = Path(f'/proc/{proc.pid}/task/{proc.pid}/children')
        children = [int(c) for c in kids.read_text().split()] if kids.exists() else []
        if children and not list(tmp_path.glob('rgb/*/*.png')):
            children = []                                   # wait until rendering runs
    assert children, 'the workers never started'
    os.kill(children[0], signal.SIGKILL)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('the run hung after a worker was killed')
    assert proc.returncode != 0
    assert 'a rendering worker died' in err and 'run the same command again' in err.lower()
    done = len(list(tmp_path.glob('rgb/*/*.png')))
    assert 0 < done < 800
