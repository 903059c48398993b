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
from conftest import write_taskonomy_fixture

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


def _train_cmd(work_dir, data_root, max_iters, *extra):
    cfg = write_tiny_config(Path(work_dir).parent / f'tiny_{max_iters}.py', data_root, max_iters)
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


def test_diverging_run_stops_before_a_non_finite_checkpoint(tmp_path, data_root):
    """A learning rate that diverges: training stops with a clear error naming the iteration
    and the task, and every checkpoint left behind (rotation keeps one) is finite."""
    work = tmp_path / 'diverge'
    cmd = _train_cmd(work, data_root, 30) + [
        'optim_wrapper.optimizer.lr=1e12', 'optim_wrapper.clip_grad=None',
        'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1']
    res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode != 0, log[-2000:]
    match = re.search(r'non-finite loss at iteration (\d+): \{[^}]*\'(seg|depth|normal|edge)\'',
                      log)
    assert match, log[-3000:]
    stopped_at = int(match.group(1))
    assert re.search(r"this batch: \[[^]]*point_\d+_view_\d+_domain_rgb\.png", log)  # images named
    kept = sorted(work.glob('iter_*.pth'))
    assert kept, 'the last finite checkpoint was deleted'
    for path in kept:
        state = load_checkpoint_file(str(path))['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
        assert int(path.stem.split('_')[1]) < stopped_at


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
