"""Unsupervised domain adaptation: the UDA model, its loop, discriminators and optimisers.

Runner tests train the tiny adapter model of ``uda_toys`` (the shipped synthetic UDA base,
shrunk) for a few iterations on a labelled source and a target whose label files are garbage
or absent."""
import copy
import math
import re
import subprocess
import sys

import pytest
import torch
from mmengine import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.runner import Runner

from conftest import REPO
from mtl_adapters.datasets.transforms import loading
from mtl_adapters.models.uda import (OutputDiscriminator, UDAMultiTaskModel,
                                     discriminator_input, weighted_self_information)
from mtl_adapters.models.uda.pseudo_labels import make_pseudo_labels
from mtl_adapters.registry import DATASETS, MODELS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.utils import DataFileError
from uda_toys import BOTH, tiny_config, write_source, write_unlabelled_target

ENCODER = dict(type='AdaptedSwinV2Encoder', model_name='swinv2_tiny_window8_256',
               img_size=(64, 64), model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 4, 8)),
               embed_dim=16)
DECODER = dict(type='SwinDecoder', depths=(1, 1, 1, 1), num_heads=(4, 2, 1, 1),
               img_size=(64, 64), head_channels=8)
TASKS = [dict(type='SemanticTask', num_classes=4), dict(type='DepthTask')]
DISC = dict(type='OutputDiscriminator', channels=8, num_convs=4)


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    """(source root, target root, the target's label paths)."""
    source = tmp_path_factory.mktemp('uda_source')
    target = tmp_path_factory.mktemp('uda_target')
    write_source(source)
    labels = write_unlabelled_target(target)
    return str(source), str(target), labels


def build_uda(uda_cfg, tasks=TASKS, **kwargs) -> UDAMultiTaskModel:
    torch.manual_seed(0)
    return MODELS.build(dict(type='UDAMultiTaskModel', tasks=tasks, encoder=ENCODER,
                             decoder=DECODER, uda_cfg=uda_cfg, **kwargs))


def batch(model, seed: int, labelled: bool, size: int = 64) -> dict:
    """A collated batch of two uint8 images (random labels when ``labelled``)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(2):
        s = MultiTaskDataSample(metainfo=dict(img_shape=(size, size)))
        if labelled:
            for name, task in model.tasks.items():
                s.set_gt(name, task.random_gt((size, size), generator=g))
        samples.append(s)
    images = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
              for _ in range(2)]
    return dict(inputs=images, data_samples=samples)


def optim_cfg():
    return dict(constructor='UDAOptimWrapperConstructor',
                model=dict(type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.01, weight_decay=1e-4),
                           paramwise_cfg=dict(custom_keys={'task_embeddings':
                                                           dict(decay_mult=0.0)})),
                discriminator=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)))


# ------------------------------------------------------------------------------- pieces
def test_discriminator_inputs_and_shape():
    """Segmentation: ADVENT's weighted self-information (sums to the normalised entropy);
    regression: the prediction through a signed log; patch logits at 1/2^n resolution."""
    uniform = torch.zeros(2, 5, 8, 8)
    torch.testing.assert_close(weighted_self_information(uniform).sum(1), torch.ones(2, 8, 8))
    confident = torch.zeros(2, 5, 8, 8)
    confident[:, 2] = 30.0
    assert weighted_self_information(confident).abs().max() < 1e-6
    model = build_uda(dict(adversarial=dict(discriminator=DISC)))
    depth = torch.full((1, 1, 4, 4), math.e - 1)
    torch.testing.assert_close(discriminator_input(model.tasks['depth'], depth),
                               torch.ones(1, 1, 4, 4))
    net = OutputDiscriminator(in_channels=4, channels=8, num_convs=4)
    assert net(torch.randn(3, 4, 64, 32)).shape == (3, 1, 4, 2)
    assert set(model.discriminators.nets) == {'seg', 'depth'}
    assert model.discriminators.nets['seg'].layers[0].in_channels == 4


def test_optimiser_constructor_splits_the_parameters():
    """``model``: the trainable parameters without the discriminators (frozen trunk skipped);
    ``discriminator``: exactly the discriminators'; paramwise options still by model name."""
    model = build_uda(dict(adversarial=dict(discriminator=DISC)))
    wrappers = build_optim_wrapper(model, optim_cfg())
    assert isinstance(wrappers, OptimWrapperDict)
    assert set(wrappers.keys()) == {'model', 'discriminator'}
    ids = {k: {id(p) for g in w.optimizer.param_groups for p in g['params']}
           for k, w in wrappers.items()}
    disc = {id(p) for p in model.discriminators.parameters()}
    student = {id(p) for n, p in model.named_parameters()
               if p.requires_grad and not n.startswith('discriminators.')}
    assert ids['discriminator'] == disc and ids['model'] == student
    assert 'discriminators' in model._modules                  # put back after building
    decays = {g.get('weight_decay') for g in wrappers['model'].optimizer.param_groups}
    assert len(wrappers['model'].optimizer.param_groups) == 2 and 0.0 in decays
    # mean teacher only: no discriminators, the `discriminator` part is left unused
    only_teacher = build_uda(dict(mean_teacher=dict()))
    assert set(build_optim_wrapper(only_teacher, optim_cfg()).keys()) == {'model'}
    with pytest.raises(KeyError, match='discriminator'):
        cfg = optim_cfg()
        cfg.pop('discriminator')
        build_optim_wrapper(model, cfg)
    # keys next to the parts go to both (tools/train.py --amp sets type and dtype there)
    shared = build_optim_wrapper(model, dict(optim_cfg(), clip_grad=dict(max_norm=1.0)))
    assert all(w.clip_grad_kwargs == dict(max_norm=1.0) for w in shared.values())


