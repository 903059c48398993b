# Decoders only on the CPU demo setting: the same narrow pretrained Swin-V2-T trunk (frozen,
# nothing of the encoder trains), data, Swin decoders, schedule and budget as the adapter
# model's S-D-N-E leaf (SwinV2Encoder: the trunk runs once, its features shared by all tasks).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(
    encoder=dict(
        _delete_=True,
        type='SwinV2Encoder',
        model_name=_base_.model.encoder.model_name,
        pretrained=_base_.model.encoder.pretrained,
        img_size=_base_.model.encoder.img_size,
        model_kwargs=_base_.model.encoder.model_kwargs))
