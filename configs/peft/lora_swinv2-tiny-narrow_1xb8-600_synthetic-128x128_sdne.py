# Task-conditioned LoRA (MTLoRA-style, Agiza et al., CVPR 2024) on the CPU demo setting: the
# same narrow pretrained Swin-V2-T trunk (frozen), data, Swin decoders, schedule and budget as
# the adapter model's S-D-N-E leaf; the encoder trains a shared and a per-task low-rank update
# of qkv, proj, fc1 and fc2 in the blocks the adapter model adapts (LoRASwinV2Encoder; the
# blocks before them run once for all tasks).
_base_ = ['../vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py']
model = dict(
    encoder=dict(
        _delete_=True,
        type='LoRASwinV2Encoder',
        model_name=_base_.model.encoder.model_name,
        pretrained=_base_.model.encoder.pretrained,
        img_size=_base_.model.encoder.img_size,
        model_kwargs=_base_.model.encoder.model_kwargs,
        lora_blocks=_base_.model.encoder.adapter_blocks,
        rank_shared=8,  # task-agnostic update, shared by all tasks
        rank_task=4,  # one update per task
        alpha=8.0,  # each update scaled by alpha / its rank
        targets=('qkv', 'proj', 'fc1', 'fc2')))
