"""One surface-normal convention, whichever dataset the normals come from.

One known scene, the inside of a room seen level from its middle (a floor, a ceiling, a wall
on the left and one on the right, each facing along an axis of the camera frame, and a far wall
tilted so that its normal mixes all three axes), is
written into the on-disk format of every dataset the project reads: Taskonomy (the depth and
the published normal colours), our synthetic scenes (Taskonomy's format, rendered by the
generator), Cityscapes (stereo disparity + camera JSON), Virtual KITTI 2 (centimetre depth +
intrinsic.txt), NYUDv2 (the MATLAB 7.3 .mat) and SYNTHIA (centimetre depth); the datasets
that ship no normals derive them from the depth in their preparation. Every loader must
return, on the inside of each plane, that plane's normal in the project convention
(``NormalTask``: OpenCV camera frame, x right, y down, z away from the camera, a camera-facing
surface has n_z < 0), within the quantisation of its files; a sign error on any axis in any
decoder, preparation or camera model shows as a large error on at least one plane.

Taskonomy's colours are the published encoding ``rgb = (n + 1) / 2 * 255`` in that same frame
(a wall facing the camera is (128, 128, 0), a floor seen level (128, 0, 128)). Measured on the
published data: StanfordVL/taskonomy's statistics of a released ``normal`` file
(``code/tools/script/preprocess/info/normal.txt``: blue channel mean 65, max 191, where an
encoding with camera-facing blue = 255 would put nearly every pixel above 128) and the
Omnidata annotator's sample views (``omnidata_annotator/assets/hm3d``), whose normal files
agree with ``normals_from_depth`` of their own ``depth_zbuffer`` files to a median of 0.8 to 2
degrees with the axes as read here, and to 64 to 128 degrees with the z axis flipped.
"""
import cv2
import numpy as np
from cityscapes_fixture import write_cityscapes_fixture
from nyudv2_fixture import write_labeled_mat, write_nyudv2_fixture
from scipy import ndimage
from synthia_fixture import FIXTURE_SIZE as SYNTHIA_SIZE
from synthia_fixture import write_synthia_fixture
from vkitti2_fixture import SIZE as VKITTI2_SIZE
from vkitti2_fixture import intrinsics as vkitti2_intrinsics
from vkitti2_fixture import write_vkitti2_fixture

from mtl_adapters.data_generation.prepare import run_preparation
from mtl_adapters.datasets.geometry import (intrinsics_matrix, normals_from_depth,
                                            scale_intrinsics, unproject)
from mtl_adapters.datasets.taskonomy import (TaskonomyDataset, decode_taskonomy,
                                             encode_taskonomy, taskonomy_path, write_split_csv)
from mtl_adapters.tasks import NormalTask
from mtl_adapters.utils import write_png

#: the room's planes and their unit normals in the project convention (facing the camera)
PLANES = {'floor': (0, -1, 0), 'ceiling': (0, 1, 0), 'left wall': (1, 0, 0),
          'right wall': (-1, 0, 0),
          'far wall': tuple(np.array([0.3, -0.4, -0.866]) / np.linalg.norm([0.3, -0.4, -0.866]))}
#: Taskonomy's published normal colours (8-bit RGB) of surfaces seen by a level camera
TASKONOMY_COLOURS = {'facing the camera': ((0, 0, -1), (128, 128, 0)),
                     'floor': ((0, -1, 0), (128, 0, 128)),
                     'ceiling': ((0, 1, 0), (128, 255, 128)),
                     'wall on the left (facing right)': ((1, 0, 0), (255, 128, 128)),
                     'wall on the right (facing left)': ((-1, 0, 0), (0, 128, 128))}
