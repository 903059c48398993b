"""VPT on Swin-V2 (VPTSwinV2Encoder): parameter formulas, zero prompts = the frozen encoder bit
for bit, per-task prompts, the Swin-specific prompt maths (zero bias rows/columns, window
broadcast and mean, 4x tiling at patch merging), gradients reaching the prompts only.

That the shipped configs train (every prompt tensor gets a gradient and moves in two steps) is
``test_every_parameter_learns.py`` (``-k vpt``)."""
import copy

import pytest
import torch
from conftest import REPO, tiny_model_cfg
from mmengine import Config

from mtl_adapters.models.adapters.timm_swinv2 import window_attention_logits, window_partition
from mtl_adapters.models.backbones import SwinV2Encoder
from mtl_adapters.models.backbones.vpt_swinv2 import (VPTSwinV2Encoder, merge_prompts,
                                                      prompted_window_attention,
                                                      prompted_window_logits)
from mtl_adapters.models.param_report import parameter_report
from mtl_adapters.registry import MODELS

#: window 4, two blocks in stages 0-2: at 64 px stages 0 and 1 have shifted blocks
SHIFTED = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
               model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 2, 4), depths=(2, 2, 2, 1),
                                 window_size=4))
#: timm's always_partition: windows and shifts kept where the map is smaller than a window
ALWAYS = dict(SHIFTED, model_kwargs=dict(SHIFTED['model_kwargs'], always_partition=True))
TASKS = ['seg', 'depth', 'normal']
CONFIGS = ['configs/peft/vpt-deep_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py',
           'configs/peft/vpt-shallow_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']


def make_pair(kwargs=SHIFTED, **vpt_kwargs):
    """A frozen encoder with non-trivial norms and a VPT encoder with the same trunk weights."""
    torch.manual_seed(0)
    plain = SwinV2Encoder(**kwargs)
    with torch.no_grad():
        for name, p in plain.swin.named_parameters():
            if 'norm' in name:
                p.normal_(0.5, 0.3) if name.endswith('weight') else p.normal_(0.0, 0.1)
    vpt = VPTSwinV2Encoder(task_names=TASKS, **kwargs, **vpt_kwargs)
    vpt.swin.load_state_dict(plain.swin.state_dict())
    return plain.eval(), vpt.eval()


def formula(encoder: VPTSwinV2Encoder) -> int:
    """shallow: T p C0; deep: T p sum over blocks of the block's width."""
    t, p = len(encoder.task_names), encoder.num_prompts
    if not encoder.deep:
        return t * p * encoder.out_channels[0]
    return t * p * sum(len(s.blocks) * c
                       for s, c in zip(encoder.swin.layers, encoder.out_channels))


