"""The paper setting's trunk weights: the configs name the paper's ImageNet-22K Swin-V2-B
timm checkpoint, and a window-12 checkpoint loads into the window-8 trunk the configs build."""
import re
from pathlib import Path

import pytest
import timm
import torch
from mmengine.config import Config

from mtl_adapters.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
#: the paper's trunk: Swin-V2-B pre-trained on ImageNet-22K (192 px, 12x12 windows)
PAPER_TIMM_MODEL = 'swinv2_base_window12_192.ms_in22k'
PAPER_LEAVES = sorted(str(p.relative_to(REPO)) for p in REPO.glob('configs/**/*swinv2-base*.py'))


def test_paper_timm_model_exists():
    assert PAPER_TIMM_MODEL in timm.list_pretrained('swinv2_base*')


@pytest.mark.parametrize('path', PAPER_LEAVES)
def test_paper_configs_name_the_imagenet22k_weights(path):
    """Every Swin-V2-B config loads the paper's checkpoint, with the window sizes it was
    pre-trained at (12 in stages 1-3; stage 4 of a 192-px image is 6x6)."""
    enc = Config.fromfile(str(REPO / path)).model.encoder
    assert enc.model_name == 'swinv2_base_window8_256'
    assert Path(enc.pretrained).name == f'{PAPER_TIMM_MODEL}.safetensors', enc.pretrained
    window = int(re.search(r'window(\d+)_', PAPER_TIMM_MODEL).group(1))
    size = int(re.search(r'_(\d+)\.', PAPER_TIMM_MODEL).group(1))
    expected = (window,) * 3 + (min(window, size // 32),)
    assert tuple(enc.model_kwargs.pretrained_window_sizes) == expected


def test_larger_window_checkpoint_loads_into_smaller_window_trunk(tmp_path):
    """The mechanism the configs rely on, at test size: a checkpoint trained with 6x6 windows
    at 96 px (classifier included) loads into a 4x4-window trunk at 64 px; every weight is
    the file's, and pretrained_window_sizes rescales the position-bias coordinates."""
    from safetensors.torch import save_file
    arch = dict(embed_dim=16, num_heads=(1, 2, 2, 4), depths=(1, 1, 2, 1))
    torch.manual_seed(0)
    src = timm.create_model('swinv2_base_window12_192', pretrained=False, num_classes=10,
                            img_size=96, window_size=6, **arch)
    with torch.no_grad():
        for name, p in src.named_parameters():
            if '.norm' in name and 'blocks' in name:   # trained-like res-post norms
                p.normal_(0.5, 0.1)
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(state, str(tmp_path / 'w12.safetensors'))

    def build(pretrained_window_sizes):
        return MODELS.build(dict(
            type='SwinV2Encoder', model_name='swinv2_base_window8_256', img_size=(64, 64),
            pretrained=str(tmp_path / 'w12.safetensors'),
            model_kwargs=dict(window_size=4, pretrained_window_sizes=pretrained_window_sizes,
                              **arch)))

    enc = build((6, 6, 6, 3))
    loaded = enc.swin.state_dict()
    for k, v in state.items():
        if k.startswith('head') or any(s in k for s in ('relative_position_index',
                                                        'relative_coords_table', 'attn_mask')):
            continue
        torch.testing.assert_close(loaded[k], v, msg=k, rtol=0, atol=0)

    def coords(e):                                     # a non-persistent buffer
        return e.swin.layers[0].blocks[0].attn.relative_coords_table

    assert not torch.equal(coords(enc), coords(build((0, 0, 0, 0))))
    feats = enc(torch.randn(1, 3, 64, 64), ['seg'])['seg']
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert all(torch.isfinite(f).all() for f in feats)
