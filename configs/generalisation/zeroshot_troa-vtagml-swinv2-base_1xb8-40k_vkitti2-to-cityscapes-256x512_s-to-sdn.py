# Zero-shot task transfer VKITTI2 -> Cityscapes, step 2 of 2 (the paper's setting): the S-D-N
# source model (the _base_ below, trained on Virtual KITTI 2) adapted on Cityscapes with only S
# labelled, then S, D and N evaluated on Cityscapes val. Cityscapes labels are read in the same
# 8-class protocol as the source (class_maps/cityscapes_to_cityscapes8.json; the other 11
# classes and the void labels are unlabelled). Prepare Cityscapes
# (`python data_prep/cityscapes.py --src data/cityscapes`), run step 1, then
# `python tools/train.py <this config>` (`load_from`: step 1's last checkpoint).
# What is trained and what is evaluated: see the synthetic leaf
# zeroshot_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_s-to-sdn.py.
_base_ = ['./zeroshot-source_troa-vtagml-swinv2-base_1xb8-40k_vkitti2-256x512_sdn.py',
          '../_base_/uda/cityscapes_target.py']
source_work_dir = 'work_dirs/zeroshot-source_troa-vtagml-swinv2-base_1xb8-40k_vkitti2-256x512_sdn'
load_from = source_work_dir + '/iter_40000.pth'
train_tasks = ['seg']
model = dict(train_tasks=train_tasks)
# Cityscapes as in configs/_base_/datasets/cityscapes_sdne.py (the pipelines and working size
# of configs/_base_/uda/cityscapes_target.py; labels are read here), in the source's label
# protocol
cityscapes_class_map = _base_.class_map
cityscapes_tasks = [
    dict(type='SemanticTask', num_classes=8, class_names=_base_.vkitti2_classes),
    dict(type='DepthTask', metric_cfg=dict(min_depth=1e-3, max_depth=_base_.max_depth)),
    dict(type='NormalTask'),
]
_cityscapes = dict(_base_.target_dataset, max_depth=_base_.max_depth,
                   class_map=cityscapes_class_map)
# the training dataset lists only the labelled tasks: Cityscapes' depth and normals are never
# read in training
train_dataloader = dict(
    dataset=dict(_cityscapes, _delete_=True, split='train', tasks=cityscapes_tasks[:1],
                 pipeline=_base_.cityscapes_train_pipeline))
val_dataloader = dict(
    batch_size=4,
    dataset=dict(_cityscapes, _delete_=True, split='val', tasks=cityscapes_tasks,
                 pipeline=_base_.cityscapes_test_pipeline))
test_dataloader = val_dataloader
