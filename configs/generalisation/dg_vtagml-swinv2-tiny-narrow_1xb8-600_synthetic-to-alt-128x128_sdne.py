# Domain generalisation on the synthetic scenes: the S-D-N-E demo model trained and validated on
# data/synthetic ('default' style), then tested on data/synthetic_alt (another appearance),
# which it never sees in training. The target is read under its own label protocol
# (class_maps/synthetic_to_merged-furniture.json: it annotates tables and cabinets as one
# 'furniture' class, which is no single model class, so those pixels are unlabelled, as NYU40's
# ambiguous classes are for Taskonomy's 17); the test metric reports S over the 6 classes the
# target can label, and D, N, E. The upper bound (trained on the target) is
# dg-oracle_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-alt-128x128_sdne.py.
#   python tools/train.py <this config>                          # source only
#   python tools/test.py <this config> work_dirs/<this config's name>/iter_600.pth   # target
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
target_root = 'data/synthetic_alt'
target_class_map = 'synthetic_to_merged-furniture.json'
test_dataloader = dict(dataset=dict(data_root=target_root, class_map=target_class_map))
