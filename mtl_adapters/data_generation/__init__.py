"""Data generation: code that writes datasets to disk (the dataset classes are in ``datasets``).

``prepare`` is the one runner behind every ``data_prep/<dataset>.py`` (atomic, resumable,
``--check``, workers, a summary with every failure named); ``taskonomy``, ``cityscapes``,
``vkitti2``, ``nyudv2`` and ``synthia`` are the preparations of the real datasets (what their
archives lack: derived normals and edges, label ids, indexes); ``synthetic`` renders procedural
indoor scenes with S/D/N/E targets in Taskonomy's on-disk format.
"""
