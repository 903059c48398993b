# Paper setting on Virtual KITTI 2, S-D-N-E: frozen Swin-V2-B + adapters + Swin decoders,
# 256x512 crops of the 1242x375 frames, labels in the 8 classes shared with Cityscapes (the
# source side of VKITTI2 -> Cityscapes). Prepare the data with `python data_prep/vkitti2.py`
# and set model.encoder.pretrained to the local timm checkpoint (see the model base).
_base_ = [
    '../_base_/models/vtagml_swinv2_base.py',
    '../_base_/datasets/vkitti2_sdne.py',
    '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py',
]
model = dict(tasks=_base_.tasks[:4], encoder=dict(img_size=_base_.crop_size),
             decoder=dict(img_size=_base_.crop_size))
