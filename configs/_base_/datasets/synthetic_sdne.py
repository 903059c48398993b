# The embedded synthetic multi-task scenes (data_prep/synthetic.py), Taskonomy on-disk format.
# `tasks` is declared once: the datasets build them and hand them to the transforms and the
# metric (metainfo['tasks']); the model takes them too, and a leaf narrows only the model
# (`model = dict(tasks=_base_.tasks[:2])`).
data_root = 'data/synthetic'
split_file = 'splits.csv'
crop_size = (128, 128)
synthetic_classes = ('floor', 'wall', 'ceiling', 'table', 'cabinet', 'ball', 'vase', 'pillar')
tasks = [
    dict(type='SemanticTask', num_classes=8, class_names=synthetic_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=20.0)),
    dict(type='NormalTask'),
    dict(type='EdgeTask'),
]
train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomResizedCrop', size=crop_size, scale=(0.5, 1.0),
                         ratio=(0.75, 1.333)),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='TaskonomyDataset', data_root=data_root, split_file=split_file,
                 split='train', tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='TaskonomyDataset', data_root=data_root, split_file=split_file,
                 split='val', tasks=tasks, pipeline=test_pipeline))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
