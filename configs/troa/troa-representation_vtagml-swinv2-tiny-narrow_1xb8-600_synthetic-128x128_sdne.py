# CPU demo, S-D-N-E, adapters + TROA on the representation entering the first adapter block
# (one backward gives every task's gradient: the cheaper mode).
_base_ = ['./troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(gradient_mode='representation'))
