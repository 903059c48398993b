"""The frozen timm Swin-V2 trunk: local pretrained files, freezing, any input size."""
import pytest
import timm
import torch
from conftest import NARROW_SWIN, tiny_model_cfg

from mtl_adapters.registry import MODELS


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    missing = tmp_path / 'nope' / 'swinv2.safetensors'
    with pytest.raises(FileNotFoundError, match=str(missing)) as err:
        MODELS.build(dict(type='SwinV2Encoder', pretrained=str(missing),
                          **{k: v for k, v in NARROW_SWIN.items()}))
    assert 'pretrained' in str(err.value) and 'Download' in str(err.value)


@pytest.mark.parametrize('fmt', ['safetensors', 'pth'])
def test_pretrained_weights_load_from_local_file(tmp_path, fmt):
    from safetensors.torch import save_file
    torch.manual_seed(3)
    src = timm.create_model(NARROW_SWIN['model_name'], pretrained=False, num_classes=0,
                            img_size=NARROW_SWIN['img_size'], **NARROW_SWIN['model_kwargs'])
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    path = tmp_path / f'weights.{fmt}'
    save_file(state, str(path)) if fmt == 'safetensors' else torch.save(state, path)
    enc = MODELS.build(dict(type='SwinV2Encoder', pretrained=str(path), **NARROW_SWIN))
    for k, v in enc.swin.state_dict().items():
        if k in state and 'relative' not in k:
            torch.testing.assert_close(v, state[k], msg=k)
    fresh = MODELS.build(dict(type='SwinV2Encoder', **NARROW_SWIN))
    assert not torch.equal(fresh.swin.patch_embed.proj.weight, state['patch_embed.proj.weight'])


def test_wrong_model_name():
    with pytest.raises(ValueError, match='swinv2'):
        MODELS.build(dict(type='SwinV2Encoder', model_name='resnet50'))
    with pytest.raises(ValueError, match='swinv2_cr_tiny_224.*other Swin-V2 implementation'):
        MODELS.build(dict(type='SwinV2Encoder', model_name='swinv2_cr_tiny_224'))


def test_trunk_frozen_and_shared_by_tasks():
    model = MODELS.build(tiny_model_cfg())
    model.train()
    assert not model.encoder.swin.training            # frozen trunk stays in eval mode
    feats = model.encoder(torch.randn(1, 3, 64, 96), ['seg', 'depth'])
    assert feats['seg'] is feats['depth']             # computed once
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert [f.shape[1] for f in feats['seg']] == model.encoder.out_channels


@pytest.mark.parametrize('size', [(64, 64), (64, 96), (96, 160)])
def test_outputs_at_input_size(size):
    model = MODELS.build(tiny_model_cfg()).eval()
    out = model(torch.randn(2, 3, *size))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        'seg': (2, 5) + size, 'depth': (2, 1) + size, 'normal': (2, 3) + size,
        'edge': (2, 1) + size}


def test_config_mistakes_name_the_key():
    with pytest.raises(KeyError, match='decoder.*missing'):
        MODELS.build(tiny_model_cfg(decoder=dict(seg=dict(type='LightHead', channels=8))))
    cfg = tiny_model_cfg()
    cfg['task_weights'] = dict(sge=2.0)
    with pytest.raises(KeyError, match='task_weights.*sge'):
        MODELS.build(cfg)
