# VTAGML adapter model: frozen Swin-V2-T trunk (run once) + shared task-conditioned adapter
# blocks (last 4 blocks of stage 3, all of stage 4) + one Swin decoder and conv head per task.
# `tasks` is set by the dataset base; leaf configs write `model = dict(tasks=...)`.
model = dict(
    type='MultiTaskModel',
    data_preprocessor=dict(type='MultiTaskDataPreprocessor', size_divisor=32),
    encoder=dict(
        type='AdaptedSwinV2Encoder',
        model_name='swinv2_tiny_window8_256',
        pretrained=None,  # path to a local timm checkpoint (.safetensors/.pth)
        img_size=(256, 256),
        adapter_blocks={2: (-4, -3, -2, -1), 3: 'all'},
        embed_dim=64,
        reduction=4,
        shared_attn_bias=False,
        train_adapted_blocks=False),
    decoder=dict(
        type='SwinDecoder',
        depths=(2, 2, 2, 2),
        num_heads=(24, 12, 6, 3),  # the encoder's, mirrored
        window_size=8,
        img_size=(256, 256),
        head_channels=32))  # full-resolution channels into its ConvTaskHead (models/heads/)
