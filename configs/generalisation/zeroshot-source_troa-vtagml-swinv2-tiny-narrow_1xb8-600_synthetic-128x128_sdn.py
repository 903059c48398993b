# Zero-shot task transfer on the synthetic scenes, step 1 of 2 (the source model): S-D-N with
# adapters and TROA on data/synthetic (the 'default' style). Its last checkpoint holds the
# adapters, every task's decoder and head and TROA's affinity W; step 2
# (zeroshot_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_{s,sd}-to-sdn.py)
# loads it. Train it with `python tools/train.py <this config>` (README, "Generalisation
# settings").
_base_ = ['../troa/troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(tasks=_base_.tasks[:3])
