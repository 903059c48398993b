"""The weighting comparison's bookkeeping over seeds (runs replaced by recorded metrics): Δm per
seed against that seed's single-task runs, mean ± std over seeds, W averaged, seeds in the
derived configs."""
import json
import os
import os.path as osp
from pathlib import Path

import pytest

from mtl_adapters.benchmarks import weighting_comparison as wc

TASKS = ('seg', 'depth', 'normal', 'edge')


def fake_metrics(name: str, seed: int) -> dict:
    """Deterministic metrics: single-task runs at a seed-dependent level, methods better."""
    level = 1.0 + 0.1 * seed
    gain = 1.0 if name.startswith('single') else (1.1 if name == 'uniform' else 0.9)
    return {'seg/mIoU': 20 * level * gain, 'depth/rmse': level / gain,
            'depth/abs_rel': 0.4 * level / gain, 'normal/mean': 30 * level / gain,
            'normal/11.25': 25 * level * gain, 'edge/l1': 0.015 * level / gain}


def test_seeds_aggregate_to_mean_and_std(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(name, config, work_dir, iters, report_only=False):
        seed = int(work_dir.split('seed')[-1].split('/')[0])
        calls.append((name, seed, open(config).read()))
        if name == 'troa':        # the TROA run leaves its final W where the real hook does
            w = {0: 0.6, 1: 0.8}[seed]
            eye = [[w if i == j else (1 - w) / 3 for j in range(4)] for i in range(4)]
            os.makedirs(osp.join(work_dir, 'troa'))
            with open(osp.join(work_dir, 'troa', 'troa_final.json'), 'w') as f:
                json.dump({'W': eye}, f)
        return fake_metrics(name, seed)

    monkeypatch.setattr(wc, 'run', fake_run)
    monkeypatch.setattr('mtl_adapters.data_generation.synthetic.generate', lambda *a, **k: None)
    summary = wc.main(['--work-dir', str(tmp_path), '--max-iters', '3', '--seeds', '0', '1',
                       '--methods', 'uniform', 'troa'])
    assert {(n, s) for n, s, _ in calls} == {
        (n, s) for s in (0, 1) for n in ('single-seg', 'single-depth', 'single-normal',
                                         'single-edge', 'uniform', 'troa')}
    assert all(f'randomness = dict(seed={s})' in text for _, s, text in calls)
    # Δm against the same seed's baseline, so the seed's level cancels: two higher-is-better
    # metrics at +10 %, four lower-is-better ones at 1 - 1/1.1 = +9.09 %
    uniform = [summary['methods']['uniform'][s]['mtl/delta_m'] for s in (0, 1)]
    troa = [summary['methods']['troa'][s]['mtl/delta_m'] for s in (0, 1)]
    expect = (2 * 10.0 + 4 * (1 - 1 / 1.1) * 100) / 6
    assert uniform == pytest.approx([expect, expect])
    assert troa[0] == pytest.approx(troa[1]) and troa[0] < 0
    # W: mean and std over the two seeds
    assert summary['affinity']['troa']['mean'][0][0] == pytest.approx(0.7)
    assert summary['affinity']['troa']['std'][0][0] == pytest.approx(0.1414, abs=1e-4)
    table = (tmp_path / 'weighting_comparison.md').read_text()
    assert '| uniform | 2 | 23.1 ± 1.6 |' in table             # mIoU 22 and 24.2 over the seeds
    assert '0.700 ± 0.141' in table and table in capsys.readouterr().out


def test_mean_std_and_format():
    assert wc.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert wc.mean_std([5.0]) == (5.0, 0.0)
    assert wc.fmt([1.0, 3.0], sign=True) == '+2.00 ± 1.41'
    assert wc.fmt([]) == 'n/a'


def test_report_only_tabulates_finished_runs(tmp_path, monkeypatch):
    """--report-only trains nothing and counts the seeds each method has."""
    monkeypatch.setattr('mtl_adapters.data_generation.synthetic.generate', lambda *a, **k: None)
    monkeypatch.setattr(wc.subprocess, 'run', lambda *a, **k: pytest.fail('must not train'))
    done = {(0, n) for n in ('single_seg', 'single_depth', 'single_normal', 'single_edge',
                             'uniform', 'troa')} | {(1, n) for n in ('single_seg', 'single_depth',
                                                                     'single_normal',
                                                                     'single_edge', 'uniform')}
    for seed, name in done:      # where a run of the default budget (200 iterations) is
        base = dict(troa=wc.weighting_methods()['troa'], uniform=wc.weighting_methods()[
            'uniform']).get(name, wc.BASE)
        extra = ('' if name in ('troa', 'uniform') else
                 f'model = dict(tasks=[_base_.tasks[{list(TASKS).index(name[7:])}]])\n')
        folder = Path(wc.derived_cell(str(tmp_path / f'seed{seed}'), name, base,
                                      'data/synthetic', 200, seed, extra, write=False).work_dir)
        folder.mkdir(parents=True)
        metrics = fake_metrics(name.replace('_', '-'), seed)
        (folder / 'test_metrics.json').write_text(json.dumps(metrics))
    summary = wc.main(['--work-dir', str(tmp_path), '--seeds', '0', '1', '2', '--report-only',
                       '--methods', 'uniform', 'troa'])
    assert sorted(summary['methods']['uniform']) == [0, 1]
    assert sorted(summary['methods']['troa']) == [0]
    assert not list(tmp_path.glob('seed*/configs'))    # a report rewrites no run's config
    table = (tmp_path / 'weighting_comparison.md').read_text()
    assert '| single-task | 2 |' in table and '| troa | 1 |' in table
    # the same runs are not those of another budget
    other = wc.main(['--work-dir', str(tmp_path), '--seeds', '0', '1', '2', '--report-only',
                     '--methods', 'uniform', 'troa', '--max-iters', '50'])
    assert other['methods'] == {'uniform': {}, 'troa': {}} and other['baseline'] == {}


def test_encoder_family_adds_cost_columns(tmp_path, monkeypatch):
    """--family peft compares the adapters with configs/peft/*, and reports trainable
    parameters and training images/s next to Δm."""
    monkeypatch.setattr('mtl_adapters.data_generation.synthetic.generate', lambda *a, **k: None)
    names = set(wc.encoder_methods())
    assert {'adapters', 'vpt-deep', 'lora', 'decoder-only'} <= names

    def fake_run(name, config, work_dir, iters, report_only=False):
        return dict(fake_metrics(name, 0), **{'time/train_s': 40.0})

    monkeypatch.setattr(wc, 'run', fake_run)
    summary = wc.main(['--work-dir', str(tmp_path), '--max-iters', '10', '--seeds', '0',
                       '--family', 'peft', '--methods', 'adapters', 'decoder-only'])
    assert set(summary['methods']) == {'adapters', 'decoder-only'}
    table = (tmp_path / 'peft_comparison.md').read_text()
    assert 'trainable (M)' in table and 'train img/s' in table
    assert '| 2 ± 0 |' in table                               # 10 iterations x 8 images / 40 s
    row = next(line for line in table.splitlines() if line.startswith('| decoder-only |'))
    adapters = next(line for line in table.splitlines() if line.startswith('| adapters |'))
    trainable = [float(r.split('|')[-3]) for r in (row, adapters)]
    assert trainable[0] < trainable[1]                      # no encoder parameter to train


def test_decoder_family_compares_full_and_light_decoders(tmp_path, monkeypatch):
    """--family decoders: the adapter leaf with full and with light decoders, the light one
    with fewer trainable parameters (counted from the built configs)."""
    monkeypatch.setattr('mtl_adapters.data_generation.synthetic.generate', lambda *a, **k: None)
    settings = wc.decoder_settings()
    assert settings['full-decoders'] == wc.BASE

    def fake_run(name, config, work_dir, iters, report_only=False):
        return dict(fake_metrics(name, 0), **{'time/train_s': 40.0})

    monkeypatch.setattr(wc, 'run', fake_run)
    summary = wc.main(['--work-dir', str(tmp_path), '--max-iters', '10', '--seeds', '0',
                       '--family', 'decoders'])
    assert set(summary['methods']) == {'full-decoders', 'light-decoders'}
    table = (tmp_path / 'decoders_comparison.md').read_text()
    rows = {line.split(' | ')[0][2:]: line for line in table.splitlines()}
    full, light = (float(rows[k].split('|')[-3]) for k in ('full-decoders', 'light-decoders'))
    assert light < full
