# Source-only baseline of the synthetic UDA configs: the VTAGML demo model trained on the
# labelled source `data/synthetic` alone (no target images), validated and tested on the target
# `data/synthetic_alt` (another style). The adapted configs (uda_*_synthetic-to-alt) are
# compared with it.
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
target_root = 'data/synthetic_alt'
val_dataloader = dict(dataset=dict(data_root=target_root))
test_dataloader = dict(dataset=dict(data_root=target_root))
