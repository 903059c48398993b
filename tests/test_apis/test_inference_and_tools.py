"""Inference API and the thin tools: infer.py on a non-square image of an odd size,
a clear error for a file that is not an image, test.py's metrics JSON, Δm and per-image files."""
import json
import os.path as osp
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import NARROW_SWIN, Payload, load_tool
from mtl_adapters.utils import read_image, write_png

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / 'configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
IMG_HW = (301, 457)  # non-square, not a multiple of the window or the size divisor


@pytest.fixture(scope='module')
def config_and_checkpoint(tiny_taskonomy, tmp_path_factory):
    """A leaf config of the baseline on the tiny dataset, and a random-init checkpoint."""
    from mmengine.config import Config

    from mtl_adapters.registry import MODELS
    root = tmp_path_factory.mktemp('tool_cfg')
    encoder = dict(pretrained=None, img_size=NARROW_SWIN['img_size'],
                   model_kwargs=NARROW_SWIN['model_kwargs'])
    cfg_path = root / 'tiny_cfg.py'
    cfg_path.write_text(
        f"_base_ = [{str(BASE_CONFIG)!r}]\n"
        f"model = dict(encoder={encoder!r}, decoder=dict(channels=16))\n"
        f"test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,\n"
        f"                       dataset=dict(data_root={tiny_taskonomy!r}))\n"
        f"visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n")
    cfg = Config.fromfile(str(cfg_path))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = root / 'random.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return str(cfg_path), str(ckpt)


@pytest.fixture(scope='module')
def astronaut_png(tmp_path_factory):
    """skimage's astronaut cropped to 301x457, saved as PNG."""
    from skimage.data import astronaut
    path = tmp_path_factory.mktemp('imgs') / 'astronaut.png'
    write_png(path, np.ascontiguousarray(astronaut()[:IMG_HW[0], :IMG_HW[1]]))
    return path


def test_inference_model_any_size(config_and_checkpoint, astronaut_png):
    from mtl_adapters.apis import inference_model, init_model
    model = init_model(*config_and_checkpoint, device='cpu')
    assert not model.training
    by_path = inference_model(model, str(astronaut_png))
    by_array = inference_model(model, read_image(astronaut_png))
    for name, task in model.tasks.items():
        pred = by_path.get_pred(name)
        assert pred.shape == (task.gt_channels,) + IMG_HW
        assert torch.equal(pred, by_array.get_pred(name))
    assert by_path.metainfo['img_path'] == str(astronaut_png)
    assert by_path.metainfo['pad_shape'] == (320, 480)


def test_infer_tool_writes_all_outputs(config_and_checkpoint, astronaut_png, tmp_path):
    infer = load_tool('infer')
    folder = tmp_path / 'in'
    folder.mkdir()
    write_png(folder / 'small.png', np.full((37, 53, 3), 90, np.uint8))
    out = tmp_path / 'out'
    written = infer.main([*config_and_checkpoint, str(astronaut_png), str(folder),
                          '--out-dir', str(out)])
    assert len(written) == 2
    files = written[str(astronaut_png)]
    names = {p.name for p in files.values()}
    assert names == {'astronaut_seg.png', 'astronaut_depth_mm.png', 'astronaut_normal.png',
                     'astronaut_edge.png', 'astronaut_overview.png'}
    seg = Image.open(files['seg'])
    assert seg.mode == 'P' and seg.size == IMG_HW[::-1]
    assert np.asarray(seg).max() < 8
    depth = read_image(files['depth'])
    assert depth.dtype == np.uint16 and depth.shape == IMG_HW
    normal = read_image(files['normal'])
    assert normal.dtype == np.uint8 and normal.shape == IMG_HW + (3,)
    edge = read_image(files['edge'])
    assert edge.dtype == np.uint16 and edge.shape == IMG_HW
    overview = read_image(files['overview'])
    assert overview.shape[1] > 5 * IMG_HW[1] and overview.shape[2] == 3  # input + 4 tasks
    assert read_image(out / 'small_depth_mm.png').shape == (37, 53)


