# 40k iterations, AdamW, linear warm-up then poly decay (the paper-scale schedule).
_base_ = ['./schedule_demo.py']
max_iters = 40000
val_interval = 4000
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=1e-6, power=1.0, by_epoch=False, begin=1500, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
