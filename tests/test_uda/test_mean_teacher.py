"""Mean teacher: exact EMA schedule, checkpoint round trip, confidence-filtered pseudo-labels,
and the hook in a real Runner (resume continues the same teacher)."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mtl_adapters.engine.hooks import MeanTeacherHook
from mtl_adapters.engine.hooks.mean_teacher_hook import MeanTeacher
from mtl_adapters.models import MultiTaskModel
from mtl_adapters.models.uda.pseudo_labels import (make_pseudo_labels,
                                                   resolve_pseudo_label_cfg)
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks
from mtl_adapters.tasks.depth import DepthTask
from mtl_adapters.utils import load_checkpoint_file

# ------------------------------------------------------------------ EMA update


class _Toy(nn.Module):
    """Trainable weights, a frozen weight and a buffer (double precision)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.frozen = nn.Parameter(torch.randn(4, dtype=torch.float64), requires_grad=False)
        self.register_buffer('stat', torch.zeros(2, dtype=torch.float64))


def _perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in list(model.parameters()) + list(model.buffers()):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_alpha_schedule_and_exact_ema():
    torch.manual_seed(0)
    student = _Toy()
    ema = MeanTeacher(student, alpha=0.6)
    # alpha_t = min(1 - 1/(t+1), alpha): 0, 1/2, then 2/3 > 0.6 switches to 0.6
    assert [ema.alpha_at(t) for t in range(5)] == [0.0, 0.5, 0.6, 0.6, 0.6]
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training
    expected = None
    for step, alpha in enumerate([0.0, 0.5, 0.6, 0.6, 0.6]):
        _perturb(student, seed=step)
        ema.update_parameters(student)
        s = {k: v.detach().clone() for k, v in student.named_parameters()}
        if expected is None:
            expected = s
            # alpha_0 = 0: the first update makes the teacher the student exactly
            for name, p in ema.module.named_parameters():
                assert torch.equal(p, s[name])
        else:
            expected = {k: alpha * expected[k] + (1 - alpha) * s[k] for k in s}
        assert int(ema.steps) == step + 1
        teacher = dict(ema.module.named_parameters())
        for name in ('lin.weight', 'lin.bias'):
            torch.testing.assert_close(teacher[name], expected[name], rtol=0, atol=1e-12)
        # frozen parameters and buffers are copied, bit for bit
        assert torch.equal(teacher['frozen'], student.frozen)
        assert torch.equal(ema.module.stat, student.stat)
    # not a copy of the last student: the average differs from it
    assert not torch.allclose(teacher['lin.weight'], student.lin.weight)


def test_interval_counts_updates_not_iterations():
    student = _Toy()
    hook = MeanTeacherHook(alpha=0.9, interval=3)
    runner = SimpleNamespace(model=student, iter=0, _resume=False)
    hook.before_train(runner)
    for it in range(7):
        runner.iter = it
        hook.after_train_iter(runner, it)
    assert hook.steps == 2                                  # after iterations 2 and 5


def test_bad_hook_arguments():
    with pytest.raises(ValueError, match='alpha'):
        MeanTeacherHook(alpha=1.0)
    with pytest.raises(ValueError, match='interval'):
        MeanTeacherHook(interval=0)


def test_checkpoint_round_trip_weights_only(tmp_path):
    torch.manual_seed(0)
    student = _Toy()
    hook = MeanTeacherHook(alpha=0.8)
    runner = SimpleNamespace(model=student, iter=0, _resume=False)
    hook.before_train(runner)
    for it in range(4):
        _perturb(student, seed=it)
        runner.iter = it
        hook.after_train_iter(runner, it)
    checkpoint = {'state_dict': student.state_dict()}
    hook.before_save_checkpoint(runner, checkpoint)
    path = tmp_path / 'ckpt.pth'
    torch.save(checkpoint, path)
    loaded = torch.load(path, weights_only=True)          # tensors and plain values only
    assert loaded['mean_teacher']['steps'] == 4
    assert load_checkpoint_file(str(path))['mean_teacher']['steps'] == 4   # the repo's loader
    # a fresh process: another student (not the saved one), resumed from the checkpoint
    other = _Toy()
    new_hook = MeanTeacherHook(alpha=0.8)
    new_runner = SimpleNamespace(model=other, iter=4, _resume=True)
    new_hook.after_load_checkpoint(new_runner, loaded)
    new_hook.before_train(new_runner)
    assert new_hook.steps == 4
    for (name, a), (_, b) in zip(hook.teacher.state_dict().items(),
                                 new_hook.teacher.state_dict().items()):
        assert torch.equal(a, b), name
    # loading weights without resuming starts a fresh teacher from the loaded student
    fresh = MeanTeacherHook(alpha=0.8)
    fresh.after_load_checkpoint(SimpleNamespace(model=other, _resume=False), loaded)
    fresh.before_train(SimpleNamespace(model=other, _resume=False))
    assert fresh.steps == 0
    assert torch.equal(fresh.teacher.lin.weight, other.lin.weight)


