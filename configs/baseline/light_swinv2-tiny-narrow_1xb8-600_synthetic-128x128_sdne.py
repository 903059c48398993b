# CPU demo baseline: a narrow pretrained Swin-V2 trunk (frozen) + light heads, S-D-N-E.
_base_ = [
    '../_base_/models/light_swinv2_tiny.py',
    '../_base_/datasets/synthetic_sdne.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
tasks = {{_base_.tasks}}
# the trunk: the shipped pretrained narrow Swin-V2-T (mtl_adapters/weights/, made by
# configs/pretrain/); model.encoder.pretrained=None gives a random trunk instead
model = dict(
    tasks=tasks,
    encoder=dict(pretrained='embedded://swinv2-tiny-narrow-synthetic', img_size=(128, 128),
                 model_kwargs=dict(embed_dim=32, num_heads=(1, 2, 4, 8))),
    decoder=dict(channels=32))
