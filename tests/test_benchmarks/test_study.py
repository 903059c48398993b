"""The claims study (``tools/benchmark.py --study``): the paired-difference CI and verdict on
hand-made numbers, checkpoint selection on val, and the study end to end with a stub cell
runner (tables, plot, resume, a failed cell reported, --publish)."""
import csv
import json
import os
import os.path as osp
import threading
import time

import pytest
from conftest import load_tool

from mtl_adapters.benchmarks import study, study_report, study_runner
from mtl_adapters.benchmarks.study_report import FAILS, HOLDS, NA, NOISE

DIRECTIONS = {'seg/mIoU': True, 'depth/rmse': False, 'depth/abs_rel': False,
              'normal/mean': False, 'normal/11.25': True, 'edge/l1': False}


def test_t_quantiles_and_paired_ci_on_hand_made_numbers():
    # Student's t table: t_{0.975, df}
    for df, value in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622)):
        assert study_report.t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    ci = study_report.paired_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3, sd sqrt(2.5), half = 2.7764 * 1.5811 / sqrt(5) = 1.9632
    assert ci['mean'] == pytest.approx(3.0) and ci['half'] == pytest.approx(1.9632, abs=1e-3)
    assert ci['low'] == pytest.approx(1.0368, abs=1e-3)
    assert study_report.verdict(ci) == HOLDS
    assert study_report.verdict(ci, direction=-1) == FAILS     # claimed B better: refuted
    # mean 1 > 0 but the interval (sd 2, n 3: half 4.97) contains 0: within noise
    noisy = study_report.paired_ci([-1.0, 1.0, 3.0])
    assert noisy['low'] < 0 < noisy['high'] and study_report.verdict(noisy) == NOISE
    # clearly the other way: does not hold
    worse = study_report.paired_ci([-2.0, -2.5, -1.5, -2.2])
    assert worse['high'] < 0 and study_report.verdict(worse) == FAILS
    assert study_report.paired_ci([1.0]) is None and study_report.verdict(None) == NA


def test_seeds_to_resolve_one_point_is_the_fewest_that_do():
    """sd 1.5811 (the interval above, ±1.96 at n 5): n is the first with t·sd/√n ≤ 1."""
    def half(n, sd):
        return study_report.t_quantile(0.975, n - 1) * sd / n ** 0.5
    sd = 2.5 ** 0.5
    n = study_report.seeds_to_resolve(sd)
    assert half(n, sd) <= 1.0 < half(n - 1, sd) and n == 13
    assert study_report.paired_ci([1.0, 2.0, 3.0, 4.0, 5.0])['seeds_for_1'] == n
    assert study_report.seeds_to_resolve(0.1) == 2                  # already resolved
    wide = study_report.seeds_to_resolve(20.0)                      # ~ (1.96 * 20)^2
    assert half(wide, 20.0) <= 1.0 < half(wide - 1, 20.0) and 1500 < wide < 1600
    assert study_report.seeds_to_resolve(1e4, most=500) == 500      # capped


def test_a_baseline_near_zero_in_one_seed_does_not_drown_a_clear_gap():
    # trained on the target vs on the source, mIoU on the target: 18-20 vs 0.2-2.3 every seed
    a = {s: {'seg/mIoU': v} for s, v in enumerate([20.0, 18.0, 19.0, 18.5, 19.5])}
    b = {s: {'seg/mIoU': v} for s, v in enumerate([2.3, 0.2, 1.0, 0.6, 1.4])}
    claim = study.Claim('uda', 'gap', 'oracle', 'source-only', ('seg',))
    row, = study_report.evaluate([claim], {'oracle': a, 'source-only': b}, DIRECTIONS, {})
    # B's mean is 1.1: seed 1 differs by (18 - 0.2) / 1.1 = 1618 %, not (18 - 0.2) / 0.2
    assert row['diffs'][1] == pytest.approx(17.8 / 1.1 * 100)
    assert row['verdict'] == HOLDS and row['ci']['low'] > 1000


