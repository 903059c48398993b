# Zero-shot task transfer VKITTI2 -> Cityscapes, step 1 of 2 (the source model, the paper's
# setting): S-D-N with adapters and TROA on Virtual KITTI 2, labels in the 8 classes it shares
# with Cityscapes (class_maps/vkitti2_to_cityscapes8.json). Step 2
# (zeroshot_troa-vtagml-swinv2-base_1xb8-40k_vkitti2-to-cityscapes-256x512_{s,sd}-to-sdn.py)
# loads its last checkpoint. Prepare the data (`python data_prep/vkitti2.py`), set
# model.encoder.pretrained to the local timm checkpoint, then `python tools/train.py <this>`.
_base_ = ['../vtagml/vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdn.py']
model = dict(weighting=dict(type='TROAWeighting', eta=0.1, rho=0.5, eps=0.1,
                            gradient_mode='params', loss_weighting=True))
custom_hooks = _base_.custom_hooks + [dict(type='TROAHook', interval=10)]
