# Paper setting on NYUDv2, S-D: the S-D-N-E NYUDv2 model narrowed to the first 2 tasks (the
# dataset still loads all; the metric evaluates what the model predicts).
_base_ = ['./vtagml_swinv2-base_1xb8-40k_nyudv2-480x640_sdne.py']
model = dict(tasks=_base_.tasks[:2])
