# VTAGML adapter model, paper setting: the Swin-V2-T model base at Swin-V2-B size (window 8,
# 256 px): adapter blocks in place of blocks 15-18 of stage 3 and both blocks of stage 4; one
# Swin decoder (heads 32/16/8/4, the encoder's mirrored) and conv head per task.
_base_ = ['./vtagml_swinv2_tiny.py']
model = dict(
    encoder=dict(
        model_name='swinv2_base_window8_256',
        # The paper's trunk: Swin-V2-B pre-trained on ImageNet-22K, timm model
        # "swinv2_base_window12_192.ms_in22k" (download its model.safetensors to this path;
        # docs/get_started.md). It was pre-trained with 12x12 windows (6x6 in stage 4):
        # pretrained_window_sizes scales the continuous position bias to our 8x8 windows as
        # Swin-V2 does when fine-tuning at another window size. For the ImageNet-1k window-8
        # checkpoint ("swinv2_base_window8_256.ms_in1k") set pretrained to its file and
        # model_kwargs.pretrained_window_sizes=(0, 0, 0, 0). None = random init (CPU tests).
        pretrained='weights/swinv2_base_window12_192.ms_in22k.safetensors',
        model_kwargs=dict(pretrained_window_sizes=(12, 12, 12, 6))),
    decoder=dict(num_heads=(32, 16, 8, 4)))
