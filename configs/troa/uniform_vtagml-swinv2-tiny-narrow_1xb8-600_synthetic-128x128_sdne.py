# CPU demo, S-D-N-E, adapters: uniform task weighting (the sum of task losses).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(type='UniformWeighting'))
