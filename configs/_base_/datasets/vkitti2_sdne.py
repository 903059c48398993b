# Virtual KITTI 2 (prepared by `python data_prep/vkitti2.py`), all four tasks, labels in the 8
# classes it shares with Cityscapes (XTAM-UDA's VKITTI2 -> Cityscapes protocol, class_maps/
# vkitti2_to_cityscapes8.json). Scene split: train Scene01/02/06, val Scene18 (clone), test
# Scene20 (every variation). Training on random 256x512 crops covering 15-60% of a frame
# (zoom 0.7-1.4x); evaluation on whole frames at the native 1242x375. Depth is evaluated (and
# trained) up to KITTI's 80 m (farther depths are unlabelled), no crop; the sky has no depth.
# `tasks` is declared once: the datasets build them and hand them to the transforms and the
# metric (metainfo['tasks']); a leaf narrows only the model (`model = dict(tasks=...)`).
data_root = 'data/vkitti2'
crop_size = (256, 512)
# the prepared frames' size (native; set it to the prepared size if data_prep/vkitti2.py ran
# with --height): an exact no-op on the dataset, it makes inference on a photo of another size
# (tools/infer.py) run at the scale the model was evaluated at
test_size = (375, 1242)
max_depth = 80.0
# 'cityscapes8': XTAM-UDA's 8-class protocol (Truck, Car, Van -> car; the paper's UDA comparison);
# 'cityscapes8-labeldefs': Cityscapes' definitions (Van -> car, Truck unlabelled); 'cityscapes19'
# (then SemanticTask: the 19 train ids)
class_map = 'cityscapes8'
vkitti2_classes = ('road', 'building', 'pole', 'traffic light', 'traffic sign', 'vegetation',
                   'sky', 'car')
tasks = [
    dict(type='SemanticTask', num_classes=8, class_names=vkitti2_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=max_depth)),
    dict(type='NormalTask'),
    dict(type='EdgeTask'),
]
meta_keys = ('img_path', 'ori_shape', 'img_shape', 'flip', 'scene', 'variation', 'camera',
             'frame')
train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomResizedCrop', size=crop_size, scale=(0.15, 0.6),
                         ratio=(1.6, 2.4)),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='Resize', height=test_size[0], width=test_size[1])]),
    dict(type='PackMultiTaskInputs', meta_keys=meta_keys),
]
# GPU loading: workers kept between epochs/validations, batches in page-locked memory (fast
# host-to-device copies; a no-op with a warning on a machine without a GPU)
train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='VKITTI2Dataset', data_root=data_root, split='train',
                 class_map=class_map, max_depth=max_depth, tasks=tasks,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VKITTI2Dataset', data_root=data_root, split='val', variations=['clone'],
                 class_map=class_map, max_depth=max_depth, tasks=tasks,
                 pipeline=test_pipeline))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test',
                                                    variations=None))
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
