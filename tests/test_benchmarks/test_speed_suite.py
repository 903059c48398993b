"""The speed suite (``tools/benchmark.py --speed --suite ...``) at its toy size on CPU: every row
of every section present with finite positive numbers, the JSON and the table agreeing, a failed
row kept while the others run; and the release's strategy (``release_strategy``): its parameter
formula against the built model, and the per-step work it stands for."""
import json
import math

import pytest
import torch
from conftest import load_tool

from mtl_adapters.benchmarks import release_strategy as rs
from mtl_adapters.benchmarks import speed_runners, speed_suite

TOY = dict(speed_suite.SIZES['toy']['release'])


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('num_tasks', [1, 2, 4])
@pytest.mark.parametrize('variant', [dict(), dict(conditioned={2: (0, 3)},
                                                  decoder_depths=(1, 2, 3, 2))])
def test_release_param_formula_matches_built_model(num_tasks, variant):
    size = dict(TOY, **variant)
    model = rs.ReleaseStrategyModel(task_channels=rs.RELEASE_TASK_CHANNELS[:num_tasks], **size)
    assert _trainable(model) == rs.release_num_params(num_tasks, **size)


def test_release_size_matches_published_count():
    # the authors' release built at its size, S-D-N-E: 51.0 M trainable parameters
    assert rs.release_num_params(4) == 50_969_526


def test_release_step_runs_whole_encoder_per_task_and_trains_its_parts():
    torch.manual_seed(0)
    model = rs.ReleaseStrategyModel(**TOY).train()
    seen = []
    model.swin.patch_embed.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    img, task_ids, targets = model.random_batch(2, 4, 'cpu')
    outs = model(img, task_ids)
    assert seen == [8]                           # B * T images through the encoder, once
    assert torch.equal(img[0], img[3])           # sample-major repeats of one image
    assert [tuple(o.shape) for o in outs] == [(2, c, 64, 64) for c in rs.RELEASE_TASK_CHANNELS]
    model.losses(outs, targets).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert 'swin.patch_embed.proj.weight' in grads       # backward through the whole trunk
    assert 'swin.layers.2.blocks.2.attn.matrix' in grads  # TAA of a conditioned block
    assert 'swin.layers.2.blocks.2.mlp.fc1.weight' in grads
    assert 'adapters.0.0.film.weight' in grads and 'merges.2.reduction.weight' in grads
    assert 'swin.layers.2.blocks.0.mlp.fc1.weight' not in grads   # frozen trunk block
    assert all(f'decoders.{t}.out.weight' in grads for t in range(4))


def test_release_task_bias_is_block_diagonal():
    torch.manual_seed(0)
    attn = rs.ReleaseStrategyModel(**TOY).taa[0]
    torch.nn.init.normal_(attn.matrix)
    bias = attn.bias(torch.randn(3, 4 ** 3))
    assert bias.shape == (3, 16, 16)
    block = torch.block_diag(*[torch.ones(4, 4)] * 4).bool()
    assert bias[:, ~block].abs().max() == 0 and bias[:, block].abs().min() > 0


def _run(tmp_path, *extra):
    out = tmp_path / 'speed.json'
    speed_suite.main(['--suite', 'toy', '--iters', '2', '--out', str(out), *extra])
    return json.loads(out.read_text()), out.with_suffix('.md').read_text()


def _check_rows(rows, table, expected):
    got = {(r['section'], r['mode'], r['tasks'], r['name']) for r in rows}
    assert got == expected
    for r in rows:
        for key in ('images_per_s', 'step_ms', 'best_step_ms', 'peak_mem_mb',
                    'trainable_params'):
            assert math.isfinite(r[key]) and r[key] > 0, (r['name'], key, r[key])
        assert r['steps'] == 2
        assert f'| {r["section"]} | {r["mode"]} | {r["tasks"]} | {r["name"]} | ' \
               f'{r["images_per_s"]:.2f} |' in table
    assert len([line for line in table.splitlines() if line.startswith('| ')]) == len(rows) + 1


def test_suite_train_infer_paper_rows(tmp_path):
    result, table = _run(tmp_path, '--tasks', '1', '2', '--attn', 'sdpa',
                         '--sections', 'train', 'infer', 'paper')
    names = ('ours-light-sdpa', 'ours-full-sdpa', 'release')
    expected = {('train', m, t, n) for m in ('train', 'infer') for t in (1, 2) for n in names}
    expected |= {('paper', m, 4, 'ours-light-sdpa') for m in ('train', 'infer')}
    _check_rows(result['rows'], table, expected)
    for r in result['rows']:
        if r['section'] == 'train' and r['system'] == 'ours':
            assert r['vs_release'] > 0 and r['mem_vs_release'] > 0
    meta = result['meta']
    assert meta['suite'] == 'toy' and meta['tasks'] == [1, 2] and meta['commit']
    assert result['complete'] is True and set(result['section_s']) == {
        'train T=1', 'train T=2', 'paper'}
    assert 'Speed suite `toy`' in table


def test_suite_compile_rows_share_graphs_across_instances(tmp_path):
    result, table = _run(tmp_path, '--sections', 'compile', '--compile-tasks', '2',
                         '--compile-backend', 'eager')
    names = [f'ours-{d}-sdpa{c}' for d in ('light', 'full') for c in ('', '-compiled')]
    _check_rows(result['rows'], table, {('compile', 'train', 2, n) for n in names})
    compiled = [r for r in result['rows'] if r['compiled']]
    for r in compiled:
        assert r['compile_warmup_s'] > 0 and r['vs_eager'] > 0
    light = compiled[0]
    # one graph per distinct block shape, not per instance (2 tasks: 2 decoders alike)
    assert light['compiled_instances']['DecoderStage'] == 6
    assert 0 < light['compiled_graphs'] < sum(light['compiled_instances'].values())


def test_suite_keeps_a_failed_row_and_exits_1(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError('CUDA out of memory (simulated)')
    monkeypatch.setattr(speed_runners, 'ReleaseRunner', fail)
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path, '--tasks', '1', '--attn', 'sdpa', '--sections', 'train')
    assert exc.value.code == 1
    rows = json.loads((tmp_path / 'speed.json').read_text())['rows']
    failed = [r for r in rows if 'error' in r]
    assert [r['name'] for r in failed] == ['release'] and 'out of memory' in failed[0]['error']
    assert all(r['images_per_s'] > 0 for r in rows if 'error' not in r)
    table = (tmp_path / 'speed.md').read_text()
    assert '| release | failed: build: RuntimeError: CUDA out of memory' in table


def test_benchmark_tool_routes_speed_suite(capsys):
    with pytest.raises(SystemExit) as exc:
        load_tool('benchmark').main(['--speed', '--suite', 'toy', '--help'])
    assert exc.value.code == 0
    assert 'cpu-release' in capsys.readouterr().out


def test_suite_refuses_bad_task_counts(capsys):
    with pytest.raises(SystemExit):
        speed_suite.parse_args(['--suite', 'toy', '--tasks', '5'])
    assert 'task counts must be 1-4' in capsys.readouterr().err
