"""A plain folder of images (no labels at all) as the unlabelled target of UDA."""
import numpy as np
import pytest
from conftest import IMAGES_ONLY, TEST_TASKS, check_images_only

from mtl_adapters.registry import DATASETS
from mtl_adapters.utils import write_png


def _folder(root):
    rng = np.random.default_rng(0)
    for name in ('b.png', 'a.JPG', 'sub/c.jpeg', 'sub/deeper/d.png', '.hidden/e.png', '.f.png'):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.lower().endswith(('.jpg', '.jpeg')):
            import cv2
            cv2.imwrite(str(path), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
        else:
            write_png(path, rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    (root / 'notes.txt').write_text('not an image')
    return root


def test_every_image_of_the_folder_loads_without_labels(tmp_path):
    root = _folder(tmp_path / 'mine')
    ds = DATASETS.build(dict(type='ImageFolderDataset', data_root=str(root), tasks=TEST_TASKS,
                             pipeline=IMAGES_ONLY))
    check_images_only(ds, 4)                 # hidden files and the text file left out
    keys = [ds.get_data_info(i)['sample_key'] for i in range(len(ds))]
    assert keys == ['a.JPG', 'b.png', 'sub/c.jpeg', 'sub/deeper/d.png']
    flat = DATASETS.build(dict(type='ImageFolderDataset', data_root=str(root), tasks=TEST_TASKS,
                               recursive=False, pipeline=IMAGES_ONLY))
    check_images_only(flat, 2)


def test_no_images_and_labels_are_refused(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images'):
        DATASETS.build(dict(type='ImageFolderDataset', data_root=str(tmp_path / 'empty'),
                            tasks=TEST_TASKS))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(dict(type='ImageFolderDataset', data_root=str(tmp_path / 'nope'),
                            tasks=TEST_TASKS))
    with pytest.raises(ValueError, match='images only'):
        DATASETS.build(dict(type='ImageFolderDataset', data_root=str(tmp_path),
                            tasks=TEST_TASKS, with_labels=True))
    root = _folder(tmp_path / 'mine')
    labels = DATASETS.build(dict(type='ImageFolderDataset', data_root=str(root), tasks=TEST_TASKS,
                                 pipeline=[dict(type='LoadMultiTaskImageAndAnnotations'),
                                           dict(type='PackMultiTaskInputs')]))
    with pytest.raises(ValueError, match='with_labels=False'):
        labels[0]


def test_a_uda_config_adapts_to_a_folder_of_images(tmp_path):
    """The documented child config: the shipped UDA config with its target replaced by a plain
    folder builds that target from images alone."""
    from conftest import REPO

    from mtl_adapters.utils import load_config
    root = _folder(tmp_path / 'mine')
    uda = REPO / ('configs/generalisation/uda_mean-teacher_vtagml-swinv2-tiny-narrow_1xb8-600_'
                  'synthetic-to-alt-128x128_sdne.py')
    child = tmp_path / 'uda_to_mine.py'
    child.write_text(
        f'_base_ = [{str(uda)!r}]\n'
        'train_cfg = dict(target_dataloader=dict(dataset=dict(\n'
        f"    _delete_=True, type='ImageFolderDataset', data_root={str(root)!r},\n"
        '    tasks=_base_.tasks, pipeline=_base_.target_pipeline)))\n')
    ds = DATASETS.build(load_config(str(child)).train_cfg.target_dataloader.dataset)
    assert len(ds) == 4
    sample = ds[0]
    assert sample['inputs'].shape[0] == 3 and not any(
        sample['data_samples'].has_gt(t) for t in ds.tasks)
