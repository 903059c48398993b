"""TROA: the cosine matrix against brute-force backward passes, the simplex, degenerate cases."""
import warnings

import pytest
import torch

from mtl_adapters.weighting import (TROAWeighting, cosine_matrix, init_affinity,
                                    mirror_descent_update)
from weighting_toys import build_model, make_batch


def _brute_force_params(model, inputs, samples):
    """Per (task, half): a fresh forward on that half and a full backward of that task's loss."""
    shared = model.shared_parameters()
    half = inputs.shape[0] // 2
    grads = {}
    for h, part in enumerate((slice(0, half), slice(half, None))):
        for t, name in enumerate(model.task_names):
            model.zero_grad()
            losses = model.task_losses(model.forward_tasks(inputs[part]), samples[part])
            losses[name].backward()
            grads[h, t] = torch.cat([p.grad.flatten() for p in shared])
    T = len(model.task_names)
    return (torch.stack([grads[0, t] for t in range(T)]),
            torch.stack([grads[1, t] for t in range(T)]))


def _brute_force_representation(model, inputs, samples):
    """Per (task, half): a fresh forward on that half and a backward of that task's loss on
    that half to the replicated adapter input (the per-half definition, batch statistics of
    the loss such as berHu's threshold included)."""
    half = inputs.shape[0] // 2
    grads = {}
    for h, part in enumerate((slice(0, half), slice(half, None))):
        n = inputs[part].shape[0]
        for t, name in enumerate(model.task_names):
            outputs, branch = model.forward_tasks(inputs[part], return_branch_input=True)
            model.task_losses(outputs, samples[part])[name].backward()
            grads[h, t] = branch.grad[t * n:(t + 1) * n].sum(0).flatten()
    T = len(model.task_names)
    return (torch.stack([grads[0, t] for t in range(T)]),
            torch.stack([grads[1, t] for t in range(T)]))


