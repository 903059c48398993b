"""The model's tasks against the datasets' (``check_model_data_tasks``, ``TaskCheckHook``)."""
from types import SimpleNamespace

import pytest
from conftest import REPO, tiny_leaf_config
from mmengine.config import Config
from mmengine.runner import Runner

from mtl_adapters.engine.hooks.task_check_hook import TaskCheckHook
from mtl_adapters.tasks import build_tasks, check_model_data_tasks

SDNE = [dict(type='SemanticTask', num_classes=8), dict(type='DepthTask'), dict(type='NormalTask'),
        dict(type='EdgeTask')]
LEAF = REPO / 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def test_train_dataset_without_a_trained_task_is_refused():
    """S-D labels under an S-D-N-E model would train N and E on no labels (loss 0)."""
    with pytest.raises(ValueError, match=r"lack \['normal', 'edge'\].*no labels"):
        check_model_data_tasks(build_tasks(SDNE), build_tasks(SDNE[:2]), 'train')


def test_declared_subsets_pass():
    """Zero-shot (``train_tasks``): the training data has the trained tasks only; a model
    narrowed to S-D on an S-D-N-E dataset; the unlabelled UDA target needs none."""
    model = build_tasks(SDNE[:3])
    check_model_data_tasks(model, build_tasks(SDNE[:1]), 'train', trained=['seg'])
    check_model_data_tasks(model, build_tasks(SDNE[:3]), 'val', trained=['seg'])
    check_model_data_tasks(build_tasks(SDNE[:2]), build_tasks(SDNE), 'train')
    check_model_data_tasks(model, build_tasks(SDNE[:1]), 'target')
    with pytest.raises(ValueError, match=r"lack \['depth', 'normal'\].*never be evaluated"):
        check_model_data_tasks(model, build_tasks(SDNE[:1]), 'test', where='test_dataloader')


def test_num_classes_and_options_must_agree():
    """Classes, decoding and metric options of the two copies: the difference is named."""
    nine = [dict(type='SemanticTask', num_classes=9)] + SDNE[1:]
    with pytest.raises(ValueError, match=r'seg: num_classes: model 9, dataset 8'):
        check_model_data_tasks(build_tasks(nine), build_tasks(SDNE), 'train')
    depth = [SDNE[0], dict(type='DepthTask', metric_cfg=dict(max_depth=10.0))] + SDNE[2:]
    with pytest.raises(ValueError, match=r'depth: metric_cfg.max_depth: model 10.0, dataset '
                                         r'128.0'):
        check_model_data_tasks(build_tasks(depth), build_tasks(SDNE), 'val')
    # a dataset evaluated under its own protocol says so
    check_model_data_tasks(build_tasks(depth), build_tasks(SDNE), 'test', own_metric_cfg=True)
    ignore = [dict(type='SemanticTask', num_classes=8, out_of_range_ignore=True)]
    with pytest.raises(ValueError, match='out_of_range_ignore: model False, dataset True'):
        check_model_data_tasks(build_tasks(SDNE[:1]), build_tasks(ignore), 'val')


def test_class_names_compared_where_both_are_named():
    """A model task without names takes the dataset's (its class map's); two name lists must
    be the same."""
    named = [dict(type='SemanticTask', num_classes=2, class_names=['a', 'b'])]
    check_model_data_tasks(build_tasks([dict(type='SemanticTask', num_classes=2)]),
                           build_tasks(named), 'val')
    other = [dict(type='SemanticTask', num_classes=2, class_names=['b', 'a'])]
    with pytest.raises(ValueError, match='class_names'):
        check_model_data_tasks(build_tasks(other), build_tasks(named), 'val')


def _static_runner(cfg):
    """The parts of a Runner the hook reads, from a config (nothing built)."""
    tasks = build_tasks(cfg.model.tasks)
    trained = cfg.model.get('train_tasks')
    model = SimpleNamespace(tasks=tasks, train_task_names=list(trained or tasks))
    return SimpleNamespace(model=model, **{
        f'_{role}_{what}': cfg.get(f'{role}_{key}')
        for role in ('train', 'val', 'test')
        for what, key in (('loop', 'cfg'), ('dataloader', 'dataloader'))})


def test_every_shipped_config_passes():
    """Every leaf config's model and dataloaders (train, UDA target, val, test) agree."""
    leaves = [p for p in sorted((REPO / 'configs').rglob('*.py')) if '_base_' not in p.parts]
    checked = 0
    for path in leaves:
        cfg = Config.fromfile(str(path))
        if 'tasks' in cfg.get('model', {}):
            TaskCheckHook().before_run(_static_runner(cfg))
            checked += 1
    assert checked > 40


def test_runner_refuses_before_training(tiny_taskonomy, tmp_path):
    """The shipped leaf with an S-D training dataset under its S-D-N-E model stops in
    ``before_run``, before the first iteration."""
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(tiny_leaf_config(
        LEAF, f'task_check_{tmp_path.name}', tiny_taskonomy,
        train_dataset='tasks=_base_.tasks[:2]', lines=f'work_dir = {str(tmp_path)!r}\n'))
    runner = Runner.from_cfg(Config.fromfile(str(leaf)))
    with pytest.raises(ValueError, match=r"train_dataloader.dataset.tasks .* lack "
                                         r"\['normal', 'edge'\]"):
        runner.train()
    assert runner.iter == 0
