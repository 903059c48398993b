"""Inference at the scale the model was tested at: test-time resize keeping the aspect ratio,
predictions mapped back to the input, sliding windows, batches."""
import numpy as np
import pytest
import torch

from conftest import NARROW_SWIN, load_tool, write_taskonomy_fixture
from mtl_adapters.utils import read_image, write_png

REPO_CONFIG = 'configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
HW = (130, 200)                     # the photo: not the training scale, not square


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny model whose test pipeline scales the longest side to 64, a Taskonomy-format
    dataset of 130x200 images, and the model built from it."""
    from conftest import REPO

    from mtl_adapters.apis import init_model
    root = tmp_path_factory.mktemp('scale')
    data = root / 'data'
    write_taskonomy_fixture(str(data), size=HW)
    encoder = dict(pretrained=None, img_size=NARROW_SWIN['img_size'],
                   model_kwargs=NARROW_SWIN['model_kwargs'])
    cfg = root / 'cfg.py'
    cfg.write_text(
        f"_base_ = [{str(REPO / REPO_CONFIG)!r}]\n"
        f"model = dict(encoder={encoder!r}, decoder=dict(channels=16))\n"
        "test_pipeline = [dict(type='LoadMultiTaskImageAndAnnotations'),\n"
        "                 dict(type='MultiTaskAlbu',\n"
        "                      geometric=[dict(type='LongestMaxSize', max_size=64)]),\n"
        "                 dict(type='PackMultiTaskInputs')]\n"
        "test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,\n"
        f"    dataset=dict(data_root={str(data)!r}, pipeline=test_pipeline))\n")
    torch.manual_seed(0)
    model = init_model(str(cfg), None)
    torch.manual_seed(1)
    with torch.no_grad():                     # a random but non-trivial model
        for p in model.decoders.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, cfg, data


def test_predictions_come_back_at_input_size_and_match_the_test_pipeline(setup):
    from mmengine.registry import DATASETS

    from mtl_adapters.apis import inference_model
    model, _, data = setup
    dataset = DATASETS.build(model.cfg.test_dataloader.dataset)
    item = dataset[0]
    with torch.no_grad():                      # what tools/test.py does with this image
        batch = model.data_preprocessor(dict(inputs=[item['inputs']],
                                             data_samples=[item['data_samples']]), False)
        tested = model.predict(batch['inputs'], batch['data_samples'], keep_logits=True)[0]
    assert tested.metainfo['img_shape'] == (42, 64)
    ours = inference_model(model, item['data_samples'].metainfo['img_path'], keep_logits=True)
    assert ours.metainfo['ori_shape'] == HW and ours.metainfo['img_shape'] == (42, 64)
    for name, task in model.tasks.items():
        assert ours.get_pred(name).shape == (task.gt_channels,) + HW
        logits = torch.nn.functional.interpolate(tested.get_logits(name)[None], size=HW,
                                                 mode='bilinear', align_corners=False)[0]
        torch.testing.assert_close(ours.get_logits(name), logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.get_pred(name).float(),
                                   task.postprocess(logits[None])[0].float(),
                                   atol=1e-5, rtol=1e-5)
    normal = ours.get_pred('normal')
    torch.testing.assert_close(normal.norm(dim=0), torch.ones(HW))        # re-normalised


def test_resize_keeps_the_aspect_ratio():
    from mtl_adapters.apis import apply_test_geometry, keep_ratio_size
    assert keep_ratio_size((3000, 4000), (256, 256)) == (192, 256)
    assert keep_ratio_size((1024, 2048), (512, 1024)) == (512, 1024)
    img = np.zeros(HW + (3,), np.uint8)
    assert apply_test_geometry(img, [dict(type='Resize', height=64, width=64)]).shape[:2] \
        == (42, 64)
    assert apply_test_geometry(img, [dict(type='SmallestMaxSize', max_size=65)]).shape[:2] \
        == (65, 100)


def test_test_geometry_refuses_what_cannot_be_undone():
    from mmengine.config import Config

    from mtl_adapters.apis import test_geometry
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='MultiTaskAlbu', geometric=[dict(type='CenterCrop', height=8, width=8)])]))))
    with pytest.raises(ValueError, match='CenterCrop'):
        test_geometry(cfg)


def test_slide_covers_every_pixel_once_or_blended(setup, monkeypatch):
    model, _, _ = setup
    windows = []

    def fake(inputs, task_names=None, return_branch_input=False):
        windows.append(tuple(inputs.shape[-2:]))
        value = float(len(windows))
        return {t: torch.full((inputs.shape[0], 1) + tuple(inputs.shape[-2:]), value)
                for t in model.task_names}

    monkeypatch.setattr(model, 'test_cfg', dict(mode='slide', crop_size=(32, 32),
                                                stride=(21, 21)))
    monkeypatch.setattr(model, 'forward_tasks', fake)
    out = model.slide_forward(torch.zeros(1, 3, 75, 100))['seg'][0, 0]      # 75, 100: no
    assert windows == [(32, 32)] * (4 * 5)                                  # stride multiple
    assert torch.isfinite(out).all()                     # every pixel covered at least once
    assert out[0, 0] == 1 and out[-1, -1] == 20          # corners: only the first / last
    # windows 1 (columns 0..31) and 2 (21..52) overlap at column 25: blended by their tents,
    # min(26, 7) = 7 for window 1 and min(5, 28) = 5 for window 2
    assert out[0, 25] == pytest.approx((7 * 1 + 5 * 2) / 12)


def test_slide_with_one_window_equals_whole(setup, monkeypatch):
    from mtl_adapters.apis import inference_model
    model, _, data = setup
    photo = next(data.glob('rgb/*/*.png'))
    whole = inference_model(model, str(photo))
    monkeypatch.setattr(model, 'test_cfg', dict(mode='slide', crop_size=(64, 64),
                                                stride=(64, 64)))
    slide = inference_model(model, str(photo))
    for name in model.tasks:
        torch.testing.assert_close(slide.get_pred(name).float(), whole.get_pred(name).float())


def test_batched_equals_single(setup, tmp_path):
    from mtl_adapters.apis import inference_model
    model, _, data = setup
    photos = sorted(data.glob('rgb/*/*.png'))[:3]
    odd = tmp_path / 'odd.png'
    write_png(odd, read_image(photos[0])[:97, :150])
    images = [str(photos[0]), str(photos[1]), str(odd), str(photos[2])]
    single = [inference_model(model, p) for p in images]
    batched = inference_model(model, images, batch_size=3)
    assert len(batched) == 4
    for a, b in zip(single, batched):
        assert a.metainfo['img_path'] == b.metainfo['img_path']
        for name in model.tasks:
            # same padding, same numbers up to the batch's float summation order
            torch.testing.assert_close(a.get_pred(name).float(), b.get_pred(name).float(),
                                       atol=1e-4, rtol=1e-4)


def test_infer_tool_batches_slides_and_saves_raw(setup, tmp_path):
    model, cfg, data = setup
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    infer = load_tool('infer')
    out = tmp_path / 'out'
    written = infer.main([str(cfg), str(ckpt), str(data / 'rgb'), '--out-dir', str(out),
                          '--batch-size', '2', '--mode', 'slide', '--crop-size', '32', '32',
                          '--save-raw'])
    assert len(written) == 9
    files = next(iter(written.values()))
    prob = np.load(files['seg_raw'])
    assert prob.shape == (model.tasks['seg'].num_classes,) + HW and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(0), 1.0, atol=1e-5)
    depth = np.load(files['depth_raw'])
    assert depth.shape == (1,) + HW
    assert read_image(files['depth']).shape == HW


def test_inference_benchmark_smoke(tmp_path):
    from mtl_adapters.benchmarks import inference_speed
    out = tmp_path / 'speed.json'
    result = inference_speed.main(['--num-images', '2', '--batch-size', '1', '2',
                                   '--size', '70', '90', '--crop-size', '64', '64',
                                   '--device', 'cpu', '--out', str(out)])
    assert [(r['mode'], r['batch_size']) for r in result['rows']] == [
        ('whole', 1), ('whole', 2), ('slide', 1), ('slide', 2)]
    assert all(r['images_per_s'] > 0 for r in result['rows']) and out.is_file()


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_prediction_does_not_depend_on_the_rest_of_the_batch(setup, monkeypatch, mode):
    """A small image predicted alone and batched with a larger one (which pads it): the same
    raw outputs, whatever the padding, so test metrics do not depend on the batch size."""
    model, _, _ = setup
    if mode == 'slide':
        monkeypatch.setattr(model, 'test_cfg', dict(mode='slide', crop_size=(32, 32),
                                                    stride=(21, 21)))
    rng = np.random.RandomState(0)
    small = torch.from_numpy(rng.randint(0, 256, (3, 40, 50), dtype=np.uint8))
    large = torch.from_numpy(rng.randint(0, 256, (3, 90, 130), dtype=np.uint8))

    def predict(images):
        from mtl_adapters.structures import MultiTaskDataSample
        samples = [MultiTaskDataSample(metainfo=dict(img_shape=tuple(i.shape[-2:])))
                   for i in images]
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)
            return model.predict(data['inputs'], data['data_samples'], keep_logits=True)

    alone = predict([small])[0]
    for batch, index in (([small, large], 0), ([large, small, small], 2)):
        batched = predict(batch)[index]
        for name in model.tasks:
            torch.testing.assert_close(batched.get_logits(name), alone.get_logits(name),
                                       atol=1e-4, rtol=1e-4)


def test_slide_blend_is_seamless(setup, monkeypatch):
    """Windows that disagree (as a real model's do near their borders): the blend changes
    gradually across each overlap, with no jump where a window starts or ends."""
    model, _, _ = setup

    def fake(inputs, task_names=None, return_branch_input=False):
        # channel 0 is a smooth ramp; each window adds an offset set by where it starts
        return {t: inputs[:, :1] + 0.5 * inputs[:, :1, :1, :1] for t in model.task_names}

    monkeypatch.setattr(model, 'forward_tasks', fake)
    monkeypatch.setattr(model, 'test_cfg', dict(mode='slide', crop_size=(24, 32),
                                                stride=(16, 20)))
    h, w = 40, 100
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing='ij')
    out = model.slide_forward(torch.stack([x + y, y, x])[None])['depth'][0, 0]
    # neighbouring windows disagree by 0.5 * stride (8 rows, 10 columns); plain averaging
    # jumps by half of that in one pixel: the second difference of the ramp is 4-5 there
    for axis in (0, 1):
        step = out.diff(dim=axis)
        assert step.min() > 0.99                           # still increasing everywhere
        assert step.diff(dim=axis).abs().max() < 1.2, axis  # no seam (a kink at most)


def test_slide_stride_larger_than_the_window_is_refused(setup, tmp_path, monkeypatch):
    """Pixels between windows would get no prediction (written as 0 / class 0)."""
    model, cfg, data = setup
    monkeypatch.setattr(model, 'test_cfg', dict(mode='slide', crop_size=(32, 32),
                                                stride=(40, 20)))
    with pytest.raises(ValueError, match=r'stride \(40, 20\).*crop_size \(32, 32\)'):
        model.check_test_cfg()
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    with pytest.raises(SystemExit, match=r'stride \(40, 40\).*crop_size \(32, 32\).*--stride'):
        load_tool('infer').main([str(cfg), str(ckpt), str(data / 'rgb'), '--out-dir',
                                 str(tmp_path / 'out'), '--mode', 'slide',
                                 '--crop-size', '32', '32', '--stride', '40', '40'])
    assert not (tmp_path / 'out').exists()
