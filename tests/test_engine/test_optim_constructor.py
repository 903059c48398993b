"""The optimizer the schedule bases build: mmengine's DefaultOptimWrapperConstructor options,
trainable parameters only, one group per set of options, no warning per frozen parameter."""
import io
import logging
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper

from mtl_adapters.engine.optimizers import merge_param_groups
from mtl_adapters.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ['configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py',
           'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py',
           'configs/troa/uncertainty_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
NO_DECAY_KEYS = ('task_embeddings', 'weighting.')


def options_by_name(model, optimizer):
    """``{parameter name: (lr, weight_decay)}`` for every parameter in ``optimizer``."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        for p in group['params']:
            assert names[id(p)] not in out, f'{names[id(p)]} is in two groups'
            out[names[id(p)]] = (group['lr'], group['weight_decay'])
    return out


@pytest.mark.parametrize('config', CONFIGS)
def test_groups_of_the_schedule_bases(config):
    cfg = Config.fromfile(str(REPO / config))
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logger.addHandler(handler)
    try:
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    finally:
        logger.removeHandler(handler)
    assert 'requires_grad=False' not in log.getvalue()      # no line per frozen parameter
    lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    assert wd > 0
    got = options_by_name(model, wrapper.optimizer)
    # the rule the schedule bases ask for: trainable parameters only; no weight decay on the
    # task embeddings and the weighting methods' parameters, the configured decay elsewhere
    expect = {n: (lr, 0.0 if any(k in n for k in NO_DECAY_KEYS) else wd)
              for n, p in model.named_parameters() if p.requires_grad}
    assert got == expect
    groups = wrapper.optimizer.param_groups
    assert len(groups) == len({v for v in expect.values()})  # one group per set of options
    assert groups[0]['weight_decay'] == wd                 # the defaults' group first
    assert type(wrapper).__name__ == 'OptimWrapper'
    assert wrapper.clip_grad_kwargs == dict(max_norm=5.0)
    # exactly mmengine's per-parameter options for the same paramwise_cfg
    ow_cfg = dict(cfg.optim_wrapper)
    paramwise = ow_cfg.pop('paramwise_cfg')
    ow_cfg.pop('constructor')
    reference = DefaultOptimWrapperConstructor(ow_cfg, paramwise)(model)
    assert options_by_name(model, reference.optimizer) == got
    if 'uncertainty' in config:
        names = {n for n, (_, d) in got.items() if d == 0.0}
        assert names == {'encoder.task_embeddings', 'weighting.log_vars'}


def test_merge_param_groups_keeps_options_and_order():
    a, b, c, d = (torch.nn.Parameter(torch.zeros(1)) for _ in range(4))
    groups = [dict(params=[a], lr=0.1, weight_decay=0.0), dict(params=[b]),
              dict(params=[c], weight_decay=0.0, lr=0.1), dict(params=[d], lr=0.2)]
    merged = merge_param_groups(groups)
    assert [len(g) for g in merged] == [1, 3, 2]           # defaults first
    assert merged[0]['params'] == [b]
    assert merged[1]['params'] == [a, c] and merged[1]['lr'] == 0.1
    assert merged[2]['params'] == [d] and merged[2]['lr'] == 0.2
