# The CPU demo (vtagml_swinv2-tiny-narrow_..._sdne.py) trained with FSDP instead of DDP: the
# whole switch is the second `_base_` entry (configs/_base_/fsdp.py). Two processes of 4 images
# (the demo's batch of 8); on a machine without GPUs they use gloo and CPU tensors:
#   torchrun --nproc_per_node 2 tools/train.py \
#       configs/vtagml/vtagml-fsdp_swinv2-tiny-narrow_2xb4-600_synthetic-128x128_sdne.py \
#       --launcher pytorch
_base_ = [
    './vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py',
    '../_base_/fsdp.py',
]
train_dataloader = dict(batch_size=4)