@pytest.mark.parametrize('mode', ['params', 'representation'])
def test_cosine_matrix_matches_brute_force(mode):
    model = build_model(dict(type='TROAWeighting', gradient_mode=mode, eta=0.5, rho=0.2))
    model.train()
    inputs, samples = make_batch(batch=4)
    w0 = model.weighting.affinity.clone()
    model.weighting.due = True
    sum(model.loss(inputs, samples).values()).backward()
    model.weighting.after_backward()            # representation mode: after the backward
    w1 = model.weighting.affinity.clone()
    model.weighting.affinity.copy_(w0)          # the brute force must see the same encoder
    brute = (_brute_force_params if mode == 'params' else _brute_force_representation)(
        model, inputs, samples)
    model.weighting.affinity.copy_(w1)
    expected = cosine_matrix(*brute)
    torch.testing.assert_close(model.weighting.cosine, expected, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(model.weighting.affinity,
                               mirror_descent_update(w0, expected, 0.5, 0.2), atol=1e-6,
                               rtol=1e-5)
    C = model.weighting.cosine
    assert (C.diagonal() < 1).all() and not torch.allclose(C, C.T)    # asymmetric, diag < 1
    assert not model.weighting.due and int(model.weighting.num_updates) == 1


def test_rows_stay_on_simplex():
    g = torch.Generator().manual_seed(0)
    W = init_affinity(4, 0.1)
    torch.testing.assert_close(W.sum(1), torch.ones(4))
    for step in range(200):
        C = torch.rand(4, 4, generator=g) * 2 - 1
        valid = torch.rand(4, generator=g) > 0.2
        W = mirror_descent_update(W, C, eta=1.0, rho=0.3 * (step % 2), valid=valid)
        assert (W > 0).all()
        torch.testing.assert_close(W.sum(1), torch.ones(4), atol=1e-6, rtol=0)


def test_invalid_columns_are_not_touched_by_an_ulp():
    """Entries in the columns of skipped (e.g. evaluated-only) tasks keep their exact values
    on every update, on rows whose float32 sum is not exactly 1."""
    g = torch.Generator().manual_seed(3)
    W = torch.softmax(torch.randn(5, 5, generator=g) * 3, dim=1)       # awkward float32 rows
    valid = torch.tensor([True, False, True, True, False])
    W0 = W.clone()
    for _ in range(50):
        W = mirror_descent_update(W, torch.rand(5, 5, generator=g) * 2 - 1, eta=1.0, rho=0.2,
                                  valid=valid)
    assert torch.equal(W[:, ~valid], W0[:, ~valid]) and torch.equal(W[~valid], W0[~valid])
    assert not torch.equal(W, W0)
    torch.testing.assert_close(W.sum(1), W0.sum(1), atol=1e-6, rtol=0)


def test_agreeing_source_gains_weight_and_fixed_point():
    W = init_affinity(3, 0.1)
    C = torch.tensor([[0.5, 0.9, -0.5], [0.1, 0.9, 0.1], [0.0, 0.0, 0.9]])
    new = mirror_descent_update(W, C, eta=0.5, rho=0.0)
    assert new[0, 1] > W[0, 1] and new[0, 2] < W[0, 2]     # agrees more than the row average
    for _ in range(400):                                  # rho > 0: fixed point softmax(C/rho)
        W = mirror_descent_update(W, C, eta=0.5, rho=0.5)
    torch.testing.assert_close(W, torch.softmax(C / 0.5, dim=1), atol=1e-5, rtol=0)


def test_update_from_gradients_agreeing_task_gains():
    troa = TROAWeighting(['a', 'b', 'c'], eta=1.0, rho=0.0)
    base = torch.tensor([1.0, 0.0, 0.0, 0.0])
    g_a = torch.stack([base, torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([0, 0, 1.0, 0])])
    g_b = torch.stack([base + 1.0, base, -base])     # on half B, b agrees with a more than a
    w0 = troa.affinity.clone()
    troa.update(g_a, g_b)
    assert troa.affinity[0, 1] > w0[0, 1] and troa.affinity[0, 2] < w0[0, 2]


def test_degenerate_tasks_are_skipped_and_warned_once():
    troa = TROAWeighting(['a', 'b', 'c'], eta=1.0, rho=0.1)
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    bad = g.clone()
    bad[1] = 0.0                                           # zero gradient for task b
    w0 = troa.affinity.clone()
    with pytest.warns(UserWarning, match="task 'b'"):
        troa.update(bad, g)
    W = troa.affinity
    torch.testing.assert_close(W[1], w0[1], atol=0, rtol=0)         # row skipped
    torch.testing.assert_close(W[:, 1], w0[:, 1], atol=1e-7, rtol=1e-6)   # column kept
    assert not torch.equal(W[0], w0[0])
    torch.testing.assert_close(W.sum(1), torch.ones(3))
    nan = g.clone()
    nan[1, 0] = float('nan')
    with warnings.catch_warnings():
        warnings.simplefilter('error')                      # warned once already
        troa.update(g, nan)
    assert torch.isfinite(troa.affinity).all() and torch.isfinite(troa.cosine).all()


def test_eta_zero_keeps_w_fixed():
    troa = TROAWeighting(['a', 'b'], eta=0.0, rho=0.5)
    w0 = troa.affinity.clone()
    troa.update(torch.randn(2, 3), torch.randn(2, 3))
    assert torch.equal(troa.affinity, w0)


def test_task_missing_from_batch_is_skipped():
    model = build_model(dict(type='TROAWeighting', eta=1.0, rho=0.0))
    model.train()
    inputs, samples = make_batch(drop=('depth',))
    w0 = model.weighting.affinity.clone()
    model.weighting.due = True
    with pytest.warns(UserWarning, match="task 'depth'"):
        model.loss(inputs, samples)
        model.weighting.after_backward()
    W = model.weighting.affinity
    assert torch.equal(W[1], w0[1])
    torch.testing.assert_close(W[:, 1], w0[:, 1], atol=1e-7, rtol=1e-6)
    assert not torch.equal(W[0], w0[0])


def test_w_feeds_encoder_and_loss_weights():
    """The encoder reads W itself at every forward (no copy); lambda weights the losses."""
    model = build_model(dict(type='TROAWeighting', eta=1.0, rho=0.0, loss_weighting=True))
    model.train()
    inputs, samples = make_batch()
    model.weighting.due = True
    sum(model.loss(inputs, samples).values()).backward()
    model.weighting.after_backward()
    W = model.weighting.affinity
    assert not torch.equal(W, init_affinity(3, 0.1))                      # W moved
    seen = []
    handle = model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs['affinity']), with_kwargs=True)
    out = model.loss(inputs, samples)
    handle.remove()
    assert seen[0] is W
    losses = model.task_losses(model.forward_tasks(inputs), samples)
    lam = 3 * W.mean(0)
    torch.testing.assert_close(lam.sum(), torch.tensor(3.0))
    for i, (name, value) in enumerate(losses.items()):
        key = next(k for k in out if k.startswith(name + '.'))
        torch.testing.assert_close(out[key], lam[i] * value)
    torch.testing.assert_close(model.task_weights, torch.ones(3))        # config weights kept
    # W changes the features: the identity gives other outputs
    with torch.no_grad():
        mixed = model.forward_tasks(inputs)['depth']
        saved = W.clone()
        W.copy_(torch.eye(3))
        plain = model.forward_tasks(inputs)['depth']
        W.copy_(saved)
    assert not torch.allclose(mixed, plain)


