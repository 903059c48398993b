"""Datasets (one file each, on ``base.MultiTaskDataset``) and their transforms.

A new dataset is one file in this folder: every module here is imported below, so its
``@DATASETS.register_module()`` runs without a line anywhere else.
"""
import importlib
import pkgutil

from .base import MultiTaskDataset
from .taskonomy import TaskonomyDataset, read_split_csv, taskonomy_path, write_split_csv
from .transforms import LoadMultiTaskImageAndAnnotations, MultiTaskAlbu, PackMultiTaskInputs

__all__ = ['MultiTaskDataset', 'TaskonomyDataset', 'read_split_csv', 'write_split_csv',
           'taskonomy_path', 'LoadMultiTaskImageAndAnnotations', 'MultiTaskAlbu',
           'PackMultiTaskInputs']

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
