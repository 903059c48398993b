"""Zero-shot task transfer: ``model.train_tasks``, TROA rows carried over, the shipped configs.

The end-to-end test runs the shipped synthetic configs (tiny model overrides) through
mmengine's Runner: a source S-D-N model with TROA on one tiny Taskonomy-format domain, then the
S-D adaptation on another domain whose training buildings have no normal files at all, loading
the source checkpoint; it checks what the issue asks for against that checkpoint.
"""
import copy
import glob
import json
import os.path as osp
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_leaf_config, write_taskonomy_fixture
from mmengine import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mtl_adapters.registry import MODELS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks
from mtl_adapters.utils import load_checkpoint_file

GEN = REPO / 'configs' / 'generalisation'
SOURCE = GEN / 'zeroshot-source_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdn.py'
ADAPT_SD = GEN / ('zeroshot_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_'
                  'sd-to-sdn.py')
TASKS3 = [dict(type='SemanticTask', num_classes=4), dict(type='DepthTask'),
          dict(type='NormalTask')]
TINY_SWIN = dict(model_name='swinv2_tiny_window8_256', pretrained=None, img_size=(32, 32),
                 model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                                   window_size=4),
                 adapter_blocks={2: (-1,), 3: 'all'}, embed_dim=8, reduction=2)


def tiny_model(train_tasks=None, weighting=None, seed=0):
    """A tiny adapter model (S-D-N) whose adapters are off the identity (so all learn)."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(type='MultiTaskModel', tasks=TASKS3,
                              encoder=dict(type='AdaptedSwinV2Encoder', **TINY_SWIN),
                              decoder=dict(type='LightHead', channels=8),
                              weighting=weighting, train_tasks=train_tasks))
    with torch.no_grad():
        for p in model.shared_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def batch(tasks=('seg', 'depth', 'normal'), size=32, n=4, seed=0):
    """(inputs, samples) labelled for ``tasks`` only."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        s = MultiTaskDataSample(metainfo=dict(img_shape=(size, size)))
        if 'seg' in tasks:
            s.set_gt('seg', torch.randint(0, 4, (1, size, size), generator=g))
        if 'depth' in tasks:
            s.set_gt('depth', torch.rand(1, size, size, generator=g) * 5 + 0.5)
        if 'normal' in tasks:
            v = torch.randn(3, size, size, generator=g)
            s.set_gt('normal', v / v.norm(dim=0, keepdim=True))
        samples.append(s)
    return torch.randn(n, 3, size, size, generator=g), samples


# ----------------------------------------------------------------------------- the model
def test_train_tasks_freeze_eval_only_tasks_and_name_the_key():
    model = tiny_model(train_tasks=['depth', 'seg'])
    assert model.train_task_names == ['seg', 'depth']           # task order, not the config's
    assert model.eval_only_task_names == ['normal']
    assert model.weighting.train_task_names == ['seg', 'depth']
    assert not any(p.requires_grad for p in model.decoders['normal'].parameters())
    assert all(p.requires_grad for t in ('seg', 'depth') for p in model.decoders[t].parameters())
    assert all(p.requires_grad for p in model.shared_parameters())
    assert tiny_model().train_task_names == ['seg', 'depth', 'normal']       # default: all
    with pytest.raises(KeyError, match=r"model\.train_tasks.*unknown \['edge'\]"):
        tiny_model(train_tasks=['seg', 'edge'])
    with pytest.raises(KeyError, match=r'model\.train_tasks'):
        tiny_model(train_tasks=[])


def test_training_step_uses_every_trainable_parameter_and_no_eval_only_decoder():
    """What DDP (find_unused_parameters=False) needs: after one training backward every
    trainable parameter has a gradient; the evaluated-only decoder never runs in training,
    has no loss and no gradient, and prediction still gives every task."""
    model = tiny_model(train_tasks=['seg'])
    calls = {t: 0 for t in model.task_names}
    for t in model.task_names:
        model.decoders[t].register_forward_hook(
            lambda *_, t=t: calls.__setitem__(t, calls[t] + 1))
    inputs, samples = batch(('seg',))
    model.train()
    losses = model.loss(inputs, samples)
    assert sorted(losses) == ['seg.loss_ce']
    sum(losses.values()).backward()
    assert calls == {'seg': 1, 'depth': 0, 'normal': 0}
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused
    assert all(p.grad is None for t in ('depth', 'normal')
               for p in model.decoders[t].parameters())
    # uniform weighting mixes no task embeddings (W = identity): only S's row learns
    emb = model.encoder.task_embeddings.grad
    assert emb[0].abs().sum() > 0 and emb[1:].abs().sum() == 0
    model.eval()
    with torch.no_grad():
        preds = model.predict(inputs, samples)
    assert all(preds[0].get(f'pred_{t}') is not None for t in model.task_names)


