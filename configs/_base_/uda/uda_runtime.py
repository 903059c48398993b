# The UDA machinery every domain-adaptation config shares. A UDA config lists this file next to
# its source config (`_base_ = [<source config>, ..., './uda_runtime.py']`) and states what
# needs the source (mmengine: a base cannot read its sibling's variables, and two bases may not
# define the same key):
#   model = dict(type='UDAMultiTaskModel', uda_cfg=...)
#   train_cfg = dict(_base_.uda_loop, _delete_=True, max_iters=_base_.max_iters,
#                    val_interval=_base_.val_interval, target_dataloader=target_dataloader)
#   optim_wrapper = dict(_base_.uda_optim_wrapper, _delete_=True, model=_base_.optim_wrapper)
# one source and one target batch per iteration (mtl_adapters/engine/loops.py)
uda_loop = dict(type='UDAIterBasedTrainLoop')
# two optimisers: the model's (the source's schedule, frozen trunk skipped: `model=`) and the
# discriminators' (Adam as in AdaptSegNet/ADVENT); the param_scheduler list applies to both. A
# model without discriminators (mean teacher only) leaves `discriminator` unused.
uda_optim_wrapper = dict(
    constructor='UDAOptimWrapperConstructor',
    discriminator=dict(type='OptimWrapper',
                       optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))))
# DDP: the student and the discriminators averaged separately (models/uda/distributed.py)
model_wrapper_cfg = dict(type='UDADistributedDataParallel')