def test_selection_picks_the_best_val_checkpoint(tmp_path):
    run = tmp_path / '20250101_000000' / 'vis_data'
    run.mkdir(parents=True)
    lines = [dict(loss=1.0, step=5), {'seg/mIoU': 10.0, 'depth/rmse': 1.0, 'step': 5},
             {'seg/mIoU': 14.0, 'depth/rmse': 0.9, 'step': 10},
             {'seg/mIoU': 12.0, 'depth/rmse': 0.95, 'step': 15},
             {'seg/mIoU': 11.0, 'depth/rmse': 0.5, 'step': 20}]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines))
    history = study_runner.val_history(str(tmp_path))
    assert sorted(history) == [5, 10, 15, 20]
    checkpoints = [5, 10, 15, 20]
    assert study_runner.select_iteration(history, ['seg'], DIRECTIONS, checkpoints) == 10
    # depth counts too: iteration 20's rmse wins the mean relative improvement
    assert study_runner.select_iteration(history, ['seg', 'depth'], DIRECTIONS, checkpoints) == 20
    assert study_runner.select_iteration(history, ['seg'], DIRECTIONS, [15, 20]) == 15
    assert study_runner.select_iteration({}, ['seg'], DIRECTIONS, [20]) == 20


#: per arm, a multiplicative gain on every metric (better when > 1) and its seed noise
GAIN = {'troa': 1.10, 'adapters': 1.00, 'troa-zero-cosines': 1.10}


def fake_metrics(cell) -> dict:
    """troa beats uniform (the adapters arm) by 10 % every seed (holds); troa-zero-cosines
    equals troa up to a seed-alternating +-5 % (within noise); everything else a gain of 1."""
    gain = GAIN.get(cell.arm.name, 1.0)
    if cell.arm.name == 'troa-zero-cosines':
        gain *= 1.05 if cell.seed % 2 else 0.95
    level = 1.0 + 0.1 * cell.seed          # common to both arms of a seed: cancels in pairs
    values = {'seg/mIoU': 20 * level * gain, 'depth/rmse': level / gain,
              'depth/abs_rel': 0.4 * level / gain, 'normal/mean': 30 * level / gain,
              'normal/11.25': 25 * level * gain, 'edge/l1': 0.015 * level / gain}
    return dict(values, **{'time/train_s': 1.0})