def test_only_trained_tasks_are_adapted():
    """With ``train_tasks`` (zero-shot transfer), the strategies default to the trained tasks
    and refuse an evaluated-only one."""
    model = build_uda(dict(adversarial=dict(discriminator=DISC), mean_teacher=dict()),
                      train_tasks=['seg'])
    assert list(model.discriminators.nets) == ['seg'] and model.adapted_task_names == ['seg']
    with pytest.raises(KeyError, match='trained tasks'):
        build_uda(dict(adversarial=dict(tasks=['depth'], discriminator=DISC)),
                  train_tasks=['seg'])


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match='model.uda_cfg needs'):
        build_uda(dict())
    with pytest.raises(KeyError, match=r'uda_cfg.adversarial: unknown key\(s\) \[\'lambda\'\]'):
        build_uda(dict(adversarial={'lambda': 1}))
    with pytest.raises(KeyError, match='lambda_adv'):
        build_uda(dict(adversarial=dict(lambda_adv=dict(seg=0.1), discriminator=DISC)))
    with pytest.raises(KeyError, match='mean_teacher.tasks'):
        build_uda(dict(mean_teacher=dict(tasks=['normal'])))


def test_target_batch_with_labels_is_refused():
    model = build_uda(dict(adversarial=dict(discriminator=DISC))).train()
    wrappers = build_optim_wrapper(model, optim_cfg())
    data = dict(source=batch(model, 0, True), target=batch(model, 1, True))
    with pytest.raises(ValueError, match='with_labels=False'):
        model.train_step(data, wrappers)
    with pytest.raises(TypeError, match='UDAIterBasedTrainLoop'):
        model.train_step(batch(model, 0, True), wrappers)


def test_mean_teacher_without_hook_is_a_clear_error():
    model = build_uda(dict(mean_teacher=dict())).train()
    wrappers = build_optim_wrapper(model, optim_cfg())
    data = dict(source=batch(model, 0, True), target=batch(model, 1, False))
    with pytest.raises(RuntimeError, match='MeanTeacherHook'):
        model.train_step(data, wrappers)
    warming = build_uda(dict(mean_teacher=dict(warmup_iters=10 ** 9))).train()
    with pytest.raises(RuntimeError, match='MeanTeacherHook'):     # even during a warm-up
        warming.train_step(data, build_optim_wrapper(warming, optim_cfg()))


