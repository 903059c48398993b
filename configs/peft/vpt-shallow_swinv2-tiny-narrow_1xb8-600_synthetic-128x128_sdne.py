# VPT-shallow (Jia et al., ECCV 2022) on the CPU demo setting: the same narrow pretrained
# Swin-V2-T trunk (frozen), data, Swin decoders, schedule and budget as the adapter model's
# S-D-N-E leaf; the encoder trains only per-task prompts, p of them at the input of the first
# block, carried through every block and patch merging (VPTSwinV2Encoder).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(
    encoder=dict(
        _delete_=True,
        type='VPTSwinV2Encoder',
        model_name=_base_.model.encoder.model_name,
        pretrained=_base_.model.encoder.pretrained,
        img_size=_base_.model.encoder.img_size,
        model_kwargs=_base_.model.encoder.model_kwargs,
        num_prompts=10,  # per task
        deep=False))
