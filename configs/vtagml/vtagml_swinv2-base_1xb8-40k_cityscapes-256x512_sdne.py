# Paper-style setting on Cityscapes, S-D-N-E: frozen Swin-V2-B + adapters + Swin decoders
# (as the Taskonomy leaf), trained on 256x512 crops of the 512x1024 working resolution and
# evaluated on whole 512x1024 val images. Prepare the data first:
# `python data_prep/cityscapes.py --src data/cityscapes`. Set model.encoder.pretrained to the
# local timm checkpoint (see the model base).
_base_ = [
    '../_base_/models/vtagml_swinv2_base.py',
    '../_base_/datasets/cityscapes_sdne.py',
    '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py',
]
model = dict(
    tasks=_base_.tasks[:4],
    encoder=dict(img_size=_base_.crop_size),
    decoder=dict(img_size=_base_.crop_size))
