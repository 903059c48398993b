# CPU demo, S-D-N-E: the TROA leaf (the _base_ below) with its cosines replaced by zeros, the
# counterfactual of docs/methods.md#troa: the same gradients are taken at the same cost, but
# every update uses C = 0, so W moves only through its entropy prior (towards uniform rows,
# W[t] <- normalise(W[t]^(1 - eta rho))). TROA vs this leaf measures what the cosines add.
_base_ = ['./troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(weighting=dict(zero_cosines=True))