def test_trained_outputs_do_not_depend_on_running_the_eval_only_branches():
    """Leaving the evaluated-only tasks out of the training forward changes no trained
    output: a task's encoder branch depends on the others only through the conditioning."""
    model = tiny_model(weighting=dict(type='TROAWeighting', eta=0.5, rho=0.2))
    with torch.no_grad():
        model.weighting.affinity.copy_(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3],
                                                     [0.1, 0.1, 0.8]]))
        inputs, _ = batch()
        everything = model.forward_tasks(inputs)
        subset = model.forward_tasks(inputs, ['seg', 'depth'])
    for t in ('seg', 'depth'):
        torch.testing.assert_close(subset[t], everything[t], rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings('ignore:TROAWeighting is configured')
@pytest.mark.parametrize('mode', ['params', 'representation'])
def test_troa_keeps_eval_only_rows_and_columns(mode):
    """TROA with S-D trained: W's S-D block moves, N's row and column stay exactly as loaded,
    in both gradient modes (the representation mode's branch holds only S and D)."""
    model = tiny_model(train_tasks=['seg', 'depth'],
                       weighting=dict(type='TROAWeighting', eta=1.0, rho=0.2,
                                      gradient_mode=mode, loss_weighting=True))
    loaded = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.6, 0.15], [0.3, 0.3, 0.4]])
    model.weighting.affinity.copy_(loaded)
    inputs, samples = batch(('seg', 'depth'))
    model.train()
    for _ in range(3):
        model.weighting.due = True
        losses = model.loss(inputs, samples)
        # loss weights lambda_s = N mean_t W[t, s], at each task's own index
        lam = 3 * model.weighting.affinity.mean(0)
        raw = model.task_losses(model.forward_tasks(inputs, ['seg']), samples)['seg']
        torch.testing.assert_close(losses['seg.loss_ce'], lam[0] * raw)
        sum(losses.values()).backward()
        model.weighting.after_backward()
        model.zero_grad()
    W = model.weighting.affinity
    assert int(model.weighting.num_updates) == 3
    assert torch.equal(W[2], loaded[2])                            # N's row: exactly kept
    assert torch.equal(W[:2, 2], loaded[:2, 2])                    # N's column: kept
    assert not torch.allclose(W[:2, :2], loaded[:2, :2])           # S-D block updated
    torch.testing.assert_close(W.sum(1), torch.ones(3))


DEMO_OPTIM = Config.fromfile(str(REPO / 'configs/_base_/schedules/schedule_demo.py')).optim_wrapper


def _adapt(freeze: bool, steps: int = 3):
    """A tiny S-D-N TROA model trained on S only (D and N evaluated only) with the demo
    schedule's optimiser wrapper (AdamW, no decay on the task embeddings), W off the identity
    so S's conditioning mixes in D's and N's embeddings; (model, embeddings before, optim)."""
    from mmengine.optim import build_optim_wrapper
    torch.manual_seed(0)
    model = MODELS.build(dict(type='MultiTaskModel', tasks=TASKS3,
                              encoder=dict(type='AdaptedSwinV2Encoder', **TINY_SWIN),
                              decoder=dict(type='LightHead', channels=8),
                              weighting=dict(type='TROAWeighting', eta=0.5, rho=0.2),
                              train_tasks=['seg'], freeze_eval_only_embeddings=freeze))
    with torch.no_grad():
        for p in model.shared_parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.weighting.affinity.copy_(torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.6, 0.2],
                                                     [0.1, 0.2, 0.7]]))
    before = model.encoder.task_embeddings.detach().clone()
    optim = build_optim_wrapper(model, copy.deepcopy(DEMO_OPTIM))
    inputs, samples = batch(('seg',))
    model.train()
    for _ in range(steps):
        model.weighting.due = True
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        optim.update_params(loss)
        model.weighting.after_backward()
    return model, before, optim


@pytest.mark.filterwarnings('ignore:TROAWeighting is configured')
def test_eval_only_task_embeddings_stay_bit_identical_unless_allowed_to_move():
    """The evaluated-only tasks' rows of the (T, d) task embeddings: exactly the loaded values
    after AdamW steps (their gradient rows are exactly zero, so is AdamW's state there);
    with ``freeze_eval_only_embeddings=False`` they move (a tiny gradient, a full AdamW step)."""
    model, before, optim = _adapt(freeze=True)
    emb = model.encoder.task_embeddings
    assert model.frozen_embedding_rows == {'encoder.task_embeddings': (emb, [1, 2])}
    assert torch.equal(emb[1:].detach(), before[1:])                # D, N: bit-identical
    assert not torch.equal(emb[0].detach(), before[0])              # S learns
    state = optim.optimizer.state[emb]
    assert state['exp_avg'][1:].abs().sum() == 0 and state['exp_avg_sq'][1:].abs().sum() == 0
    moving, before, _ = _adapt(freeze=False)
    assert moving.frozen_embedding_rows == {}
    moved = (moving.encoder.task_embeddings[1:].detach() - before[1:]).abs().amax(dim=1)
    assert (moved > 1e-4).all(), moved                              # near a full AdamW step
    with pytest.raises(TypeError, match='freeze_eval_only_embeddings'):
        MODELS.build(dict(type='MultiTaskModel', tasks=TASKS3, train_tasks=['seg'],
                          encoder=dict(type='AdaptedSwinV2Encoder', **TINY_SWIN),
                          decoder=dict(type='LightHead', channels=8),
                          freeze_eval_only_embeddings='yes'))


