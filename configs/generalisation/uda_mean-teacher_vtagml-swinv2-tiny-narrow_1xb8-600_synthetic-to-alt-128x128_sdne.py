# UDA on the synthetic scenes, mean teacher: an EMA copy of the student (MeanTeacherHook,
# alpha_t = min(1 - 1/(t+1), alpha); saved in checkpoints, continued on resume) labels the
# target images; the confident pixels (segmentation: softmax >= threshold; regression: the
# teacher agrees with itself on the flipped image) train the student with weight `weight`.
# Source data/synthetic, target data/synthetic_alt.
_base_ = ['../_base_/uda/synthetic_default-to-alt_demo.py']
model = dict(uda_cfg=dict(mean_teacher=dict(
    weight=1.0,
    # pseudo-labels off for the first quarter of the run (student and EMA teacher still
    # untrained), then ramped up over the next quarter; fractions of max_iters, so
    # `--cfg-options max_iters=...` keeps the proportions
    warmup_iters=_base_.max_iters // 4,
    ramp_iters=_base_.max_iters // 4,
    pseudo_labels=dict(classification=dict(threshold=0.9), regression=dict(mode='flip')))))
custom_hooks = _base_.custom_hooks + [dict(type='MeanTeacherHook', alpha=0.99)]
