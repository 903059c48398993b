# CPU demo, S-D: the S-D-N-E demo model narrowed to the first 2 tasks (the dataset still loads
# all; the metric evaluates what the model predicts).
_base_ = ['./vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(tasks=_base_.tasks[:2])