class StubRunner:
    """Writes the cell's metrics where tools/test.py would; fails the cells in ``fail``."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, cell):
        self.calls.append(cell.name)
        if cell.name in self.fail:
            raise RuntimeError(f'{cell.name}: tools/train.py failed; see run.log')
        os.makedirs(cell.work_dir, exist_ok=True)
        metrics = fake_metrics(cell)
        with open(cell.metrics_path, 'w') as f:
            json.dump(metrics, f)
        return metrics


def fake_count(cell):
    return dict(total=1000, trainable=100 if cell.arm.name != 'full-ft' else 1000)


def test_study_end_to_end_resumes_and_reports_a_failure(tmp_path, monkeypatch, capsys):
    work = tmp_path / 'study'
    args = ['--work-dir', str(work), '--claims', 'weighting', '--seeds', '0', '1', '2', '3',
            '--iters', '4', '--source-root', str(tmp_path / 'src'),
            '--target-root', str(tmp_path / 'tgt')]
    runner = StubRunner(fail={'gradnorm seed 1'})
    summary = study.main(args, run_cell=runner, count_params=fake_count)
    assert len(runner.calls) == 6 * 4                    # troa + 5 weighting arms, 4 seeds
    rows = {r['b']: r for r in summary['claims']}
    rows['uniform'] = rows['adapters']
    assert rows['uniform']['verdict'] == HOLDS
    # a 10 % gain: +10 % of B on the 2 higher-better metrics, +9.09 % on the 4 others, at the
    # mean level; B's mean over the seeds is the scale, so seed s gives that times level_s/1.15
    level = [1.0 + 0.1 * s for s in range(4)]
    expected = [(2 * 10 + 4 * 100 / 11) / 6 * v / 1.15 for v in level]
    assert rows['uniform']['diffs'] == {s: pytest.approx(e) for s, e in enumerate(expected)}
    assert rows['uniform']['ci']['mean'] == pytest.approx((2 * 10 + 4 * 100 / 11) / 6)
    assert rows['troa-zero-cosines']['verdict'] == NOISE
    assert len(rows['gradnorm']['diffs']) == 3           # seed 1 failed: 3 pairs
    assert any('gradnorm seed 1' in f and 'RuntimeError' in f for f in summary['failures'])
    for ext in ('md', 'csv', 'json', 'png'):
        assert (work / f'study.{ext}').stat().st_size > 0
    text = (work / 'study.md').read_text()
    assert 'TROA beats uniform' in text and 'holds' in text and 'gradnorm seed 1' in text
    summary_table = text.split('**Summary**')[1].split('**weighting**')[0]
    assert '| TROA beats uniform (the adapters leaf) | paper | +9.39 ± 1.' in summary_table
    assert '| TROA beats troa-zero-cosines | control |' in summary_table
    # the arms' own levels: troa's mIoU is 22 at seed 0 (level 1.0, gain 1.1), mean over 4 seeds
    arms = text.split('Each arm on its test split')[1]
    assert '| troa | 4 | 25.3 ± 2.8 |' in arms and '| gradnorm | 3 |' in arms
    with open(work / 'study.csv') as f:
        lines = list(csv.DictReader(f))
    assert {r['b'] for r in lines} == set(rows) - {'uniform'} and 'seed3' in lines[0]
    assert 'estimate: one cell took' in capsys.readouterr().out
    # the rerun resumes: only the failed cell runs again
    again = StubRunner()
    summary = study.main(args + ['--publish', '--publish-dir', str(tmp_path / 'docs')],
                         run_cell=again, count_params=fake_count)
    assert again.calls == ['gradnorm seed 1'] and not summary['failures']
    for ext in ('md', 'json', 'png'):
        assert (tmp_path / 'docs' / f'study.{ext}').read_bytes() == \
            (work / f'study.{ext}').read_bytes()
    assert not (tmp_path / 'docs' / 'study.csv').exists()


def test_report_only_reports_the_finished_cells_and_runs_nothing(tmp_path):
    work = tmp_path / 'study'
    args = ['--work-dir', str(work), '--claims', 'weighting', '--seeds', '0', '1', '2',
            '--iters', '4', '--jobs', '2', '--source-root', str(tmp_path / 'src'),
            '--target-root', str(tmp_path / 'tgt')]
    first = StubRunner(fail={'gradnorm seed 2', 'pcgrad seed 2'})
    study.main(args, run_cell=first, count_params=fake_count)
    never = StubRunner()
    summary = study.main(args + ['--report-only'], run_cell=never, count_params=fake_count)
    assert never.calls == [] and not summary['failures']
    assert sorted(summary['not_run']) == ['gradnorm seed 2', 'pcgrad seed 2']
    rows = {r['b']: r for r in summary['claims']}
    assert len(rows['gradnorm']['diffs']) == 2 and len(rows['uncertainty']['diffs']) == 3
    assert 'Not run yet (2 cells' in (work / 'study.md').read_text()


BUDGET = study.Budget(iters=8, val_every=4, image_size=64, batch_size=4, light=True)


def test_plan_covers_every_claim_and_the_tool_dispatches(tmp_path, capsys):
    cells, claims = study.plan(['tasks', 'weighting', 'peft', 'zeroshot', 'uda', 'dg', 'trunk'],
                               [0], str(tmp_path), BUDGET, ('/src', '/tgt'))
    names = [c.arm.name for c in cells]
    assert len(set(names)) == len(names) == 27
    assert names.index('zs-source') < names.index('zs-adapted')
    assert names.index('decoder-only') < names.index('dg-decoder-only')
    for claim in claims:
        assert claim.a in names and claim.b in names
    text = {c.arm.name: c.config_text() for c in cells}
    assert 'freeze_eval_only_embeddings=False' in text['zs-adapted-moving']
    assert 'encoder=dict(img_size=(64, 64), pretrained=None)' in text['adapters-random-trunk']
    assert 'pretrained=None' not in text['adapters']
    assert 'load_from' in text['zs-adapted'] and 'load_from' not in text['dg-full-ft']
    # a test-only arm: the source-trained model's config, tested on the target, keyed by the
    # run whose checkpoint it tests
    by_name = {c.arm.name: c for c in cells}
    assert by_name['dg-full-ft'].test_only and by_name['dg-full-ft'].after is by_name['full-ft']
    assert by_name['full-ft'].work_dir in text['dg-full-ft']
    assert "data_root='/tgt'" in text['dg-full-ft'].split('test_dataloader')[-1]
    assert 'val_interval=4' in text['troa'] and 'max_keep_ckpts=3' in text['troa']
    # the budget: batch, crops, model size and light decoders, the UDA target's too
    for name in ('troa', 'uda-both', 'oracle'):
        assert 'batch_size=4' in text[name]
        assert "'size': [64, 64]" in text[name] and "'size': [128, 128]" not in text[name]
        assert 'img_size=(64, 64)' in text[name] and 'depths=(0, 2, 2, 2)' in text[name]
    assert "target_dataloader=dict(batch_size=4, dataset=dict(data_root='/tgt'" in \
        text['uda-both']
    assert text['uda-both'].count("'size': [64, 64]") == 2
    # the mean teacher warms up and ramps up over a quarter of the study's iterations each
    ramp = 'uda_cfg=dict(mean_teacher=dict(warmup_iters=2, ramp_iters=2))'
    assert ramp in text['uda-both'] and ramp in text['uda-mean-teacher']
    assert 'uda_cfg' not in text['uda-adversarial']
    with pytest.raises(ValueError, match='families'):
        study.plan(['nope'], [0], str(tmp_path), BUDGET, ('/s', '/t'))
    summary = load_tool('benchmark').main(['--study', '--dry-run', '--claims', 'zeroshot',
                                           '--seeds', '0', '1', '--work-dir',
                                           str(tmp_path / 'dry')])
    assert len(summary['cells']) == 6 and '6 cells (6 to run) for 2 claims' in \
        capsys.readouterr().out
    # the calibrated target style by default, in a folder named by style, scenes and size
    assert summary['cells'][0].domains[1].endswith('data/study/synthetic_shifted-40x64px')
    assert not (tmp_path / 'dry').exists()


def test_cells_run_in_parallel_chains_and_a_test_only_cell_tests_the_chosen_checkpoint(
        tmp_path, monkeypatch):
    cells, _ = study.plan(['dg'], [0, 1], str(tmp_path), BUDGET, ('/src', '/tgt'))
    started, lock = [], threading.Lock()

    def run_cell(cell):
        with lock:
            started.append(cell.name)
        if cell.after is not None:            # its chain ran the cell it needs first
            assert cell.after.name in started and osp.isfile(cell.after.metrics_path)
        time.sleep(0.05)
        os.makedirs(cell.work_dir, exist_ok=True)
        metrics = {'seg/mIoU': 1.0, 'select/iter': 4}
        with open(cell.metrics_path, 'w') as f:
            json.dump(metrics, f)
        return metrics

    records = study.execute(cells, run_cell, fake_count, jobs=3)
    assert [r['work_dir'] for r in records] == [c.work_dir for c in cells]
    assert all(r['status'] == 'done' for r in records) and len(started) == len(cells) == 12
    # the real runner: a test-only cell tests the checkpoint its source run chose on val
    dg = next(c for c in cells if c.arm.name == 'dg-decoder-only' and c.seed == 0)
    os.remove(dg.metrics_path)
    seen = {}

    def fake_run(name, config, work_dir, iters, steps):
        seen['steps'] = steps
        return {'seg/mIoU': 2.0}

    monkeypatch.setattr(study.wc, 'run', fake_run)
    metrics = study.run_in_subprocesses(dg, DIRECTIONS)
    (step, argv), = seen['steps']
    assert step == 'test' and argv[3] == osp.join(dg.after.work_dir, 'iter_4.pth')
    assert metrics['select/iter'] == 4
    os.remove(dg.after.metrics_path)
    with pytest.raises(RuntimeError, match="needs the arm 'decoder-only'"):
        study.run_in_subprocesses(dg, DIRECTIONS)


def test_ctrl_c_stops_cells_running_at_once(tmp_path):
    cells, _ = study.plan(['dg'], [0, 1, 2], str(tmp_path), BUDGET, ('/src', '/tgt'))
    started = []

    def run_cell(cell):
        started.append(cell.name)
        if cell.name == 'decoder-only seed 0':
            raise KeyboardInterrupt
        time.sleep(0.2)
        os.makedirs(cell.work_dir, exist_ok=True)
        with open(cell.metrics_path, 'w') as f:
            json.dump({'seg/mIoU': 1.0, 'select/iter': 4}, f)
        return {'seg/mIoU': 1.0}

    with pytest.raises(KeyboardInterrupt):
        study.execute(cells, run_cell, fake_count, jobs=2)
    # the chain running beside the interrupted one finishes its cell and starts no other
    assert 'decoder-only seed 0' in started and len(started) <= 4 < len(cells)
