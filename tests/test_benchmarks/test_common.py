"""The identity of a resumable benchmark's cell: everything that defines it, nothing else."""
from mtl_adapters.benchmarks.common import define_cell, definition_key


def test_the_key_covers_the_resolved_config_and_how_it_runs(tmp_path):
    base = tmp_path / 'base.py'
    base.write_text("model = dict(decoder=dict(type='LightHead'))\ntrain_cfg = dict(max_iters=5)\n")
    text = f"_base_ = {str(base)!r}\nrandomness = dict(seed=0)\n"
    key = definition_key(text)
    assert definition_key(text) == key                                  # stable
    assert definition_key(text.replace('seed=0', 'seed=1')) != key      # seed
    assert definition_key(text + 'train_cfg = dict(max_iters=6)\n') != key   # budget
    assert definition_key(text, launcher='pytorch') != key              # how it runs
    # the same text over a changed base file (another decoder) is another cell
    model_key = definition_key(text, part='model')
    base.write_text("model = dict(decoder=dict(type='SwinDecoder'))\n"
                    "train_cfg = dict(max_iters=5)\n")
    text2 = text + '# the same, re-read\n'        # (resolution is cached per text)
    assert definition_key(text2) != key and definition_key(text2, part='model') != model_key
    # paths carry the key; a report (write=False) writes nothing; a config is never rewritten
    cell = define_cell(str(tmp_path / 'runs'), 'single_seg', text, write=False)
    assert cell.work_dir.endswith(f'single_seg-{key}') and key in cell.config
    assert not (tmp_path / 'runs').exists()
    cell = define_cell(str(tmp_path / 'runs'), 'single_seg', text)
    assert open(cell.config).read() == text and cell.metrics_path.startswith(cell.work_dir)
