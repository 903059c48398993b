"""Uniform, uncertainty, GradNorm, PCGrad, and the surrogate-loss trick inside the model."""
import torch

from mtl_adapters.tasks import build_tasks

from mtl_adapters.weighting.base import per_task_gradients
from mtl_adapters.weighting import (GradNormWeighting, PCGradWeighting, UncertaintyWeighting,
                                    UniformWeighting)
from weighting_toys import build_model, make_batch


def test_default_is_uniform_with_unchanged_keys():
    model = build_model(None, encoder='SwinV2Encoder')
    assert isinstance(model.weighting, UniformWeighting) and model.shared_parameters() == []
    model.task_weights.copy_(torch.tensor([1.0, 2.0, 0.5]))
    inputs, samples = make_batch()
    out = model.loss(inputs, samples)
    raw = model.task_losses(model.forward_tasks(inputs), samples)
    assert list(out) == ['seg.loss_ce', 'depth.loss_berhu', 'normal.loss_l1']
    for (key, value), w, name in zip(out.items(), (1.0, 2.0, 0.5), raw):
        torch.testing.assert_close(value, w * raw[name])


def test_pcgrad_projects_conflicting_pairs_only():
    grads = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    pc = PCGradWeighting(['a', 'b', 'c'], seed=0)
    proj = pc.project(grads)
    assert proj[0] @ grads[1] >= -1e-6 and proj[1] @ grads[0] >= -1e-6   # conflict resolved
    torch.testing.assert_close(proj[0], torch.tensor([0.5, 0.5, 0.0]))   # normal plane of g_b
    torch.testing.assert_close(proj[1], torch.tensor([0.0, 1.0, 0.0]))   # normal plane of g_a
    assert torch.equal(proj[2], grads[2])                                  # no conflict: kept
    result = pc(torch.ones(3), grads)
    torch.testing.assert_close(result.combined_grad, proj.sum(0))
    many = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    first = PCGradWeighting(list('abcde'), seed=1).project(many)
    assert torch.equal(first, PCGradWeighting(list('abcde'), seed=1).project(many))  # seeded


def test_surrogate_gives_exactly_the_combined_gradient():
    model = build_model(dict(type='PCGradWeighting', seed=3))
    model.train()
    model.task_weights.copy_(torch.tensor([1.0, 0.5, 2.0]))
    inputs, samples = make_batch()
    shared = model.shared_parameters()
    losses = model.task_losses(model.forward_tasks(inputs), samples)
    values = torch.stack(list(losses.values()))
    grads = per_task_gradients(list(model.task_weights * values), shared)
    expected = PCGradWeighting(model.task_names, seed=3).project(grads).sum(0)
    plain = torch.autograd.grad((model.task_weights * values).sum(),
                                list(model.decoders.parameters()), allow_unused=True)
    model.zero_grad()
    out = model.loss(inputs, samples)
    assert float(out['weighting.loss_surrogate'].detach()) == 0.0
    sum(out.values()).backward()
    got = torch.cat([p.grad.flatten() for p in shared])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(expected, grads.sum(0))          # PCGrad changed something
    for p, g in zip(model.decoders.parameters(), plain):       # the rest: ordinary gradient
        if g is not None:
            torch.testing.assert_close(p.grad, g)