def test_weight_decay_on_frozen_embedding_rows_is_refused():
    """Decay would move the zero-gradient rows: the optimiser constructor names the tensor
    and the fix; the shipped schedule (no decay on task_embeddings) builds."""
    from mmengine.optim import build_optim_wrapper
    model = tiny_model(train_tasks=['seg'])
    decayed = copy.deepcopy(DEMO_OPTIM)
    decayed.paramwise_cfg.custom_keys.pop('task_embeddings')
    with pytest.raises(ValueError, match=r"encoder\.task_embeddings: rows \[1, 2\].*decay_mult"):
        build_optim_wrapper(model, decayed)
    build_optim_wrapper(model, copy.deepcopy(DEMO_OPTIM))
    build_optim_wrapper(MODELS.build(dict(type='MultiTaskModel', tasks=TASKS3,
                                          train_tasks=['seg'], freeze_eval_only_embeddings=False,
                                          encoder=dict(type='AdaptedSwinV2Encoder', **TINY_SWIN),
                                          decoder=dict(type='LightHead', channels=8))), decayed)


# ----------------------------------------------------------------------------- the configs
def _configs():
    return sorted(Path(p) for p in glob.glob(str(GEN / 'zeroshot_*.py')))


@pytest.mark.parametrize('path', _configs(), ids=lambda p: '_'.join(p.stem.split('_')[1:]))
def test_zeroshot_configs_separate_trained_from_evaluated_tasks(path):
    """Every zero-shot leaf: train_tasks are some of the model's tasks, the training dataset
    lists exactly those (the other labels are never loaded), validation and test list every
    model task, and load_from is the last checkpoint of the source config it inherits."""
    cfg = Config.fromfile(str(path))
    source = _source_of(path)
    source_cfg = Config.fromfile(str(source))
    model_tasks = list(build_tasks(cfg.model.tasks))
    train = cfg.model.train_tasks
    assert train and set(train) < set(model_tasks)
    assert list(build_tasks(cfg.train_dataloader.dataset.tasks)) == train
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert set(model_tasks) <= set(build_tasks(loader.dataset.tasks))
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        # the target domain, never the source's data
        assert loader.dataset.data_root != source_cfg.train_dataloader.dataset.data_root
    model = MODELS.build(cfg.model) if 'base' not in path.name else None
    if model is not None:
        frozen = [t for t in model.task_names
                  if not any(p.requires_grad for p in model.decoders[t].parameters())]
        assert frozen == [t for t in model_tasks if t not in train]
    assert cfg.load_from == (f'work_dirs/{source.stem}/'
                             f'iter_{source_cfg.train_cfg.max_iters}.pth')
    assert source_cfg.model.weighting.type == 'TROAWeighting' == cfg.model.weighting.type
    assert source_cfg.model.get('train_tasks') is None


def _source_of(path: Path) -> Path:
    """The zeroshot-source_* config a zero-shot leaf inherits (following _base_)."""
    while not path.name.startswith('zeroshot-source_'):
        text = path.read_text()
        base = re.search(r"_base_ = \['\./([^']+)'", text).group(1)
        path = path.parent / base
    return path


# ------------------------------------------------------------------------ end to end
class ProbeHook(Hook):
    """Records, for the training iterations only, which labels the batches carry and which
    decoders run; checks after every step that the frozen tensors are untouched."""

    def __init__(self, frozen):
        self.frozen = frozen
        self.labels, self.calls, self.training = [], {}, False

    def before_train(self, runner):
        model = runner.model
        for name, dec in model.decoders.items():
            self.calls[name] = 0
            dec.register_forward_hook(lambda *_, n=name: self._count(n))

    def _count(self, name):
        if self.training:
            self.calls[name] += 1

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.training = True
        self.labels += [sorted(t for t in ('seg', 'depth', 'normal') if s.has_gt(t))
                        for s in data_batch['data_samples']]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.training = False
        for name, (param, value) in self.frozen.items():
            assert param.grad is None and not param.requires_grad, name
            assert torch.equal(param.detach(), value), name


