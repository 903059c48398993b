"""The training-speed benchmark's per-option rows and stage shares (tiny smoke settings: the
timings themselves mean nothing here)."""
import json

from mtl_adapters.benchmarks.train_speed import STAGES, VARIANTS, format_table, main


def test_speed_rows_per_option_with_stage_shares(tmp_path):
    """base and fast (bf16 + sdpa + light + fused AdamW) with a TROA update every step: one row
    each, options recorded, stage times non-negative with shares summing to 1, the weighting
    stage non-empty, the light decoders' parameter count smaller."""
    out = tmp_path / 'speed.json'
    rows = main(['--narrow', '--img-size', '64', '--batch-size', '2', '--steps', '1',
                 '--warmup', '0', '--tasks', '2', '--device', 'cpu', '--out', str(out),
                 '--strategy', 'batched', '--variants', 'base', 'fast',
                 '--task-weighting', 'troa'])
    assert [(r['variant'], r['tasks']) for r in rows] == [('base', 2), ('fast', 2)]
    base, fast = rows
    assert base['options'] == dict(amp='none', attn_impl='explicit', decoder_depths=[2, 2, 2, 2],
                                   with_cp=False, fused_adamw=False, weighting='troa')
    assert fast['options'] == dict(amp='bf16', attn_impl='sdpa', decoder_depths=[0, 2, 2, 2],
                                   with_cp=False, fused_adamw=True, weighting='troa')
    for r in rows:
        assert set(r['stage_ms']) == set(STAGES) and min(r['stage_ms'].values()) >= 0
        assert abs(sum(r['share'].values()) - 1) < 1e-6
        assert r['stage_ms']['weighting'] > 0 and r['stage_ms']['decoders'] > 0
        assert r['stage_ms']['adapters'] > 0 and r['images_per_s'] > 0
    assert fast['trainable_params'] < base['trainable_params']
    saved = json.loads(out.read_text())
    assert saved['meta']['stages'] == list(STAGES) and saved['meta']['weighting'] == 'troa'
    assert 'decod %' in format_table(rows) and set(VARIANTS) >= {'amp', 'sdpa', 'light', 'cp'}
