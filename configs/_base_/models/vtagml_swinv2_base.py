# VTAGML adapter model, paper setting: the Swin-V2-T model base at Swin-V2-B size (window 8,
# 256 px): adapter blocks in place of blocks 15-18 of stage 3 and both blocks of stage 4; one
# Swin decoder (heads 32/16/8/4, the encoder's mirrored) and conv head per task.
_base_ = ['./vtagml_swinv2_tiny.py']
model = dict(
    encoder=dict(
        model_name='swinv2_base_window8_256',
        # local timm checkpoint, None = random init. The paper's ImageNet-22K weights are
        # "timm/swinv2_base_window12_192.ms_in22k" (model.safetensors): with them also set
        # model_kwargs=dict(pretrained_window_sizes=(12, 12, 12, 6)) so the continuous
        # position bias is scaled as in pre-training. The window-8 ImageNet-1k checkpoint
        # ("timm/swinv2_base_window8_256.ms_in1k") loads as it is.
        pretrained='weights/swinv2_base_window8_256.safetensors'),
    decoder=dict(num_heads=(32, 16, 8, 4)))
