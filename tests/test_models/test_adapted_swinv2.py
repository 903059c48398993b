"""AdaptedSwinV2Encoder: identity at init, trunk once, task conditioning, branch input."""
import pytest
import torch

from mtl_adapters.models.adapters import AdapterBlock
from mtl_adapters.models.backbones import (AdaptedSwinV2Encoder, BaseSwinV2Encoder,
                                           SwinV2Encoder)

#: a narrow Swin-V2-T (stage 3 keeps its 6 blocks, so the default adapter placement applies)
TINY = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
            model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)))
#: window 4 at 128 px: stage 3 (index 2) is 8x8 > window, so its odd blocks are shifted
SHIFTED = dict(model_name='swinv2_tiny_window8_256', img_size=(128, 128),
               model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8), window_size=4))
#: timm's always_partition: windows and shifts kept even where the map is smaller than a window
ALWAYS_PARTITION = dict(TINY, model_kwargs=dict(TINY['model_kwargs'], always_partition=True))
TASKS = ['seg', 'depth', 'normal']


def make_pair(kwargs, **adapter_kwargs):
    """A plain encoder with non-trivial norms and an adapted one with the same weights."""
    torch.manual_seed(0)
    plain = SwinV2Encoder(**kwargs)
    with torch.no_grad():
        for name, p in plain.swin.named_parameters():
            if 'norm' in name:   # timm zero-inits the res-post norms: make blocks non-trivial
                p.normal_(0.5, 0.3) if name.endswith('weight') else p.normal_(0.0, 0.1)
    adapted = AdaptedSwinV2Encoder(task_names=TASKS, **kwargs, **adapter_kwargs)
    missing, unexpected = adapted.swin.load_state_dict(plain.swin.state_dict(), strict=False)
    adapter_names = {n for n, _ in adapted.adapter_named_parameters()}
    assert not unexpected
    assert all(f'swin.{m}' in adapter_names for m in missing), missing
    return plain.eval(), adapted.eval()


def perturb(encoder, seed=1):
    """Give every adapter parameter a random value."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for _, p in encoder.adapter_named_parameters():
            p.normal_(0.0, 0.2)


@pytest.mark.parametrize('kwargs,size,adapter_blocks', [
    (TINY, (64, 64), None),
    (TINY, (96, 160), None),
    (SHIFTED, (128, 128), {1: (-1,), 2: 'all', 3: 'all'}),
    (SHIFTED, (64, 96), None),
    (ALWAYS_PARTITION, (64, 96), None),
])
def test_identity_at_init(kwargs, size, adapter_blocks):
    """With adapter params at init every task's stage outputs equal the plain timm encoder's."""
    plain, adapted = make_pair(kwargs, adapter_blocks=adapter_blocks)
    img = torch.randn(2, 3, *size)
    ref = plain(img, ['x'])['x']
    out = adapted(img, TASKS)
    for task in TASKS:
        assert len(out[task]) == 4
        for a, b in zip(out[task], ref):
            assert a.shape == b.shape
            assert torch.equal(a, b)       # exactly: adding a zero bias changes no bit


def test_shifted_config_has_shifted_adapters():
    """The SHIFTED geometry really exercises the shift mask inside adapter blocks."""
    _, adapted = make_pair(SHIFTED, adapter_blocks={1: (-1,), 2: 'all', 3: 'all'})
    shifts = [blk.shift_size for stage in adapted.swin.layers for blk in stage.blocks
              if isinstance(blk, AdapterBlock)]
    assert any(any(s) for s in shifts)


def test_adapter_placement_default():
    """Default: last four blocks of stage 3 and all of stage 4 become adapter blocks."""
    _, adapted = make_pair(TINY)
    assert adapted.adapter_positions == [(2, 2), (2, 3), (2, 4), (2, 5), (3, 0), (3, 1)]
    assert '3' in adapted.skip_merges


def test_trunk_runs_once_and_skips_shared():
    """Stages 0/1 run once for all tasks; their features are the same objects for every task."""
    _, adapted = make_pair(TINY)
    calls = []
    hooks = [adapted.swin.layers[i].register_forward_hook(lambda *a: calls.append(1))
             for i in (0, 1)]
    out = adapted(torch.randn(2, 3, 64, 64), TASKS)
    for h in hooks:
        h.remove()
    assert len(calls) == 2
    for task in TASKS[1:]:
        assert out[task][0] is out[TASKS[0]][0]
        assert out[task][1] is out[TASKS[0]][1]
    assert not out['seg'][0].requires_grad


def test_tasks_differ_after_perturbation_and_affinity():
    """Perturbed adapters give task-specific deep features; the affinity changes them too."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = adapted(img, TASKS)
        assert not torch.allclose(out['seg'][3], out['depth'][3], atol=1e-4)
        assert not torch.allclose(out['seg'][2], out['normal'][2], atol=1e-4)
        # every task mixing only task 0's embedding -> all tasks identical
        w = torch.zeros(3, 3)
        w[:, 0] = 1
        same = adapted(img, TASKS, affinity=w)
        assert torch.allclose(same['seg'][3], same['depth'][3], atol=1e-6)
        assert torch.allclose(same['seg'][3], out['seg'][3], atol=1e-6)
        # W is read at the call only: the next call without it is back to the identity
        again = adapted(img, TASKS)
        assert torch.equal(again['depth'][3], out['depth'][3])
    assert not any('affinity' in k for k in adapted.state_dict())
    assert not hasattr(adapted, 'set_affinity')
    with pytest.raises(ValueError, match=r'affinity must be \(3, 3\).*got \(2, 2\)'):
        adapted(img, TASKS, affinity=torch.eye(2))


