"""``--cfg-options`` of a top-level variable: dataset variables reach every dataloader; any other
top-level override that nothing reads is a loud warning, not silently ignored."""
import warnings

import pytest
from conftest import REPO

from mtl_adapters.utils import load_config

CONFIG = str(REPO / 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py')


def test_data_root_override_reaches_every_dataloader(tmp_path):
    cfg = load_config(CONFIG, {'data_root': str(tmp_path), 'split_file': 'mine.csv'})
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == str(tmp_path)
        assert cfg[loader].dataset.split_file == 'mine.csv'


def test_unused_top_level_override_warns():
    with pytest.warns(UserWarning, match="'crop_size' is only read while the config"):
        load_config(CONFIG, {'crop_size': (64, 64)})
    with warnings.catch_warnings():
        warnings.simplefilter('error')               # fields the Runner reads: no warning
        load_config(CONFIG, {'train_cfg.max_iters': 3, 'randomness': dict(seed=1)})