def test_infer_tool_names_a_file_that_is_not_an_image(config_and_checkpoint, astronaut_png,
                                                      tmp_path, capsys):
    infer = load_tool('infer')
    bad = tmp_path / 'notes.png'
    bad.write_text('this is not an image')
    with pytest.raises(SystemExit) as exc:
        infer.main([*config_and_checkpoint, str(bad), '--out-dir', str(tmp_path / 'o1')])
    assert str(bad) in str(exc.value) and 'not an image' in str(exc.value)
    written = infer.main([*config_and_checkpoint, str(bad), str(astronaut_png),
                          '--out-dir', str(tmp_path / 'o2'), '--skip-bad'])
    assert list(written) == [str(astronaut_png)]
    assert str(bad) in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='missing.png'):
        infer.main([*config_and_checkpoint, str(tmp_path / 'missing.png'),
                    '--out-dir', str(tmp_path / 'o3')])


def test_test_tool_writes_metrics_delta_m_and_per_image_outputs(config_and_checkpoint,
                                                                tmp_path):
    test_tool = load_tool('test')
    # the tool must not take the standard library's `test` package's name in this worker
    assert 'test' not in sys.modules or 'tools' not in str(sys.modules['test'].__file__)
    baseline = tmp_path / 'baseline.json'
    baseline.write_text(json.dumps({'seg/mIoU': 10.0, 'depth/rmse': 3.0, 'normal/mean': 60.0,
                                    'edge/l1': 0.2}))
    out_json = tmp_path / 'metrics.json'
    metrics = test_tool.main([*config_and_checkpoint, '--work-dir', str(tmp_path / 'work'),
                              '--out', str(out_json), '--baseline', str(baseline),
                              '--out-dir', str(tmp_path / 'preds'),
                              '--show-dir', str(tmp_path / 'show')])
    saved = json.loads(out_json.read_text())
    for key in ('seg/mIoU', 'seg/aAcc', 'depth/rmse', 'depth/d1', 'normal/median',
                'normal/11.25', 'edge/l1', 'mtl/delta_m'):
        assert key in saved and np.isfinite(saved[key]), key
    assert saved['mtl/delta_m'] == pytest.approx(metrics['mtl/delta_m'])
    expect = np.mean([(saved['seg/mIoU'] - 10) / 10, -(saved['depth/rmse'] - 3) / 3,
                      -(saved['normal/mean'] - 60) / 60, -(saved['edge/l1'] - 0.2) / 0.2]) * 100
    assert saved['mtl/delta_m'] == pytest.approx(expect)
    # the test split of the fixture: building bldC, views 0..2 (64x64)
    for view in range(3):
        stem = tmp_path / 'preds' / 'bldC' / f'point_{view}_view_0_domain_rgb'
        for suffix in ('_seg.png', '_depth_mm.png', '_normal.png', '_edge.png'):
            assert osp.isfile(f'{stem}{suffix}'), f'{stem}{suffix}'
        assert read_image(f'{stem}_depth_mm.png').shape == (64, 64)
    # --show-dir: the visualiser writes the grids there, as mmseg's test tool does
    shown = sorted(p.name for p in (tmp_path / 'show').rglob('*.png'))
    assert shown == [f'test_sample{i}_0.png' for i in range(3)]
    assert len(list((tmp_path / 'show' / 'vis_data' / 'vis_image').glob('*.png'))) == 3


