"""Fused window attention (``attn_impl='sdpa'``) against timm's explicit form: same outputs
and gradients up to fp32 rounding, with and without the shift mask and TAA's task bias, in the
adapter block, the PEFT attention piece, the decoder and the encoder; bad names refused."""
import copy

import pytest
import torch
from timm.models.swin_transformer_v2 import SwinTransformerV2Block

from mtl_adapters.models.adapters import AdapterBlock, TaskAdaptedAttention
from mtl_adapters.models.adapters.timm_swinv2 import (attention_bias, fused_window_attention,
                                                      relative_position_bias, window_attention)
from mtl_adapters.models.backbones import AdaptedSwinV2Encoder
from mtl_adapters.models.decoders import SwinDecoder

#: fp32 bound on |sdpa - explicit| for attention outputs of magnitude ~1 (measured: <= 4.2e-6
#: at the largest temperature tau = 100, from summing the biases first and scaling q not the
#: logits)
ATOL = 1e-5


def make_block(shift: int, tau_max: bool = True) -> SwinTransformerV2Block:
    """A timm block on a 16x16 map, window 8, 4 heads; trained-like norms, temperature at
    timm's cap (100) so that rounding in the logits is as large as it gets."""
    torch.manual_seed(0)
    blk = SwinTransformerV2Block(32, (16, 16), 4, window_size=8, shift_size=shift,
                                 dynamic_mask=True)
    with torch.no_grad():
        for name, p in blk.named_parameters():
            if 'norm' in name:
                p.normal_(1.0, 0.3)
        blk.attn.logit_scale.fill_(4.6 if tau_max else 1.0)   # timm clamps at log(100)
    return blk


def randomise(module: torch.nn.Module, *keys: str) -> None:
    """Non-trivial values for the zero-initialised adapter parameters."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if any(k in name for k in keys):
                p.normal_(0.0, 0.5)


def grads(out: torch.Tensor, *tensors) -> list:
    """Gradients of a fixed random projection of ``out``."""
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return torch.autograd.grad((out * weight).sum(), tensors)


def assert_grads_close(fused, ref) -> None:
    """Gradients agree to 1e-4 of their largest entry (measured: <= 8e-6; the explicit form
    is as far from a float64 computation as the fused one)."""
    for g_fused, g_ref in zip(fused, ref):
        assert g_ref.abs().max() > 0
        assert (g_fused - g_ref).abs().max() <= 1e-4 * g_ref.abs().max()


@pytest.mark.parametrize('shift', [0, 4])
@pytest.mark.parametrize('with_task_bias', [False, True])
def test_fused_equals_explicit_attention(shift, with_task_bias):
    """Window attention alone (outputs ~1): fp32 max abs diff <= ATOL, gradients on the input,
    qkv weight, the continuous-position MLP and A agree."""
    blk = make_block(shift)
    attn = blk.attn
    mask = blk.get_attn_mask(torch.zeros(1, 16, 16, 1))                # None without shift
    assert (mask is None) == (shift == 0)
    num_tasks = 3
    x = torch.randn(num_tasks * 2 * 4, 64, 32, requires_grad=True)    # (T*B*nW, N, C)
    cond = torch.randn(num_tasks, 8)
    taa = TaskAdaptedAttention(4, 64, 8)
    randomise(taa, '')
    wrt = [x, attn.qkv.weight, attn.cpb_mlp[0].weight, attn.logit_scale]
    outs, gs = {}, {}
    for impl in ('explicit', 'sdpa'):
        if with_task_bias:
            taa.attn_impl = impl
            outs[impl] = taa(attn, x, cond, mask)
            gs[impl] = grads(outs[impl], *wrt, taa.task_bias)
        else:
            outs[impl] = window_attention(attn, x, mask, impl=impl)
            gs[impl] = grads(outs[impl], *wrt)
    diff = (outs['sdpa'] - outs['explicit']).abs().max().item()
    assert outs['explicit'].abs().max() > 0.5          # the bound is for outputs of size ~1
    assert diff <= ATOL, diff
    assert_grads_close(gs['sdpa'], gs['explicit'])
    # the task bias matters: the fused path does not silently drop it
    if with_task_bias:
        assert (outs['sdpa'] - window_attention(attn, x, mask)).abs().max() > 1e-2


def test_one_mask_has_every_term():
    """attention_bias = B_rel + A'_t + shift mask, laid out (T, nW, nH, N, N)."""
    blk = make_block(4)
    mask = blk.get_attn_mask(torch.zeros(1, 16, 16, 1))                # (4, 64, 64)
    task_bias = torch.randn(3, 1, 64, 64)                              # shared across heads
    bias = attention_bias(blk.attn, mask, task_bias)
    assert bias.shape == (3, 4, 4, 64, 64)
    rel = relative_position_bias(blk.attn)
    torch.testing.assert_close(bias[2, 1, 3], rel[3] + task_bias[2, 0] + mask[1])
    assert attention_bias(blk.attn).shape == (1, 1, 4, 64, 64)


