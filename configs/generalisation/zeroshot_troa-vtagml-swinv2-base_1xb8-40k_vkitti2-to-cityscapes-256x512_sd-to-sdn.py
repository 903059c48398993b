# Zero-shot task transfer VKITTI2 -> Cityscapes with S and D labelled on Cityscapes: as the
# S-only leaf (the _base_ below), D trained too (stereo depth); N is evaluated only.
_base_ = ['./zeroshot_troa-vtagml-swinv2-base_1xb8-40k_vkitti2-to-cityscapes-256x512_s-to-sdn.py']
train_tasks = ['seg', 'depth']
model = dict(train_tasks=train_tasks)
train_dataloader = dict(dataset=dict(tasks=_base_.cityscapes_tasks[:2]))