def test_tools_never_run_code_from_a_checkpoint(config_and_checkpoint, astronaut_png, tmp_path):
    """A downloaded .pth handed to test.py or infer.py is refused before its code can run."""
    from mtl_adapters.utils import UnsafeCheckpointError
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, evil)
    config = config_and_checkpoint[0]
    with pytest.raises(UnsafeCheckpointError, match='--trust-checkpoint'):
        load_tool('test').main([config, str(evil), '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(UnsafeCheckpointError, match='--trust-checkpoint'):
        load_tool('infer').main([config, str(evil), str(astronaut_png),
                                 '--out-dir', str(tmp_path / 'o')])
    assert not marker.exists()


def test_test_tool_refuses_what_it_cannot_evaluate(config_and_checkpoint, tmp_path):
    """Another task set, an empty state dict or a NaN checkpoint: an error, never metrics."""
    from mmengine.config import Config

    from mtl_adapters.registry import MODELS
    config, ckpt = config_and_checkpoint
    test_tool = load_tool('test')
    cfg = Config.fromfile(config)
    cfg.model.tasks = cfg.model.tasks[:2]                  # an S-D checkpoint for S-D-N-E
    sd_ckpt = tmp_path / 'sd.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, sd_ckpt)
    empty = tmp_path / 'empty.pth'
    torch.save({'state_dict': {}, 'meta': {}}, empty)
    for path, pattern in ((sd_ckpt, r'(?s)not in the checkpoint.*decoders\.normal'),
                          (empty, r'(?s)not in the checkpoint.*decoders\.seg')):
        with pytest.raises(RuntimeError, match=pattern):
            test_tool.main([config, str(path), '--work-dir', str(tmp_path / 'w')])
    state = torch.load(ckpt, weights_only=True)['state_dict']
    nan = tmp_path / 'nan.pth'
    torch.save({'state_dict': {k: v.float().fill_(float('nan')) if v.is_floating_point() else v
                               for k, v in state.items()}, 'meta': {}}, nan)
    with pytest.raises(FloatingPointError, match='non-finite .* prediction for .*bldC'):
        test_tool.main([config, str(nan), '--work-dir', str(tmp_path / 'w')])


def test_tools_refuse_a_nan_segmentation_decoder(config_and_checkpoint, astronaut_png, tmp_path):
    """NaN only in the seg decoder: its argmax would be class 0 everywhere, a plausible mIoU
    and palette PNGs; test.py and infer.py stop naming the task and the image instead."""
    config, ckpt = config_and_checkpoint
    state = torch.load(ckpt, weights_only=True)['state_dict']
    nan = tmp_path / 'nan_seg.pth'
    torch.save({'state_dict': {k: v.clone().fill_(float('nan'))
                               if k.startswith('decoders.seg.') and v.is_floating_point()
                               else v for k, v in state.items()}, 'meta': {}}, nan)
    pattern = r"(?s)^(?=.*non-finite raw output .*\['seg'\])(?=.*checkpoint)(?=.*{})"
    with pytest.raises(FloatingPointError, match=pattern.format('bldC')):
        load_tool('test').main([config, str(nan), '--work-dir', str(tmp_path / 'w'),
                                '--out', str(tmp_path / 'metrics.json')])
    assert not (tmp_path / 'metrics.json').exists()
    out = tmp_path / 'out'
    with pytest.raises(FloatingPointError, match=pattern.format('astronaut.png')):
        load_tool('infer').main([config, str(nan), str(astronaut_png), '--out-dir', str(out)])
    assert not out.exists() or not any(out.iterdir())               # nothing written for it


def test_undefined_metrics_are_null_in_strict_json(config_and_checkpoint, tmp_path):
    """A test split whose depth is all invalid and whose labels are all ignore: those metrics
    are warned about by name and written as null, and the file is strict JSON."""
    from mtl_adapters.datasets.taskonomy import (encode_taskonomy, taskonomy_format,
                                                 taskonomy_path)
    from mtl_adapters.tasks import build_tasks
    from conftest import write_taskonomy_fixture
    data = tmp_path / 'data'
    write_taskonomy_fixture(str(data))
    tasks = build_tasks([dict(type='SemanticTask', num_classes=5), 'DepthTask'])
    blank = dict(seg=np.full((64, 64), 255, np.uint8), depth=np.zeros((64, 64), np.float32))
    for view in range(3):                                  # the test split: building bldC
        for name, task in tasks.items():
            fmt = taskonomy_format(task)
            write_png(taskonomy_path(str(data), fmt.folder, 'bldC', view, 0, fmt.domain),
                      encode_taskonomy(task, blank[name]))
    baseline = tmp_path / 'baseline.json'
    baseline.write_text(json.dumps({'seg/mIoU': 10.0, 'normal/mean': 60.0}))
    out = tmp_path / 'metrics.json'
    with pytest.warns(UserWarning, match=r"(?s)undefined metrics.*'seg/mIoU'.*'depth/rmse'"
                                         r".*mtl/delta_m has no value.*seg/mIoU"):
        load_tool('test').main([*config_and_checkpoint, '--work-dir', str(tmp_path / 'w'),
                                '--out', str(out), '--baseline', str(baseline),
                                '--cfg-options', f'test_dataloader.dataset.data_root={data}'])

    def refuse(constant):
        raise AssertionError(f'{out} is not strict JSON: it holds {constant}')
    saved = json.loads(out.read_text(), parse_constant=refuse)
    for key in ('seg/mIoU', 'seg/aAcc', 'depth/rmse', 'depth/abs_rel', 'mtl/delta_m'):
        assert saved[key] is None, key
    assert np.isfinite(saved['normal/mean']) and np.isfinite(saved['edge/l1'])
