# CPU demo, S-D-N-E, adapters: GradNorm (Chen et al. 2018) on the adapter parameters.
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(type='GradNormWeighting', alpha=1.5))
