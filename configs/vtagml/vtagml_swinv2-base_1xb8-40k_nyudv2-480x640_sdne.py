# Paper setting on NYUDv2, S-D-N-E: frozen Swin-V2-B + adapters + Swin decoders trained on the
# 795 NYUDv2 training frames (crops resized to 480x640), evaluated on the 654 test frames at
# 480x640 (NYU40 mIoU; depth within the Eigen crop, pixel-pooled). Set
# model.encoder.pretrained to the local timm checkpoint (see the model base).
_base_ = [
    '../_base_/models/vtagml_swinv2_base.py',
    '../_base_/datasets/nyudv2_sdne.py',
    '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py',
]
model = dict(tasks=_base_.tasks[:4])
