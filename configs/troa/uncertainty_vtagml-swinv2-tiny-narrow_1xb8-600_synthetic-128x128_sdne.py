# CPU demo, S-D-N-E, adapters: homoscedastic-uncertainty weighting (Kendall et al. 2018),
# the paper's form (seg classification, the others regression).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(type='UncertaintyWeighting', classification_tasks=('seg', ),
                            mode='kendall'))
