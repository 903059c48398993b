"""bf16 mixed precision: ``tools/train.py --amp`` trains on the CPU (BF16OptimWrapper: bf16
autocast in the forward, fp32 weights), picks mmengine's AmpOptimWrapper on a GPU, and the
per-task gradient rows that TROA and PCGrad compare are fp32 under autocast."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import load_tool, write_taskonomy_fixture
from mmengine.config import Config

from mtl_adapters.engine.optimizers.bf16_optim_wrapper import BF16OptimWrapper
from mtl_adapters.weighting.base import per_task_gradients

REPO = Path(__file__).resolve().parents[2]
LEAF = REPO / 'configs/vtagml/vtagml-light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'

TINY = """
_base_ = '{base}'
data_root = '{root}'
model = dict(
    encoder=dict(pretrained=None, img_size=(32, 32), attn_impl='sdpa',
                 model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                                   window_size=4),
                 adapter_blocks={{2: (-1,), 3: 'all'}}, embed_dim=8, reduction=2),
    decoder=dict(depths=(0, 1, 1, 1), num_heads=(2, 2, 1, 1), window_size=4, attn_impl='sdpa',
                 img_size=(32, 32), head_channels=8),
    weighting=dict(type='TROAWeighting', gradient_mode='params', loss_weighting=True))
param_scheduler = []
train_cfg = dict(max_iters=3, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000), logger=dict(interval=1))
visualizer = dict(name='{name}', vis_backends=[dict(type='LocalVisBackend')])
custom_hooks = [dict(type='TROAHook', interval=1)]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
"""


def test_train_amp_runs_bf16_on_cpu(tmp_path):
    """Three TROA iterations of the light adapter model with --amp: the forward runs in bf16
    (a decoder linear's output dtype), the weights stay fp32 and move, W is updated."""
    root = tmp_path / 'data'
    write_taskonomy_fixture(str(root), buildings=('b0', 'b1', 'b2', 'b3'), views=2, size=(32, 32),
                            num_classes=8)
    cfg = tmp_path / 'tiny_amp.py'
    cfg.write_text(TINY.format(base=LEAF, root=root, name=f'amp_{tmp_path.name}'))
    train = load_tool('train')
    args = train.parse_args([str(cfg), '--amp', '--work-dir', str(tmp_path / 'work'),
                             '--cfg-options',
                             'train_dataloader.dataset.pipeline.1.geometric.0.size=(32,32)'])
    built = train.build_cfg(args)
    assert built.optim_wrapper.type == ('AmpOptimWrapper' if torch.cuda.is_available()
                                        else 'BF16OptimWrapper')
    assert built.optim_wrapper.dtype == 'bfloat16'
    assert built.optim_wrapper.clip_grad == dict(max_norm=5.0)      # the rest is kept
    if torch.cuda.is_available():
        pytest.skip('the CPU path is what this test runs')

    seen = []
    linear = nn.Linear.forward

    def spy(self, x):
        out = linear(self, x)
        if self.training:               # the trained layers, in the training steps (not val)
            seen.append(out.dtype)
        return out
    nn.Linear.forward = spy
    try:
        runner = train.main([str(cfg), '--amp', '--work-dir', str(tmp_path / 'work'),
                             '--cfg-options',
                             'train_dataloader.dataset.pipeline.1.geometric.0.size=(32,32)'])
    finally:
        nn.Linear.forward = linear
    assert isinstance(runner.optim_wrapper, BF16OptimWrapper)
    assert runner.iter == 3
    assert seen and set(seen) == {torch.bfloat16}                  # autocast was on
    model = runner.model
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.equal(model.encoder.task_embeddings,
                           torch.zeros_like(model.encoder.task_embeddings))
    assert int(model.weighting.num_updates) == 3
    assert torch.isfinite(model.weighting.affinity).all()
    assert not torch.equal(model.weighting.affinity, torch.eye(4))


def test_bf16_wrapper_refuses_fp16_and_loads_amp_checkpoints():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r'optim_wrapper\.dtype=.float16.'):
        BF16OptimWrapper(dtype='float16', optimizer=torch.optim.SGD(model.parameters(), 0.1))
    wrapper = BF16OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), 0.1))
    state = wrapper.state_dict()
    wrapper.load_state_dict(dict(state, loss_scaler={'scale': 65536.0}))
    with wrapper.optim_context(model):
        assert model(torch.randn(4, 3)).dtype == torch.bfloat16


def test_amp_refuses_an_unknown_wrapper_type():
    train = load_tool('train')
    cfg = Config(dict(optim_wrapper=dict(type='ApexOptimWrapper')))
    with pytest.raises(ValueError, match=r'--amp: optim_wrapper\.type=.ApexOptimWrapper.'):
        train.enable_amp(cfg)


def test_per_task_gradients_are_fp32_under_autocast():
    """Under bf16 autocast the rows are fp32 and equal to the parameters' own gradients, also
    for a bf16 parameter and for a constant (untrained) loss."""
    torch.manual_seed(0)
    shared = nn.Linear(16, 16)
    extra = nn.Parameter(torch.randn(16, dtype=torch.bfloat16))
    x = torch.randn(8, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        h = shared(x) * extra
        losses = [h[:, :8].square().mean(), h[:, 8:].abs().mean(), torch.zeros(())]
        assert h.dtype == torch.bfloat16
        rows = per_task_gradients(losses, [shared.weight, extra])
    assert rows.dtype == torch.float32 and rows.shape == (3, 16 * 16 + 16)
    for i, loss in enumerate(losses[:2]):
        g_w, g_e = torch.autograd.grad(loss, [shared.weight, extra], retain_graph=True)
        assert torch.equal(rows[i], torch.cat([g_w.flatten(), g_e.float()]))
    assert not rows[2].any()


def test_troa_cosines_are_fp32_under_autocast():
    """TROA's cosines and W update ignore an enclosing bf16 autocast (exact fp32 values)."""
    from mtl_adapters.weighting.troa import TROAWeighting, cosine_matrix
    torch.manual_seed(0)
    g_a = torch.randn(3, 5000)
    g_b = g_a + torch.randn(3, 5000)
    weighting = TROAWeighting(task_names=['a', 'b', 'c'])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        weighting.update(g_a, g_b)
    assert weighting.cosine.dtype == torch.float32
    torch.testing.assert_close(weighting.cosine, cosine_matrix(g_a, g_b), rtol=0, atol=1e-6)
