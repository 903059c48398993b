"""On-disk encodings of task maps (label, depth, normal and edge files).

One home below both readers and writers: datasets decode ground truth with them, tasks and
tools encode predictions with them, and this package imports nothing else of ``mtl_adapters``
(a dataset format is never reached by climbing up from ``tasks``).
"""
