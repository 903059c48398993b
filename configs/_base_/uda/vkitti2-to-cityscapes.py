# Unsupervised domain adaptation Virtual KITTI 2 -> Cityscapes (paper setting, S-D-N-E):
# frozen Swin-V2-B + adapters + Swin decoders trained on labelled VKITTI2 (configs/vtagml/,
# the 8 classes the two share) and unlabelled Cityscapes train images, evaluated on Cityscapes
# val in the same 8 classes (CityscapesDataset class_map='cityscapes8'). Cityscapes labels are
# never read in training (target pipeline with_labels=False). Leaf configs choose the
# strategies (model.uda_cfg). Prepare both datasets (data_prep/vkitti2.py, data_prep/
# cityscapes.py) and set model.encoder.pretrained.
_base_ = ['../../vtagml/vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdne.py']
target_root = 'data/cityscapes'
target_work_size = (512, 1024)
target_class_map = 'cityscapes8'
model = dict(type='UDAMultiTaskModel')
target_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomScale', scale_limit=(-0.5, 1.0), p=1.0),
                    dict(type='RandomCrop', height=_base_.crop_size[0],
                         width=_base_.crop_size[1], pad_if_needed=True),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
target_test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu', geometric=[dict(type='Resize', height=target_work_size[0],
                                               width=target_work_size[1])]),
    dict(type='PackMultiTaskInputs'),
]
_target_dataset = dict(type='CityscapesDataset', data_root=target_root,
                       work_size=target_work_size, max_depth=_base_.max_depth,
                       class_map=target_class_map, tasks=_base_.tasks)
target_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(_target_dataset, split='train', pipeline=target_pipeline))
val_dataloader = dict(
    _delete_=True,
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_target_dataset, split='val', pipeline=target_test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='UDAIterBasedTrainLoop', max_iters=_base_.max_iters,
                 val_interval=_base_.val_interval, target_dataloader=target_dataloader)
optim_wrapper = dict(
    _delete_=True,
    constructor='UDAOptimWrapperConstructor',
    model=_base_.optim_wrapper,
    discriminator=dict(type='OptimWrapper',
                       optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))))
model_wrapper_cfg = dict(type='UDADistributedDataParallel')
