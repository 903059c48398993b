# Paper setting on SYNTHIA-RAND-CITYSCAPES, S-D-N-E: frozen Swin-V2-B + adapters + Swin decoders,
# 256x512 training crops, evaluation on our held-out `val` frames at 1280x760. Run
# `python data_prep/synthia.py --src data/synthia` first; set model.encoder.pretrained to the
# local timm checkpoint (see the model base).
_base_ = [
    '../_base_/models/vtagml_swinv2_base.py',
    '../_base_/datasets/synthia_sdne.py',
    '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py',
]
model = dict(tasks=_base_.tasks[:4])
