# Cityscapes as the target domain (UDA <source> -> Cityscapes, and the Cityscapes step of the
# VKITTI2 -> Cityscapes zero-shot transfer): the pipelines and loaders of
# configs/_base_/datasets/cityscapes_sdne.py (train on 256x512 crops of the 512x1024 working
# resolution rescaled by 0.5-2x, evaluate on whole 512x1024 val images); the UDA target
# dataset lists and its pipeline reads images only (with_labels=False: no label file needed).
#
# A config lists this file next to its source config (`_base_ = [<source config>,
# '.../cityscapes_target.py']`) and completes the dataset with what depends on the source:
# `class_map`, `max_depth` and `tasks`, merged into copies of `target_dataset` or of the loaders'
# datasets (configs/_base_/uda/synthia-to-cityscapes.py). mmengine cannot do that here: a base
# sees neither its sibling's variables nor a child's re-definitions. Every name here is new to
# the source configs (mmengine refuses a key that two bases both define): `target_*`,
# `cityscapes_*`. A config that does not use the loaders (zero-shot) only carries them along.
target_root = 'data/cityscapes'
target_work_size = (512, 1024)
target_crop_size = (256, 512)           # the source configs' crop size
cityscapes_train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomScale', scale_limit=(-0.5, 1.0), p=1.0),
                    dict(type='RandomCrop', height=target_crop_size[0],
                         width=target_crop_size[1], pad_if_needed=True),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
cityscapes_test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu', geometric=[dict(type='Resize', height=target_work_size[0],
                                               width=target_work_size[1])]),
    dict(type='PackMultiTaskInputs'),
]
# UDA: the target's labels are never read in training (images only)
target_pipeline = [dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False)] + \
    cityscapes_train_pipeline[1:]
target_test_pipeline = cityscapes_test_pipeline
# the dataset without class_map, max_depth and tasks (the source's; see above)
target_dataset = dict(type='CityscapesDataset', data_root=target_root,
                      work_size=target_work_size)
target_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(target_dataset, split='train', with_labels=False, pipeline=target_pipeline))
target_val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(target_dataset, split='val', pipeline=target_test_pipeline))