@pytest.mark.parametrize('mode', ['params', 'representation'])
def test_update_step_weights_losses_with_the_w_its_forward_read(mode):
    """One rule in both modes: on an update step the loss weights lambda come from the W the
    adapters were conditioned on; the update reaches W after the step's backward."""
    model = build_model(dict(type='TROAWeighting', gradient_mode=mode, eta=1.0, rho=0.0,
                             loss_weighting=True))
    model.train()
    inputs, samples = make_batch(batch=4)
    seen, read = [], model.weighting.task_affinity       # the W each forward conditions on
    model.weighting.task_affinity = lambda: (seen.append(read().clone()), read())[1]
    for _ in range(2):                                  # the second step starts from a moved W
        model.weighting.due = True
        out = model.loss(inputs, samples)
        lam = 3 * seen[-1].mean(0)
        with torch.no_grad():                           # the step's unweighted losses again
            raw = model.task_losses(model.forward_tasks(inputs), samples)
        torch.testing.assert_close(seen.pop(), seen[-1], atol=0, rtol=0)   # same W read
        for i, (name, value) in enumerate(raw.items()):
            key = next(k for k in out if k.startswith(name + '.'))
            torch.testing.assert_close(out[key].detach(), lam[i] * value)
        sum(out.values()).backward()
        model.weighting.after_backward()
        assert not torch.equal(model.weighting.affinity, seen[-1])    # the update landed
    assert int(model.weighting.num_updates) == 2


def test_representation_mode_needs_adapter_encoder():
    model = build_model(dict(type='TROAWeighting', gradient_mode='representation'),
                        encoder='SwinV2Encoder')
    model.weighting.due = True
    with pytest.raises(TypeError, match='gradient_mode'):
        model.loss(*make_batch())


def test_zero_cosines_counterfactual_is_the_regulariser_only_update():
    """``zero_cosines=True``: every update is ``W[t] <- normalise(W[t]^(1 - eta rho))``,
    computed here independently (float64, by hand), whatever the gradients; the same
    gradients with the measured cosines give another W. A skipped task keeps its row."""
    g = torch.Generator().manual_seed(3)
    g_a, g_b = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    eta, rho = 0.7, 0.4
    zero = TROAWeighting(['a', 'b', 'c'], eta=eta, rho=rho, zero_cosines=True)
    real = TROAWeighting(['a', 'b', 'c'], eta=eta, rho=rho)
    W = zero.affinity.double().clone()
    for step in range(3):
        zero.update(g_a * (step + 1), g_b - step)
        real.update(g_a * (step + 1), g_b - step)
        W = W ** (1.0 - eta * rho)
        W = W / W.sum(dim=1, keepdim=True)
        torch.testing.assert_close(zero.affinity.double(), W, atol=1e-7, rtol=0)
    assert torch.equal(zero.cosine, torch.zeros(3, 3))           # the C that was used
    assert real.cosine.abs().min() > 0                           # real cosines are non-zero
    assert (real.affinity - zero.affinity).abs().max() > 1e-3
    # a task with a zero gradient is skipped as in TROA: its row is kept exactly
    w0 = zero.affinity.clone()
    bad = g_a.clone()
    bad[1] = 0.0
    with pytest.warns(UserWarning, match="task 'b'"):
        zero.update(bad, g_b)
    assert torch.equal(zero.affinity[1], w0[1]) and not torch.equal(zero.affinity[0], w0[0])
    with pytest.raises(TypeError, match='zero_cosines'):
        TROAWeighting(['a', 'b'], zero_cosines='yes')