FRONT = 4.0                           # metres to the wall ahead
#: the same room 4x larger, for depth stored in centimetres (their quantisation, relative to
#: the point spacing, shrinks with the distance)
FRONT_CM = 16.0
PIPELINE = [dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')]
#: worst angle (degrees) a loader may be off the closed-form normal on a plane's inside:
#: 8-bit files quantise to < 0.5 deg; normals derived from centimetre or 1/256 px disparity
#: depth add a little more at the far wall
TOLERANCE = 3.0


def render_room(K: np.ndarray, size, front: float = FRONT) -> tuple:
    """z-depth (metres, float64) and plane index (into ``PLANES``) of the room seen with
    intrinsics ``K`` at ``size`` (H, W), the far wall ``front`` metres ahead on the optical
    axis. The side walls, floor and ceiling stand at half the view's extent at that distance,
    so every plane fills a band of the image whatever the camera."""
    rays = unproject(np.ones(size), K)                        # (H, W, 3) with z = 1
    a, b = rays[..., 0], rays[..., 1]
    # the point each plane passes through: n . X = n . point (< 0: the camera is inside)
    points = {'floor': (0, 0.5 * b.max() * front, 0), 'ceiling': (0, 0.5 * b.min() * front, 0),
              'left wall': (0.5 * a.min() * front, 0, 0),
              'right wall': (0.5 * a.max() * front, 0, 0), 'far wall': (0, 0, front)}
    depths = []
    for name, n in PLANES.items():
        n = np.asarray(n, np.float64)
        facing = rays @ n                                     # < 0 where the ray meets it
        with np.errstate(divide='ignore'):
            depths.append(np.where(facing < 0, (n @ points[name]) / facing, np.inf))
    depths = np.stack(depths)
    return depths.min(axis=0), depths.argmin(axis=0)


def interior(plane: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose (2 margin + 1)^2 neighbourhood lies on one plane and off the border."""
    size = 2 * margin + 1
    inside = ndimage.maximum_filter(plane, size, mode='nearest') == \
        ndimage.minimum_filter(plane, size, mode='nearest')
    inside[:margin] = inside[-margin:] = inside[:, :margin] = inside[:, -margin:] = False
    return inside


def check_room(normal: np.ndarray, K: np.ndarray, what: str, front: float = FRONT,
               min_pixels: int = 8) -> dict:
    """Assert the loaded normals (H, W, 3) are the room's plane normals (seen with K) on the
    inside of every plane; returns ``{plane: median angle}``."""
    _, plane = render_room(K, normal.shape[:2], front)
    inside = interior(plane)
    has = np.linalg.norm(normal, axis=-1) > 0.5
    report, errors = {}, []
    for i, (name, n) in enumerate(PLANES.items()):
        sel = inside & has & (plane == i)
        if sel.sum() < min_pixels:
            errors.append(f'{name}: only {int(sel.sum())} pixels with a normal')
            continue
        angle = np.degrees(np.arccos(np.clip(normal[sel] @ np.asarray(n, np.float64), -1, 1)))
        report[name] = float(np.median(angle))
        if angle.max() > TOLERANCE:
            mean = normal[sel].mean(axis=0)
            errors.append(f'{name}: up to {angle.max():.1f} deg off {n} (mean normal '
                          f'{np.round(mean / np.linalg.norm(mean), 3).tolist()})')
    assert not errors, f'{what}: ' + '; '.join(errors)
    return report


def loaded_normal(dataset, index: int = 0) -> np.ndarray:
    return dataset[index]['data_samples'].get_gt('normal').permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------- the encodings
def test_taskonomy_published_colours_decode_to_the_project_convention():
    """Taskonomy's colours of the axis directions decode to those normals, our encoder writes
    exactly those colours (predictions saved as PNG, synthetic scenes), and pictures of
    normals show them in the colours Taskonomy's own pictures use."""
    task = NormalTask()
    normals = np.array([[n for n, _ in TASKONOMY_COLOURS.values()]], np.float32)   # (1, 5, 3)
    colours = np.array([[c for _, c in TASKONOMY_COLOURS.values()]], np.uint8)
    decoded = decode_taskonomy(task, colours)
    angle = np.degrees(np.arccos(np.clip((decoded * normals).sum(-1), -1, 1)))
    assert angle.max() < 0.5, dict(zip(TASKONOMY_COLOURS, angle[0].round(1)))
    np.testing.assert_array_equal(encode_taskonomy(task, normals), colours)
    np.testing.assert_array_equal(task.colorize(normals), colours)


# --------------------------------------------------------------------------- the loaders
def test_taskonomy_files_give_the_room(tmp_path):
    """The room written as Taskonomy would (the published encoding ``rgb = (n + 1) / 2 * 255``
    that the colours above pin down, 1/512 m depth): the normals load as the planes' normals
    and agree with those derived from the loaded depth."""
    size, K = (48, 64), intrinsics_matrix(40.0, 40.0, 31.5, 23.5)
    depth, plane = render_room(K, size)
    normals = np.array(list(PLANES.values()))[plane]
    colours = np.round((normals + 1) / 2 * 255).astype(np.uint8)
    write_png(taskonomy_path(tmp_path, 'rgb', 'room', 0, 0, 'rgb'), colours)
    write_png(taskonomy_path(tmp_path, 'normal', 'room', 0, 0, 'normal'), colours)
    write_png(taskonomy_path(tmp_path, 'depth_zbuffer', 'room', 0, 0, 'depth_zbuffer'),
              np.round(depth * 512).astype(np.uint16))
    write_split_csv(tmp_path / 'splits.csv', dict(train=['room']))
    ds = TaskonomyDataset(data_root=str(tmp_path), tasks=['DepthTask', 'NormalTask'],
                          split_file='splits.csv', pipeline=PIPELINE)
    normal = loaded_normal(ds)
    check_room(normal, K, 'Taskonomy')
    from_depth = normals_from_depth(ds[0]['data_samples'].get_gt('depth')[0].numpy(), K)
    check_room(from_depth, K, 'Taskonomy depth')


def test_synthetic_scenes_normals_agree_with_their_depth(tmp_path):
    """The generator writes normals in Taskonomy's encoding: loaded, they are the normals of
    the loaded depth (same camera, same frame) on the planar surfaces."""
    from mtl_adapters.data_generation.synthetic import camera_intrinsics, generate
    size = (48, 64)
    generate(tmp_path, num_scenes=1, views_per_scene=1, size=size, seed=3, splits=(1, 0, 0),
             workers=1, progress=False)
    ds = TaskonomyDataset(data_root=str(tmp_path), tasks=['DepthTask', 'NormalTask'],
                          split_file='splits.csv', pipeline=PIPELINE)
    normal = loaded_normal(ds)
    ref = normals_from_depth(ds[0]['data_samples'].get_gt('depth')[0].numpy(),
                             camera_intrinsics(size))
    ok = (np.linalg.norm(ref, axis=-1) > 0.5) & (np.linalg.norm(normal, axis=-1) > 0.5)
    angle = np.degrees(np.arccos(np.clip((normal[ok] * ref[ok]).sum(-1), -1, 1)))
    assert ok.mean() > 0.5 and np.median(angle) < 1.0 and np.percentile(angle, 90) < 5.0, \
        (ok.mean(), np.median(angle), np.percentile(angle, 90))


def test_cityscapes_disparity_gives_the_room(tmp_path):
    from cityscapes_fixture import ROAD

    from mtl_adapters.data_generation.cityscapes import CityscapesPreparation
    from mtl_adapters.datasets.cityscapes import CityscapesDataset, camera_matrix
    stem = 'aachen_000000_000019'
    write_cityscapes_fixture(tmp_path, samples=(('train', 'aachen', stem),))
    size, work = (64, 128), (32, 64)
    camera = dict(extrinsic=dict(baseline=0.209313, pitch=0.0, roll=0.0, x=1.7, y=0.1, yaw=0.0,
                                 z=1.18),
                  intrinsic=dict(fx=64.0, fy=64.0, u0=63.5, v0=31.5))
    K = camera_matrix(camera['intrinsic'])
    depth, _ = render_room(K, size)
    base = tmp_path / '{}' / 'train' / 'aachen' / f'{stem}_{{}}'
    write_png(str(base).format('disparity', 'disparity.png'),
              np.round(camera['extrinsic']['baseline'] * 64.0 / depth * 256 + 1).astype(
                  np.uint16))
    write_png(str(base).format('gtFine', 'gtFine_labelIds.png'), np.full(size, ROAD, np.uint8))
    import json
    (tmp_path / 'camera/train/aachen' / f'{stem}_camera.json').write_text(json.dumps(camera))
    prep = CityscapesPreparation(tmp_path, size=work, splits=('train',))
    assert run_preparation(prep, workers=1, progress=False).ok
    ds = CityscapesDataset(data_root=str(tmp_path), tasks=['DepthTask', 'NormalTask'],
                           split='train', work_size=work, pipeline=PIPELINE)
    check_room(loaded_normal(ds), scale_intrinsics(K, 0.5, 0.5), 'Cityscapes')


def test_vkitti2_depth_gives_the_room(tmp_path):
    from mtl_adapters.data_generation.vkitti2 import VKITTI2Preparation
    from mtl_adapters.datasets.vkitti2 import VKITTI2Dataset
    write_vkitti2_fixture(tmp_path / 'src', sequences={('Scene02', 'clone'): 1})
    K = intrinsics_matrix(*vkitti2_intrinsics(0))
    depth, _ = render_room(K, VKITTI2_SIZE, FRONT_CM)
    path = tmp_path / 'src/Scene02/clone/frames/depth/Camera_0/depth_00000.png'
    assert cv2.imwrite(str(path), np.round(depth * 100).astype(np.uint16))    # centimetres
    assert run_preparation(VKITTI2Preparation(tmp_path / 'src', tmp_path / 'out'),
                           progress=False).ok
    ds = VKITTI2Dataset(data_root=str(tmp_path / 'out'), split='all', scenes=['Scene02'],
                        tasks=['DepthTask', 'NormalTask'], pipeline=PIPELINE)
    check_room(loaded_normal(ds), K, 'Virtual KITTI 2', FRONT_CM, min_pixels=4)


def test_nyudv2_depth_gives_the_room(tmp_path):
    from mtl_adapters.data_generation.nyudv2 import NYUDv2Preparation
    from mtl_adapters.datasets.nyudv2 import NYUDv2Dataset, nyu_intrinsics
    truth = write_nyudv2_fixture(tmp_path)
    size = truth[1]['depth'].shape
    K = nyu_intrinsics(*size)
    depth, _ = render_room(K, size)
    frames = sorted(truth)
    write_labeled_mat(tmp_path / 'nyu_depth_v2_labeled.mat',
                      np.stack([truth[i]['rgb'] for i in frames]),
                      np.stack([depth] * len(frames)), np.stack([truth[i]['raw'] for i in frames]))
    prep = NYUDv2Preparation(tmp_path / 'nyu_depth_v2_labeled.mat', tmp_path / 'splits.mat',
                             tmp_path / 'classMapping40.mat', tmp_path / 'prepared')
    assert run_preparation(prep, progress=False).ok
    ds = NYUDv2Dataset(data_root=str(tmp_path / 'prepared'), split='train',
                       tasks=['DepthTask', 'NormalTask'], pipeline=PIPELINE)
    check_room(loaded_normal(ds), K, 'NYUDv2')


def test_synthia_depth_gives_the_room(tmp_path):
    from mtl_adapters.data_generation.synthia import SynthiaPreparation
    from mtl_adapters.datasets.synthia import SynthiaDataset, synthia_intrinsics
    write_synthia_fixture(tmp_path, frames=('0000000',))
    K = synthia_intrinsics(SYNTHIA_SIZE)
    depth, _ = render_room(K, SYNTHIA_SIZE, FRONT_CM)
    cm = np.round(depth * 100).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / 'RAND_CITYSCAPES/Depth/Depth/0000000.png'),
                       np.repeat(cm[..., None], 3, axis=-1))
    assert run_preparation(SynthiaPreparation(tmp_path, size=SYNTHIA_SIZE), progress=False).ok
    ds = SynthiaDataset(data_root=str(tmp_path), split='all', tasks=['DepthTask', 'NormalTask'],
                        pipeline=PIPELINE, serialize_data=False)
    check_room(loaded_normal(ds), K, 'SYNTHIA', FRONT_CM)
