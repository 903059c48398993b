# The upper bound of the synthetic domain-generalisation setting
# (dg_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_sdne.py): the same model
# trained, validated and tested on the target data/synthetic_alt, every split read under the
# target's label protocol (class_maps/synthetic_to_merged-furniture.json; the test metric
# reports the same 6 classes), so the two test results compare directly.
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
target_root = 'data/synthetic_alt'
target_class_map = 'synthetic_to_merged-furniture.json'
train_dataloader = dict(dataset=dict(data_root=target_root, class_map=target_class_map))
val_dataloader = dict(dataset=dict(data_root=target_root, class_map=target_class_map))
test_dataloader = dict(dataset=dict(data_root=target_root, class_map=target_class_map))
