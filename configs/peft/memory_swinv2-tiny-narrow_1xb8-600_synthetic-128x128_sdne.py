# Learnable memory (Sandler et al., CVPR 2022) on the CPU demo setting: the same narrow
# pretrained Swin-V2-T trunk (frozen), data, Swin decoders, schedule and budget as the adapter
# model's S-D-N-E leaf; the encoder trains only per-task memory tokens, m of them appended to
# the keys and values of every window of every block, as the paper puts memory in every layer
# (MemorySwinV2Encoder; only the patch embedding then runs once for all tasks).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(
    encoder=dict(
        _delete_=True,
        type='MemorySwinV2Encoder',
        model_name=_base_.model.encoder.model_name,
        pretrained=_base_.model.encoder.pretrained,
        img_size=_base_.model.encoder.img_size,
        model_kwargs=_base_.model.encoder.model_kwargs,
        memory_blocks={0: 'all', 1: 'all', 2: 'all', 3: 'all'},
        num_memory_tokens=8,  # per task and block
        init_std=0.02))
