"""AdaptedSwinV2Encoder: identity at init, trunk once, task conditioning, branch input."""
import pytest
import torch

from mtl_adapters.models.adapters import AdapterBlock
from mtl_adapters.models.backbones import AdaptedSwinV2Encoder, SwinV2Encoder

#: a narrow Swin-V2-T (stage 3 keeps its 6 blocks, so the default adapter placement applies)
TINY = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
            model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)))
#: window 4 at 128 px: stage 3 (index 2) is 8x8 > window, so its odd blocks are shifted
SHIFTED = dict(model_name='swinv2_tiny_window8_256', img_size=(128, 128),
               model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8), window_size=4))
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
        adapted.set_affinity(w)
        same = adapted(img, TASKS)
        assert torch.allclose(same['seg'][3], same['depth'][3], atol=1e-6)
        assert torch.allclose(same['seg'][3], out['seg'][3], atol=1e-6)
    state = adapted.state_dict()
    assert torch.equal(state['affinity'], w)
    with pytest.raises(ValueError):
        adapted.set_affinity(torch.eye(2))


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
