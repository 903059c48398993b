"""The benchmark of task combinations (``tools/benchmark.py --matrix``): its plan, resuming after
an interruption, Δm against the single-task rows, a failed cell reported while the others run;
train + test replaced by a cell runner that writes recorded metrics where the real one does,
plus one real 2-iteration cell."""
import csv
import json
import os

import pytest
from conftest import load_tool
from mmengine.config import Config

from mtl_adapters.benchmarks import matrix, matrix_report
from mtl_adapters.benchmarks import weighting_comparison as wc

HEADLINE_GAIN = {'uniform': 1.1, 'troa': 1.2}


def fake_metrics(cell) -> dict:
    """The cell's tasks' metrics: single-task rows at a seed-dependent level, a method's
    higher-is-better metrics x gain, lower-is-better ones / gain."""
    level = 1.0 + 0.1 * cell.seed
    gain = HEADLINE_GAIN.get(cell.method, 1.0)
    values = {'seg/mIoU': 20 * level * gain, 'depth/rmse': level / gain,
              'depth/abs_rel': 0.4 * level / gain, 'normal/mean': 30 * level / gain,
              'normal/11.25': 25 * level * gain, 'edge/l1': 0.015 * level / gain}
    metrics = {k: v for k, v in values.items() if k.split('/')[0] in cell.tasks}
    metrics['time/train_s'] = 10.0 * len(cell.tasks)
    return metrics


class FakeRunner:
    """Writes the cell's metrics where tools/test.py would; records the calls; raises for the
    cells in ``fail`` and interrupts (KeyboardInterrupt) at call number ``stop_at``."""

    def __init__(self, fail=(), stop_at=None):
        self.calls, self.fail, self.stop_at = [], set(fail), stop_at

    def __call__(self, cell):
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        self.calls.append(cell.name)
        if cell.name in self.fail:
            raise RuntimeError(f'{cell.name}: tools/train.py failed; see run.log')
        os.makedirs(cell.work_dir, exist_ok=True)
        metrics = fake_metrics(cell)
        with open(cell.metrics_path, 'w') as f:
            json.dump(metrics, f)
        return metrics


def fake_count(cell):
    """Parameters grow with the number of tasks (no model is built)."""
    return dict(total=1_000_000 + 100_000 * len(cell.tasks), trainable=100_000 * len(cell.tasks))


def run_main(tmp_path, args, runner, count_params=fake_count):
    return matrix.main(['--work-dir', str(tmp_path / 'wd'), '--max-iters', '5'] + args,
                       run_cell=runner, count_params=count_params)


def test_plan_of_a_small_matrix(tmp_path, capsys, monkeypatch):
    """Single-task rows for every task of a combination, once per seed; weighting methods
    only on combinations; an encoder method on its own single tasks too; seed by seed."""
    cells = matrix.plan(['S-D'], ['troa', 'uniform', 'lora'], [0, 1], str(tmp_path))
    assert [c.name for c in cells[:7]] == [
        'S single-task seed 0', 'D single-task seed 0', 'S-D troa seed 0',
        'S-D uniform seed 0', 'S lora seed 0', 'D lora seed 0', 'S-D lora seed 0']
    assert [c.name for c in cells[7:]] == [c.name.replace('seed 0', 'seed 1') for c in cells[:7]]
    single_d = cells[1]
    assert single_d.method_config == wc.BASE and single_d.task_index == (1,)
    # the derived config trains the method's model on the combination's tasks
    troa = matrix.plan(['S-D'], ['troa'], [0], str(tmp_path), iters=5)[2]
    troa.define(write=True)
    cfg = Config.fromfile(troa.config)
    assert [t['type'] for t in cfg.model.tasks] == ['SemanticTask', 'DepthTask']
    assert cfg.model.weighting.type == 'TROAWeighting'
    assert cfg.train_cfg.max_iters == 5 and cfg.randomness.seed == 0
    # names, letters and order of a combination
    assert matrix.parse_combo('N-seg') == ('normal', 'seg')
    assert matrix.plan(['E-N'], ['uniform'], [3], str(tmp_path))[-1].task_index == (3, 2)
    with pytest.raises(ValueError, match='known'):
        matrix.plan(['S'], ['no-such-method'], [0], str(tmp_path))
    with pytest.raises(ValueError, match='distinct'):
        matrix.parse_combo('S-S')

    # --dry-run prints every cell's commands (torchrun with --launcher pytorch), runs nothing
    monkeypatch.setattr(wc.subprocess, 'run', lambda *a, **k: pytest.fail('runs nothing'))
    summary = load_tool('benchmark').main(['--matrix', '--dry-run', '--work-dir',
                                           str(tmp_path / 'dry'), '--tasks', 'S-D', '--launcher',
                                           'pytorch', '--gpus', '2', '--seeds', '0'])
    out = capsys.readouterr().out
    assert len(summary['cells']) == 4 and '4 cells (4 to run, 0 finished)' in out
    train_lines = [line for line in out.splitlines() if line.strip().startswith('train:')]
    assert len(train_lines) == 4
    assert all('-m torch.distributed.run --standalone --nproc_per_node 2 tools/train.py'
               in line and line.endswith('--launcher pytorch') for line in train_lines)
    assert 'tools/test.py' in out and 'iter_5.pth' not in out      # default budget: 50
    assert not (tmp_path / 'dry').exists()


