# UDA on the synthetic scenes, both strategies: per-task output-space discriminators and
# mean-teacher pseudo-labels on the same target batch (see the two single-strategy configs).
_base_ = ['../_base_/uda/synthetic_default-to-alt_demo.py']
model = dict(uda_cfg=dict(
    adversarial=dict(lambda_adv=0.001,
                     discriminator=dict(type='OutputDiscriminator', channels=32, num_convs=5),
                     interval=1, steps=1),
    mean_teacher=dict(weight=1.0,
                      pseudo_labels=dict(classification=dict(threshold=0.9),
                                         regression=dict(mode='flip')),
                      # pseudo-labels off for the first quarter of the run, ramped up over
                      # the next quarter (fractions: a shorter max_iters keeps them)
                      warmup_iters=_base_.max_iters // 4,
                      ramp_iters=_base_.max_iters // 4)))
custom_hooks = _base_.custom_hooks + [dict(type='MeanTeacherHook', alpha=0.99)]
