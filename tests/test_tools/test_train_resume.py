"""tools/train.py end to end on a tiny Taskonomy-format dataset; resume after a kill."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import load_tool, write_taskonomy_fixture

from mtl_adapters.utils import load_checkpoint_file
from mtl_adapters.utils.checkpoint import unsafe_globals

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


TINY = """
_base_ = '{base}'
data_root = '{root}'
model = dict(
    encoder=dict(pretrained=None, img_size=(64, 64), model_kwargs=dict(
        embed_dim=16, num_heads=(1, 2, 2, 4), depths=(1, 1, 2, 1), window_size=4)),
    decoder=dict(channels=16))
param_scheduler = []
train_cfg = dict(max_iters={max_iters}, val_interval=1000000)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=100),
                     logger=dict(interval=1))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
custom_hooks = []
_loader = dict(batch_size=2, num_workers=0, persistent_workers=False,
               dataset=dict(data_root=data_root))
train_dataloader = dict(_loader, dataset=dict(data_root=data_root,
                                              pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = _loader
test_dataloader = _loader
"""


def write_tiny_config(path, data_root, max_iters):
    """A config inheriting the demo baseline, shrunk to a tiny model and tiny data."""
    path.write_text(TINY.format(base=CONFIG, root=data_root, max_iters=max_iters))
    return path


def _train_cmd(work_dir, data_root, max_iters, *extra, config_lines=''):
    cfg = write_tiny_config(Path(work_dir).parent / f'tiny_{max_iters}.py', data_root, max_iters)
    cfg.write_text(cfg.read_text() + config_lines)
    return [sys.executable, str(REPO / 'tools/train.py'), str(cfg), '--work-dir',
            str(work_dir), *extra, '--cfg-options',
            'train_dataloader.dataset.pipeline.1.geometric.0.size=(64,64)']


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    write_taskonomy_fixture(str(root), buildings=('b0', 'b1', 'b2', 'b3'), views=2,
                            num_classes=8)
    return root


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env():
    return dict(os.environ, HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1',
                OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def test_resume_after_kill(tmp_path, data_root):
    work = tmp_path / 'work'
    proc = subprocess.Popen(_train_cmd(work, data_root, 100000), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    try:
        while not (work / 'iter_4.pth').exists():
            assert proc.poll() is None, 'training died before its 4th iteration'
            assert time.time() < deadline, 'no checkpoint after 240 s'
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)           # a hard kill, as by the OOM killer
        proc.wait()
    last = (work / 'last_checkpoint').read_text().strip()
    killed_at = int(re.search(r'iter_(\d+)\.pth', last).group(1))
    assert killed_at >= 4
    assert unsafe_globals(last) == []            # loads weights-only: no code can run
    ckpt = load_checkpoint_file(last, map_location='cpu')
    assert ckpt['meta']['iter'] == killed_at
    target = killed_at + 2
    res = subprocess.run(_train_cmd(work, data_root, target, '--resume'), cwd=REPO,
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert 'resumed' in log.lower() and f'iter_{killed_at}.pth' in log
    assert re.search(rf'Iter\(train\) \[\s*{killed_at + 1}/{target}\]', log), log[-2000:]
    assert not re.search(r'Iter\(train\) \[\s*1/', log)       # did not start over
    final = load_checkpoint_file(str(work / f'iter_{target}.pth'), map_location='cpu')
    assert final['meta']['iter'] == target
    moved = [k for k, v in final['state_dict'].items()
             if k.startswith('decoders.') and not torch.equal(v, ckpt['state_dict'][k])]
    assert moved, 'resumed training did not update the decoders'


def test_torchrun_two_processes_on_cpu(tmp_path, data_root):
    """The multi-GPU entry point (torchrun + --launcher pytorch), on CPU with gloo."""
    work = tmp_path / 'ddp'
    cmd = _train_cmd(work, data_root, 4)
    i = cmd.index('--cfg-options')       # --launcher before the --cfg-options values
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', str(_free_port())] + cmd[1:i] + ['--launcher', 'pytorch'] + cmd[i:]
    res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert 'Distributed training: True' in log
    ckpt = load_checkpoint_file(str(work / 'iter_4.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])


def test_diverging_run_keeps_a_sane_checkpoint_and_resumes_with_a_new_lr(tmp_path, data_root):
    """Three iterations at lr 1e-3, then lr 1e12: training stops with an error naming the
    iteration, and what is left (max_keep_ckpts=1) is a checkpoint whose weights are finite and
    not exploded. The advice works: --resume --resume-lr 1e-3 continues from it at lr 1e-3
    (not the 1e12 the optimiser state holds) and finishes."""
    work = tmp_path / 'diverge'
    lrs = ['optim_wrapper.optimizer.lr=1e12', 'optim_wrapper.clip_grad=None',
           'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1']
    warm = ("param_scheduler = [dict(type='ConstantLR', factor=1e-15, by_epoch=False, "
            'begin=0, end=3)]\n')
    res = subprocess.run(_train_cmd(work, data_root, 30, config_lines=warm) + lrs, cwd=REPO,
                         env=_env(), capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode != 0, log[-2000:]
    match = re.search(r'(non-finite loss|exploded training loss|non-finite gradient norm|'
                      r'refusing to write a checkpoint)[^\n]*?at iteration (\d+)', log)
    assert match, log[-3000:]
    assert '--resume-lr' in log
    kept = sorted(work.glob('iter_*.pth'))
    assert kept, 'the last sane checkpoint was deleted'
    for path in kept:
        state = load_checkpoint_file(str(path))['state_dict']
        assert all(v.abs().max() <= 1e6 for v in state.values()
                   if v.is_floating_point() and v.numel()), f'{path.name} holds exploded weights'
    stopped_at = int(match.group(2))
    assert int(kept[-1].stem.split('_')[1]) == stopped_at - 1      # the newest sane one
    res = subprocess.run(_train_cmd(work, data_root, 5, '--resume', '--resume-lr', '1e-3',
                                    config_lines=warm) + lrs,
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert re.search(r'learning rates from the config.*base lr 1e\+12 -> 0\.001', log), \
        log[-3000:]
    assert re.search(r'Iter\(train\) \[\s*5/5\].*lr: 1\.0+e-03', log), log[-2000:]


def test_resume_skips_a_truncated_checkpoint(tmp_path, data_root):
    """The newest checkpoint was cut short (killed while writing): --resume says so and goes
    on from the newest one that loads."""
    work = tmp_path / 'trunc'
    res = subprocess.run(_train_cmd(work, data_root, 4), cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    newest = work / 'iter_4.pth'
    newest.write_bytes(newest.read_bytes()[:1000])
    res = subprocess.run(_train_cmd(work, data_root, 6, '--resume'), cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert re.search(r'skipping \S*iter_4\.pth, it does not load', log), log[-3000:]
    assert re.search(r'Iter\(train\) \[\s*3/6\]', log), log[-2000:]      # from iter_2
    assert load_checkpoint_file(str(work / 'iter_6.pth'))['meta']['iter'] == 6


def _losses(log: str) -> dict:
    """``{iteration: logged total loss}`` from a training log."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(
        r'Iter\(train\) \[\s*(\d+)/\d+\].*?\sloss: ([0-9.]+)', log)}


