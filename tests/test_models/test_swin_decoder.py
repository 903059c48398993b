"""SwinDecoder: shapes for any input size, channels-last, expansion helpers, its task head."""
import pytest
import torch

from mtl_adapters.models.decoders import PatchExpand, SwinDecoder, depth_to_space
from mtl_adapters.models.heads import ConvTaskHead

IN_CHANNELS = [16, 32, 64, 128]


def feats_for(size, batch=2):
    """Random encoder features of a (padded) input of ``size``."""
    h, w = size
    return [torch.randn(batch, c, -(-h // s), -(-w // s))
            for c, s in zip(IN_CHANNELS, (4, 8, 16, 32))]


@pytest.mark.parametrize('size', [(64, 96), (96, 160), (128, 128)])
def test_shapes_any_size(size):
    """Output is (B, out_channels, H, W) for H != W and windows larger than the map."""
    torch.manual_seed(0)
    dec = SwinDecoder(IN_CHANNELS, out_channels=3, num_heads=(4, 2, 1, 1), img_size=(64, 64),
                      head_channels=8)
    out = dec(feats_for(size), size)
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_crops_padded_features():
    """Features of a padded input are decoded and cropped to the unpadded size."""
    dec = SwinDecoder(IN_CHANNELS, out_channels=1, head_channels=8, img_size=(64, 64))
    assert dec(feats_for((64, 96)), (50, 90)).shape == (2, 1, 50, 90)


def test_default_widths_mirror_encoder_and_custom_widths():
    """Widths default to the encoder's reversed; custom widths and depths are honoured."""
    dec = SwinDecoder(IN_CHANNELS, out_channels=2)
    assert dec.embed_dims == [128, 64, 32, 16]
    dec = SwinDecoder(IN_CHANNELS, out_channels=2, embed_dims=(48, 32, 24, 16),
                      depths=(1, 1, 1, 1), num_heads=(2, 2, 1, 1), head_channels=8,
                      img_size=(64, 64))
    assert [len(s.blocks) for s in dec.stages] == [1, 1, 1, 1]
    assert dec(feats_for((64, 64)), (64, 64)).shape == (2, 2, 64, 64)


def test_patch_expand_is_depth_to_space():
    """PatchExpand doubles the resolution and the rearrangement is a pixel shuffle."""
    x = torch.arange(2 * 3 * 4 * 8, dtype=torch.float32).view(2, 3, 4, 8)
    y = depth_to_space(x, 2)
    ref = torch.nn.functional.pixel_shuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    # channels-last order (f, f, C) differs from pixel_shuffle's (C, f, f): check as a set map
    assert y.shape == ref.shape == (2, 6, 8, 2)
    assert torch.equal(y[0, :2, :2, 0].flatten(), x[0, 0, 0, 0::2])
    assert PatchExpand(8, 4)(torch.randn(1, 3, 5, 8)).shape == (1, 6, 10, 4)


def test_ends_in_the_conv_task_head():
    """The decoder's ``head`` is the ConvTaskHead of ``models/heads``; its parameter names
    (``head.conv``, ``head.norm``, ``head.predict``) are those of existing checkpoints."""
    dec = SwinDecoder(IN_CHANNELS, out_channels=3, head_channels=8, img_size=(64, 64))
    assert isinstance(dec.head, ConvTaskHead)
    assert {k for k in dec.state_dict() if k.startswith('head.')} == {
        'head.conv.weight', 'head.norm.weight', 'head.norm.bias', 'head.predict.weight',
        'head.predict.bias'}
    assert ConvTaskHead(8, 5)(torch.randn(2, 8, 7, 9)).shape == (2, 5, 7, 9)