# --------------------------------------------------------------- pseudo-labels


class _FakeTeacher(nn.Module):
    """A MultiTaskModel-like teacher whose outputs are fixed functions of the input."""

    def __init__(self, fns, tasks=('SemanticTask', 'DepthTask', 'NormalTask', 'EdgeTask')):
        super().__init__()
        self.tasks = build_tasks([dict(type='SemanticTask', num_classes=3) if t == 'SemanticTask'
                                  else t for t in tasks])
        self.fns = fns
        self.seen_training = []
        self.conv = nn.Conv2d(1, 1, 1)      # something with a training flag below the root

    def forward_tasks(self, inputs, task_names):
        self.seen_training.append(self.training or self.conv.training)
        return {t: self.fns[t](inputs) for t in task_names}


def _dx(img):
    """Central horizontal difference with replicate padding: odd under a horizontal flip."""
    x = F.pad(img, (1, 1, 0, 0), mode='replicate')
    return x[..., 2:] - x[..., :-2]


def _equivariant_fns():
    """Outputs that commute with a horizontal flip (normals: x component changes sign)."""
    def normal(x):
        m = x.mean(1, keepdim=True)
        return torch.cat([_dx(m), 0.3 + m.abs(), -torch.ones_like(m)], 1)
    return dict(seg=lambda x: torch.cat([x[:, :1] * 5, x[:, 1:2], -x[:, :1]], 1),
                depth=lambda x: 1.0 + x.mean(1, keepdim=True) ** 2,
                normal=normal,
                edge=lambda x: 0.1 * x[:, :1].abs())


def _images(batch=2, size=16, seed=0):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_equivariant_teacher_trusts_every_regression_pixel():
    teacher = _FakeTeacher(_equivariant_fns()).train()
    x = _images()
    labels = make_pseudo_labels(teacher, x, ['seg', 'depth', 'normal', 'edge'],
                                dict(classification=dict(threshold=0.0)))
    assert teacher.seen_training == [False]                 # one batched call, eval mode
    assert teacher.training and teacher.conv.training       # flags restored
    assert labels['seg'].shape == (2, 1, 16, 16) and labels['seg'].dtype == torch.long
    assert labels['normal'].shape == (2, 3, 16, 16)
    for name in ('seg', 'depth', 'normal', 'edge'):
        assert teacher.tasks[name].valid_mask(labels[name]).all(), name
    # values: the teacher's prediction on the unperturbed image, in ground-truth units
    torch.testing.assert_close(labels['depth'], 1.0 + x.mean(1, keepdim=True) ** 2)
    torch.testing.assert_close(labels['normal'],
                               F.normalize(_equivariant_fns()['normal'](x), dim=1))
    assert torch.equal(labels['seg'], _equivariant_fns()['seg'](x).argmax(1, keepdim=True))


