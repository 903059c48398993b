# UDA synthia -> Cityscapes, mean teacher: EMA teacher (alpha 0.99) pseudo-labels on the
# Cityscapes images, confidence-filtered (segmentation softmax >= 0.9, regression tasks where
# the teacher agrees with itself on the flipped image). See
# configs/_base_/uda/synthia-to-cityscapes.py.
_base_ = ['../_base_/uda/synthia-to-cityscapes.py']
model = dict(uda_cfg=dict(mean_teacher=dict(
    weight=1.0,
    # pseudo-labels off for 1000 iterations, then ramped up over 4000: the usual
    # mean-teacher practice, not a tuned value
    warmup_iters=1000,
    ramp_iters=4000,
    pseudo_labels=dict(classification=dict(threshold=0.9), regression=dict(mode='flip')))))
custom_hooks = _base_.custom_hooks + [dict(type='MeanTeacherHook', alpha=0.99)]
