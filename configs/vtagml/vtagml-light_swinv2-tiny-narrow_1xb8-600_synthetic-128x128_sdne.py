# CPU demo, S-D-N-E, LIGHT decoders: the synthetic leaf of
# vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py with no Swin blocks in the
# decoders' 1/32 stage (configs/_base_/models/vtagml_swinv2_tiny_light.py). Train both leaves
# with the same seed to put the light decoder's accuracy next to the full one's.
_base_ = [
    '../_base_/models/vtagml_swinv2_tiny_light.py',
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
