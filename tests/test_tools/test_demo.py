"""The README's main job (tools/demo.py) end to end at a small size: it must keep working, every
metric must improve over the untrained model, and the task-adapted attention must have learned."""
import json
import os
import subprocess
import sys
from pathlib import Path

from mtl_adapters.utils import load_checkpoint_file, read_image

REPO = Path(__file__).resolve().parents[2]
ITERS = 60


def test_demo_runs_end_to_end(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1',
               OMP_NUM_THREADS='1')
    cmd = [sys.executable, str(REPO / 'tools/demo.py'), '--data-root', str(tmp_path / 'data'),
           '--work-dir', str(tmp_path / 'work'), '--num-scenes', '3', '--views', '4',
           '--size', '64', '--max-iters', str(ITERS)]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / 'work' / 'demo_summary.json').read_text())
    # 60 iterations from the shipped trunk leave margins on every metric (30 left depth/d1 at 0)
    assert summary['every_metric_improved'] == {'seg': True, 'depth': True, 'normal': True,
                                                'edge': True}, res.stdout[-3000:]
    for key in ('seg/mIoU', 'depth/rmse', 'normal/mean', 'edge/l1'):
        assert key in summary['untrained'] and key in summary['trained']
    assert (tmp_path / 'work' / 'astronaut_predictions.png').stat().st_size > 0
    # untrained beside trained, with a legend: 4 task rows x (input, gt, untrained, trained,
    # legend) of 64 px tiles plus captions and gaps
    before_after = read_image(tmp_path / 'work' / 'before_after_0.png')
    assert before_after.shape[0] == 4 * (64 + 18) + 3 * 2
    assert before_after.shape[1] == 4 * 64 + 160 + 4 * 2
    assert summary['runs'][0]['iterations_trained'] == ITERS
    assert list((tmp_path / 'work').glob(f'*/vis_data/vis_image/test_sample*_{ITERS}.png'))
    assert (tmp_path / 'data' / 'splits.csv').is_file()
    # the task-adapted attention learned: no TAA tensor is still at its zero init
    state = load_checkpoint_file(str(tmp_path / 'work' / f'iter_{ITERS}.pth'))['state_dict']
    taa = {k: v for k, v in state.items() if '.taa.' in k}
    assert len(taa) == 3 * 6, sorted(taa)     # task_bias, film.weight, film.bias x 6 blocks
    assert all(v.abs().max() > 0 for v in taa.values()), [k for k, v in taa.items()
                                                          if not v.abs().max() > 0]

    # a second run resumes at the end: it trains nothing and keeps the first run's time
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    again = json.loads((tmp_path / 'work' / 'demo_summary.json').read_text())
    assert again['runs'][0] == summary['runs'][0]
    assert again['runs'][1]['iterations_trained'] == 0
    assert again['minutes'] == round(sum(r['minutes'] for r in again['runs']), 2)
