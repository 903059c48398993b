"""The adapter model end to end: gradients, configs, parameter report and its hook."""
from types import SimpleNamespace

import pytest
import torch

from mtl_adapters.engine.hooks import ParamReportHook
from mtl_adapters.models import parameter_report
from mtl_adapters.models.param_report import format_param_report
from mtl_adapters.registry import MODELS

TASKS = [dict(type='SemanticTask', num_classes=5), dict(type='DepthTask'),
         dict(type='NormalTask'), dict(type='EdgeTask')]
ENCODER = dict(type='AdaptedSwinV2Encoder', model_name='swinv2_tiny_window8_256',
               img_size=(64, 64), model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)),
               embed_dim=16)
DECODER = dict(type='SwinDecoder', depths=(1, 1, 1, 1), num_heads=(4, 2, 1, 1),
               img_size=(64, 64), head_channels=8)


def build(tasks=TASKS, weighting=None, **encoder):
    """A tiny adapter MultiTaskModel."""
    torch.manual_seed(0)
    return MODELS.build(dict(type='MultiTaskModel', tasks=tasks, encoder=dict(ENCODER, **encoder),
                             decoder=DECODER, weighting=weighting))


def backward(model, size=(64, 64)):
    """Forward all tasks and backward a simple sum of their outputs."""
    model.zero_grad(set_to_none=True)
    out = model.forward_tasks(torch.randn(2, 3, *size))
    sum(o.square().mean() for o in out.values()).backward()
    return out


@pytest.mark.parametrize('train_adapted', [False, True])
def test_gradients_reach_only_trainable_parts(train_adapted):
    """Adapters, decoders and heads get gradients; trunk never; adapted blocks only if asked."""
    model = build(train_adapted_blocks=train_adapted)
    with torch.no_grad():   # leave the zero-init so every adapter weight gets a gradient
        layers = model.encoder.swin.layers
        for blk in (layers[2].blocks[-1], layers[3].blocks[0]):
            blk.ff_up.weight.normal_(0, 0.1)
            blk.taa.task_bias.normal_(0, 0.1)
    backward(model)
    adapter = {id(p) for _, p in model.encoder.adapter_named_parameters()}
    adapted_pretrained = {id(p) for s, b in model.encoder.adapter_positions
                          for m in model.encoder.swin.layers[s].blocks[b].pretrained_modules()
                          for p in m.parameters()}
    for name, p in model.named_parameters():
        if name.startswith('decoders.') or id(p) in adapter:
            assert p.requires_grad, name
            assert p.grad is not None, name
        elif id(p) in adapted_pretrained:
            assert p.requires_grad == train_adapted, name
            assert (p.grad is not None) == train_adapted, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_output_shapes_any_size():
    """Full model outputs each task's channels at any input size."""
    model = build(tasks=TASKS[:2]).eval()
    for size in [(64, 96), (96, 160), (128, 128)]:
        with torch.no_grad():
            out = model.forward_tasks(torch.randn(1, 3, *size))
        assert out['seg'].shape == (1, 5, *size) and out['depth'].shape == (1, 1, *size)


def test_affinity_in_state_dict_and_task_names_filled():
    """MultiTaskModel passes its task order to the encoder; W is checkpointed once, in the
    weighting, and the encoder keeps no copy."""
    model = build(tasks=TASKS[:3], weighting=dict(type='TROAWeighting'))
    assert model.encoder.task_names == ['seg', 'depth', 'normal']
    state = model.state_dict()
    assert state['weighting.affinity'].shape == (3, 3)
    assert [k for k in state if k.endswith('affinity')] == ['weighting.affinity']
    assert model.weighting.task_affinity() is model.weighting.affinity     # by reference


def test_checkpoint_from_before_the_weighting_interface_loads():
    """Old checkpoints carry ``encoder.affinity`` (a copy of W) and TROA's lambda in
    ``task_weights``: they load strictly, W comes from the weighting, the weights are the
    configured ones (lambda is applied by the weighting now, not twice)."""
    cfg = dict(type='TROAWeighting', loss_weighting=True)
    model = build(tasks=TASKS[:3], weighting=cfg)
    old = model.state_dict()
    w = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    old['weighting.affinity'] = w
    old['encoder.affinity'] = w.clone()
    old['task_weights'] = 3 * w.mean(0)
    fresh = build(tasks=TASKS[:3], weighting=cfg)
    fresh.load_state_dict(old, strict=True)
    assert torch.equal(fresh.weighting.affinity, w)
    assert torch.equal(fresh.task_weights, torch.ones(3))


def test_parameter_report_sums():
    """Components partition the model's parameters; the table prints every component."""
    model = build()
    report = parameter_report(model)
    comps = report['components']
    assert sum(c['total'] for c in comps.values()) == report['total']
    assert report['total'] == sum(p.numel() for p in model.parameters())
    assert report['trainable'] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert comps['trunk']['trainable'] == 0
    assert comps['adapters']['total'] == comps['adapters']['trainable'] > 0
    dec_seg = comps['decoder.seg']['total'] + comps['head.seg']['total']
    assert report['per_task_addon']['seg'] == dec_seg + model.encoder.task_embeddings.shape[1]
    table = format_param_report(report)
    assert 'adapters' in table and 'decoder.edge' in table and 'total' in table


def test_param_report_hook_logs_table():
    """The hook logs the table before training."""
    lines = []
    runner = SimpleNamespace(model=build(tasks=TASKS[:1]),
                             logger=SimpleNamespace(info=lines.append))
    ParamReportHook().before_train(runner)
    assert 'trunk' in lines[0] and 'decoder.seg' in lines[0]
