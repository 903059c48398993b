"""``--cfg-options`` of a top-level variable re-derives the config: every value computed from the
variable follows it (datasets and pipelines alike), nothing else does (a DG/UDA target read
from ``target_root`` stays when ``data_root`` moves); an override that changes nothing else is
a loud warning naming the fields that do exist under that name."""
import warnings

import pytest
from conftest import REPO

from mtl_adapters.utils import load_config

CONFIG = str(REPO / 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py')
GEN = REPO / 'configs/generalisation'
CITYSCAPES = str(REPO / 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_cityscapes-256x512_sdne.py')
VKITTI2 = str(REPO / 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdne.py')
SYNTHIA_TO_CS = str(GEN / ('uda_adversarial_vtagml-swinv2-base_1xb8-40k_synthia-to-cityscapes-'
                           '256x512_sdne.py'))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _resize(loader) -> tuple:
    """(height, width) of the Resize of a loader's pipeline."""
    (resize,) = [g for t in loader.dataset.pipeline if t.type == 'MultiTaskAlbu'
                 for g in t.geometric if g['type'] == 'Resize']
    return resize['height'], resize['width']


def test_data_root_override_reaches_every_dataloader(tmp_path):
    cfg = load_config(CONFIG, {'data_root': str(tmp_path), 'split_file': 'mine.csv'})
    for loader in LOADERS:
        assert cfg[loader].dataset.data_root == str(tmp_path)
        assert cfg[loader].dataset.split_file == 'mine.csv'
    assert cfg.filename.endswith('synthetic-128x128_sdne.py') and '/configs/' in cfg.filename


def test_work_size_reaches_the_datasets_and_every_resize():
    """Data prepared at another size is evaluated at that size: the datasets and the test
    pipelines' resize follow one variable (they did not: the resize stayed 512x1024)."""
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        cfg = load_config(CITYSCAPES, {'work_size': (256, 512)})
    for loader in LOADERS:
        assert tuple(cfg[loader].dataset.work_size) == (256, 512)
    assert _resize(cfg.val_dataloader) == _resize(cfg.test_dataloader) == (256, 512)
    assert tuple(cfg.crop_size) == (256, 512) == load_config(CITYSCAPES).crop_size


def test_target_work_size_and_test_size_reach_their_pipelines():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        uda = load_config(SYNTHIA_TO_CS, {'target_work_size': (128, 256)})
        vkitti2 = load_config(VKITTI2, {'test_size': (188, 621)})
    target = uda.train_cfg.target_dataloader.dataset
    assert tuple(target.work_size) == tuple(uda.val_dataloader.dataset.work_size) == (128, 256)
    assert _resize(uda.val_dataloader) == _resize(uda.test_dataloader) == (128, 256)
    assert _resize(vkitti2.val_dataloader) == _resize(vkitti2.test_dataloader) == (188, 621)


@pytest.mark.parametrize('name', [
    'dg_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_sdne.py',
    'uda_mean-teacher_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_sdne.py',
    'uda_adversarial_vtagml-swinv2-base_1xb8-40k_vkitti2-to-cityscapes-256x512_sdne.py',
    'uda_source-only_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_sdne.py'])
def test_data_root_moves_the_source_and_target_root_the_target(name):
    """``data_root`` never moves the evaluation (or the UDA target) onto the source data, and
    ``target_root`` moves exactly what ``data_root`` leaves."""
    path = str(GEN / name)
    plain = load_config(path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        source = load_config(path, {'data_root': '/my/source'})
        target = load_config(path, {'target_root': '/my/target'})

    def roots(cfg):
        loaders = [cfg[n] for n in LOADERS]
        if 'target_dataloader' in cfg.train_cfg:
            loaders.append(cfg.train_cfg.target_dataloader)
        return [loader.dataset.data_root for loader in loaders]

    before = roots(plain)
    assert plain.target_root in before and plain.data_root in before
    assert roots(source) == ['/my/source' if r == plain.data_root else r for r in before]
    assert roots(target) == ['/my/target' if r == plain.target_root else r for r in before]


def test_an_override_that_changes_nothing_warns_with_the_real_field():
    oracle = str(GEN / 'dg-oracle_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-alt-128x128_sdne.py')
    with pytest.warns(UserWarning, match=r'changes nothing.*target_root=\.\.\.') as record:
        cfg = load_config(oracle, {'data_root': '/my/source'})    # every split is the target
    assert 'train_dataloader.dataset.data_root=...' in str(record[0].message)
    assert cfg.train_dataloader.dataset.data_root == 'data/synthetic_alt'
    with pytest.warns(UserWarning, match=r"defines a top-level 'max_iter'.*Did you mean "
                                         r"max_iters=\.\.\."):
        load_config(CONFIG, {'max_iter': 5})
    with pytest.warns(UserWarning, match=r"Did you mean train_dataloader\.dataset\.split=\.\.\."):
        load_config(CONFIG, {'split': 'val'})


def test_schedule_and_crop_variables_are_re_derived():
    """``max_iters`` reaches the loop and the scheduler, ``crop_size`` the crops; fields the
    Runner reads and dotted keys are set as given, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        cfg = load_config(CONFIG, {'max_iters': 40, 'crop_size': (64, 64)})
        load_config(CONFIG, {'train_cfg.max_iters': 3, 'randomness': dict(seed=1)})
    assert cfg.train_cfg.max_iters == 40 and cfg.param_scheduler[-1].end == 40
    crop = cfg.train_dataloader.dataset.pipeline[1].geometric[0]
    assert crop['type'] == 'RandomResizedCrop' and tuple(crop['size']) == (64, 64)


def test_a_value_that_breaks_the_config_names_the_override():
    with pytest.raises(ValueError, match=r'--cfg-options work_size=512: .* cannot be parsed'):
        load_config(CITYSCAPES, {'work_size': 512})
