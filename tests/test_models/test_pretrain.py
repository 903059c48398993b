"""Trunk pretraining and the shipped trunk: checksum, strict loading, tools/pretrain.py."""
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mtl_adapters.models.backbones import SwinV2Encoder
from mtl_adapters.models.backbones.embedded_trunk import (EMBEDDED_PREFIX, EMBEDDED_TRUNKS,
                                                          WEIGHTS_DIR, save_trunk, sha256_of)

from conftest import REPO, load_tool

NAME = 'swinv2-tiny-narrow-synthetic'
SHIPPED = EMBEDDED_PREFIX + NAME
NARROW = dict(model_name='swinv2_tiny_window8_256', img_size=(128, 128),
              model_kwargs=dict(embed_dim=32, num_heads=(1, 2, 4, 8)))
TINY = dict(model_name='swinv2_tiny_window8_256', img_size=(32, 32),
            model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                              window_size=4))
PRETRAIN_CFG = ('configs/pretrain/'
                'supervised_swinv2-tiny-narrow_1xb8-3000_synthetic-pretrain-64x64_sdne.py')


def test_shipped_trunk_loads_checked_and_upcast():
    """By name: the file's sha256 is the recorded one, every trunk tensor is the file's (fp16
    storage upcast to fp32), and the res-post norms are the trained ones (not the random
    trunk's stand-in 1/0)."""
    from safetensors.torch import load_file
    entry = EMBEDDED_TRUNKS[NAME]
    path = WEIGHTS_DIR / entry.file
    assert sha256_of(path) == entry.sha256
    assert path.stat().st_size <= 10 * 2 ** 20
    enc = SwinV2Encoder(pretrained=SHIPPED, **NARROW)
    state = load_file(str(path))
    own = enc.swin.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        assert own[key].dtype == torch.float32, key
        assert torch.equal(own[key], value.float()), key
    norm = own['layers.2.blocks.0.norm1.weight']
    assert not torch.equal(norm, torch.ones_like(norm))


def test_corrupted_copy_is_refused(tmp_path):
    """A copy under the shipped file name with one byte changed: refused, naming the file and
    both hashes; the intact copy loads by path."""
    entry = EMBEDDED_TRUNKS[NAME]
    copy = tmp_path / entry.file
    shutil.copyfile(WEIGHTS_DIR / entry.file, copy)
    SwinV2Encoder(pretrained=str(copy), **NARROW)
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ValueError, match='sha256') as err:
        SwinV2Encoder(pretrained=str(copy), **NARROW)
    assert str(copy) in str(err.value) and entry.sha256 in str(err.value)
    assert sha256_of(copy) in str(err.value)


def test_unknown_embedded_name_is_refused():
    with pytest.raises(KeyError, match=NAME):
        SwinV2Encoder(pretrained=EMBEDDED_PREFIX + 'nope', **NARROW)


def _tiny_trunk_file(path, drop=(), extra=None):
    """A trunk file of the TINY trunk, less the keys ``drop``, plus ``extra``."""
    from safetensors.torch import load_file, save_file
    enc = SwinV2Encoder(pretrained=None, **TINY)
    save_trunk(enc.swin, path, TINY['model_name'], TINY['model_kwargs'])
    from safetensors import safe_open
    with safe_open(str(path), framework='pt') as f:
        meta = f.metadata()
    state = load_file(str(path))
    for key in drop:
        del state[key]
    state.update(extra or {})
    save_file(state, str(path), metadata=meta)
    return enc


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path):
    """A trunk file without one key, or with one more, is refused naming it (not loaded with
    that tensor left random)."""
    path = tmp_path / 'trunk.safetensors'
    enc = _tiny_trunk_file(path)
    loaded = SwinV2Encoder(pretrained=str(path), **TINY)        # the complete file loads
    for key, value in enc.swin.state_dict().items():
        assert torch.equal(loaded.swin.state_dict()[key], value.half().float()), key
    _tiny_trunk_file(path, drop=['layers.1.blocks.0.attn.qkv.weight'])
    with pytest.raises(ValueError, match=r"missing keys \['layers\.1\.blocks\.0\.attn\.qkv"):
        SwinV2Encoder(pretrained=str(path), **TINY)
    _tiny_trunk_file(path, extra={'head.fc.weight': torch.zeros(3, 64)})
    with pytest.raises(ValueError, match=r"unexpected keys \['head\.fc\.weight'\]"):
        SwinV2Encoder(pretrained=str(path), **TINY)


def test_trunk_of_another_architecture_is_refused(tmp_path):
    """Shapes are checked too: the tiny trunk's file does not load into a wider trunk."""
    path = tmp_path / 'trunk.safetensors'
    _tiny_trunk_file(path)
    wider = dict(TINY, model_kwargs=dict(TINY['model_kwargs'], embed_dim=16))
    with pytest.raises(ValueError, match=r'shape mismatches.*patch_embed\.proj\.weight'):
        SwinV2Encoder(pretrained=str(path), **wider)


def test_narrow_configs_start_from_the_shipped_trunk():
    """Every synthetic narrow config (but the pretraining one) defaults to the shipped trunk."""
    paths = [p for p in sorted(REPO.glob('configs/*/*tiny-narrow*.py'))
             if p.parent.name != 'pretrain']
    assert len(paths) > 20
    for path in paths:
        assert Config.fromfile(str(path)).model.encoder.pretrained == SHIPPED, path.name


def test_pretrain_tool_writes_a_loadable_trunk(tmp_path):
    """tools/pretrain.py on the shipped config, shrunk (tiny generated corpus, tiny trunk,
    2 iterations): it renders the corpus, trains, and writes a trunk file that loads strictly
    into the same architecture, with the trained weights."""
    tool = load_tool('pretrain')
    work = tmp_path / 'work'
    k = TINY['model_kwargs']
    out, sha = tool.main([
        str(REPO / PRETRAIN_CFG), '--work-dir', str(work), '--cfg-options',
        f'data_root={tmp_path / "corpus"}', 'corpus.num_scenes=2', 'corpus.views_per_scene=1',
        'corpus.size=32', 'corpus.splits=(2,0,0)', 'corpus.workers=1', 'corpus.seed=5',
        'model.encoder.img_size=(32,32)', f'model.encoder.model_kwargs.embed_dim={k["embed_dim"]}',
        f'model.encoder.model_kwargs.num_heads={k["num_heads"]}',
        f'model.encoder.model_kwargs.depths={k["depths"]}', 'model.encoder.model_kwargs.'
        'window_size=4', 'model.decoder.channels=8', 'train_cfg.max_iters=2',
        'param_scheduler=[]', 'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_dataloader.dataset.pipeline.1.geometric.0.size=(32,32)'])
    assert Path(out) == work / 'trunk.safetensors' and sha == sha256_of(out)
    assert (tmp_path / 'corpus' / 'meta.json').is_file()
    enc = SwinV2Encoder(pretrained=out, **TINY)
    random = SwinV2Encoder(pretrained=None, **TINY)
    key = 'layers.0.blocks.0.norm1.weight'    # trained from LayerNorm's (1, 0) init
    assert not torch.equal(enc.swin.state_dict()[key], random.swin.state_dict()[key])
