# UDA vkitti2 -> Cityscapes, output-space adversarial training as the authors do: one
# discriminator per task (ADVENT sizes: 64 channels, 5 stride-2 convolutions), Adam 1e-4,
# lambda_adv 0.001, updated every iteration. See configs/_base_/uda/vkitti2-to-cityscapes.py.
_base_ = ['../_base_/uda/vkitti2-to-cityscapes.py']
model = dict(uda_cfg=dict(adversarial=dict(
    lambda_adv=0.001,
    discriminator=dict(type='OutputDiscriminator', channels=64, num_convs=5),
    interval=1, steps=1)))
