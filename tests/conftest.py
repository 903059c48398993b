"""Shared fixtures: tiny datasets in the exact on-disk formats, tiny model configs."""
import importlib.util
import os
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mtl_adapters.set_env import register_all_modules  # noqa: E402

register_all_modules()
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this runs a shell command that creates ``marker`` (what a hostile .pth does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def load_tool(name: str):
    """Import ``tools/<name>.py`` by path as module ``mtl_tools_<name>``.

    Never ``sys.path`` + ``import test``: a tool imported under its bare name would shadow the
    standard library's module of that name (``test``) for the rest of the pytest worker.
    """
    path = REPO / 'tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'mtl_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the narrow Swin-V2 used by every test model (about 1M parameters)
NARROW_SWIN = dict(model_name='swinv2_tiny_window8_256', img_size=(64, 64),
                   model_kwargs=dict(embed_dim=16, num_heads=(1, 2, 2, 4), depths=(1, 1, 2, 1),
                                     window_size=4))
TEST_TASKS = [dict(type='SemanticTask', num_classes=5), dict(type='DepthTask'),
              dict(type='NormalTask'), dict(type='EdgeTask')]


def write_taskonomy_fixture(root, buildings=('bldA', 'bldB', 'bldC'), views=3, size=(64, 64),
                            seg_size=None, seed=0, num_classes=5):
    """Write a tiny Taskonomy-format dataset (random but valid values) and its split CSV.

    Returns ``{(building, point): {'rgb': ..., task: canonical array}}`` for checking.
    """
    from mtl_adapters.datasets.taskonomy import (encode_taskonomy, taskonomy_format,
                                                 taskonomy_path, write_split_csv)
    from mtl_adapters.tasks import build_tasks
    from mtl_adapters.utils import write_png
    tasks = build_tasks([dict(type='SemanticTask', num_classes=num_classes), 'DepthTask',
                         'NormalTask', 'EdgeTask'])
    rng = np.random.RandomState(seed)
    h, w = size
    truth = {}
    for b in buildings:
        for p in range(views):
            rgb = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
            sh, sw = seg_size or size
            seg = rng.randint(0, num_classes, (sh, sw)).astype(np.uint8)
            seg[0, :3] = 255
            depth = rng.uniform(0.5, 10, (h, w)).astype(np.float32)
            depth[-1, -3:] = 0
            n = rng.normal(size=(h, w, 3)).astype(np.float32)
            n /= np.linalg.norm(n, axis=-1, keepdims=True)
            edge = rng.uniform(0, 0.2, (h, w)).astype(np.float32)
            values = dict(seg=seg, depth=depth, normal=n, edge=edge)
            write_png(taskonomy_path(root, 'rgb', b, p, 0, 'rgb'), rgb)
            for name, task in tasks.items():
                fmt = taskonomy_format(task)
                path = taskonomy_path(root, fmt.folder, b, p, 0, fmt.domain)
                write_png(path, encode_taskonomy(task, values[name]))
            truth[(b, p)] = dict(rgb=rgb, **values)
    n = len(buildings)
    write_split_csv(os.path.join(root, 'splits.csv'),
                    dict(train=buildings[:max(n - 2, 1)], val=buildings[n - 2:n - 1],
                         test=buildings[n - 1:]))
    return truth


@pytest.fixture(scope='session')
def tiny_taskonomy(tmp_path_factory):
    """A session-wide tiny Taskonomy-format dataset root (do not modify it in tests)."""
    root = tmp_path_factory.mktemp('taskonomy')
    write_taskonomy_fixture(str(root))
    return str(root)


#: a pipeline that reads images only (the unlabelled target of UDA)
IMAGES_ONLY = [dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False),
               dict(type='PackMultiTaskInputs')]


def delete_all_but(root, keep) -> int:
    """Delete every file under ``root`` whose relative path (posix) ``keep`` rejects; returns
    how many were deleted (a dataset copy without its label files)."""
    deleted = 0
    for path in sorted(Path(root).rglob('*')):
        if path.is_file() and not keep(path.relative_to(root).as_posix()):
            path.unlink()
            deleted += 1
    return deleted


def check_images_only(dataset, num_samples: int) -> None:
    """``dataset`` (built ``with_labels=False``, pipeline ``IMAGES_ONLY``) lists
    ``num_samples`` samples, and each loads its RGB image and no ground truth."""
    assert len(dataset) == num_samples
    for i in range(len(dataset)):
        sample = dataset[i]
        assert sample['inputs'].ndim == 3 and sample['inputs'].shape[0] == 3
        assert not any(sample['data_samples'].has_gt(t) for t in dataset.tasks)
        assert dataset.get_data_info(i)['task_paths'] == {}


def tiny_model_cfg(tasks=TEST_TASKS, decoder=None, encoder=None):
    """Config of a tiny MultiTaskModel (narrow random Swin-V2 + light heads)."""
    enc = dict(type='SwinV2Encoder', **NARROW_SWIN)
    enc.update(encoder or {})
    return dict(type='MultiTaskModel', tasks=tasks, encoder=enc,
                decoder=decoder or dict(type='LightHead', channels=16))


TINY_LEAF = """
_base_ = {base!r}
model = dict(
    encoder=dict(model_name='swinv2_tiny_window8_256', pretrained=None, img_size=(32, 32),
                 model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                                   window_size=4),
                 adapter_blocks={{2: (-1,), 3: 'all'}}, embed_dim=8, reduction=2),
    decoder=dict(depths=(1, 1, 1, 1), num_heads=(2, 2, 1, 1), window_size=4,
                 img_size=(32, 32), head_channels=8){model})
param_scheduler = []
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=1))
# a visualizer of its own: mmengine keeps instances by name, and one made by an earlier Runner
# in this process would write this run's scalars to that run's folder
visualizer = dict(name={name!r}, vis_backends=[dict(type='LocalVisBackend')])
custom_hooks = []
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={train_root!r}{train_dataset}))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={val_root!r}))
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={test_root!r}))
"""


def tiny_leaf_config(base, name: str, train_root, val_root=None, test_root=None, iters: int = 2,
                     model: str = '', train_dataset: str = '', lines: str = '') -> str:
    """Config text that puts a tiny adapter model (embed 8, window 4, 32 px) and an
    ``iters``-iteration schedule over the shipped leaf ``base``, so that a test trains and
    evaluates the leaf's own data pipeline on a fixture in seconds. ``val_root`` defaults to
    ``train_root`` and ``test_root`` to ``val_root``; ``model`` and ``train_dataset`` add keys
    (text, e.g. ``"weighting=dict(eta=1.0)"``, ``"split='all'"``); ``lines`` are appended (a
    later assignment in a config file replaces an earlier one: hooks, work_dir, load_from)."""
    val_root = val_root or train_root
    return TINY_LEAF.format(
        base=str(base), name=name, iters=iters, train_root=str(train_root),
        val_root=str(val_root), test_root=str(test_root or val_root),
        model=f',\n    {model}' if model else '',
        train_dataset=f', {train_dataset}' if train_dataset else '') + lines


def pytest_make_parametrize_id(config, val, argname):
    """Config paths as test ids read as the config's name (``uda_mean-teacher_...``), whatever
    their length (pytest shortens long ids to ``path3``)."""
    if isinstance(val, str) and val.startswith('configs/') and val.endswith('.py'):
        return val[len('configs/'):-len('.py')]
    return None