@pytest.mark.parametrize('shift', [0, 4])
@pytest.mark.parametrize('shared', [False, True])
def test_adapter_block_fused_equals_explicit(shift, shared):
    """A whole adapter block with trained-like adapters on an odd-sized map (padding), 3
    tasks: outputs and the gradients of A, the FiLM and the input agree."""
    ref = AdapterBlock(make_block(shift), cond_dim=8, shared_attn_bias=shared)
    randomise(ref, 'taa', 'ff_up', 'tsn')
    fused = copy.deepcopy(ref)
    fused.taa.attn_impl = 'sdpa'
    x = torch.randn(3 * 2, 13, 19, 32, requires_grad=True)
    cond = torch.randn(3, 8)
    out = {}
    for name, blk in (('explicit', ref), ('sdpa', fused)):
        y, _ = blk(x, cond)
        out[name] = (y, grads(y, x, blk.taa.task_bias, blk.taa.film.weight))
    y_ref, g_ref = out['explicit']
    y_fused, g_fused = out['sdpa']
    # block outputs are ~30 (norm weights ~1, residual); relative bound as for the attention
    assert (y_fused - y_ref).abs().max() <= ATOL * y_ref.abs().max()
    assert_grads_close(g_fused, g_ref)


def assert_as_accurate(ref64: torch.Tensor, explicit: torch.Tensor, fused: torch.Tensor) -> None:
    """Deep stacks (norms amplify rounding): both forms within 1e-4 of the largest output of
    a float64 run (measured: 2e-5 for either, the fused not worse than the explicit)."""
    bound = 1e-4 * ref64.abs().max()
    assert (explicit.double() - ref64).abs().max() <= bound
    assert (fused.double() - ref64).abs().max() <= bound
    assert not torch.equal(fused, explicit)                  # it did take the other path


def test_decoder_and_encoder_fused_equal_explicit():
    """The same weights with attn_impl='sdpa' in the decoder and in the adapter encoder."""
    torch.manual_seed(0)
    feats = [torch.randn(2, c, 64 // s, 96 // s) for c, s in zip((16, 32, 64, 128),
                                                                 (4, 8, 16, 32))]
    kw = dict(in_channels=(16, 32, 64, 128), out_channels=3, num_heads=(4, 2, 1, 1),
              window_size=4, img_size=(64, 96), head_channels=8)
    ref = SwinDecoder(**kw)
    fused = SwinDecoder(attn_impl='sdpa', **kw)
    fused.load_state_dict(ref.state_dict())
    ref64 = copy.deepcopy(ref).double()([f.double() for f in feats], (64, 96))
    assert_as_accurate(ref64, ref(feats, (64, 96)), fused(feats, (64, 96)))

    tiny = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
                model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)))
    torch.manual_seed(0)
    enc = AdaptedSwinV2Encoder(['seg', 'depth'], **tiny)
    randomise(enc, 'taa', 'ff_up')
    enc_fused = AdaptedSwinV2Encoder(['seg', 'depth'], attn_impl='sdpa', **tiny)
    enc_fused.load_state_dict(enc.state_dict())
    assert enc_fused.swin.layers[3].blocks[0].taa.attn_impl == 'sdpa'
    img = torch.randn(2, 3, 64, 64)
    out, out_fused = enc(img), enc_fused(img)
    out64 = copy.deepcopy(enc).double()(img.double())
    for t in ('seg', 'depth'):
        assert_as_accurate(out64[t][3], out[t][3], out_fused[t][3])


def test_fused_layout_keeps_task_and_window_order():
    """Folding (T*B*nW) windows into (B, T*nW*nH) and back puts every window where it was: a
    bias that is -inf except for one key per (task, window) selects that key's value."""
    blk = make_block(0)
    attn = blk.attn
    num_tasks, images, windows, n = 2, 3, 4, 64
    q, k, v = (torch.randn(num_tasks * images * windows, 4, n, 8) for _ in range(3))
    bias = torch.full((num_tasks, windows, 1, n, n), -1e4)
    for t in range(num_tasks):
        for w in range(windows):
            bias[t, w, :, :, 7 * t + w] = 0.0                       # key 7t + w only
    out = fused_window_attention(attn, q, k, v, bias)               # (T*B*nW, N, C)
    for t in range(num_tasks):
        for b in range(images):
            for w in range(windows):
                i = (t * images + b) * windows + w
                expect = v[i, :, 7 * t + w].reshape(-1)             # (nH * d,) heads concat
                torch.testing.assert_close(out[i, 5], expect)


def test_bad_attn_impl_is_refused_by_config_key():
    with pytest.raises(ValueError, match=r'model\.decoder\.attn_impl=.flash.'):
        SwinDecoder((16, 32, 64, 128), 1, attn_impl='flash')
    with pytest.raises(ValueError, match=r'model\.encoder\.attn_impl'):
        AdaptedSwinV2Encoder(['seg'], model_name='swinv2_tiny_window8_256', img_size=(64, 64),
                             model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)),
                             attn_impl='fused')
    blk = make_block(0)
    x = torch.randn(4, 64, 32)
    memory = (torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8))
    with pytest.raises(NotImplementedError, match='explicit'):
        window_attention(blk.attn, x, memory_kv=memory, impl='sdpa')