def test_train_step_terms_and_gradients():
    """The student's adversarial term trains the student, not the discriminators; the
    discriminator step trains only the discriminators; pseudo-label losses come from the
    teacher's labels; a teacher set with ``set_teacher`` is no part of the state dict."""
    model = build_uda(dict(BOTH, mean_teacher=dict(BOTH['mean_teacher'], weight=0.5))).train()
    teacher = build_uda(BOTH).eval()
    with torch.no_grad():                  # built from the same seed: make its labels differ
        torch.manual_seed(1)
        for p in teacher.decoders.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.set_teacher(teacher)
    assert not any(k.startswith('_teacher') for k in model.state_dict())
    assert model.teacher is teacher and 'teacher' not in dict(model.named_modules())
    assert copy.deepcopy(model).teacher is None          # the hook's copy has no teacher
    data = dict(source=batch(model, 0, True), target=batch(model, 1, False))
    src = model.data_preprocessor(data['source'], True)
    tgt = model.data_preprocessor(data['target'], True)
    losses, outputs = model(src['inputs'], src['data_samples'], mode='uda_loss',
                            target_inputs=tgt['inputs'], target_samples=tgt['data_samples'])
    assert {'seg.loss_ce', 'depth.loss_berhu', 'seg.loss_adv', 'depth.loss_adv',
            'seg.loss_pseudo', 'depth.loss_pseudo'} <= set(losses)
    assert set(outputs) == {'source', 'target'} and not outputs['target']['seg'].requires_grad
    # the pseudo-label terms: weight x the task's loss on the teacher's labels of the target
    cfg = model.mean_teacher_cfg['pseudo_labels']
    names = ['seg', 'depth']
    labels = make_pseudo_labels(teacher, tgt['inputs'], names, cfg, image_sizes=[(64, 64)] * 2)
    own = make_pseudo_labels(model, tgt['inputs'], names, cfg, image_sizes=[(64, 64)] * 2)
    for name in names:
        assert not torch.equal(labels[name], own[name]), name   # the teacher's, not the student's
        expected = 0.5 * model.task_loss(name, outputs['target'][name], labels[name])
        torch.testing.assert_close(losses[f'{name}.loss_pseudo'].detach(), expected)
        assert not torch.allclose(
            expected, 0.5 * model.task_loss(name, outputs['target'][name], own[name])), name
    decoder = list(model.decoders['depth'].parameters())
    grads = torch.autograd.grad(losses['depth.loss_adv'], decoder, retain_graph=True,
                                allow_unused=True)
    assert sum(g.abs().sum() for g in grads if g is not None) > 0   # the student learns ...
    losses['depth.loss_adv'].backward()
    assert all(p.grad is None for p in model.discriminators.parameters())   # ... D untouched
    model.zero_grad(set_to_none=True)
    # a full step through the optimisers: both step, the discriminators on detached outputs
    wrappers = build_optim_wrapper(model, optim_cfg())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = model.train_step(data, wrappers)
    assert {'loss', 'loss_disc', 'seg.loss_disc', 'depth.loss_pseudo'} <= set(log)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith('discriminators.') for n in moved)
    assert any(n.startswith('decoders.') for n in moved)
    assert not any(not model.get_parameter(n).requires_grad for n in moved)   # frozen trunk


@pytest.fixture
def hub_iter():
    """Set the message hub's ``iter`` (what ``_iteration`` reads); restored afterwards."""
    hub = MessageHub.get_current_instance()
    before = hub.get_info('iter')
    yield lambda i: hub.update_info('iter', i)
    hub.update_info('iter', before)


def test_pseudo_label_warmup_and_ramp(hub_iter, monkeypatch):
    """``warmup_iters``: weight 0 and no teacher forward before it; ``ramp_iters``: then
    ``weight * exp(-5 (1 - t)^2)``, rising to ``weight``; the defaults keep ``weight * value``
    from iteration 0; bad values are refused by key."""
    mt = dict(BOTH['mean_teacher'], weight=0.5)
    model = build_uda(dict(mean_teacher=dict(mt, warmup_iters=2, ramp_iters=4))).train()
    plain = build_uda(dict(mean_teacher=mt)).train()          # same seed: same weights
    teacher = build_uda(dict(mean_teacher=mt)).eval()
    with torch.no_grad():
        torch.manual_seed(1)
        for p in teacher.decoders.parameters():
            p.add_(0.2 * torch.randn_like(p))
    calls = []
    for m in (model, plain):
        m.set_teacher(teacher)
        real = m.pseudo_labels
        monkeypatch.setattr(m, 'pseudo_labels', lambda *a, real=real: calls.append(1) or real(*a))
    weights = []
    for i in range(10):
        hub_iter(i)
        weights.append(model.pseudo_label_weight())
        assert plain.pseudo_label_weight() == 0.5                # defaults: full from 0
    assert weights[:2] == [0.0, 0.0]
    assert weights[2] == pytest.approx(0.5 * math.exp(-5))
    assert weights[3] == pytest.approx(0.5 * math.exp(-5 * 0.75 ** 2))
    assert all(a < b for a, b in zip(weights[2:6], weights[3:7]))   # rising ...
    assert weights[6:] == [0.5] * 4                                  # ... to `weight`

    data = dict(source=batch(model, 0, True), target=batch(model, 1, False))
    src = model.data_preprocessor(data['source'], True)
    tgt = model.data_preprocessor(data['target'], True)

    def losses(m, i):
        hub_iter(i)
        return m(src['inputs'], src['data_samples'], mode='uda_loss',
                 target_inputs=tgt['inputs'], target_samples=tgt['data_samples'])[0]

    warm = losses(model, 1)                      # warm-up: zeros, stable keys, no teacher
    assert not calls
    assert {k: float(v) for k, v in warm.items() if 'pseudo' in k or 'mean_teacher' in k} == {
        'seg.loss_pseudo': 0.0, 'depth.loss_pseudo': 0.0, 'mean_teacher.weight': 0.0}
    ramped, full = losses(model, 3), losses(plain, 3)
    assert len(calls) == 2
    assert float(ramped['mean_teacher.weight']) == pytest.approx(weights[3])
    assert 'mean_teacher.weight' not in full                    # defaults: the old keys only
    for name in ('seg', 'depth'):
        torch.testing.assert_close(ramped[f'{name}.loss_pseudo'],
                                   full[f'{name}.loss_pseudo'] * (weights[3] / 0.5))
        torch.testing.assert_close(losses(model, 6)[f'{name}.loss_pseudo'],
                                   full[f'{name}.loss_pseudo'])
    # defaults: exactly weight x the task loss on the teacher's labels, from iteration 0
    at0 = losses(plain, 0)
    own = plain.forward_tasks(tgt['inputs'], ['seg', 'depth'])
    labels = make_pseudo_labels(teacher, tgt['inputs'], ['seg', 'depth'],
                                plain.mean_teacher_cfg['pseudo_labels'],
                                image_sizes=[(64, 64)] * 2)
    for name in ('seg', 'depth'):
        assert torch.equal(at0[f'{name}.loss_pseudo'],
                           0.5 * plain.task_loss(name, own[name], labels[name]))
    for key, bad in (('warmup_iters', -1), ('ramp_iters', 2.5), ('ramp_iters', True),
                     ('warmup_iters', '10')):
        with pytest.raises(ValueError, match=rf'model\.uda_cfg\.mean_teacher\.{key} must be an '
                                             rf'integer .* got {re.escape(repr(bad))}'):
            build_uda(dict(mean_teacher={key: bad}))


