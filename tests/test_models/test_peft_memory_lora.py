"""Learnable memory, task-conditioned LoRA, full fine-tuning and decoders only (configs/peft/):
timm's attention reproduced bit for bit, the memory and LoRA maths against references, zero
contribution = the frozen encoder bit for bit, masked memory and model concatenation
(torch.equal), trainable-parameter formulas, the parameter report and its tool.

That the shipped configs train (every trainable tensor gets a gradient and moves in two steps)
is ``test_every_parameter_learns.py``; that they train under DDP is ``test_peft_ddp.py``."""
import copy

import pytest
import torch
from conftest import REPO, load_tool, tiny_model_cfg
from mmengine import Config
from timm.models.swin_transformer_v2 import SwinTransformerV2Block, WindowAttention

from mtl_adapters.models.backbones import SwinV2Encoder
from mtl_adapters.models.backbones.lora_swinv2 import LoRASwinV2Encoder
from mtl_adapters.models.backbones.memory_swinv2 import MemorySwinV2Encoder
from mtl_adapters.models.adapters.timm_swinv2 import (block_forward, relative_position_bias,
                                                      window_attention, window_qkv)
from mtl_adapters.models.backbones.peft_common import FullFineTuneSwinV2Encoder
from mtl_adapters.models.param_report import format_param_report, parameter_report
from mtl_adapters.registry import MODELS

#: window 4, two blocks in stages 0-2: at 64 px stages 0 and 1 have shifted blocks
SHIFTED = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
               model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 2, 4), depths=(2, 2, 2, 1),
                                 window_size=4))
#: timm's always_partition: windows and shifts kept where the map is smaller than a window
ALWAYS = dict(SHIFTED, model_kwargs=dict(SHIFTED['model_kwargs'], always_partition=True))
#: every block tuned (the paper's memory placement) / a trunk-once prefix (stage 0, block 0 of
#: stage 1) before the tuned blocks, the first of them shifted
EVERY = {0: 'all', 1: 'all', 2: 'all', 3: 'all'}
DEEP = {1: (-1,), 2: 'all', 3: 'all'}
TASKS = ['seg', 'depth', 'normal']
PEFT = 'configs/peft/{}_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def plain_encoder(kwargs=SHIFTED) -> SwinV2Encoder:
    """A frozen encoder with non-trivial norms (its trunk is copied into the others)."""
    torch.manual_seed(0)
    plain = SwinV2Encoder(**kwargs)
    with torch.no_grad():
        for name, p in plain.swin.named_parameters():
            if 'norm' in name:
                p.normal_(0.5, 0.3) if name.endswith('weight') else p.normal_(0.0, 0.1)
    return plain.eval()


def same_trunk(encoder, plain):
    """``encoder`` with ``plain``'s trunk weights, in eval mode."""
    encoder.swin.load_state_dict(plain.swin.state_dict())
    return encoder.eval()


def assert_equal_features(out, ref, tasks):
    for task in tasks:
        assert len(out[task]) == len(ref) == 4
        for a, b in zip(out[task], ref):
            assert a.shape == b.shape and torch.equal(a, b)


def randomise(params, seed=1, std=0.3):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.normal_(0.0, std)


def make_attention(qkv_bias=True, pretrained_window_size=0, heads=2):
    torch.manual_seed(0)
    attn = WindowAttention(16, (4, 4), heads, qkv_bias=qkv_bias,
                           pretrained_window_size=(pretrained_window_size,) * 2).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.5)
    return attn


def make_block(shift=2):
    torch.manual_seed(0)
    blk = SwinTransformerV2Block(16, (8, 8), 2, window_size=4, shift_size=shift,
                                 dynamic_mask=True)
    with torch.no_grad():
        for name, p in blk.named_parameters():
            p.normal_(0.5 if name.endswith(('norm1.weight', 'norm2.weight')) else 0.0, 0.3)
    return blk.eval()


