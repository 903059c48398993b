# CPU demo, S-D-N-E, adapters + TROA (docs/methods.md#troa): every 10 iterations the per-task
# gradients on the adapter parameters (two batch halves) update the task affinity W, which
# conditions the adapters (theta_hat = W theta) and weights the losses (lambda = N mean_t W).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(type='TROAWeighting', eta=0.1, rho=0.5, eps=0.1,
                            gradient_mode='params', loss_weighting=True))
custom_hooks = _base_.custom_hooks + [dict(type='TROAHook', interval=10)]
