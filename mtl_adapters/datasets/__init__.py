"""Datasets (one file each) and their transforms."""
from .taskonomy import TaskonomyDataset, read_split_csv, taskonomy_path, write_split_csv
from .transforms import LoadMultiTaskImageAndAnnotations, MultiTaskAlbu, PackMultiTaskInputs

__all__ = ['TaskonomyDataset', 'read_split_csv', 'write_split_csv', 'taskonomy_path',
           'LoadMultiTaskImageAndAnnotations', 'MultiTaskAlbu', 'PackMultiTaskInputs']
