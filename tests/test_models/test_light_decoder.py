"""Decoder cost as a config choice: the parameter-count formula equals the built decoder, the
light setting (configs/_base_/models/*_light.py) builds and is lighter, and gradient
checkpointing (``with_cp``) gives the same gradients."""
import pytest
import torch
from mmengine.config import Config

from mtl_adapters.models.decoders import SwinDecoder, swin_decoder_num_params
from mtl_adapters.registry import MODELS
from mtl_adapters.set_env import register_all_modules

ENC = (16, 32, 64, 128)
LIGHT_BASE = 'configs/_base_/models/vtagml_swinv2_tiny_light.py'
LIGHT_LEAF = 'configs/vtagml/vtagml-light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
FULL_LEAF = 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def count(module: torch.nn.Module) -> int:
    """Parameters of a module."""
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('cfg', [
    dict(),                                                        # full, mirrored widths
    dict(depths=(0, 2, 2, 2)),                                     # light
    dict(depths=(1, 0, 3, 1), num_heads=(4, 2, 2, 1), mlp_ratio=2.5, head_channels=12),
    dict(embed_dims=(96, 40, 24, 16), num_heads=(3, 2, 1, 1), head_channels=6),  # stem linear
])
@pytest.mark.parametrize('out_channels', [1, 17])
def test_param_count_formula_equals_the_built_decoder(cfg, out_channels):
    built = SwinDecoder(ENC, out_channels, window_size=4, img_size=(64, 64), **cfg)
    assert swin_decoder_num_params(ENC, out_channels, **cfg) == count(built)


def test_light_base_config_is_the_full_one_without_blocks_at_1_32():
    """The light base only drops the 1/32 blocks; built at Swin-V2-T widths (96..768) its
    decoder has the formula's count, about a third of the full decoder's."""
    light = Config.fromfile(LIGHT_BASE).model.decoder
    full = Config.fromfile('configs/_base_/models/vtagml_swinv2_tiny.py').model.decoder
    assert tuple(light.depths) == (0, 2, 2, 2)
    assert {k: v for k, v in light.items() if k != 'depths'} == \
        {k: v for k, v in full.items() if k != 'depths'}
    widths = (96, 192, 384, 768)
    kw = {k: v for k, v in light.items() if k != 'type'}
    n_light = swin_decoder_num_params(widths, 3, **kw)
    n_full = swin_decoder_num_params(widths, 3, **dict(kw, depths=full.depths))
    assert n_light == count(SwinDecoder(widths, 3, **kw))
    assert 0.25 < n_light / n_full < 0.4


def test_light_synthetic_leaf_builds_and_runs():
    """The synthetic light leaf differs from the full leaf only in the decoder depths, builds,
    and its decoders have the formula's count."""
    register_all_modules()
    light, full = Config.fromfile(LIGHT_LEAF), Config.fromfile(FULL_LEAF)
    assert tuple(light.model.decoder.depths) == (0, 2, 2, 2)
    assert light.model.encoder == full.model.encoder
    assert light.train_dataloader == full.train_dataloader
    torch.manual_seed(0)
    model = MODELS.build(light.model)
    widths = [32 * 2 ** i for i in range(4)]                       # narrow: 32, 64, 128, 256
    kw = {k: v for k, v in light.model.decoder.items() if k != 'type'}
    for name, dec in model.decoders.items():
        out = dec.head.predict.out_channels
        assert count(dec) == swin_decoder_num_params(widths, out, **kw), name
    assert len(model.decoders['seg'].stages[0].blocks) == 0
    img = torch.randn(1, 3, 64, 64)
    out = model.decoders['depth'](model.encoder(img)['depth'], (64, 64))
    assert out.shape == (1, 1, 64, 64)


def test_gradient_checkpointing_gives_identical_gradients():
    """with_cp=True recomputes the blocks in the backward: same output, same gradients (bit for
    bit on CPU), drop-path included (the RNG state is replayed); fewer saved tensors."""
    kw = dict(in_channels=ENC, out_channels=2, num_heads=(4, 2, 1, 1), window_size=4,
              img_size=(64, 64), head_channels=8, drop_path_rate=0.3)
    torch.manual_seed(0)
    ref = SwinDecoder(**kw).train()
    cp = SwinDecoder(with_cp=True, **kw).train()
    cp.load_state_dict(ref.state_dict())
    feats = [torch.randn(2, c, 64 // s, 64 // s) for c, s in zip(ENC, (4, 8, 16, 32))]
    grads = {}
    for name, dec in (('ref', ref), ('cp', cp)):
        inputs = [f.clone().requires_grad_() for f in feats]
        torch.manual_seed(3)
        out = dec(inputs, (64, 64))
        out.square().mean().backward()
        grads[name] = (out.detach(), [p.grad for p in dec.parameters()],
                       [f.grad for f in inputs])
    (out_ref, p_ref, x_ref), (out_cp, p_cp, x_cp) = grads['ref'], grads['cp']
    assert torch.equal(out_ref, out_cp)
    assert all(torch.equal(a, b) for a, b in zip(p_ref, p_cp))
    assert all(torch.equal(a, b) for a, b in zip(x_ref, x_cp))
    torch.manual_seed(4)                                  # drop-path is live: other paths differ
    assert not torch.equal(ref(feats, (64, 64)), out_ref)
    # checkpointing saves fewer activations for the backward
    saved = {}
    for name, dec in (('ref', ref), ('cp', cp)):
        sizes = []

        def pack(t, sizes=sizes):
            sizes.append(t.numel())
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            dec([f.clone().requires_grad_() for f in feats], (64, 64))
        saved[name] = sum(sizes)
    assert saved['cp'] < 0.7 * saved['ref']