def test_runs_and_resumed_runs_are_reproducible(tmp_path, data_root):
    """Same seed, same losses (augmentation included); a run resumed from iteration 2 logs the
    same losses at iterations 3 and 4 as the run that was never interrupted."""
    logs = []
    for name in ('a', 'b'):
        res = subprocess.run(_train_cmd(tmp_path / name, data_root, 4), cwd=REPO, env=_env(),
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        logs.append(_losses(res.stdout + res.stderr))
    assert sorted(logs[0]) == [1, 2, 3, 4] and logs[0] == logs[1]
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    ckpt = tmp_path / 'a' / 'iter_2.pth'
    res = subprocess.run(_train_cmd(resumed, data_root, 4, '--resume', str(ckpt)), cwd=REPO,
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    again = _losses(res.stdout + res.stderr)
    assert sorted(again) == [3, 4] and all(again[i] == logs[0][i] for i in (3, 4)), again


def _build(train, cfg_path, work, *argv):
    return train.build_cfg(train.parse_args([str(cfg_path), '--work-dir', str(work), *argv]))


def test_resume_with_nothing_to_resume_keeps_load_from(tmp_path, data_root, capfd):
    """--resume on a fresh work dir starts from the config's load_from (and says so) instead
    of dropping it; with a checkpoint there it resumes that one (and says so)."""
    train = load_tool('train')
    cfg_path = write_tiny_config(tmp_path / 'c.py', data_root, 2)
    source = tmp_path / 'source.pth'
    torch.save({'state_dict': {}}, source)
    built = _build(train, cfg_path, tmp_path / 'fresh', '--resume', '--cfg-options',
                   f'load_from={source}')
    assert built.resume is False and built.load_from == str(source)
    assert f'no checkpoint in {tmp_path / "fresh"} to resume; starting a new run from ' \
        f'load_from={source}' in capfd.readouterr().out
    work = tmp_path / 'used'
    work.mkdir()
    torch.save({'state_dict': {}}, work / 'iter_2.pth')
    built = _build(train, cfg_path, work, '--resume', '--cfg-options', f'load_from={source}')
    assert built.resume is True and built.load_from == str(work / 'iter_2.pth')
    assert 'resuming from' in capfd.readouterr().out


def test_trust_checkpoint_trusts_only_the_named_file(tmp_path, data_root):
    """--trust-checkpoint with --resume (no file) would trust every .pth of the work dir: it
    is refused; with --resume CKPT exactly that file is trusted."""
    from mtl_adapters.utils.checkpoint import _TRUSTED
    train = load_tool('train')
    cfg_path = write_tiny_config(tmp_path / 'c.py', data_root, 2)
    work = tmp_path / 'work'
    work.mkdir()
    for i in (1, 2):
        torch.save({'state_dict': {}}, work / f'iter_{i}.pth')
    with pytest.raises(ValueError, match='--trust-checkpoint trusts one file'):
        _build(train, cfg_path, work, '--resume', '--trust-checkpoint')
    assert not any(p.startswith(os.path.realpath(work)) for p in _TRUSTED)
    _build(train, cfg_path, work, '--resume', str(work / 'iter_1.pth'), '--trust-checkpoint')
    trusted = {p for p in _TRUSTED if p.startswith(os.path.realpath(work))}
    assert trusted == {os.path.realpath(work / 'iter_1.pth')}


def test_resume_lr_and_load_partial_options(tmp_path, data_root):
    train = load_tool('train')
    cfg_path = write_tiny_config(tmp_path / 'c.py', data_root, 2)
    ckpt = tmp_path / 'c.pth'
    built = _build(train, cfg_path, tmp_path / 'w', '--resume', str(ckpt), '--resume-lr', '1e-4')
    assert built.optim_wrapper.optimizer.lr == 1e-4 and built.resume_lr_from_config is True
    with pytest.raises(ValueError, match='--resume-lr needs --resume'):
        _build(train, cfg_path, tmp_path / 'w', '--resume-lr', '1e-4')
    assert not _build(train, cfg_path, tmp_path / 'w').get('load_from_partial', False)
    assert _build(train, cfg_path, tmp_path / 'w', '--load-partial').load_from_partial is True


def test_train_refuses_a_busy_or_used_work_dir(tmp_path, data_root):
    """A work dir another training holds, or one with a previous run, is refused before
    anything is written into it."""
    from mtl_adapters.utils.workdir import WorkDirBusyError, WorkDirLock
    train = load_tool('train')
    cfg_path = write_tiny_config(tmp_path / 'c.py', data_root, 2)
    work = tmp_path / 'work'
    argv = [str(cfg_path), '--work-dir', str(work)]
    with WorkDirLock(str(work)):
        with pytest.raises(WorkDirBusyError, match='in use by another training'):
            train.main(argv)
    (work / 'iter_2.pth').write_bytes(b'the previous run')
    with pytest.raises(FileExistsError, match='holds a previous run'):
        train.main(argv)
    assert sorted(p.name for p in work.iterdir()) == ['.lock', 'iter_2.pth']


def test_benchmark_runs_resume_their_interrupted_training():
    """The benchmarks retry a cell whose metrics are missing: its training resumes (a work dir
    holding a previous run is refused without --resume)."""
    from mtl_adapters.benchmarks.weighting_comparison import commands
    (_, train), _ = commands('c.py', 'wd', 5, 'out.json')
    assert train[train.index('tools/train.py'):][-1] == '--resume'
    (_, ddp), _ = commands('c.py', 'wd', 5, 'out.json', launcher='pytorch', gpus=2)
    assert '--resume' in ddp and ddp.index('--resume') > ddp.index('tools/train.py')
