"""The training-speed benchmark runs end to end (tiny settings) and writes its JSON."""
import json

from mtl_adapters.benchmarks.train_speed import format_table, main


def test_train_speed_smoke(tmp_path, capsys):
    """Two task counts, one step each: rows, table and JSON are consistent."""
    out = tmp_path / 'speed.json'
    rows = main(['--narrow', '--img-size', '64', '96', '--batch-size', '1', '--iters', '1',
                 '--warmup', '0', '--tasks', '1', '2', '--device', 'cpu', '--out', str(out),
                 '--strategy', 'batched', 'per-task'])
    assert [(r['strategy'], r['tasks']) for r in rows] == [
        ('batched', 1), ('batched', 2), ('per-task', 1), ('per-task', 2)]
    assert all(r['images_per_s'] > 0 and r['trunk_ms'] > 0 for r in rows)
    assert rows[1]['trainable_params'] > rows[0]['trainable_params']
    saved = json.loads(out.read_text())
    assert saved['rows'][1]['task_names'] == ['seg', 'depth']
    assert 'img/s' in capsys.readouterr().out and 'trunk ms' in format_table(rows)
