# Zero-shot task transfer VKITTI2 -> Cityscapes, step 2 of 2 (the paper's setting): the S-D-N
# source model (the _base_ below, trained on Virtual KITTI 2) adapted on Cityscapes with only S
# labelled, then S, D and N evaluated on Cityscapes val. Cityscapes labels are read in the same
# 8-class protocol as the source (class_maps/cityscapes_to_cityscapes8.json; the other 11
# classes and the void labels are unlabelled). Prepare Cityscapes
# (`python data_prep/cityscapes.py --root data/cityscapes`), run step 1, then
# `python tools/train.py <this config>` (`load_from`: step 1's last checkpoint).
# What is trained and what is evaluated: see the synthetic leaf
# zeroshot_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_s-to-sdn.py.
_base_ = ['./zeroshot-source_troa-vtagml-swinv2-base_1xb8-40k_vkitti2-256x512_sdn.py']
source_work_dir = 'work_dirs/zeroshot-source_troa-vtagml-swinv2-base_1xb8-40k_vkitti2-256x512_sdn'
load_from = source_work_dir + '/iter_40000.pth'
train_tasks = ['seg']
model = dict(train_tasks=train_tasks)
# Cityscapes as in configs/_base_/datasets/cityscapes_sdne.py, in the source's label protocol
cityscapes_root = 'data/cityscapes'
work_size = (512, 1024)
cityscapes_class_map = 'cityscapes8'
cityscapes_tasks = [
    dict(type='SemanticTask', num_classes=8, class_names=_base_.vkitti2_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=_base_.max_depth)),
    dict(type='NormalTask'),
]
cityscapes_train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomScale', scale_limit=(-0.5, 1.0), p=1.0),
                    dict(type='RandomCrop', height=_base_.crop_size[0],
                         width=_base_.crop_size[1], pad_if_needed=True),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
cityscapes_test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='Resize', height=work_size[0], width=work_size[1])]),
    dict(type='PackMultiTaskInputs'),
]
# the training dataset lists only the labelled tasks: Cityscapes' depth and normals are never
# read in training
train_dataloader = dict(
    dataset=dict(_delete_=True, type='CityscapesDataset', data_root=cityscapes_root,
                 work_size=work_size, max_depth=_base_.max_depth, split='train',
                 class_map=cityscapes_class_map, tasks=cityscapes_tasks[:1],
                 pipeline=cityscapes_train_pipeline))
val_dataloader = dict(
    batch_size=4,
    dataset=dict(_delete_=True, type='CityscapesDataset', data_root=cityscapes_root,
                 work_size=work_size, max_depth=_base_.max_depth, split='val',
                 class_map=cityscapes_class_map, tasks=cityscapes_tasks,
                 pipeline=cityscapes_test_pipeline))
test_dataloader = val_dataloader
