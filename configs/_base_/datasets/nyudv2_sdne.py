# NYUDv2, the 1,449 labelled frames as `python data_prep/nyudv2.py` writes them: train on the
# 795 frames of the official split, evaluate on its 654 test frames at the native 480x640.
# Semantic labels: the 40 NYU40 classes (the NYUD multi-task benchmarks'; the dataset names
# them from its class map). Depth (the NYUD-MT / Eigen convention): metres in 0.001..10 within
# the Eigen crop (rows 45:471, cols 41:601 of 480x640, as fractions), pooled over every valid
# pixel of the split. Normals: derived from the depth unless supplied at preparation, blank
# outside the same crop. Edges: texture edges (our EdgeTask, as on Taskonomy), not the
# NYUD-MT semantic boundaries; evaluated with the boundary F-measure at NYUD's tolerance
# (0.011 of the diagonal; odsF/oisF/AP, about 14 min for the 654 test frames on one core).
# `tasks` is declared once: the datasets build them and hand them to the transforms and the
# metric (metainfo['tasks']); a leaf narrows only the model
# (`model = dict(tasks=_base_.tasks[:2])`).
data_root = 'data/nyudv2'
crop_size = (480, 640)
class_map = 'nyu40'
eigen_crop = (45 / 480, 471 / 480, 41 / 640, 601 / 640)      # (top, bottom, left, right)
tasks = [
    dict(type='SemanticTask', num_classes=40),
    dict(type='DepthTask',
         metric_cfg=dict(min_depth=1e-3, max_depth=10.0, crop=eigen_crop, per_image=False)),
    dict(type='NormalTask'),
    dict(type='EdgeTask', metric_cfg=dict(boundary=True, max_dist=0.011)),
]
train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomResizedCrop', size=crop_size, scale=(0.5, 1.0),
                         ratio=(1.2, 1.467)),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
# GPU loading: workers kept between epochs/validations, batches in page-locked memory (fast
# host-to-device copies; a no-op with a warning on a machine without a GPU)
train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='NYUDv2Dataset', data_root=data_root, split='train', class_map=class_map,
                 tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='NYUDv2Dataset', data_root=data_root, split='test', class_map=class_map,
                 tasks=tasks, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
