# VTAGML adapter model, paper setting: frozen ImageNet-22K Swin-V2-B (window 8, 256 px) with
# adapter blocks in place of blocks 15-18 of stage 3 and both blocks of stage 4; one Swin
# decoder (heads 32/16/8/4, mirrored) and conv head per task.
model = dict(
    type='MultiTaskModel',
    data_preprocessor=dict(type='MultiTaskDataPreprocessor', size_divisor=32),
    encoder=dict(
        type='AdaptedSwinV2Encoder',
        model_name='swinv2_base_window8_256',
        # local timm checkpoint, None = random init. The paper's ImageNet-22K weights are
        # "timm/swinv2_base_window12_192.ms_in22k" (model.safetensors): with them also set
        # model_kwargs=dict(pretrained_window_sizes=(12, 12, 12, 6)) so the continuous
        # position bias is scaled as in pre-training. The window-8 ImageNet-1k checkpoint
        # ("timm/swinv2_base_window8_256.ms_in1k") loads as it is.
        pretrained='weights/swinv2_base_window8_256.safetensors',
        img_size=(256, 256),
        adapter_blocks={2: (-4, -3, -2, -1), 3: 'all'},
        embed_dim=64,
        reduction=4,
        shared_attn_bias=False,
        train_adapted_blocks=False),
    decoder=dict(
        type='SwinDecoder',
        depths=(2, 2, 2, 2),
        num_heads=(32, 16, 8, 4),
        window_size=8,
        img_size=(256, 256),
        head_channels=32))