# ------------------------------------------------------------- timm's attention, extended
@pytest.mark.parametrize('qkv_bias', [True, False])
@pytest.mark.parametrize('pretrained_window_size', [0, 6])
@pytest.mark.parametrize('with_mask', [True, False])
def test_window_attention_without_extras_is_timm(qkv_bias, pretrained_window_size, with_mask):
    """No extras, or an empty memory (m = 0): timm's ``WindowAttention.forward`` bit for bit."""
    attn = make_attention(qkv_bias, pretrained_window_size)
    x = torch.randn(3 * 4, 16, 16)
    mask = make_block().get_attn_mask(torch.zeros(1, 8, 8, 1)) if with_mask else None
    ref = attn(x, mask)
    assert torch.equal(window_attention(attn, x, mask), ref)
    empty = torch.zeros(3, 2, 0, 8)
    assert torch.equal(window_attention(attn, x, mask, memory_kv=(empty, empty)), ref)
    zero = lambda inp: torch.zeros(*inp.shape[:-1], 48 if inp is x else 16)   # noqa: E731
    assert torch.equal(window_attention(attn, x, mask, qkv_delta=zero, proj_delta=zero), ref)


@pytest.mark.parametrize('shift', [0, 2])
@pytest.mark.parametrize('size', [(8, 8), (6, 10)])
def test_block_forward_is_the_timm_block(shift, size):
    """``block_forward`` with ``window_attention`` is timm's block bit for bit (padding and
    shift included)."""
    blk = make_block(shift)
    x = torch.randn(2, *size, 16)
    with torch.no_grad():
        out = block_forward(blk, x, lambda w, m: window_attention(blk.attn, w, m))
        assert torch.equal(out, blk(x))


