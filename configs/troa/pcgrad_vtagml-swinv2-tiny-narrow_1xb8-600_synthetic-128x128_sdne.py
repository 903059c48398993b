# CPU demo, S-D-N-E, adapters: PCGrad (Yu et al. 2020) gradient surgery on the adapter parameters.
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(type='PCGradWeighting', seed=0))
