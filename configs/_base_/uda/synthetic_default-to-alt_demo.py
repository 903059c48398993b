# Unsupervised domain adaptation on the synthetic scenes (CPU demo): the narrow VTAGML model
# of configs/vtagml/ (frozen trunk, adapters, Swin decoders, S-D-N-E) trained on the labelled
# source `data/synthetic` (default style) and the unlabelled target `data/synthetic_alt` (alt
# style; same classes, format and splits: `python data_prep/synthetic.py --style alt`), and
# evaluated on the target's val/test splits. The target's labels are never read in training:
# its pipeline loads images only (with_labels=False) and the model refuses a target batch with
# ground truth. Leaf configs choose the strategies (model.uda_cfg): adversarial, mean teacher,
# or both. The UDA machinery (loop, optimisers, DDP wrapper): ./uda_runtime.py.
_base_ = ['../../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py',
          './uda_runtime.py']
# the source is the base's `data_root` (its training loader), the target `target_root` (the
# target loader, validation and test): `--cfg-options data_root=...` moves the source only,
# `target_root=...` the target only (mtl_adapters/utils/config.py)
target_root = 'data/synthetic_alt'
model = dict(type='UDAMultiTaskModel')
# the target batches: the source's augmentation, without labels
target_pipeline = [dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False)] + \
    _base_.train_pipeline[1:]
target_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='TaskonomyDataset', data_root=target_root, split_file='splits.csv',
                 split='train', with_labels=False, tasks=_base_.tasks, pipeline=target_pipeline))
val_dataloader = dict(dataset=dict(data_root=target_root))
test_dataloader = dict(dataset=dict(data_root=target_root))
train_cfg = dict(_base_.uda_loop, _delete_=True, max_iters=_base_.max_iters,
                 val_interval=_base_.val_interval, target_dataloader=target_dataloader)
optim_wrapper = dict(_base_.uda_optim_wrapper, _delete_=True, model=_base_.optim_wrapper)
