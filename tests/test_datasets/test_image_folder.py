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
