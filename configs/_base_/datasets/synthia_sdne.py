# SYNTHIA-RAND-CITYSCAPES, all four tasks: labels and depth read from the archive, normals and
# texture edges derived once by `python data_prep/synthia.py` (into <data_root>/derived, at the
# native 1280x760). Training on random 256x512 crops rescaled by 0.5-2x, evaluation on whole
# 1280x760 frames: the crops and scales of the Cityscapes configs (SYNTHIA at 1280x760 pairs
# with Cityscapes at 1024x512 in the domain-adaptation literature).
# No official split: we train on `train` (9 of every 10 frames) and evaluate on `val` (frame
# id % 10 == 9, 940 frames); `split='all'` is the domain-adaptation convention (train on all
# 9,400, evaluate on Cityscapes).
# Labels: the 16 classes shared with Cityscapes (the SYNTHIA->Cityscapes 16-class protocol),
# numbered 0..15 in Cityscapes train-id order; depth evaluated within 1e-3..80 m, no crop.
# `tasks` is declared once: the datasets build them and hand them to the transforms and the
# metric; a leaf narrows only the model (`model = dict(tasks=_base_.tasks[:2])`).
data_root = 'data/synthia'
derived_dir = 'derived'
crop_size = (256, 512)
synthia_classes = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                   'traffic sign', 'vegetation', 'sky', 'person', 'rider', 'car', 'bus',
                   'motorcycle', 'bicycle')
tasks = [
    dict(type='SemanticTask', num_classes=16, class_names=synthia_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=80.0)),
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
    dataset=dict(type='SynthiaDataset', data_root=data_root, derived_dir=derived_dir,
                 split='train', tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthiaDataset', data_root=data_root, derived_dir=derived_dir,
                 split='val', tasks=tasks, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
