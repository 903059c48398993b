# Cityscapes, all four tasks: 19-class semantics (gtFine labelIds), stereo depth (disparity +
# camera files, metres), surface normals and texture edges (prepared by
# `python data_prep/cityscapes.py`, at `work_size`). Training on random 256x512 crops of the
# 512x1024 working resolution, rescaled by 0.5-2x (as mmseg does on Cityscapes); evaluation on
# whole 512x1024 val images (the usual practice: the test labels are not public).
# Depth is evaluated (and trained) within 1e-3..80 m, no crop: the ego vehicle is masked by its
# labels (mtl_adapters/datasets/cityscapes.py). `tasks` is declared once (see
# taskonomy_sdne.py); a leaf narrows only the model.
data_root = 'data/cityscapes'
work_size = (512, 1024)
crop_size = (256, 512)
max_depth = 80.0
cityscapes_classes = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                      'truck', 'bus', 'train', 'motorcycle', 'bicycle')
tasks = [
    dict(type='SemanticTask', num_classes=19, class_names=cityscapes_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=max_depth)),
    dict(type='NormalTask'),
    dict(type='EdgeTask'),
]
train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomScale', scale_limit=(-0.5, 1.0), p=1.0),
                    dict(type='RandomCrop', height=crop_size[0], width=crop_size[1],
                         pad_if_needed=True),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    # the prepared images already are work_size (an exact no-op here); it makes inference on a
    # full-resolution photo (tools/infer.py) run at the scale the model was evaluated at
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='Resize', height=work_size[0], width=work_size[1])]),
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
    dataset=dict(type='CityscapesDataset', data_root=data_root, work_size=work_size,
                 max_depth=max_depth, split='train', tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CityscapesDataset', data_root=data_root, work_size=work_size,
                 max_depth=max_depth, split='val', tasks=tasks, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
