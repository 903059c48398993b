"""The adapters' use of timm's Swin-V2: timm's window attention reproduced bit for bit, timm's
drop-paths kept, and timm options the adapters do not reproduce refused by name."""
import pytest
import timm
import torch
import torch.nn as nn
from timm.models.swin_transformer_v2 import SwinTransformerV2Block, WindowAttention

from mtl_adapters.models.adapters import AdapterBlock
from mtl_adapters.models.adapters.timm_swinv2 import (window_attention_logits,
                                                      window_attention_output)
from mtl_adapters.models.backbones import AdaptedSwinV2Encoder


class ScaledLayerNorm(nn.LayerNorm):
    """A LayerNorm subclass with its own forward, which the task-scaled norms cannot wrap."""

    def forward(self, x):
        return 2 * super().forward(x)


TINY = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
            model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)))


def make_block(shift=2, **kwargs):
    """A timm block with random, non-trivial weights (8x8 map, window 4)."""
    torch.manual_seed(0)
    kwargs = dict(dict(dim=16, input_resolution=(8, 8), num_heads=2, window_size=4,
                       shift_size=shift, dynamic_mask=True), **kwargs)
    blk = SwinTransformerV2Block(**kwargs)
    with torch.no_grad():
        for name, p in blk.named_parameters():
            if 'norm' in name or 'bias' in name:
                p.normal_(0.5 if name.endswith('norm1.weight') or name.endswith('norm2.weight')
                          else 0.0, 0.3)
    return blk


@pytest.mark.parametrize('qkv_bias', [True, False])
@pytest.mark.parametrize('pretrained_window_size', [0, 6])
@pytest.mark.parametrize('with_mask', [True, False])
def test_split_window_attention_equals_timm(qkv_bias, pretrained_window_size, with_mask):
    """The two halves TAA puts its bias between are exactly timm's WindowAttention.forward."""
    torch.manual_seed(0)
    attn = WindowAttention(16, (4, 4), 2, qkv_bias=qkv_bias,
                           pretrained_window_size=(pretrained_window_size,) * 2).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.5)
    x = torch.randn(3 * 4, 16, 16)
    mask = make_block().get_attn_mask(torch.zeros(1, 8, 8, 1)) if with_mask else None
    logits, v = window_attention_logits(attn, x)
    assert torch.equal(window_attention_output(attn, logits, v, mask), attn(x, mask))


@pytest.mark.parametrize('shift', [0, 2])
@pytest.mark.parametrize('size', [(8, 8), (6, 10)])
def test_adapter_block_is_the_timm_block_in_train_mode_too(shift, size):
    """At init the adapter block is the timm block, drop-path and dropout included (same RNG)."""
    blk = make_block(shift=shift, drop_path=0.5, proj_drop=0.2)
    adapter = AdapterBlock(blk, cond_dim=4).train()
    blk.train()
    x, cond = torch.randn(3, *size, 16), torch.randn(1, 4)
    torch.manual_seed(5)
    ref = blk(x)
    torch.manual_seed(5)
    out, _ = adapter(x, cond)
    assert torch.equal(out, ref)
    torch.manual_seed(6)
    assert not torch.equal(adapter(x, cond)[0], ref)      # the drop-paths do drop
    blk.eval(), adapter.eval()
    assert torch.equal(adapter(x, cond)[0], blk(x))


def test_unsupported_timm_options_are_refused_by_name():
    blk = make_block()
    blk.attn.qkv_bias_separate = True
    with pytest.raises(ValueError, match=r'qkv_bias_separate=True'):
        AdapterBlock(blk, cond_dim=4)
    with pytest.raises(ValueError, match=r'dynamic_mask=False.*input_resolution=\(8, 8\)'):
        AdapterBlock(make_block(dynamic_mask=False), cond_dim=4)
    with pytest.raises(ValueError, match=r'norm_layer=ScaledLayerNorm'):
        AdapterBlock(make_block(norm_layer=ScaledLayerNorm), cond_dim=4)
    blk = make_block(dynamic_mask=False)
    blk.attn.qkv_bias_separate = True
    with pytest.raises(ValueError) as err:          # every refused option is named at once
        AdapterBlock(blk, cond_dim=4)
    assert 'qkv_bias_separate=True' in str(err.value) and 'dynamic_mask=False' in str(err.value)


def test_other_block_classes_are_refused():
    swin_v1 = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=0,
                                embed_dim=16, num_heads=(1, 2, 2, 2), depths=(1, 1, 1, 1))
    with pytest.raises(TypeError, match='SwinTransformerV2Block.*SwinTransformerBlock'):
        AdapterBlock(swin_v1.layers[0].blocks[0], cond_dim=4)
    blk = make_block()
    blk.attn = nn.Identity()
    with pytest.raises(TypeError, match='WindowAttention'):
        AdapterBlock(blk, cond_dim=4)


def test_encoder_refuses_an_unsupported_trunk_option():
    """The check runs when the encoder builds its adapter blocks (here: timm's norm_layer)."""
    kwargs = dict(TINY, model_kwargs=dict(TINY['model_kwargs'], norm_layer=ScaledLayerNorm))
    with pytest.raises(ValueError, match='norm_layer=ScaledLayerNorm.*nn.LayerNorm'):
        AdaptedSwinV2Encoder(task_names=['a', 'b'], **kwargs)
