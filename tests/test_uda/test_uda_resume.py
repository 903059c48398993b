"""UDA training killed and resumed with tools/train.py: the checkpoint (weights-only loadable)
holds the discriminators, both optimisers and the mean teacher, and the run resumed from it
continues them: it logs the same losses (student, adversarial, pseudo-label, discriminator) as
the killed run did at those iterations (no learning-rate schedule, so the runs' lengths do not
matter)."""
import os
import re
import signal
import subprocess
import sys
import time

from conftest import REPO
from mtl_adapters.utils import load_checkpoint_file
from mtl_adapters.utils.checkpoint import unsafe_globals
from uda_toys import write_source, write_tiny_config, write_unlabelled_target


def _env():
    return dict(os.environ, HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1',
                OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def _cmd(tmp_path, work, max_iters, *extra):
    cfg = write_tiny_config(tmp_path / f'tiny_{work.name}_{max_iters}.py',
                            str(tmp_path / 'source'), str(tmp_path / 'target'), max_iters,
                            vis_name=f'uda_resume_{work.name}')
    return [sys.executable, str(REPO / 'tools/train.py'), str(cfg), '--work-dir', str(work),
            *extra]


def _logged(log: str) -> dict:
    """``{iteration: {loss key: value}}`` from a training log."""
    out = {}
    for m in re.finditer(r'Iter\(train\) \[\s*(\d+)/\d+\](.*)', log):
        out[int(m.group(1))] = dict(re.findall(r'(\S*loss\S*): ([-0-9.e]+)', m.group(2)))
    return out


def test_resume_after_kill_continues_everything(tmp_path):
    write_source(tmp_path / 'source')
    write_unlabelled_target(tmp_path / 'target')
    work = tmp_path / 'killed'
    log_path = tmp_path / 'killed.log'
    with open(log_path, 'w') as log_file:
        proc = subprocess.Popen(_cmd(tmp_path, work, 100000), cwd=REPO, env=_env(),
                                stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + 240
        try:
            while max(_logged(log_path.read_text()), default=0) < 4:
                assert proc.poll() is None, 'training died before its 4th iteration'
                assert time.time() < deadline, 'no 4th iteration after 240 s'
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)        # a hard kill, as by the OOM killer
            proc.wait()
    killed = _logged(log_path.read_text())
    ckpt_path = work / 'iter_2.pth'
    assert unsafe_globals(str(ckpt_path)) == []        # loads weights-only: no code can run
    ckpt = load_checkpoint_file(str(ckpt_path), map_location='cpu')
    assert any(k.startswith('discriminators.') for k in ckpt['state_dict'])
    assert set(ckpt['optimizer']) == {'model', 'discriminator'}
    assert all(ckpt['optimizer'][k]['state'] for k in ('model', 'discriminator'))
    assert ckpt['mean_teacher']['steps'] == 2

    res = subprocess.run(_cmd(tmp_path, work, 4, '--resume', str(ckpt_path)), cwd=REPO,
                         env=_env(), capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert 'resumed' in log.lower() and 'iter_2.pth' in log
    assert "continuing the checkpoint's teacher after 2 updates" in log
    resumed = _logged(log)
    assert sorted(resumed) == [3, 4], log[-2000:]                  # did not start over
    final = load_checkpoint_file(str(work / 'iter_4.pth'), map_location='cpu')
    assert final['mean_teacher']['steps'] == 4
    disc_steps = {int(s['step']) for s in final['optimizer']['discriminator']['state'].values()}
    assert disc_steps == {4}                           # Adam's count went on, not restarted
    # the killed run's own iterations 3 and 4 (the same data, teacher, discriminators and
    # optimiser states, if all of them were restored) logged the same losses
    for i in (3, 4):
        assert {'seg.loss_adv', 'seg.loss_pseudo', 'seg.loss_disc', 'loss_disc'} <= \
            set(resumed[i])
        assert resumed[i] == killed[i], (i, resumed[i], killed[i])
