"""The identity of a resumable benchmark's cell: everything that defines it, nothing else."""
import hashlib
import json
import os

from mtl_adapters.benchmarks.common import KEY_LENGTH, define_cell, definition_key
from mtl_adapters.models.backbones import embedded_trunk as et


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


def test_the_key_covers_the_content_of_the_weights_a_cell_starts_from(tmp_path, monkeypatch):
    """A shipped trunk replaced under the same name, or a weights file rewritten in place, makes
    new cells; a config naming no weights keeps the key it always had."""
    weights = tmp_path / 'trunk.safetensors'
    weights.write_bytes(b'first')
    plain = "model = dict(encoder=dict(pretrained=None))\n"
    by_path = f"model = dict(encoder=dict(pretrained={str(weights)!r}))\n"
    shipped = "model = dict(encoder=dict(pretrained='embedded://swinv2-tiny-narrow-synthetic'))\n"
    # no weights named: the key is the config's alone, as before weights counted (cells kept)
    config_only = json.dumps(dict(config=dict(model=dict(encoder=dict(pretrained=None)))),
                             sort_keys=True)
    assert definition_key(plain) == hashlib.sha256(config_only.encode()).hexdigest()[:KEY_LENGTH]
    keys = {definition_key(by_path), definition_key(shipped)}
    weights.write_bytes(b'second')
    os.utime(weights, ns=(1, 1))                                    # another size and time
    assert definition_key(by_path + '\n') not in keys
    entry = et.EMBEDDED_TRUNKS['swinv2-tiny-narrow-synthetic']
    monkeypatch.setitem(et.EMBEDDED_TRUNKS, 'swinv2-tiny-narrow-synthetic',
                        et.EmbeddedTrunk(entry.file, '0' * 64))
    assert definition_key(shipped + '\n') not in keys
