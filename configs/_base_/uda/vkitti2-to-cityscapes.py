# Unsupervised domain adaptation Virtual KITTI 2 -> Cityscapes (paper setting, S-D-N-E):
# frozen Swin-V2-B + adapters + Swin decoders trained on labelled VKITTI2 (configs/vtagml/,
# the 8 classes the two share) and unlabelled Cityscapes train images, evaluated on Cityscapes
# val in the same 8 classes (CityscapesDataset class_map='cityscapes8'). Cityscapes labels are
# never read in training (target pipeline with_labels=False). The Cityscapes target:
# ./cityscapes_target.py; the UDA machinery: ./uda_runtime.py. Leaf configs choose the
# strategies (model.uda_cfg). Prepare both datasets (data_prep/vkitti2.py,
# data_prep/cityscapes.py) and set model.encoder.pretrained.
_base_ = ['../../vtagml/vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdne.py',
          './cityscapes_target.py', './uda_runtime.py']
# the source's protocol on the target: 'cityscapes8' (XTAM-UDA's, the paper's comparison) or
# 'cityscapes8-labeldefs' (Cityscapes' definitions); class_maps/*.json 'follows' names each
target_class_map = _base_.class_map
model = dict(type='UDAMultiTaskModel')
# --- the same in every <source>-to-cityscapes.py (it needs the source's values) ---
# the target in the source's tasks and label protocol
_target_dataset = dict(class_map=target_class_map, max_depth=_base_.max_depth,
                       tasks=_base_.tasks)
target_dataloader = dict(_base_.target_dataloader,
                         dataset=dict(_base_.target_dataloader.dataset, **_target_dataset))
val_dataloader = dict(_base_.target_val_dataloader, _delete_=True,
                      dataset=dict(_base_.target_val_dataloader.dataset, **_target_dataset))
test_dataloader = val_dataloader
train_cfg = dict(_base_.uda_loop, _delete_=True, max_iters=_base_.max_iters,
                 val_interval=_base_.val_interval, target_dataloader=target_dataloader)
optim_wrapper = dict(_base_.uda_optim_wrapper, _delete_=True, model=_base_.optim_wrapper)
