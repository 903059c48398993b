"""The generalisation benchmark (``tools/benchmark.py --generalisation``): the configs it derives
parse, train and test where each setting says (source / target, absolute roots, the zero-shot
adaptation loading the source run's checkpoint), and its tables give Δm against each setting's
baseline; train + test replaced by functions that write recorded metrics."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mtl_adapters.benchmarks import generalisation as gen

METRICS = {'seg/mIoU': 20.0, 'depth/rmse': 2.0, 'depth/abs_rel': 0.5, 'normal/mean': 30.0,
           'normal/11.25': 25.0, 'edge/l1': 0.02}
#: the runs that beat their baseline, and by how much (higher-better x, lower-better /)
GAIN = {'oracle': 1.5, 'uda_adversarial': 1.1, 'uda_mean_teacher': 0.9, 'zs_s': 1.2}


@pytest.fixture
def fake_runs(monkeypatch):
    """Replace train + test and test-only by writers of recorded metrics; record configs."""
    calls = {}

    def metrics(name, seed):
        g = GAIN.get(name, 1.0) * (1 + 0.01 * seed)
        return {k: (v * g if k in ('seg/mIoU', 'normal/11.25') else v / g)
                for k, v in METRICS.items()}

    def fake_run(name, config, work_dir, iters, report_only=False, **kwargs):
        seed = int(osp.basename(osp.dirname(work_dir))[len('seed'):])
        calls[(seed, name)] = config
        return metrics(name, seed)

    def fake_test(name, config, checkpoint, work_dir, report_only=False):
        seed = int(osp.basename(osp.dirname(work_dir))[len('seed'):])
        calls[(seed, name)] = (config, checkpoint)
        return metrics(name, seed)

    monkeypatch.setattr(gen, 'run', fake_run)
    monkeypatch.setattr(gen, 'test_only', fake_test)
    return calls


def test_configs_and_table(tmp_path, fake_runs):
    source, target = tmp_path / 'src', tmp_path / 'tgt'
    for root in (source, target):                    # present: nothing is rendered
        root.mkdir()
        (root / 'splits.csv').write_text('')
    out = tmp_path / 'out'
    summary = gen.main(['--work-dir', str(out), '--max-iters', '7', '--seeds', '0', '1', '2',
                        '--source-root', str(source), '--target-root', str(target)])
    assert sorted({n for _, n in fake_runs}) == sorted(
        ['source', 'source_dg', 'oracle', 'uda_adversarial', 'uda_mean_teacher', 'zs_source',
         'zs_s'])
    assert len(fake_runs) == 3 * 7 and summary['failures'] == []

    def cfg(name, seed=0):
        value = fake_runs[(seed, name)]
        return Config.fromfile(value[0] if isinstance(value, tuple) else value)

    src, tgt = str(source), str(target)
    for name in ('source', 'uda_adversarial', 'uda_mean_teacher', 'zs_source'):
        c = cfg(name)
        assert c.train_dataloader.dataset.data_root == src, name      # trained on the source
        assert c.test_dataloader.dataset.data_root == tgt, name       # tested on the target
        assert c.randomness.seed == 0 and c.train_cfg.max_iters == 7
    for name in ('uda_adversarial', 'uda_mean_teacher'):
        assert cfg(name).train_cfg.target_dataloader.dataset.data_root == tgt
        assert cfg(name).train_cfg.type == 'UDAIterBasedTrainLoop'
    oracle = cfg('oracle')
    assert oracle.train_dataloader.dataset.data_root == tgt
    assert oracle.test_dataloader.dataset.class_map == 'synthetic_to_merged-furniture.json'
    dg_config, checkpoint = fake_runs[(1, 'source_dg')]
    dg = Config.fromfile(dg_config)
    assert dg.test_dataloader.dataset.data_root == tgt
    assert dg.test_dataloader.dataset.class_map == 'synthetic_to_merged-furniture.json'
    # a cell's work dir is named as its config: <name>-<key>
    source_dir = osp.basename(fake_runs[(1, 'source')])[:-len('.py')]
    assert source_dir.startswith('source-')
    assert checkpoint == str(out / 'seed1' / source_dir / 'iter_7.pth')
    zs = cfg('zs_s', 2)
    zs_dir = osp.basename(fake_runs[(2, 'zs_source')])[:-len('.py')]
    assert zs.load_from == str(out / 'seed2' / zs_dir / 'iter_7.pth')
    assert zs.model.train_tasks == ['seg'] and zs.train_dataloader.dataset.data_root == tgt
    assert [t['type'] for t in zs.train_dataloader.dataset.tasks] == ['SemanticTask']

    rows = {line.split(' | ')[0][2:]: line.split(' | ')
            for line in (out / 'generalisation.md').read_text().splitlines()
            if line.startswith('| ') and not line.startswith('| method')}
    # a run x g on the higher-better metrics and / g on the lower-better ones (2 and 4 of the
    # 6 columns): Δm = (2 (g - 1) + 4 (1 - 1/g)) / 6 x 100, the same on every seed
    for label, g in (('trained on target (upper bound)', 1.5),
                     ('adversarial (per-task discriminators)', 1.1),
                     ('mean teacher (EMA pseudo-labels)', 0.9),
                     ('adapted on target with S labels (D, N zero-shot)', 1.2)):
        expected = (2 * (g - 1) + 4 * (1 - 1 / g)) / 6 * 100
        assert rows[label][-1].rstrip(' |') == f'{expected:+.2f} ± 0.00', label
        assert rows[label][1] == '3'
    for label in ('source only', 'trained on source, tested on target (DG)',
                  'source model, no adaptation'):
        assert rows[label][-1].rstrip(' |') == '0'
    saved = json.loads((out / 'generalisation.json').read_text())
    assert set(saved['runs']) == {'0', '1', '2'} and saved['max_iters'] == 7


def test_a_failed_seed_is_reported(tmp_path, fake_runs, monkeypatch):
    """A run that fails is reported under the table; the other runs (and seeds) go on."""
    original = gen.run

    def failing(name, config, work_dir, iters, report_only=False, **kwargs):
        if name == 'oracle' and '/seed1/' in work_dir:
            raise RuntimeError('oracle: tools/train.py failed; see run.log')
        return original(name, config, work_dir, iters, report_only)

    monkeypatch.setattr(gen, 'run', failing)
    for root in ('src', 'tgt'):
        (tmp_path / root).mkdir()
        (tmp_path / root / 'splits.csv').write_text('')
    summary = gen.main(['--work-dir', str(tmp_path / 'out'), '--max-iters', '3', '--seeds', '0',
                        '1', '--source-root', str(tmp_path / 'src'),
                        '--target-root', str(tmp_path / 'tgt')])
    assert summary['failures'] == ['seed 1: oracle: tools/train.py failed; see run.log']
    assert summary['runs'][1]['oracle'] is None
    assert all(summary['runs'][1][n] for n in summary['runs'][1] if n != 'oracle')
    assert all(summary['runs'][0].values())
    table = (tmp_path / 'out' / 'generalisation.md').read_text()
    assert 'Failed:' in table and '| trained on target (upper bound) | 1 |' in table
