# Paper setting on Virtual KITTI 2, S-D: the S-D-N-E model narrowed to the first 2 tasks (the
# dataset still loads all; the metric evaluates what the model predicts).
_base_ = ['./vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdne.py']
model = dict(tasks=_base_.tasks[:2])
