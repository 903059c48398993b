"""The README's main job (tools/demo.py) end to end at a tiny size: it must keep working."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1',
               OMP_NUM_THREADS='1')
    cmd = [sys.executable, str(REPO / 'tools/demo.py'), '--data-root', str(tmp_path / 'data'),
           '--work-dir', str(tmp_path / 'work'), '--num-scenes', '3', '--views', '2',
           '--size', '64', '--max-iters', '2']
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / 'work' / 'demo_summary.json').read_text())
    assert set(summary['every_metric_improved']) == {'seg', 'depth', 'normal', 'edge'}
    for key in ('seg/mIoU', 'depth/rmse', 'normal/mean', 'edge/l1'):
        assert key in summary['untrained'] and key in summary['trained']
    assert (tmp_path / 'work' / 'astronaut_predictions.png').stat().st_size > 0
    assert list((tmp_path / 'work' / 'vis').glob('test_iter2_*.png'))
    assert (tmp_path / 'data' / 'splits.csv').is_file()
