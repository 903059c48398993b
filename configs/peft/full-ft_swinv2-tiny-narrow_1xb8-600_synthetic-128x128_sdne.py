# Full fine-tuning on the CPU demo setting: the same narrow random-init Swin-V2-T trunk, data,
# Swin decoders, schedule and budget as the adapter model's S-D-N-E leaf, with every trunk
# weight trained (FullFineTuneSwinV2Encoder; the trunk runs once, its features shared by all
# tasks). As timm's Swin-V2 asks (no_weight_decay), no weight decay on the cosine attention's
# temperature and the continuous position-bias MLP.
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(
    encoder=dict(
        _delete_=True,
        type='FullFineTuneSwinV2Encoder',
        model_name=_base_.model.encoder.model_name,
        pretrained=_base_.model.encoder.pretrained,
        img_size=_base_.model.encoder.img_size,
        model_kwargs=_base_.model.encoder.model_kwargs))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'logit_scale': dict(decay_mult=0.0),
                                                     'cpb_mlp': dict(decay_mult=0.0)}))
