# VTAGML adapter model at Swin-V2-B size with LIGHT decoders: as vtagml_swinv2_base.py, but no
# Swin blocks in the decoders' 1/32 stage (see vtagml_swinv2_tiny_light.py for why). Trainable
# parameters, S-D-N-E, built with random init at 256 px: 153.2 M full -> 52.2 M light
# (37.06 M -> 11.84 M per decoder).
_base_ = ['./vtagml_swinv2_base.py']
model = dict(decoder=dict(depths=(0, 2, 2, 2)))
