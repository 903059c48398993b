"""A plain folder of images, without labels: the unlabelled target domain of your own data.

Unsupervised domain adaptation reads no target label, so adapting to a domain of your own needs
nothing but its images: point ``data_root`` at the folder (PNG and JPEG files, sub folders
included) and use the dataset as the UDA target (``train_cfg.target_dataloader``) with a
pipeline that loads images only (``LoadMultiTaskImageAndAnnotations(with_labels=False)``).
Having no labels, it cannot be validated or tested on: evaluate on a labelled dataset.
"""
from pathlib import Path
from typing import List, Sequence

import numpy as np

from mtl_adapters.registry import DATASETS
from .base import MultiTaskDataset

#: the image files listed (case-insensitive), the formats ``read_image`` decodes
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


@DATASETS.register_module()
class ImageFolderDataset(MultiTaskDataset):
    """Every image of a folder, in sorted path order; images only (module docstring).

    Args:
        data_root: the folder.
        tasks: the model's tasks (the source's): the samples carry them for the transforms and
            the model; no file is read for them.
        img_dir: a sub folder of ``data_root`` holding the images ('' = ``data_root``).
        suffixes: the file endings listed (case-insensitive); hidden files are left out.
        recursive: also list the images of sub folders (default True).
        with_labels: must be False (the default): the folder has no labels.
    """

    METAINFO = dict(dataset='image_folder')

    def __init__(self, data_root: str, tasks: Sequence, img_dir: str = '',
                 suffixes: Sequence[str] = IMAGE_SUFFIXES, recursive: bool = True,
                 with_labels: bool = False, **kwargs):
        if with_labels:
            raise ValueError('ImageFolderDataset holds images only: build it with '
                             'with_labels=False and use it as the unlabelled target of UDA '
                             '(a labelled dataset needs its dataset class, e.g. '
                             'TaskonomyDataset for files in the Taskonomy format)')
        self.img_dir = img_dir
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.recursive = bool(recursive)
        super().__init__(tasks=tasks, data_root=data_root, with_labels=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = Path(self.data_root or '', self.img_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f'image folder {folder} does not exist: set data_root '
                                    '(and img_dir) to the folder of your images')
        files = folder.rglob('*') if self.recursive else folder.iterdir()
        images = sorted(p for p in files if p.suffix.lower() in self.suffixes and p.is_file()
                        and not any(part.startswith('.')
                                    for part in p.relative_to(folder).parts))
        if not images:
            raise FileNotFoundError(
                f'no images ({", ".join(self.suffixes)}) in {folder}'
                f'{"" if self.recursive else " (sub folders not searched: recursive=False)"}')
        return [dict(img_path=str(p), sample_key=str(p.relative_to(folder)), task_paths={})
                for p in images]

    def decode_gt(self, name: str, task, raw: np.ndarray, info: dict) -> np.ndarray:
        """Never called: the folder has no labels."""
        raise ValueError(f'ImageFolderDataset has no {name!r} labels ({info.get("img_path")})')
