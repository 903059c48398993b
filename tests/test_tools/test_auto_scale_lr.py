"""``tools/train.py --auto-scale-lr``: the linear rule through mmengine's Runner, with the base
batch every config declares."""
import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
LEAF = REPO / 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def _train_tool():
    spec = importlib.util.spec_from_file_location('train_tool', REPO / 'tools/train.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flag_enables_the_configs_auto_scale_lr(tmp_path):
    tool = _train_tool()
    cfg = tool.build_cfg(tool.parse_args([str(LEAF), '--work-dir', str(tmp_path)]))
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=8)
    cfg = tool.build_cfg(tool.parse_args([str(LEAF), '--work-dir', str(tmp_path),
                                          '--auto-scale-lr']))
    assert cfg.auto_scale_lr.enable is True


def test_mmengine_scales_by_the_total_batch(tmp_path):
    """The Runner's own rule with our keys: batch 4 on one process, base 8 -> half the lr."""
    from mmengine.runner import Runner
    from torch import nn
    runner = Runner(model=nn.Linear(2, 2), work_dir=str(tmp_path),
                    train_dataloader=dict(batch_size=4, dataset=[], sampler=dict(
                        type='DefaultSampler')),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                    train_cfg=dict(by_epoch=False, max_iters=1),
                    auto_scale_lr=dict(enable=True, base_batch_size=8))
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    assert wrapper.param_groups[0]['lr'] == pytest.approx(0.05)


def test_config_without_a_base_batch_is_refused(tmp_path):
    tool = _train_tool()
    cfg = Config(dict(work_dir=str(tmp_path)))
    with pytest.raises(ValueError, match='base_batch_size'):
        tool.enable_auto_scale_lr(cfg)
