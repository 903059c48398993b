# A short iteration-based schedule for CPU demos (AdamW, linear warm-up, poly decay).
max_iters = 600
val_interval = 300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=5.0),
    # mmengine's DefaultOptimWrapperConstructor, quiet about the frozen trunk, one group per
    # set of options (engine/optimizers/frozen_trunk_optim_constructor.py)
    constructor='FrozenTrunkOptimWrapperConstructor',
    # no weight decay on the task embeddings and the weighting methods' own parameters
    # (uncertainty log-variances, GradNorm weights): decay would pull them towards 0 and bias
    # the task weighting
    paramwise_cfg=dict(custom_keys={'task_embeddings': dict(decay_mult=0.0),
                                    'weighting.': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written atomically, old checkpoints rotated out only after the new one is complete
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=val_interval,
                    max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # checkpoints that load with weights_only=True (no code runs when they are read)
    safe_checkpoint=dict(type='SafeCheckpointHook'),
    # the model's tasks against every dataloader's (same classes and options), before a run
    task_check=dict(type='TaskCheckHook'),
)