def _leaf(tmp_path, base, root, tag, load_from=None) -> Config:
    path = tmp_path / f'{tag}.py'
    path.write_text(tiny_leaf_config(
        base, f'zs_{tag}_{tmp_path.name}', root, iters=3, model='weighting=dict(eta=1.0, rho=0.2)',
        lines=(f"custom_hooks = [dict(type='TROAHook', interval=1)]\n"
               f"work_dir = '{tmp_path / tag}'\nload_from = {load_from!r}\n")))
    cfg = Config.fromfile(str(path))
    cfg.train_dataloader.dataset.pipeline[1].geometric[0].size = (32, 32)
    return cfg


@pytest.mark.filterwarnings('ignore:TROA needs at least 2')
def test_zeroshot_adaptation_end_to_end(tmp_path):
    source_root, target_root = tmp_path / 'source', tmp_path / 'target'
    write_taskonomy_fixture(str(source_root), size=(32, 32), num_classes=8, seed=1)
    write_taskonomy_fixture(str(target_root), size=(32, 32), num_classes=8, seed=2)
    # the target's training building has no normal files at all
    shutil.rmtree(target_root / 'normal' / 'bldA')
    # 1. the source: S-D-N with TROA
    src = Runner.from_cfg(_leaf(tmp_path, SOURCE, source_root, 'src'))
    src.train()
    ckpt_path = tmp_path / 'src' / 'iter_3.pth'
    source_state = load_checkpoint_file(str(ckpt_path), map_location='cpu')['state_dict']
    W_source = source_state['weighting.affinity']
    assert not torch.allclose(W_source, torch.eye(3) * 0.9 + 0.1 / 3)     # W moved
    # 2. the adaptation on the target, S and D labelled
    cfg = _leaf(tmp_path, ADAPT_SD, target_root, 'adapt', load_from=str(ckpt_path))
    runner = Runner.from_cfg(cfg)
    train_set = runner.train_dataloader.dataset
    assert [sorted(train_set.get_data_info(i)['task_paths']) for i in range(len(train_set))] \
        == [['depth', 'seg']] * len(train_set)                          # no normal path
    model = runner.model
    frozen = {n: (p, source_state[n].clone()) for n, p in model.named_parameters()
              if n.startswith('decoders.normal.')}
    assert frozen                                    # decoder and head of the N task
    probe = ProbeHook(frozen)
    runner.register_hook(probe)
    runner.train()
    # the target never gave the training step normal labels; S and D in every batch
    assert probe.labels and all(labels == ['depth', 'seg'] for labels in probe.labels)
    assert probe.calls['normal'] == 0 and probe.calls['seg'] > 0
    # frozen: exactly the source checkpoint's values; the trained decoders moved
    for name, (param, value) in frozen.items():
        assert torch.equal(param.detach(), value), name
    seg_w = [n for n in source_state if n.startswith('decoders.seg.') and 'weight' in n][0]
    assert not torch.equal(dict(model.named_parameters())[seg_w].detach(), source_state[seg_w])
    # the optimizer holds none of the frozen tensors (the constructor skips them)
    in_optimizer = {id(q) for g in runner.optim_wrapper.optimizer.param_groups
                    for q in g['params']}
    assert not any(id(param) in in_optimizer for param, _ in frozen.values())
    assert id(dict(model.named_parameters())[seg_w]) in in_optimizer
    # TROA: N's row (and column) carried over from the source checkpoint exactly
    W = model.weighting.affinity
    assert int(model.weighting.num_updates) == int(source_state['weighting.num_updates']) + 3
    assert torch.equal(W[2], W_source[2])
    assert torch.equal(W[:2, 2], W_source[:2, 2])
    assert not torch.equal(W[:2, :2], W_source[:2, :2])
    # every task evaluated on the target's val building (it has normals)
    scalars = [json.loads(line) for line in
               next((tmp_path / 'adapt').rglob('vis_data/scalars.json')).read_text()
               .splitlines()]
    val = [s for s in scalars if 'seg/mIoU' in s]
    assert len(val) == 1 and all(k in val[0] for k in ('depth/rmse', 'normal/mean'))
    # N's task embedding row: exactly the source's (S's and D's rows adapted)
    emb = model.encoder.task_embeddings.detach()
    assert torch.equal(emb[2], source_state['encoder.task_embeddings'][2])
    assert not torch.equal(emb[:2], source_state['encoder.task_embeddings'][:2])
    # the adapted checkpoint still holds the source's N decoder
    adapted = load_checkpoint_file(str(tmp_path / 'adapt' / 'iter_3.pth'),
                                   map_location='cpu')['state_dict']
    assert all(torch.equal(adapted[n], v) for n, (_, v) in frozen.items())
    assert osp.isfile(ckpt_path)