@pytest.mark.parametrize('deep', [True, False])
@pytest.mark.parametrize('num_prompts', [1, 7])
def test_trainable_parameters_match_the_formula(deep, num_prompts):
    """Only the prompts train; their count is the formula; the report counts them."""
    _, vpt = make_pair(num_prompts=num_prompts, deep=deep)
    trainable = [p for p in vpt.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == formula(vpt)
    assert {id(p) for p in trainable} == {id(p) for _, p in vpt.adapter_named_parameters()}
    assert not any(p.requires_grad for p in vpt.swin.parameters())
    assert vpt.per_task_numel() * len(TASKS) == formula(vpt)
    # the numbers: 16-wide trunk, depths (2, 2, 2, 1): widths 16, 32, 64, 128
    assert formula(vpt) == 3 * num_prompts * (2 * 16 + 2 * 32 + 2 * 64 + 128 if deep else 16)
    # prompts initialised U(-a, a), a the patch embedding's Xavier bound sqrt(6 / (3*4*4 + 16))
    assert vpt.init_bound == pytest.approx((6 / (48 + 16)) ** 0.5)
    assert all(p.abs().max() <= vpt.init_bound for p in trainable)


@pytest.mark.parametrize('path', CONFIGS)
def test_shipped_configs_report_the_formula(path):
    """The demo configs: the parameter report's 'adapters' component is the formula
    (T=4, p=10, C0=32, depths (2, 2, 6, 2): deep 58,880, shallow 1,280)."""
    cfg = Config.fromfile(str(REPO / path))
    model = MODELS.build(cfg.model)
    report = parameter_report(model)
    expected = 58880 if model.encoder.deep else 1280
    assert formula(model.encoder) == expected
    assert report['components']['adapters'] == dict(total=expected, trainable=expected)
    assert report['components']['trunk']['trainable'] == 0
    # per method and task: every prompt belongs to one task, nothing is shared
    assert report['encoder_per_task'] == {t: expected // 4 for t in model.task_names}
    assert report['encoder_shared'] == 0


@pytest.mark.parametrize('deep', [True, False])
@pytest.mark.parametrize('kwargs,size', [(SHIFTED, (64, 64)), (SHIFTED, (52, 76)),
                                         (ALWAYS, (64, 96))])
def test_zero_prompts_is_the_frozen_encoder_exactly(deep, kwargs, size):
    """num_prompts=0 (the same prompted code path with empty prompt tensors) gives the frozen
    SwinV2Encoder's stage outputs bit for bit, shifted windows and odd sizes included."""
    plain, vpt = make_pair(kwargs, num_prompts=0, deep=deep)
    assert not list(vpt.parameters(recurse=False)) and not vpt.adapter_named_parameters()
    shifted = [b for s in vpt.swin.layers for b in s.blocks if any(b.shift_size)]
    assert shifted                                    # the geometry exercises the shift mask
    img = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = plain(img, ['x'])['x']
        out = vpt(img, TASKS)
    for task in TASKS:
        assert len(out[task]) == 4
        for a, b in zip(out[task], ref):
            assert a.shape == b.shape and torch.equal(a, b)


def test_prompted_logits_are_timm_logits_without_prompts():
    """At zero prompts the prompted logits are ``window_attention_logits`` bit for bit; with
    prompts, the prompt rows and columns carry no relative-position bias (they do not change
    with the continuous position-bias MLP) while the image block does."""
    _, vpt = make_pair()
    attn = vpt.swin.layers[0].blocks[1].attn
    windows = torch.randn(6, 16, 16)                                  # 4x4 windows, C=16
    with torch.no_grad():
        ref_logits, ref_v = window_attention_logits(attn, windows)
        logits, v = prompted_window_logits(attn, windows, 0)
        assert torch.equal(logits, ref_logits) and torch.equal(v, ref_v)
        tokens = torch.cat((torch.randn(6, 3, 16), windows), dim=1)
        logits = prompted_window_logits(attn, tokens, 3)[0]
        other = copy.deepcopy(attn)
        for p in other.cpb_mlp.parameters():
            p.add_(torch.randn_like(p))
        moved = prompted_window_logits(other, tokens, 3)[0]
    assert torch.equal(logits[..., :3, :], moved[..., :3, :])       # prompt rows
    assert torch.equal(logits[..., :, :3], moved[..., :, :3])       # prompt columns
    assert not torch.allclose(logits[..., 3:, 3:], moved[..., 3:, 3:])
    torch.testing.assert_close(logits[..., 3:, 3:],
                               window_attention_logits(attn, windows)[0], rtol=0, atol=1e-5)


def test_prompts_are_broadcast_to_every_window_and_averaged():
    """Unshifted block: the map's attention equals each window attended on its own (with the
    same prompts), and the prompt output is the mean over the sample's windows."""
    _, vpt = make_pair()
    blk = vpt.swin.layers[0].blocks[0]
    assert not any(blk.shift_size) and blk.window_size == (4, 4)
    x, prompts = torch.randn(2, 8, 12, 16), torch.randn(2, 3, 16)
    with torch.no_grad():
        out_x, out_p = prompted_window_attention(blk, x, prompts)
        windows = window_partition(x, (4, 4))                            # (2*6, 4, 4, C)
        win_x, win_p = prompted_window_attention(blk, windows, prompts.repeat_interleave(6, 0))
    torch.testing.assert_close(window_partition(out_x, (4, 4)), win_x, rtol=0, atol=1e-6)
    torch.testing.assert_close(out_p, win_p.view(2, 6, 3, 16).mean(1), rtol=0, atol=1e-6)


def test_patch_merging_tiles_prompts_four_times():
    """A prompt token goes through timm's PatchMerging as [p, p, p, p] (4C), then its
    reduction and norm."""
    _, vpt = make_pair()
    merging = vpt.swin.layers[1].downsample
    prompts = torch.randn(2, 3, 16)
    with torch.no_grad():
        out = merge_prompts(merging, prompts)
        ref = merging.norm(merging.reduction(torch.cat([prompts] * 4, dim=-1)))
    assert out.shape == (2, 3, 32)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize('deep', [True, False])
def test_each_task_gets_its_own_prompts(deep):
    """Tasks differ at every stage; task t's features depend on task t's prompts only;
    tasks with equal prompts get equal features; a task run alone gets what it gets in the
    (T*B) batch."""
    _, vpt = make_pair(num_prompts=4, deep=deep)
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = vpt(img)
        for a, b in zip(out['seg'], out['depth']):
            assert not torch.allclose(a, b, atol=1e-4)
        alone = vpt(img, ['normal'])['normal']
        for a, b in zip(alone, out['normal']):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        for p in vpt.prompts:
            p[1].add_(1.0)                                      # move task 1's (depth) prompts
        moved = vpt(img)
        for a, b in zip(out['seg'], moved['seg']):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # other tasks: unchanged
        assert not torch.allclose(out['depth'][-1], moved['depth'][-1], atol=1e-4)
        for p in vpt.prompts:
            p[1].copy_(p[0])                                      # depth := seg's prompts
        same = vpt(img)
        for a, b in zip(same['seg'], same['depth']):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize('deep', [True, False])
def test_gradients_reach_every_prompt_and_nothing_else(deep):
    """One backward: every prompt tensor (every task row) gets a gradient, the trunk none;
    the trunk stays in eval mode when the encoder trains."""
    _, vpt = make_pair(num_prompts=2, deep=deep)
    vpt.train()
    assert not vpt.swin.training
    out = vpt(torch.randn(2, 3, 52, 76))
    sum(f.square().mean() for feats in out.values() for f in feats).backward()
    for _, p in vpt.adapter_named_parameters():
        assert p.grad is not None
        assert all(p.grad[t].abs().max() > 0 for t in range(len(TASKS)))
    assert all(p.grad is None for p in vpt.swin.parameters())


def test_branch_input_gradient_is_per_task():
    """``trunk``/``adapt`` split (TROA's representation mode): the patch embedding runs once;
    a loss on one task gives the (T*B) branch input a gradient in that task's chunk only."""
    _, vpt = make_pair(num_prompts=2)
    img = torch.randn(2, 3, 64, 64)
    trunk = vpt.trunk(img)
    assert trunk.shared_feats == [] and trunk.x.shape == (2, 16, 16, 16)
    out, branch = vpt.adapt(trunk, TASKS, return_branch_input=True)
    assert branch.shape == (6, 16, 16, 16) and branch.requires_grad
    out['depth'][-1].sum().backward()
    grad = branch.grad.view(3, 2, -1).abs().amax(-1)
    assert (grad[1] > 0).all() and (grad[0] == 0).all() and (grad[2] == 0).all()


def test_multitask_model_fills_the_tasks_and_trains_prompts():
    """Built by MultiTaskModel: tasks filled in, the prompts are the shared set it reports."""
    model = MODELS.build(tiny_model_cfg(encoder=dict(type='VPTSwinV2Encoder', num_prompts=3)))
    assert model.encoder.task_names == list(model.tasks)
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.encoder.prompts}
    out = model.eval().forward_tasks(torch.randn(1, 3, 64, 64))
    assert all(o.shape[-2:] == (64, 64) for o in out.values())


def test_bad_arguments_are_refused():
    kwargs = dict(SHIFTED, task_names=TASKS)
    with pytest.raises(NotImplementedError, match='frozen'):
        VPTSwinV2Encoder(frozen=False, **kwargs)
    with pytest.raises(ValueError, match='num_prompts'):
        VPTSwinV2Encoder(num_prompts=-1, **kwargs)
    with pytest.raises(ValueError, match='task_names'):
        VPTSwinV2Encoder(**dict(kwargs, task_names=[]))
    with pytest.raises(KeyError, match='unknown task'):
        VPTSwinV2Encoder(**kwargs)(torch.randn(1, 3, 64, 64), ['sky'])
