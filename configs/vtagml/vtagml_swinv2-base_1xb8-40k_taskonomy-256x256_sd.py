# Paper setting, S-D: the S-D-N-E Taskonomy model narrowed to the first 2 tasks (the dataset still
# loads all; the metric evaluates what the model predicts).
_base_ = ['./vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py']
model = dict(tasks=_base_.tasks[:2])