def test_normal_flip_sign_is_applied():
    """n_x even under the flip (wrong for a normal): only pixels whose two views' angle is
    within the tolerance survive, as computed by hand."""
    def normal(x):
        a = 0.5 * _dx(x.mean(1, keepdim=True)).abs()
        return torch.cat([a, torch.full_like(a, 0.3), -torch.ones_like(a)], 1)
    teacher = _FakeTeacher(dict(normal=normal), tasks=('NormalTask',))
    x = _images()
    labels = make_pseudo_labels(teacher, x, ['normal'], dict(normal=dict(tolerance=30.0)))
    a = normal(x)[:, :1]
    # the flipped view, flipped back with n_x negated, is (-a, 0.3, -1): angle to (a, 0.3, -1)
    cos = (-a ** 2 + 0.09 + 1) / (a ** 2 + 0.09 + 1)
    expected = torch.rad2deg(torch.acos(cos.clamp(-1, 1))) <= 30.0
    assert 0 < expected.sum() < expected.numel()            # the case is not trivial
    assert torch.equal(teacher.tasks['normal'].valid_mask(labels['normal']), expected)
    assert (labels['normal'][~expected.expand_as(labels['normal'])] == 0).all()


def test_depth_flip_disagreement_is_ignored():
    """Depth growing left to right disagrees with its flipped view except near the centre."""
    width = 32
    ramp = 1.0 + torch.arange(width, dtype=torch.float32) / width
    teacher = _FakeTeacher(dict(depth=lambda x: ramp.expand(x.shape[0], 1, x.shape[2], width)),
                           tasks=('DepthTask',))
    labels = make_pseudo_labels(teacher, _images(size=width), ['depth'],
                                dict(depth=dict(tolerance=0.1)))
    mirrored = ramp.flip(0)
    agree = torch.maximum(ramp, mirrored) <= torch.minimum(ramp, mirrored) * 1.1  # (W,)
    assert 0 < agree.sum() < width
    valid = teacher.tasks['depth'].valid_mask(labels['depth'])                   # (B,1,H,W)
    assert torch.equal(valid, agree.expand_as(valid))
    assert torch.equal(labels['depth'][valid], ramp.expand_as(valid)[valid])
    assert (labels['depth'][~valid] == DepthTask.ignore_value).all()
    # mode='none' only keeps what the task accepts; a fixed trust region cuts the values
    kept = make_pseudo_labels(teacher, _images(size=width), ['depth'],
                              dict(depth=dict(mode='none', value_range=(1.0, 1.5))))
    assert torch.equal(teacher.tasks['depth'].valid_mask(kept['depth'])[0, 0, 0],
                       (ramp <= 1.5))


def test_seg_threshold_masks_low_confidence_pixels():
    z = torch.linspace(-2, 6, 16).view(1, 1, 1, 16).expand(2, 1, 8, 16)
    teacher = _FakeTeacher(dict(seg=lambda x: torch.cat([z, torch.zeros_like(z),
                                                         torch.zeros_like(z)], 1)),
                           tasks=('SemanticTask',))
    labels = make_pseudo_labels(teacher, _images(size=16)[..., :8, :], ['seg'],
                                dict(seg=dict(threshold=0.9)))['seg']
    probs = torch.cat([z, torch.zeros_like(z), torch.zeros_like(z)], 1).softmax(1)
    confident = probs.max(1, keepdim=True).values >= 0.9
    assert 0 < confident.sum() < confident.numel()
    assert torch.equal(labels != 255, confident)
    assert (labels[confident] == 0).all()                   # class 0 wherever z is large


def test_colour_view_and_padding():
    teacher = _FakeTeacher(dict(edge=lambda x: 0.1 * x[:, :1].abs()), tasks=('EdgeTask',))
    x = _images(size=16)
    labels = make_pseudo_labels(teacher, x, ['edge'],
                                dict(edge=dict(mode='colour', tolerance=0.01, contrast=0.5,
                                               brightness=0.0)),
                                image_sizes=[(16, 16), (10, 12)])['edge']
    c = x[:, :1]
    mean = c.mean((-2, -1), keepdim=True)
    other = 0.1 * (mean + (c - mean) * 0.5).abs()
    expected = (0.1 * c.abs() - other).abs() <= 0.01
    expected[1, :, 10:, :] = False
    expected[1, :, :, 12:] = False
    assert 0 < expected.sum() < expected.numel()
    assert torch.equal(labels >= 0, expected)
    assert (labels[~expected] == -1).all()


