# Paper setting, S-D-N: frozen ImageNet-22K Swin-V2-B + adapters + Swin decoders on Taskonomy
# (256 px). Set model.encoder.pretrained to the local timm checkpoint (see the model base).
# The dataset loads all tasks; the model (and so the metric) uses the first 3.
_base_ = [
    '../_base_/models/vtagml_swinv2_base.py',
    '../_base_/datasets/synthetic_sdne.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/taskonomy'
crop_size = (256, 256)
tasks = [
    dict(type='SemanticTask', num_classes=17),
    dict(type='DepthTask'),
    dict(type='NormalTask'),
    dict(type='EdgeTask'),
]
train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations', tasks=tasks),
    dict(type='MultiTaskAlbu', tasks=tasks,
         geometric=[dict(type='RandomResizedCrop', size=crop_size, scale=(0.5, 1.0),
                         ratio=(0.75, 1.333)),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs', tasks=tasks),
]
test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations', tasks=tasks),
    dict(type='MultiTaskAlbu', tasks=tasks, geometric=[dict(type='Resize', height=256, width=256)]),
    dict(type='PackMultiTaskInputs', tasks=tasks),
]
_split = dict(type='TaskonomyDataset', data_root=data_root, split_file='splits.csv', tasks=tasks)
train_dataloader = dict(batch_size=8, dataset=dict(_split, split='train', pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(_split, split='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric', tasks=tasks)
test_evaluator = val_evaluator
model = dict(tasks=tasks[:3])
max_iters = 40000
val_interval = 4000
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=1e-6, power=1.0, by_epoch=False, begin=1500, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
custom_hooks = [dict(type='ParamReportHook')]
