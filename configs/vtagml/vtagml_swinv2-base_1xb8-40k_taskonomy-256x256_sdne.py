# Paper setting, S-D-N-E: frozen ImageNet-22K Swin-V2-B + adapters + Swin decoders on Taskonomy
# (256 px). Set model.encoder.pretrained to the local timm checkpoint (see the model base).
_base_ = [
    '../_base_/models/vtagml_swinv2_base.py',
    '../_base_/datasets/taskonomy_sdne.py',
    '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py',
]
model = dict(tasks=_base_.tasks[:4])