def test_resume_runs_only_unfinished_cells(tmp_path):
    """An interrupted matrix continues: finished cells are read back, not run again."""
    args = ['--tasks', 'S', 'D', 'S-D', '--seeds', '0', '1']
    first = FakeRunner(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_main(tmp_path, args, first)
    assert first.calls == ['S single-task seed 0', 'D single-task seed 0', 'S-D troa seed 0']
    second = FakeRunner()
    summary = run_main(tmp_path, args, second)
    assert second.calls == ['S-D uniform seed 0', 'S single-task seed 1',
                            'D single-task seed 1', 'S-D troa seed 1', 'S-D uniform seed 1']
    assert all(c['status'] == 'done' for c in summary['cells']) and len(summary['cells']) == 8
    third = FakeRunner()
    run_main(tmp_path, args, third)
    assert third.calls == []
    (params,) = (tmp_path / 'wd' / 'S-D' / 'troa').glob('params-*.json')
    assert json.loads(params.read_text()) == dict(total=1_200_000, trainable=200_000)


def test_a_cell_is_reused_only_by_its_own_definition(tmp_path):
    """Another budget (iterations, or any override of the config) is another cell: nothing of
    the old budget is read back or labelled with the new one; the old cells stay usable."""
    args = ['--tasks', 'S', '--seeds', '0']
    first = FakeRunner()
    run_main(tmp_path, args, first)
    assert first.calls == ['S single-task seed 0']
    longer = FakeRunner()
    summary = matrix.main(['--work-dir', str(tmp_path / 'wd'), '--max-iters', '6'] + args,
                          run_cell=longer, count_params=fake_count)
    assert longer.calls == ['S single-task seed 0']              # run again, not reused
    assert summary['max_iters'] == 6 and '6 iterations per cell' in (
        tmp_path / 'wd' / 'matrix.md').read_text()
    dirs = sorted(p.name for p in (tmp_path / 'wd' / 'S' / 'single-task').glob('seed0-*'))
    assert len(dirs) == 2                                          # the 5-iteration cell kept
    again = FakeRunner()
    run_main(tmp_path, args, again)                                # back to 5: reused
    assert again.calls == []
    # the key covers the resolved config: another data root, another launcher, another cell
    cell = matrix.plan(['S'], [], [0], str(tmp_path), iters=5)[0]
    other_data = matrix.plan(['S'], [], [0], str(tmp_path), iters=5, data_root='elsewhere')[0]
    other_launch = matrix.plan(['S'], [], [0], str(tmp_path), iters=5, launcher='pytorch',
                               gpus=2)[0]
    assert len({cell.work_dir, other_data.work_dir, other_launch.work_dir}) == 3
    assert cell.work_dir == matrix.plan(['S'], [], [0], str(tmp_path), iters=5)[0].work_dir


def test_delta_m_against_the_single_task_rows(tmp_path):
    """Δm per seed against that seed's single-task rows over the cell's tasks' metrics; the
    table, CSV, JSON and plot hold mean ± std over the seeds."""
    summary = run_main(tmp_path, ['--tasks', 'S', 'D', 'N', 'S-D', 'S-D-N', '--seeds', '0', '1'],
                       FakeRunner())
    rows = {(r['combo'], r['method']): r for r in summary['rows']}
    # the seed's level cancels: higher-is-better +10 %, lower-is-better (1 - 1/1.1) = +9.09 %
    up, down = 10.0, (1 - 1 / 1.1) * 100
    sd = (up + 2 * down) / 3                 # seg/mIoU, depth/rmse, depth/abs_rel
    sdn = (2 * up + 3 * down) / 5            # + normal/mean, normal/11.25
    assert rows['S-D', 'uniform']['values']['mtl/delta_m'] == pytest.approx([sd, sd])
    assert rows['S-D-N', 'uniform']['values']['mtl/delta_m'] == pytest.approx([sdn, sdn])
    troa = rows['S-D-N', 'troa']['values']['mtl/delta_m']
    assert troa[0] == pytest.approx((2 * 20.0 + 3 * (1 - 1 / 1.2) * 100) / 5)
    assert rows['S', 'single-task']['values']['mtl/delta_m'] == [0.0, 0.0]
    # mean ± std over seeds: mIoU 22 and 24.2
    assert rows['S-D', 'uniform']['values']['seg/mIoU'] == pytest.approx([22.0, 24.2])
    table = (tmp_path / 'wd' / 'matrix.md').read_text()
    line = next(x for x in table.splitlines() if x.startswith('| S-D | uniform |'))
    assert '| 2 | 23.1 ± 1.6 |' in line and f'+{sd:.2f} ± 0.00' in line
    assert '| 1.200 | 0.200 |' in line                          # params of the row, millions
    assert '| 20 ± 0 | 2 ± 0 |' in line                          # 5 its x 8 images / 20 s
    assert line.endswith('| ok |') and 'single-task' in table.split('\n\n')[1]
    with open(tmp_path / 'wd' / 'matrix.csv') as f:
        csv_rows = {(r['tasks'], r['method']): r for r in csv.DictReader(f)}
    assert float(csv_rows['S-D-N', 'uniform']['mtl/delta_m_mean']) == pytest.approx(sdn)
    assert csv_rows['S-D-N', 'uniform']['num_tasks'] == '3'
    assert csv_rows['S', 'single-task']['depth/rmse_mean'] == ''
    saved = json.loads((tmp_path / 'wd' / 'matrix.json').read_text())
    assert len(saved['cells']) == 2 * (3 + 2 * 2) and saved['max_iters'] == 5
    png = (tmp_path / 'wd' / 'matrix.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000


def test_delta_m_needs_the_seeds_baseline():
    """A cell whose single-task baseline failed gets no Δm (and says which task is missing)."""
    records = [dict(method=matrix.SINGLE, tasks=['seg'], seed=0, status='done',
                    metrics={'seg/mIoU': 20.0}),
               dict(method=matrix.SINGLE, tasks=['depth'], seed=0, status='failed'),
               dict(method='uniform', tasks=['seg', 'depth'], seed=0, status='done',
                    metrics={'seg/mIoU': 22.0, 'depth/rmse': 1.0, 'depth/abs_rel': 0.3})]
    matrix_report.add_delta_m(records, {'seg/mIoU': True, 'depth/rmse': False,
                                        'depth/abs_rel': False})
    assert records[0]['metrics']['mtl/delta_m'] == 0.0
    assert 'mtl/delta_m' not in records[2]['metrics'] and records[2]['delta_m_missing'] == [
        'depth']


def test_a_failed_cell_is_reported_and_the_others_run(tmp_path):
    def count(cell):
        if cell.method == 'uniform':
            raise ValueError('uniform: no model')
        return fake_count(cell)

    runner = FakeRunner(fail={'S-D troa seed 0'})
    summary = run_main(tmp_path, ['--tasks', 'S', 'D', 'S-D', '--seeds', '0', '1'], runner,
                       count)
    assert len(runner.calls) == 8                            # every cell was tried
    status = {(c['combo'], c['method'], c['seed']): c['status'] for c in summary['cells']}
    assert status.pop(('S-D', 'troa', 0)) == 'failed'
    assert set(status.values()) == {'done'}
    table = (tmp_path / 'wd' / 'matrix.md').read_text()
    line = next(x for x in table.splitlines() if x.startswith('| S-D | troa |'))
    assert line.startswith('| S-D | troa | 1 |') and line.endswith('| FAILED seed 0 |')
    assert '- S-D troa seed 0: RuntimeError: S-D troa seed 0: tools/train.py failed' in table
    # a model that does not build: its row says so, its cells still ran
    assert '- S-D uniform: ValueError: uniform: no model' in table
    line = next(x for x in table.splitlines() if x.startswith('| S-D | uniform |'))
    assert '| n/a | n/a |' in line and line.endswith('| ok |')
    # a failed cell is tried again on the next run, the finished ones are not
    again = FakeRunner()
    run_main(tmp_path, ['--tasks', 'S', 'D', 'S-D', '--seeds', '0', '1'], again)
    assert again.calls == ['S-D troa seed 0']


@pytest.mark.slow
def test_one_real_cell(tmp_path, monkeypatch):
    """tools/train.py + tools/test.py for 2 iterations of the single-task S row on tiny scenes;
    its parameters counted from the built model; a second run trains nothing."""
    from mtl_adapters.data_generation.synthetic import generate
    data = tmp_path / 'data'
    generate(data, num_scenes=3, views_per_scene=2, size=(64, 64), seed=0, splits=(1, 1, 1),
             progress=False)
    args = ['--work-dir', str(tmp_path / 'wd'), '--data-root', str(data), '--tasks', 'S',
            '--max-iters', '2', '--seeds', '0']
    summary = matrix.main(args)
    (cell,) = summary['cells']
    assert cell['status'] == 'done', cell.get('error')
    assert 0 <= cell['metrics']['seg/mIoU'] <= 100 and cell['metrics']['time/train_s'] > 0
    assert 0 < cell['params']['trainable'] < cell['params']['total']
    monkeypatch.setattr(wc.subprocess, 'run', lambda *a, **k: pytest.fail('must not train'))
    assert matrix.main(args)['cells'][0]['metrics'] == cell['metrics']