def test_uncertainty_weights_finite_and_large_loss_is_down_weighted():
    unc = UncertaintyWeighting(['seg', 'depth'])
    unc.bind_tasks(build_tasks(['SemanticTask', 'DepthTask']))   # seg: a classification task
    opt = torch.optim.SGD(unc.parameters(), lr=0.1)
    losses = torch.tensor([0.2, 10.0])
    for _ in range(20):
        result = unc(losses)
        total = (result.weights * losses).sum() + sum(result.extra_losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
    w = unc(losses).weights.detach()
    assert torch.isfinite(w).all()
    assert unc.log_vars[1] > 0 and w[1] < 0.5                  # regression: starts at 0.5
    torch.testing.assert_close(unc(losses).weights[0].detach(),
                               torch.exp(-unc.log_vars[0]).detach())   # classification: 1/s^2


def test_uncertainty_likelihood_from_task_definitions_or_config():
    tasks = build_tasks(['DepthTask', 'SemanticTask'])
    unc = UncertaintyWeighting(['depth', 'seg'])
    unc.bind_tasks(tasks)
    assert unc.loss_scale.tolist() == [0.5, 1.0]
    explicit = UncertaintyWeighting(['depth', 'seg'], classification_tasks=['depth'])
    explicit.bind_tasks(tasks)                                   # the config wins
    assert explicit.loss_scale.tolist() == [1.0, 0.5]


def test_uncertainty_keeps_evaluated_only_tasks_log_variance():
    """With model.train_tasks, an evaluated-only task's s_t gets no gradient (its loss is a
    constant 0 and its regulariser term is left out), so it keeps the loaded value."""
    w = UncertaintyWeighting(['seg', 'depth', 'normal'])
    w.bind_train_tasks(['seg', 'depth'])
    result = w(torch.tensor([3.0, 2.0, 0.0]))
    (sum(result.weights * torch.tensor([3.0, 2.0, 0.0])) + result.extra_losses[
        'loss_uncertainty']).backward()
    assert w.log_vars.grad[2] == 0 and (w.log_vars.grad[:2] != 0).all()


def test_gradnorm_down_weights_the_task_with_larger_gradients():
    gn = GradNormWeighting(['a', 'b'], alpha=1.5)
    opt = torch.optim.SGD(gn.parameters(), lr=0.05)
    grads = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    losses = torch.tensor([1.0, 1.0])
    for _ in range(5):
        result = gn(losses, grads)
        assert float(result.extra_losses['loss_gradnorm'].detach()) == 0.0
        opt.zero_grad()
        result.extra_losses['loss_gradnorm'].backward()
        opt.step()
    w = gn(losses, grads).weights
    assert torch.isfinite(w).all() and w[1] < 1.0 < w[0]
    torch.testing.assert_close(w.sum(), torch.tensor(2.0))


def test_gradnorm_task_absent_from_first_batch_is_not_favoured():
    gn = GradNormWeighting(['a', 'b', 'c'], alpha=1.5)
    grads = torch.ones(3, 4)
    gn(torch.tensor([1.0, 1.0, 0.0]), grads)            # task c has no labels yet
    assert gn.initialised.tolist() == [True, True, False]
    result = gn(torch.tensor([0.5, 0.5, 0.0]), grads)
    total = sum(result.extra_losses.values())
    total.backward()
    assert gn.loss_weights.grad[2] == 0                  # absent: neither up nor down
    gn(torch.tensor([0.5, 0.5, 2.0]), grads)             # c's first loss becomes its L(0)
    assert gn.initialised.all() and gn.initial_losses[2] == 2.0


def test_gradnorm_and_uncertainty_train_in_the_model():
    for cfg in (dict(type='GradNormWeighting'), dict(type='UncertaintyWeighting')):
        model = build_model(cfg)
        model.train()
        out = model.loss(*make_batch())
        sum(out.values()).backward()
        for p in model.weighting.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()


def test_optimizer_gets_trainable_params_and_no_decay_on_weighting_and_embeddings():
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mtl_adapters.registry import MODELS
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    cfg = Config.fromfile(
        repo / 'configs/troa'
        / 'uncertainty_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py')
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay, no_decay = wrapper.optimizer.param_groups
    assert decay['weight_decay'] == cfg.optim_wrapper.optimizer.weight_decay > 0
    assert no_decay['weight_decay'] == 0.0
    ids = lambda group: {id(p) for p in group['params']}  # noqa: E731
    assert ids(no_decay) == {id(model.weighting.log_vars), id(model.encoder.task_embeddings)}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert ids(decay) | ids(no_decay) == trainable and not ids(decay) & ids(no_decay)