def test_config_errors_name_the_key():
    tasks = build_tasks([dict(type='SemanticTask', num_classes=3), 'DepthTask', 'NormalTask'])
    with pytest.raises(KeyError, match='dpeth'):
        resolve_pseudo_label_cfg(tasks, dict(dpeth=dict(tolerance=0.1)))
    with pytest.raises(KeyError, match='tolerence'):
        resolve_pseudo_label_cfg(tasks, dict(depth=dict(tolerence=0.1)))
    with pytest.raises(KeyError, match='seg.*mode'):
        resolve_pseudo_label_cfg(tasks, dict(seg=dict(mode='flip')))
    with pytest.raises(ValueError, match='mode'):
        resolve_pseudo_label_cfg(tasks, dict(regression=dict(mode='rotate')))
    with pytest.raises(ValueError, match='threshold'):
        resolve_pseudo_label_cfg(tasks, dict(classification=dict(threshold=1.5)))
    teacher = _FakeTeacher(_equivariant_fns())
    with pytest.raises(KeyError, match='tolerence'):
        make_pseudo_labels(teacher, _images(), ['depth'], dict(depth=dict(tolerence=0.1)))

    class HeightTask(DepthTask):
        name = 'height'
    with pytest.raises(KeyError, match='no default agreement measure'):
        resolve_pseudo_label_cfg({'height': HeightTask()})
    opts = resolve_pseudo_label_cfg({'height': HeightTask()},
                                    dict(height=dict(measure='absolute', tolerance=0.5)))
    assert opts['height']['mode'] == ('flip',) and opts['height']['tolerance'] == 0.5
    # kind-wide options apply to every task of the kind, task options override them
    opts = resolve_pseudo_label_cfg(tasks, dict(regression=dict(mode='colour'),
                                                normal=dict(mode=['flip', 'colour'])))
    assert opts['depth']['mode'] == ('colour',) and opts['normal']['mode'] == ('flip', 'colour')
    assert opts['depth']['tolerance'] == 0.1 and math.isclose(opts['seg']['threshold'], 0.9)


# ------------------------------------------------------------ hook in a Runner

TINY_SWIN = dict(model_name='swinv2_tiny_window8_256', img_size=(32, 32),
                 model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                                   window_size=4))
TASKS = [dict(type='SemanticTask', num_classes=3), dict(type='DepthTask'),
         dict(type='NormalTask')]


class _StudentWithTeacher(MultiTaskModel):
    """A MultiTaskModel that also learns from its teacher's pseudo-labels on its own batch."""

    def set_teacher(self, teacher):
        self.__dict__['teacher'] = teacher                 # held, not a submodule

    def loss(self, inputs, data_samples):
        losses = super().loss(inputs, data_samples)
        teacher = self.__dict__.get('teacher')
        if teacher is not None:
            gts = make_pseudo_labels(teacher, inputs, self.task_names,
                                     dict(classification=dict(threshold=0.4),
                                          depth=dict(tolerance=0.5), normal=dict(tolerance=60)))
            outs = self.forward_tasks(inputs)
            for name, gt in gts.items():
                losses[f'{name}.loss_pseudo'] = 0.5 * self.losses[name](
                    outs[name], gt, self.tasks[name].valid_mask(gt))
        return losses


def _model():
    torch.manual_seed(0)
    enc = dict(type='AdaptedSwinV2Encoder', adapter_blocks={2: (-1,), 3: 'all'}, embed_dim=8,
               reduction=2, **TINY_SWIN)
    model = _StudentWithTeacher(tasks=TASKS, encoder=enc,
                                decoder=dict(type='LightHead', channels=8))
    with torch.no_grad():                                    # adapters away from the identity
        for p in model.shared_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


class _ToyData(Dataset):
    """Eight random 32x32 images with labels, as the packer hands them over."""

    def __init__(self):
        g = torch.Generator().manual_seed(5)
        self.images = (torch.randn(8, 3, 32, 32, generator=g) * 40 + 120).clamp(0, 255)
        self.samples = []
        for _ in range(8):
            s = MultiTaskDataSample(metainfo=dict(img_shape=(32, 32)))
            s.set_gt('seg', torch.randint(0, 3, (1, 32, 32), generator=g))
            s.set_gt('depth', torch.rand(1, 32, 32, generator=g) * 5 + 0.5)
            s.set_gt('normal', F.normalize(torch.randn(3, 32, 32, generator=g), dim=0))
            self.samples.append(s)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=self.images[i], data_samples=self.samples[i])


