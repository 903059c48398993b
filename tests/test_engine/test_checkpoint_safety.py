"""Checkpoints never lose or mix work: atomic saves rotated afterwards, only sane states kept,
strict ``load_from``, resumes checked against the model, the optimiser and the dataset, and a
new learning rate on resume. A toy model through mmengine's Runner with the shipped
schedule's ``default_hooks`` (what every config inherits)."""
import copy
import itertools
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import REPO
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mtl_adapters.engine.checkpoint_checks import CheckpointMismatchError
from mtl_adapters.tasks import build_tasks
from mtl_adapters.utils import load_checkpoint_file, newest_loadable_checkpoint

_RUNS = itertools.count()
SCHEDULE = Config.fromfile(str(REPO / 'configs/_base_/schedules/schedule_demo.py'))


class ToyData(Dataset):
    """Its metainfo holds built tasks, as the real datasets' do (saved by class name)."""

    def __init__(self, classes=('a', 'b')):
        self.metainfo = dict(classes=tuple(classes), tasks=build_tasks(['DepthTask']))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), target=torch.randn(1, generator=g))


class ToyModel(BaseModel):
    """A trunk and one head per task, like the multitask model's decoders."""

    def __init__(self, tasks=('seg', 'depth'), width=4, frozen=()):
        super().__init__()
        self.trunk = nn.Linear(4, width)
        self.decoders = nn.ModuleDict({t: nn.Linear(width, 1) for t in tasks})
        for name in frozen:
            self.decoders[name].requires_grad_(False)

    def forward(self, inputs, target=None, mode='loss'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        y = torch.stack(target) if isinstance(target, list) else target
        feats = self.trunk(x)
        return {f'{t}.loss': ((d(feats) - y) ** 2).mean() for t, d in self.decoders.items()}


class AtIteration(Hook):
    """Runs ``fn(runner)`` after the given iteration's step, before any checkpoint of it."""
    priority = 'LOW'                   # after SafeCheckpointHook, before the checkpoint hook

    def __init__(self, iteration, fn):
        self.iteration, self.fn = iteration, fn

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            self.fn(runner)


def make_runner(work_dir, iters=6, model=None, max_keep=1, hooks=(), lr=0.01, data=None,
                name='toy', **cfg):
    default_hooks = copy.deepcopy(SCHEDULE.default_hooks)
    default_hooks.checkpoint.update(interval=1, max_keep_ckpts=max_keep)
    default_hooks.logger.update(interval=1)
    return Runner(
        model=model or ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data or ToyData(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=lr)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                              end=100)],
        train_cfg=dict(by_epoch=False, max_iters=iters), default_hooks=default_hooks,
        custom_hooks=list(hooks), default_scope='mtl_adapters',
        experiment_name=f'{name}_{next(_RUNS)}', **cfg)


def _iters(work_dir):
    return sorted(int(p.split('_')[-1][:-4]) for p in map(str, work_dir.glob('iter_*.pth')))


def _scale(factor):
    def fn(runner):
        with torch.no_grad():
            for p in runner.model.parameters():
                p.mul_(factor)
    return fn


# ------------------------------------------------------------------------ saving, rotation
def test_refused_save_keeps_the_previous_checkpoint(tmp_path):
    """max_keep_ckpts=1 and exploded weights (1e38) at iteration 3: the save is refused and
    iteration 2's checkpoint is still there, loadable and named by last_checkpoint (mmengine's
    hook deleted it before trying to write the new one)."""
    runner = make_runner(tmp_path, hooks=[AtIteration(3, _scale(1e38))])
    with pytest.raises(FloatingPointError, match=r'max_abs_weight.*trunk\.weight'):
        runner.train()
    assert _iters(tmp_path) == [2]
    assert newest_loadable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    assert load_checkpoint_file(str(tmp_path / 'iter_2.pth'))['meta']['iter'] == 2


def test_killed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A process killed while writing iteration 3's checkpoint (half a file, then gone):
    iteration 2's is intact and is what a resume picks."""
    import mmengine.runner.runner as mm_runner
    real = mm_runner.save_checkpoint

    def killed(checkpoint, filename, **kwargs):
        if checkpoint['meta']['iter'] == 3:
            with open(filename, 'wb') as f:
                f.write(b'PK\x03\x04 half a checkpoint')
            raise SystemExit('killed')
        return real(checkpoint, filename, **kwargs)
    monkeypatch.setattr(mm_runner, 'save_checkpoint', killed)
    with pytest.raises(SystemExit):
        make_runner(tmp_path).train()
    assert _iters(tmp_path) == [2]
    assert newest_loadable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')


def test_checkpoint_before_a_diverging_step_does_not_rotate_out_the_sane_one(tmp_path):
    """Iteration 3's weights are large but finite (saved), and give iteration 4 an exploded
    loss: training stops, and iteration 2's checkpoint, the last whose next loss was sane, is
    kept beside iteration 3's (an old checkpoint goes only once the next step was sane)."""
    runner = make_runner(tmp_path, hooks=[AtIteration(3, _scale(3e4))])
    with pytest.raises(FloatingPointError, match=r'exploded training loss .* at iteration 4'):
        runner.train()
    assert _iters(tmp_path) == [2, 3]