def reference_memory_attention(attn, windows, mask, memory):
    """Memory attention written out, one window of one group at a time: keys and values are
    the window's tokens then the group's memory tokens; the memory columns get no position
    bias and no shift mask."""
    nh, n, c = attn.num_heads, windows.shape[1], windows.shape[2]
    groups, m = memory.shape[:2]
    per_group = windows.shape[0] // groups
    bias = relative_position_bias(attn)
    scale = attn.logit_scale.clamp(max=4.6052).exp()
    outs = []
    for i, win in enumerate(windows):
        tokens = torch.cat((win, memory[i // per_group]))                   # (N + m, C)
        q, k, v = window_qkv(attn, tokens[None])                            # (1, nH, N+m, d)
        q, k, v = q[0, :, :n], k[0], v[0]
        logits = torch.nn.functional.normalize(q, dim=-1) @ \
            torch.nn.functional.normalize(k, dim=-1).transpose(-2, -1) * scale
        extra = torch.zeros(nh, n, n + m)
        extra[:, :, :n] = bias
        if mask is not None:
            extra[:, :, :n] += mask[i % mask.shape[0]]
        out = (logits + extra).softmax(-1) @ v                              # (nH, N, d)
        outs.append(attn.proj(out.transpose(0, 1).reshape(n, c)))
    return torch.stack(outs)


@pytest.mark.parametrize('with_mask', [True, False])
def test_memory_attention_matches_the_written_out_reference(with_mask):
    attn = make_attention()
    groups, per_group, m = 2, 4, 3
    windows = torch.randn(groups * per_group, 16, 16)
    memory = torch.randn(groups, m, 16)
    mask = make_block().get_attn_mask(torch.zeros(1, 8, 8, 1)) if with_mask else None
    with torch.no_grad():
        _, k_mem, v_mem = window_qkv(attn, memory)
        out = window_attention(attn, windows, mask, memory_kv=(k_mem, v_mem))
        ref = reference_memory_attention(attn, windows, mask, memory)
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5)


# --------------------------------------------------------------------------- memory
def memory_pair(kwargs=SHIFTED, tasks=TASKS, **memory_kwargs):
    plain = plain_encoder(kwargs)
    memory_kwargs.setdefault('memory_blocks', EVERY)
    return plain, same_trunk(MemorySwinV2Encoder(task_names=tasks, **kwargs, **memory_kwargs),
                             plain)


@pytest.mark.parametrize('kwargs,size,blocks', [(SHIFTED, (64, 64), EVERY),
                                                (SHIFTED, (52, 76), DEEP),
                                                (ALWAYS, (64, 96), EVERY)])
def test_memory_zero_tokens_is_the_frozen_encoder_exactly(kwargs, size, blocks):
    """m = 0: the frozen SwinV2Encoder's stage outputs bit for bit (shifts, odd sizes)."""
    plain, enc = memory_pair(kwargs, num_memory_tokens=0, memory_blocks=blocks)
    assert not enc.adapter_named_parameters() and not any(
        p.requires_grad for p in enc.parameters())
    img = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert_equal_features(enc(img), plain(img, ['x'])['x'], TASKS)


def memory_formula(enc) -> int:
    """T m sum over memory blocks of the block's width."""
    return len(enc.task_names) * enc.num_memory_tokens * sum(
        enc.swin.layers[s].blocks[b].dim for s, b in enc.tuned_positions)


@pytest.mark.parametrize('placement,m', [('every', 1), ('every', 5), ('deep', 3),
                                         ('default', 2)])
def test_memory_trainable_parameters_match_the_formula(placement, m):
    blocks = dict(every=EVERY, deep=DEEP, default=None)[placement]
    kwargs = SHIFTED if blocks is not None else dict(
        SHIFTED, model_kwargs=dict(SHIFTED['model_kwargs'], depths=(2, 2, 6, 2)))
    _, enc = memory_pair(kwargs, num_memory_tokens=m, memory_blocks=blocks)
    trainable = [p for p in enc.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == memory_formula(enc)
    assert {id(p) for p in trainable} == {id(p) for _, p in enc.adapter_named_parameters()}
    widths = dict(every=2 * 16 + 2 * 32 + 2 * 64 + 128, deep=32 + 2 * 64 + 128,
                  default=4 * 64 + 2 * 128)[placement]
    assert memory_formula(enc) == 3 * m * widths
    for t in TASKS:
        assert sum(p.numel() for _, p in enc.task_named_parameters(t)) == m * widths
    # initialised N(0, 0.02^2)
    values = torch.cat([p.flatten() for p in trainable])
    assert abs(values.std().item() - 0.02) < 0.004


@pytest.mark.parametrize('blocks', [EVERY, DEEP])
def test_masked_memory_leaves_other_tasks_bit_identical(blocks):
    """Task t's windows see task t's memory only: changing another task's memory, or giving
    it new memory, changes no bit of task t's outputs; its own memory changes them."""
    _, enc = memory_pair(num_memory_tokens=4, memory_blocks=blocks)
    img = torch.randn(2, 3, 52, 76)
    with torch.no_grad():
        before = enc(img)
        for mems in enc.memory.values():
            mems['depth'].normal_(0.0, 1.0)                     # change depth's memory
        after = enc(img)
        for t in ('seg', 'normal'):
            assert_equal_features(after, before[t], [t])
        assert not torch.equal(after['depth'][-1], before['depth'][-1])
        # adding a task's memory: an encoder with 'sky' too, the others' memories unchanged
        bigger = MemorySwinV2Encoder(task_names=TASKS + ['sky'], **SHIFTED,
                                     num_memory_tokens=4, memory_blocks=blocks).eval()
        bigger.load_state_dict(enc.state_dict(), strict=False)
        out = bigger(img)
        for t in TASKS:
            assert_equal_features(out, after[t], [t])


def test_concatenated_memories_reproduce_each_tasks_own_encoder():
    """Memories tuned in separate encoders (one per task, or a task pair; same frozen trunk)
    concatenate into one encoder whose output for each task is its own encoder's exactly."""
    plain = plain_encoder()
    parts = []
    for i, tasks in enumerate([['seg'], ['depth', 'normal'], ['edge']]):
        enc = same_trunk(MemorySwinV2Encoder(task_names=tasks, **SHIFTED, num_memory_tokens=3,
                                             memory_blocks=DEEP), plain)
        randomise([p for _, p in enc.adapter_named_parameters()], seed=10 + i, std=0.5)
        parts.append(enc)
    combined = MemorySwinV2Encoder.concatenate(parts).eval()
    assert combined.task_names == ['seg', 'depth', 'normal', 'edge']
    assert all(combined.memory[k][t] is not parts[0].memory[k].get(t)
               for k in combined.memory for t in combined.task_names)
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = combined(img)
        for enc in parts:
            own = enc(img)
            assert_equal_features(out, own[enc.task_names[0]], enc.task_names[:1])
            for t in enc.task_names:
                assert_equal_features(out, own[t], [t])
        # a subset of the tasks, in another order, gives the same features
        sub = combined(img, ['edge', 'seg'])
        assert_equal_features(sub, out['edge'], ['edge'])
    # the memories are copies; the first encoder is unchanged
    assert parts[0].task_names == ['seg']


def test_concatenate_refuses_what_it_cannot_combine():
    plain = plain_encoder()
    a = same_trunk(MemorySwinV2Encoder(['seg'], **SHIFTED, memory_blocks=DEEP), plain)
    b = same_trunk(MemorySwinV2Encoder(['depth'], **SHIFTED, memory_blocks=DEEP), plain)
    with pytest.raises(ValueError, match='holds tasks'):
        MemorySwinV2Encoder.concatenate([a, copy.deepcopy(a)])
    other = copy.deepcopy(b)
    with torch.no_grad():
        other.swin.layers[0].blocks[0].attn.qkv.weight.add_(1e-6)
    with pytest.raises(ValueError, match='another trunk'):
        MemorySwinV2Encoder.concatenate([a, other])
    c = same_trunk(MemorySwinV2Encoder(['depth'], **SHIFTED, memory_blocks=DEEP,
                                       num_memory_tokens=2), plain)
    with pytest.raises(ValueError, match='same blocks with the same size'):
        MemorySwinV2Encoder.concatenate([a, c])
    with pytest.raises(TypeError, match='MemorySwinV2Encoder'):
        MemorySwinV2Encoder.concatenate([a, SwinV2Encoder(**SHIFTED)])
    assert MemorySwinV2Encoder.concatenate([a, b]).task_names == ['seg', 'depth']


def test_memory_gradients_reach_each_tasks_own_memory_only():
    """A loss on one task gives its memory (every block) a gradient and no other task's; the
    trunk gets none and stays in eval mode; the trunk-once prefix is shared."""
    _, enc = memory_pair(num_memory_tokens=2, memory_blocks=DEEP)
    enc.train()
    assert not enc.swin.training
    out = enc(torch.randn(2, 3, 52, 76))
    assert out['seg'][0] is out['depth'][0]                    # stage 0: trunk, once
    out['depth'][-1].square().mean().backward()
    for key, mems in enc.memory.items():
        assert mems['depth'].grad.abs().max() > 0, key
        for other in ('seg', 'normal'):                       # none, or exactly zero
            assert mems[other].grad is None or not mems[other].grad.any(), key
    assert all(p.grad is None for p in enc.swin.parameters())


# ----------------------------------------------------------------------------- LoRA
def lora_pair(kwargs=SHIFTED, tasks=TASKS, **lora_kwargs):
    plain = plain_encoder(kwargs)
    lora_kwargs.setdefault('lora_blocks', DEEP)
    return plain, same_trunk(LoRASwinV2Encoder(task_names=tasks, **kwargs, **lora_kwargs),
                             plain)


def lora_formula(enc) -> int:
    """(r_s + T r_t) sum over LoRA blocks of (8 + 2h) C (all four targets, MLP ratio h)."""
    total = 0
    for s, b in enc.tuned_positions:
        blk = enc.swin.layers[s].blocks[b]
        h = blk.mlp.fc1.out_features / blk.dim
        total += int((8 + 2 * h) * blk.dim)
    return (enc.rank_shared + len(enc.task_names) * enc.rank_task) * total


@pytest.mark.parametrize('ranks', [(8, 4), (0, 2), (3, 0)])
@pytest.mark.parametrize('placement', ['deep', 'every'])
def test_lora_trainable_parameters_match_the_formula(ranks, placement):
    blocks = dict(every=EVERY, deep=DEEP)[placement]
    _, enc = lora_pair(rank_shared=ranks[0], rank_task=ranks[1], lora_blocks=blocks)
    trainable = [p for p in enc.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == lora_formula(enc)
    assert {id(p) for p in trainable} == {id(p) for _, p in enc.adapter_named_parameters()}
    widths = dict(deep=32 + 2 * 64 + 128, every=2 * 16 + 2 * 32 + 2 * 64 + 128)[placement]
    assert lora_formula(enc) == 16 * (ranks[0] + 3 * ranks[1]) * widths
    for t in TASKS:
        assert sum(p.numel() for _, p in enc.task_named_parameters(t)) == 16 * ranks[1] * widths
    for name, p in enc.adapter_named_parameters():        # B = 0, A as nn.Linear's weight
        if name.endswith('lora_B'):
            assert not p.any()
        else:
            bound = 1 / p.shape[1] ** 0.5
            assert p.abs().max() <= bound and p.abs().max() > bound / 2


@pytest.mark.parametrize('kwargs,size,blocks,ranks', [
    (SHIFTED, (64, 64), EVERY, (8, 4)),
    (SHIFTED, (52, 76), DEEP, (8, 4)),
    (ALWAYS, (64, 96), DEEP, (2, 3)),
    (SHIFTED, (52, 76), DEEP, (0, 0)),
])
def test_lora_at_init_is_the_frozen_encoder_exactly(kwargs, size, blocks, ranks):
    """B = 0 (and A random): every update is exactly 0, the outputs are the frozen
    SwinV2Encoder's bit for bit. Ranks 0 (no update at all) too."""
    plain, enc = lora_pair(kwargs, lora_blocks=blocks, rank_shared=ranks[0],
                           rank_task=ranks[1])
    img = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert_equal_features(enc(img), plain(img, ['x'])['x'], TASKS)


def merged_block(blk, enc, key, task):
    """A copy of timm block ``blk`` with each target's weight W + s_s B_s A_s + s_t B_t A_t."""
    merged = copy.deepcopy(blk)
    linears = dict(qkv=merged.attn.qkv, proj=merged.attn.proj, fc1=merged.mlp.fc1,
                   fc2=merged.mlp.fc2)
    with torch.no_grad():
        for name, lora in enc.lora[key].items():
            for low in (lora.shared, lora.tasks[task]):
                linears[name].weight.add_(low.scaling * low.lora_B @ low.lora_A)
    return merged


def test_lora_block_is_the_block_with_merged_weights():
    """Task t's rows of a LoRA block equal timm's block whose target weights are merged with
    task t's and the shared updates (LoRA's W' = W + (alpha / r) B A)."""
    _, enc = lora_pair(rank_shared=3, rank_task=2, alpha=4.0)
    randomise([p for n, p in enc.adapter_named_parameters() if n.endswith('lora_B')], std=0.2)
    stage, index = 1, 1                                   # a shifted block
    blk = enc.swin.layers[stage].blocks[index]
    assert any(blk.shift_size)
    x = torch.randn(3 * 2, 8, 8, 16 * 2)
    with torch.no_grad():
        out = enc.branch_block(stage, index, x, TASKS)
        for t, task in enumerate(TASKS):
            ref = merged_block(blk, enc, f'{stage}_{index}', task)(x[2 * t:2 * t + 2])
            torch.testing.assert_close(out[2 * t:2 * t + 2], ref, rtol=1e-5, atol=1e-5)


def test_lora_tasks_are_separate_and_the_shared_update_is_shared():
    """Moving one task's update changes that task only (bit for bit elsewhere); moving the
    shared update changes every task; a task alone gets what it gets in the (T*B) batch."""
    _, enc = lora_pair()
    params = dict(enc.adapter_named_parameters())
    randomise([p for n, p in params.items() if n.endswith('lora_B')], std=0.05)
    img = torch.randn(2, 3, 52, 76)
    with torch.no_grad():
        before = enc(img)
        for name, p in params.items():
            if '.tasks.depth.' in name:
                p.add_(0.1)
        after = enc(img)
        for t in ('seg', 'normal'):
            assert_equal_features(after, before[t], [t])
        assert not torch.allclose(after['depth'][-1], before['depth'][-1])
        alone = enc(img, ['normal'])
        for a, b in zip(alone['normal'], after['normal']):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        for name, p in params.items():
            if '.shared.lora_B' in name:
                p.add_(0.1)
        shared = enc(img)
        assert all(not torch.allclose(shared[t][-1], after[t][-1]) for t in TASKS)


def test_lora_gradients_at_init():
    """At init only B gets a gradient (A sits behind B = 0: it learns from the second step,
    ``test_every_parameter_learns``); each task's B only from its own task; trunk none."""
    _, enc = lora_pair()
    enc.train()
    out = enc(torch.randn(2, 3, 64, 64))
    out['seg'][-1].square().mean().backward()
    for name, p in enc.adapter_named_parameters():
        got = p.grad is not None and bool(p.grad.abs().max() > 0)
        expected = name.endswith('lora_B') and ('.shared.' in name or '.tasks.seg.' in name)
        assert got == expected, name
    assert all(p.grad is None for p in enc.swin.parameters())


def test_branch_input_gradient_is_per_task():
    """trunk/adapt split (TROA's representation mode): a loss on one task gives the (T*B)
    branch input a gradient in that task's chunk only."""
    for enc in (memory_pair(memory_blocks=DEEP)[1], lora_pair()[1]):
        trunk = enc.trunk(torch.randn(2, 3, 64, 64))
        assert len(trunk.shared_feats) == 1 and trunk.x.shape == (2, 8, 8, 32)
        out, branch = enc.adapt(trunk, TASKS, return_branch_input=True)
        assert branch.shape == (6, 8, 8, 32) and branch.requires_grad
        out['depth'][-1].sum().backward()
        grad = branch.grad.view(3, 2, -1).abs().amax(-1)
        assert (grad[1] > 0).all() and (grad[0] == 0).all() and (grad[2] == 0).all()


def test_bad_arguments_are_refused():
    kwargs = dict(SHIFTED, task_names=TASKS, memory_blocks=DEEP)
    with pytest.raises(NotImplementedError, match='frozen'):
        MemorySwinV2Encoder(frozen=False, **kwargs)
    with pytest.raises(ValueError, match='num_memory_tokens'):
        MemorySwinV2Encoder(num_memory_tokens=-1, **kwargs)
    with pytest.raises(ValueError, match='task_names'):
        MemorySwinV2Encoder(**dict(kwargs, task_names=[]))
    with pytest.raises(ValueError, match='unique'):
        MemorySwinV2Encoder(**dict(kwargs, task_names=['seg', 'seg']))
    with pytest.raises(KeyError, match='unknown task'):
        MemorySwinV2Encoder(**kwargs)(torch.randn(1, 3, 64, 64), ['sky'])
    with pytest.raises(ValueError, match='adapter_blocks: block -4'):
        MemorySwinV2Encoder(**dict(kwargs, memory_blocks=None))   # stage 2 has 2 blocks
    kwargs = dict(SHIFTED, task_names=TASKS, lora_blocks=DEEP)
    with pytest.raises(ValueError, match='targets'):
        LoRASwinV2Encoder(targets=('qkv', 'head'), **kwargs)
    with pytest.raises(ValueError, match='ranks'):
        LoRASwinV2Encoder(rank_task=-1, **kwargs)
    with pytest.raises(KeyError, match='unknown task'):
        LoRASwinV2Encoder(**kwargs).task_named_parameters('sky')


# --------------------------------------------------------------------- full fine-tuning
def test_full_fine_tuning_trains_every_used_trunk_weight():
    """The whole trunk is trainable except timm's final norm, which the stage features do not
    use; one backward reaches every trainable tensor; the trunk follows train mode; in eval
    mode the features are the frozen encoder's."""
    plain = plain_encoder()
    enc = same_trunk(FullFineTuneSwinV2Encoder(**SHIFTED), plain)
    frozen = [n for n, p in enc.named_parameters() if not p.requires_grad]
    assert frozen == ['swin.norm.weight', 'swin.norm.bias']
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_equal_features(enc(img, ['a', 'b']), plain(img, ['x'])['x'], ['a', 'b'])
    enc.train()
    assert enc.swin.training
    out = enc(img, ['a', 'b'])
    assert out['a'] is out['b']                                     # trunk once, shared
    sum(f.square().mean() for f in out['a']).backward()
    dead = [n for n, p in enc.named_parameters()
            if p.requires_grad and (p.grad is None or not p.grad.abs().max() > 0)]
    assert not dead
    assert enc.task_named_parameters('a') == []


# ------------------------------------------------------ shipped configs, parameter report
#: trainable encoder parameters of the shipped demo configs (T=4, widths 32/64/128/256,
#: depths 2/2/6/2): memory T m sum_l C_l = 4*8*1472; LoRA 16 (r_s + T r_t) sum_l C_l over
#: the adapter blocks = 16*(8 + 4*4)*(4*128 + 2*256)
SHIPPED = {'memory': (47104, 0, 8 * 1472), 'lora': (393216, 131072, 16 * 4 * 1024),
           'decoder-only': (0, 0, 0)}


def build_config(name):
    cfg = Config.fromfile(str(REPO / PEFT.format(name)))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', ['memory', 'lora', 'full-ft', 'decoder-only'])
def test_shipped_configs_report_per_method_and_task(name):
    """The demo configs: the report's method, encoder-trainable, shared and per-task numbers
    are the formulas; the per-task add-on is decoder + head + the task's own share."""
    model = build_config(name)
    report = parameter_report(model)
    enc = model.encoder
    assert list(model.tasks) == ['seg', 'depth', 'normal', 'edge']
    if name == 'full-ft':
        n = sum(p.numel() for p in enc.swin.parameters()) - 2 * 256   # all but the final norm
        expected = (n, n, 0)
        assert report['method'] == 'full fine-tuning'
        assert report['components']['trunk']['trainable'] == n
    else:
        expected = SHIPPED[name]
        assert report['components']['trunk']['trainable'] == 0
    assert (report['encoder_trainable'], report['encoder_shared']) == expected[:2]
    assert report['encoder_per_task'] == {t: expected[2] for t in model.tasks}
    if name in ('memory', 'lora'):
        assert report['method'] == name
        assert report['components']['adapters'] == dict(total=expected[0], trainable=expected[0])
        formula = memory_formula(enc) if name == 'memory' else lora_formula(enc)
        assert formula == expected[0]
    if name == 'decoder-only':
        assert report['method'] == 'frozen encoder (decoders only)'
    for t in model.tasks:
        dec = report['components'][f'decoder.{t}']['total'] + \
            report['components'][f'head.{t}']['total']
        assert report['per_task_addon'][t] == dec + expected[2]
    assert report['trainable'] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    table = format_param_report(report)
    assert f'method: {report["method"]}' in table and 'own to edge' in table
    if name in ('memory', 'lora'):
        assert table.split('\n')[2].startswith(name)                # the 'adapters' row


def test_report_of_the_adapter_model_keeps_its_numbers():
    """The adapter model: its 'adapters' row and the add-on of one task-embedding row."""
    model = MODELS.build(tiny_model_cfg(encoder=dict(
        type='AdaptedSwinV2Encoder', embed_dim=8, adapter_blocks={2: 'all', 3: 'all'})))
    report = parameter_report(model)
    assert report['encoder_per_task'] == {t: 8 for t in model.tasks}
    assert report['encoder_trainable'] == report['components']['adapters']['trainable']
    assert '\nadapters ' in format_param_report(report)


def test_param_report_tool_compares_methods(tmp_path, capsys):
    """tools/param_report.py with several configs: each report, then one row per method."""
    tool = load_tool('param_report')
    paths = [PEFT.format(n) for n in ('lora', 'decoder-only')]
    result = tool.main([str(REPO / p) for p in paths] + ['--json', str(tmp_path / 'r.json')])
    out = capsys.readouterr().out
    assert 'own/task' in out and 'lora' in out and 'frozen encoder (decoders only)' in out
    assert [r['encoder_trainable'] for r in result.values()] == [393216, 0]
    assert (tmp_path / 'r.json').is_file()
