"""Data generation: code that writes datasets to disk (the dataset classes are in ``datasets``).

``synthetic`` renders procedural indoor scenes with S/D/N/E targets in Taskonomy's on-disk
format; ``mtl_adapters.datasets.TaskonomyDataset`` reads them back.
"""