def test_affinity_none_is_the_identity_bit_for_bit():
    """affinity=None gives exactly what an identity W gives (conditioning and features)."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    img = torch.randn(2, 3, 64, 64)
    eye = torch.eye(len(TASKS))
    for tasks in (TASKS, ['normal', 'seg']):
        assert torch.equal(adapted.conditioning(tasks), adapted.conditioning(tasks, eye))
    with torch.no_grad():
        ref = adapted(img, TASKS, affinity=eye)
        out = adapted(img, TASKS)
    for task in TASKS:
        for a, b in zip(out[task], ref[task]):
            assert torch.equal(a, b)


def test_affinity_rows_index_all_encoder_tasks():
    """W is over all the encoder's tasks in its order, whichever subset of tasks runs."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    w = torch.softmax(torch.randn(3, 3), dim=1)
    theta = adapted.task_embeddings.detach()
    cond = adapted.conditioning(['normal', 'seg'], w)
    torch.testing.assert_close(cond, w[[2, 0]] @ theta)
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = adapted(img, TASKS, affinity=w)
        part = adapted(img, ['normal'], affinity=w)
    torch.testing.assert_close(part['normal'][3], full['normal'][3], atol=1e-5, rtol=1e-5)


def test_affinity_gets_no_gradient():
    """The encoder uses W as given: no gradient flows into it (the embeddings do learn)."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    w = (torch.eye(3) * 0.5 + 0.5 / 3).requires_grad_(True)
    out = adapted(torch.randn(1, 3, 64, 64), TASKS, affinity=w)
    sum(f[3].square().mean() for f in out.values()).backward()
    assert w.grad is None
    assert adapted.task_embeddings.grad is not None
    assert adapted.task_embeddings.grad.abs().max() > 0


def test_legacy_affinity_key_is_dropped_on_load():
    """Checkpoints from before W was passed by reference hold ``encoder.affinity``: strict
    loading ignores it (TROA's W lives in the weighting)."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    state = adapted.state_dict()
    _, fresh = make_pair(TINY)
    fresh.load_state_dict(dict(state, affinity=torch.eye(3)), strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k
    wrapper, wrapper_fresh = torch.nn.Module(), torch.nn.Module()
    wrapper.encoder, wrapper_fresh.encoder = adapted, make_pair(TINY)[1]
    old = {f'encoder.{k}': v for k, v in state.items()}
    old['encoder.affinity'] = torch.full((3, 3), 1 / 3)
    wrapper_fresh.load_state_dict(old, strict=True)
    assert torch.equal(wrapper_fresh.encoder.task_embeddings, adapted.task_embeddings)
    with pytest.raises(RuntimeError, match='Unexpected key'):
        wrapper_fresh.load_state_dict(dict(old, **{'encoder.other': torch.zeros(1)}))


def test_plain_encoder_accepts_and_ignores_affinity():
    """The model calls both encoders alike; the frozen baseline has no task conditioning."""
    plain, adapted = make_pair(TINY)
    img = torch.randn(1, 3, 64, 64)
    ref = plain(img, TASKS)
    out = plain(img, TASKS, affinity=torch.zeros(3, 3))
    assert all(torch.equal(a, b) for a, b in zip(out['seg'], ref['seg']))
    with pytest.raises(ValueError, match='task_names'):
        plain(img)
    assert isinstance(plain, BaseSwinV2Encoder) and isinstance(adapted, BaseSwinV2Encoder)
    assert plain.out_channels == adapted.out_channels == [16, 32, 64, 128]
    assert plain.size_divisor == adapted.size_divisor == 32


def test_branch_input_gradient_chunks():
    """One backward gives each task's gradient w.r.t. the branch input in its own chunk."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    img = torch.randn(2, 3, 64, 64)
    trunk = adapted.trunk(img)
    feats, branch_input = adapted.adapt(trunk, TASKS, return_branch_input=True)
    assert branch_input.shape[0] == 2 * len(TASKS)
    assert branch_input is adapted.branch_input
    feats['depth'][3].square().mean().backward()
    grad = branch_input.grad.view(len(TASKS), 2, *branch_input.shape[1:])
    assert grad[0].abs().max() == 0 and grad[2].abs().max() == 0
    assert grad[1].abs().max() > 0


def test_subset_of_tasks_and_errors():
    """A subset of tasks runs with those tasks' conditioning; unknown tasks are an error."""
    _, adapted = make_pair(TINY)
    perturb(adapted)
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = adapted(img, TASKS)
        part = adapted(img, ['normal'])
    assert list(part) == ['normal']
    assert torch.allclose(part['normal'][3], full['normal'][3], atol=1e-5)
    with pytest.raises(KeyError):
        adapted(img, ['nope'])
    with pytest.raises(ValueError):
        AdaptedSwinV2Encoder(task_names=TASKS, adapter_blocks={2: (7,)}, **TINY)
