# Taskonomy, tiny split (25/5/5 buildings, the released train_val_test_tiny.csv), all four tasks,
# as indexed by `python data_prep/taskonomy.py --src data/taskonomy` (known-bad buildings
# left out; the index files list the checked views, so nothing scans the folders). Training:
# random resized 256 px crops of the 512 px images and flips; validation/test: the whole image
# resized to 256 px, every valid pixel counted. Semantic: background + 16 COCO classes, 0
# (uncertain) ignored. Depth: z-buffer metres, 65535 (no depth) ignored, evaluated in
# 0.001..128 m (the format's range), pooled over every valid pixel of the split.
# For the medium split: --split-file splits/train_val_test_medium.csv, then index_medium_*.json.
# `tasks` is declared once: the datasets build them and hand them to the transforms and the
# metric (metainfo['tasks']); a leaf narrows only the model
# (`model = dict(tasks=_base_.tasks[:2])`).
data_root = 'data/taskonomy'
crop_size = (256, 256)
# taskbank/assets/web_assets/pseudosemantics/coco_selected_classes.txt (StanfordVL/taskonomy):
# file value 1 + index in this list
taskonomy_classes = ('background', 'bottle', 'chair', 'couch', 'potted plant', 'bed',
                     'dining table', 'toilet', 'tv', 'microwave', 'oven', 'toaster', 'sink',
                     'refrigerator', 'book', 'clock', 'vase')
tasks = [
    dict(type='SemanticTask', num_classes=17, class_names=taskonomy_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=128.0, per_image=False)),
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
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='Resize', height=crop_size[0], width=crop_size[1])]),
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
    dataset=dict(type='TaskonomyDataset', data_root=data_root,
                 index_file='index/index_tiny_train.json', split='train', tasks=tasks,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='TaskonomyDataset', data_root=data_root,
                 index_file='index/index_tiny_val.json', split='val', tasks=tasks,
                 pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], index_file='index/index_tiny_test.json',
                 split='test'))
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