def test_rotation_still_keeps_max_keep_ckpts(tmp_path):
    make_runner(tmp_path, iters=5, max_keep=2).train()
    assert _iters(tmp_path) == [4, 5]
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_5.pth')
    assert not list(tmp_path.glob('.*.tmp'))


# ------------------------------------------------------------------------ load_from
def _source(tmp_path, **kwargs):
    make_runner(tmp_path / 'src', iters=2, name='src', **kwargs).train()
    return str(tmp_path / 'src' / 'iter_2.pth')


def test_load_from_is_strict(tmp_path):
    """A checkpoint without the model's normal decoder (another task set) is refused, naming
    the decoder; load_from_partial=True loads the rest and logs what it left out."""
    ckpt = _source(tmp_path)
    runner = make_runner(tmp_path / 'a', iters=1, load_from=ckpt, name='a',
                         model=ToyModel(tasks=('seg', 'depth', 'normal')))
    with pytest.raises(CheckpointMismatchError,
                       match=r'in the model, not in the checkpoint: decoders\.normal'):
        runner.train()
    runner = make_runner(tmp_path / 'b', iters=1, load_from=ckpt, name='b',
                         model=ToyModel(tasks=('seg', 'depth', 'normal')),
                         cfg=dict(load_from_partial=True))
    runner.train()
    log = next((tmp_path / 'b').rglob('*.log')).read_text()
    assert 'load_from_partial' in log and 'decoders.normal.weight' in log


def test_load_from_shape_mismatch_is_named(tmp_path):
    ckpt = _source(tmp_path)
    runner = make_runner(tmp_path / 'a', iters=1, load_from=ckpt, name='a',
                         model=ToyModel(width=6))
    with pytest.raises(CheckpointMismatchError, match=r'trunk\.weight: checkpoint \(4, 4\) vs '
                       r'model \(6, 4\)'):
        runner.train()


# ------------------------------------------------------------------------ resume
def test_resume_with_another_model_names_the_difference(tmp_path):
    """Resuming with another task set / frozen set: an error naming the tensors and the
    optimiser groups, not an optimiser traceback."""
    _source(tmp_path)
    ckpt = str(tmp_path / 'src' / 'iter_2.pth')
    runner = make_runner(tmp_path / 'src', iters=4, load_from=ckpt, resume=True, name='r1',
                         model=ToyModel(tasks=('seg', 'depth', 'normal')))
    with pytest.raises(CheckpointMismatchError, match=r'cannot resume [\s\S]*parameters per group: '
                       r'checkpoint \[6\] vs config \[8\][\s\S]*decoders\.normal'):
        runner.train()
    runner = make_runner(tmp_path / 'src', iters=4, load_from=ckpt, resume=True, name='r2',
                         model=ToyModel(width=6))
    with pytest.raises(CheckpointMismatchError, match=r'trunk\.weight: checkpoint'):
        runner.train()


def _dataset_warnings(runner):
    runner.train()
    log = Path(runner.log_dir, f'{runner.timestamp}.log').read_text()
    return [line for line in log.splitlines() if 'WARNING' in line and 'dataset' in line]


def test_dataset_warning_only_when_it_differs(tmp_path):
    _source(tmp_path)
    ckpt = str(tmp_path / 'src' / 'iter_2.pth')
    same = make_runner(tmp_path / 'src', iters=3, load_from=ckpt, resume=True, name='same')
    assert _dataset_warnings(same) == []
    other = make_runner(tmp_path / 'src', iters=4, load_from=str(tmp_path / 'src/iter_3.pth'),
                        resume=True, name='other', data=ToyData(classes=('a', 'b', 'c')))
    warned = _dataset_warnings(other)
    assert len(warned) == 1 and "['classes']" in warned[0], warned


def test_resume_lr_from_config_overrides_the_restored_lr(tmp_path):
    """The checkpoint was trained at lr 0.01; resuming with resume_lr_from_config and lr 0.001
    gives the optimiser and the scheduler a tenth of what they would have restored."""
    _source(tmp_path)
    ckpt = str(tmp_path / 'src' / 'iter_2.pth')
    plain = make_runner(tmp_path / 'src', iters=3, load_from=ckpt, resume=True, name='p',
                        lr=0.001, max_keep=5)
    plain.train()
    restored = plain.optim_wrapper.optimizer.param_groups[0]
    assert restored['initial_lr'] == 0.01                 # the old lr came back (the bug)
    new = make_runner(tmp_path / 'src', iters=3, load_from=ckpt, resume=True, name='n',
                      lr=0.001, cfg=dict(resume_lr_from_config=True), max_keep=5)
    new.train()
    group = new.optim_wrapper.optimizer.param_groups[0]
    assert group['initial_lr'] == pytest.approx(0.001)
    assert group['lr'] == pytest.approx(restored['lr'] / 10)
    assert new.param_schedulers[0].base_values == [pytest.approx(0.001)]