@pytest.mark.parametrize('mode', ['params', 'representation'])
def test_discriminators_get_the_full_source_batch_under_troa(mode):
    """On a TROA update step the weighting computes task losses again on half-batches (params:
    every task; representation: the non-separable depth loss); the discriminator step still
    gets the source outputs of the whole batch, exactly those of the student's forward."""
    model = build_uda(dict(adversarial=dict(discriminator=DISC)),
                      weighting=dict(type='TROAWeighting', gradient_mode=mode)).train()
    model.weighting.scheduled = model.weighting.due = True
    wrappers = build_optim_wrapper(model, optim_cfg())
    forwards, seen = [], []
    real_forward, real_step = model.forward_tasks, model.discriminator_step

    def forward_tasks(*args, **kwargs):
        result = real_forward(*args, **kwargs)
        forwards.append(result[0] if isinstance(result, tuple) else result)
        return result

    def discriminator_step(outputs, *args, **kwargs):
        seen.append(outputs['source'])
        return real_step(outputs, *args, **kwargs)
    model.forward_tasks, model.discriminator_step = forward_tasks, discriminator_step
    before = model.weighting.num_updates.item()
    model.train_step(dict(source=batch(model, 0, True), target=batch(model, 1, False)),
                     wrappers)
    model.weighting.after_backward()       # TROAHook's after_train_iter: both modes update here
    assert model.weighting.num_updates.item() == before + 1          # TROA did update
    assert len(seen) == 1 and set(seen[0]) == {'seg', 'depth'}
    for name, out in seen[0].items():
        assert out.shape[0] == 2 and not out.requires_grad, name
        torch.testing.assert_close(out, forwards[0][name].detach(), rtol=0, atol=0)