def _runner(work_dir, max_iters, resume=False, tag='', load_from=None):
    return Runner(
        model=_model(), work_dir=str(work_dir),
        # unique: mmengine's global logger/visualiser instances are keyed by it
        experiment_name=f'mt{max_iters}{resume}{tag}_{abs(hash(str(work_dir)))}',
        train_dataloader=dict(dataset=_ToyData(), batch_size=4, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        custom_hooks=[dict(type='MeanTeacherHook', alpha=0.7, evaluate_teacher=True)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1),
                           safe_checkpoint=dict(type='SafeCheckpointHook')),
        log_processor=dict(by_epoch=False), resume=resume, load_from=load_from,
        default_scope='mtl_adapters',
        randomness=dict(seed=0))


def _hook(runner):
    return next(h for h in runner.hooks if isinstance(h, MeanTeacherHook))


def test_hook_in_runner_resumes_the_same_teacher(tmp_path):
    straight = _runner(tmp_path / 'straight', max_iters=4, tag='s')
    straight.train()
    hook = _hook(straight)
    assert hook.steps == 4
    assert straight.model.__dict__['teacher'] is hook.teacher       # handed to the student
    assert 'teacher' not in dict(straight.model.named_children())
    student = straight.model.state_dict()
    teacher = {k: v.clone() for k, v in hook.teacher.state_dict().items()}
    assert student.keys() == teacher.keys()
    trainable = {n for n, p in straight.model.named_parameters() if p.requires_grad}
    moved = {k for k, v in student.items() if not torch.equal(v, teacher[k])}
    assert moved and moved <= trainable         # frozen trunk and buffers: copied, identical
    assert any(not p.requires_grad for p in straight.model.parameters())
    scalars = next((tmp_path / 'straight').rglob('vis_data/scalars.json')).read_text()
    assert 'seg.loss_pseudo' in scalars and 'normal.loss_pseudo' in scalars   # teacher used

    # interrupted run: 2 iterations, checkpoint, then a new process resumes to 4
    _runner(tmp_path / 'cut', max_iters=2, tag='a').train()
    saved = load_checkpoint_file(str(tmp_path / 'cut' / 'iter_2.pth'))
    assert saved['mean_teacher']['steps'] == 2
    resumed = _runner(tmp_path / 'cut', max_iters=4, resume=True, tag='b')
    resumed.train()
    again = _hook(resumed)
    assert again.steps == 4
    for name, value in again.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher[name], rtol=0, atol=1e-6, msg=name)
    assert load_checkpoint_file(str(tmp_path / 'cut' / 'iter_4.pth'))['mean_teacher'][
        'steps'] == 4

    # evaluate_teacher: the teacher's weights in the student for val/test, then swapped back
    before = {k: v.clone() for k, v in resumed.model.state_dict().items()}
    ema = {k: v.clone() for k, v in again.teacher.state_dict().items()}
    again.before_val_epoch(resumed)
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, ema[name]), name
        assert torch.equal(again.teacher.state_dict()[name], before[name]), name
    again.after_val_epoch(resumed)
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, before[name]), name
        assert torch.equal(again.teacher.state_dict()[name], ema[name]), name

    # test-only use (tools/test.py): load_from a checkpoint, its teacher is what is evaluated
    tester = _runner(tmp_path / 'test', max_iters=4, tag='t',
                     load_from=str(tmp_path / 'cut' / 'iter_4.pth'))
    tester.load_or_resume()
    loaded = {k: v.clone() for k, v in tester.model.state_dict().items()}
    assert torch.equal(loaded[sorted(moved)[0]], before[sorted(moved)[0]])   # the student
    test_hook = _hook(tester)
    test_hook.before_test_epoch(tester)
    assert test_hook.steps == 4
    for name, value in tester.model.state_dict().items():
        torch.testing.assert_close(value, ema[name], rtol=0, atol=0, msg=name)
    test_hook.after_test_epoch(tester)
    for name, value in tester.model.state_dict().items():
        assert torch.equal(value, loaded[name]), name
