# UDA on the synthetic scenes, output-space adversarial (ADVENT-style): one discriminator per
# task on the target outputs (segmentation: its weighted self-information map; depth, normals,
# edges: their predictions), updated by its own optimiser every iteration; the student's
# adversarial term weighs lambda_adv. Source data/synthetic, target data/synthetic_alt.
_base_ = ['../_base_/uda/synthetic_default-to-alt_demo.py']
model = dict(uda_cfg=dict(adversarial=dict(
    lambda_adv=0.001,
    discriminator=dict(type='OutputDiscriminator', channels=32, num_convs=5),
    interval=1, steps=1)))