# --------------------------------------------------------------------- through the Runner
class _Recorder(Hook):
    """Records the order of the two optimisers' steps and the discriminators' weights."""

    def __init__(self):
        self.steps, self.disc, self.student = [], [], []

    def before_train(self, runner):
        for name, wrapper in runner.optim_wrapper.items():
            step = wrapper.optimizer.step

            def counted(*args, _name=name, _step=step, **kwargs):
                self.steps.append(_name)
                return _step(*args, **kwargs)
            wrapper.optimizer.step = counted
        self._snapshot(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.steps.append('|')
        self._snapshot(runner)

    def _snapshot(self, runner):
        model = runner.model
        self.disc.append(torch.cat([p.detach().flatten().clone()
                                    for p in model.discriminators.parameters()]))
        self.student.append(torch.cat([p.detach().flatten().clone()
                                       for p in model.decoders.parameters()]))


def test_optimiser_steps_alternate_as_configured(tmp_path, roots):
    """interval=2, steps=2: iterations 0 and 2 step the model then the discriminators twice,
    iterations 1 and 3 the model only; the discriminators keep their weights there."""
    source, target, _ = roots
    uda = dict(adversarial=dict(BOTH['adversarial'], interval=2, steps=2))
    cfg = tiny_config(tmp_path, source, target, max_iters=4, uda_cfg=uda,
                      mean_teacher_hook=False, ckpt_interval=100)
    runner = Runner.from_cfg(cfg)
    recorder = _Recorder()
    runner.register_hook(recorder)
    runner.train()
    per_iter = ' '.join(recorder.steps).split(' | ')
    per_iter[-1] = per_iter[-1].rstrip(' |')
    assert per_iter == ['model discriminator discriminator', 'model',
                        'model discriminator discriminator', 'model']
    for i in range(4):
        disc_moved = not torch.equal(recorder.disc[i], recorder.disc[i + 1])
        assert disc_moved == (i % 2 == 0), i
        assert not torch.equal(recorder.student[i], recorder.student[i + 1])


def test_training_never_reads_target_labels(tmp_path, roots, monkeypatch):
    """Both strategies train through the Runner on a target whose label files are garbage or
    absent; no file of a label folder of the target is ever opened. The same files break a
    loader that does read labels (so they would be noticed)."""
    source, target, labels = roots
    dataset = DATASETS.build(dict(
        type='TaskonomyDataset', data_root=target, index_file='index_train.json',
        tasks=['SemanticTask', 'DepthTask', 'NormalTask', 'EdgeTask'],
        pipeline=[dict(type='LoadMultiTaskImageAndAnnotations')]))
    with pytest.raises((DataFileError, FileNotFoundError, ValueError)):
        dataset[0]
    opened = []
    real_read = loading.read_image

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_read(path, *args, **kwargs)
    monkeypatch.setattr(loading, 'read_image', spy)
    cfg = tiny_config(tmp_path, source, target, max_iters=2, ckpt_interval=100)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    from_target = [p for p in opened if p.startswith(target)]
    assert from_target and all('/rgb/' in p for p in from_target)
    assert not set(map(str, labels)) & set(opened)
    assert any('/segment_semantic/' in p for p in opened if p.startswith(source))


def test_shipped_uda_configs():
    """Every configs/generalisation/uda_* config loads; the adapted ones use the UDA model,
    loop, optimiser constructor and DDP wrapper; mean-teacher configs add the hook; the
    target pipelines load images only."""
    paths = sorted((REPO / 'configs/generalisation').glob('uda_*.py'))
    assert len(paths) >= 8
    for path in paths:
        cfg = Config.fromfile(str(path))
        if 'source-only' in path.name:
            assert cfg.model.type == 'MultiTaskModel'
            assert 'alt' in cfg.test_dataloader.dataset.data_root
            continue
        assert cfg.model.type == 'UDAMultiTaskModel', path.name
        assert cfg.train_cfg.type == 'UDAIterBasedTrainLoop'
        assert cfg.optim_wrapper.constructor == 'UDAOptimWrapperConstructor'
        assert cfg.model_wrapper_cfg.type == 'UDADistributedDataParallel'
        load = cfg.train_cfg.target_dataloader.dataset.pipeline[0]
        assert load.type == 'LoadMultiTaskImageAndAnnotations' and load.with_labels is False
        assert cfg.train_cfg.target_dataloader.dataset.with_labels is False   # images only
        hooks = [h.type for h in cfg.custom_hooks]
        assert ('MeanTeacherHook' in hooks) == ('mean_teacher' in cfg.model.uda_cfg), path.name
        assert ('adversarial' in path.name) == ('adversarial' in cfg.model.uda_cfg)


def test_registered_for_configs():
    """A fresh process finds the UDA loop, model, wrapper and constructor by name after
    ``register_all_modules()`` alone (what tools/train.py does)."""
    code = ('from mtl_adapters.registry import *\n'
            'from mtl_adapters.set_env import register_all_modules; register_all_modules()\n'
            'from mmengine.registry import MODEL_WRAPPERS\n'
            "assert LOOPS.get('UDAIterBasedTrainLoop') is not None, 'loop'\n"
            "assert MODELS.get('UDAMultiTaskModel') is not None, 'model'\n"
            "assert MODEL_WRAPPERS.get('UDADistributedDataParallel') is not None, 'wrapper'\n"
            "assert OPTIM_WRAPPER_CONSTRUCTORS.get('UDAOptimWrapperConstructor'), 'ctor'\n")
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
