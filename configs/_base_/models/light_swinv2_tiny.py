# Baseline: frozen Swin-V2 trunk + one light FPN decoder per task (no adapters).
# `tasks` is set by the dataset base; leaf configs write `model = dict(tasks=tasks)`.
model = dict(
    type='MultiTaskModel',
    data_preprocessor=dict(type='MultiTaskDataPreprocessor', size_divisor=32),
    encoder=dict(
        type='SwinV2Encoder',
        model_name='swinv2_tiny_window8_256',
        pretrained=None,  # path to a local timm checkpoint (.safetensors/.pth)
        img_size=(256, 256)),
    # models/decoders/light_head.py
    decoder=dict(type='LightHead', channels=64))
