# CPU demo, S-D-N-E: a narrow pretrained Swin-V2-T trunk (frozen) with adapter blocks and one
# Swin decoder per task on the 128 px synthetic scenes. The dataset loads all tasks; the model
# (and so the metric) uses the first 4.
_base_ = [
    '../_base_/models/vtagml_swinv2_tiny.py',
    '../_base_/datasets/synthetic_sdne.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
# the trunk: the shipped pretrained narrow Swin-V2-T (mtl_adapters/weights/, made by
# configs/pretrain/); model.encoder.pretrained=None gives a random trunk instead
model = dict(
    tasks=_base_.tasks[:4],
    encoder=dict(pretrained='embedded://swinv2-tiny-narrow-synthetic', img_size=(128, 128),
                 model_kwargs=dict(embed_dim=32, num_heads=(1, 2, 4, 8)),
                 embed_dim=32),
    decoder=dict(num_heads=(8, 4, 2, 1), img_size=(128, 128), head_channels=16))
