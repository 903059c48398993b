# VTAGML adapter model with LIGHT decoders: as vtagml_swinv2_tiny.py, but no Swin blocks in the
# decoders' 1/32 stage. With the encoder's widths mirrored the 1/32 stage is the widest (the
# encoder's last width), so its two blocks hold most of a decoder's parameters (68 % at
# Swin-V2-S) at the coarsest resolution; the 1/32 features still reach the decoder through
# its x2 expansion (the accuracy cost is measured by training the light synthetic leaf
# configs/vtagml/vtagml-light_* next to the full one). Trainable parameters, S-D-N-E, built
# with random init: Swin-V2-S window 7 at 224 px 86.6 M full -> 29.8 M light (6.69 M per
# decoder), against 51.0 M (~6.8 M per decoder) in the authors' release; count any decoder
# setting with mtl_adapters.models.decoders.swin_decoder_num_params.
_base_ = ['./vtagml_swinv2_tiny.py']
model = dict(decoder=dict(depths=(0, 2, 2, 2)))
