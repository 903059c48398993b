# Zero-shot task transfer on the synthetic scenes with S and D labelled on the target: as the
# S-only leaf (the _base_ below: commands, what is trained and evaluated), D trained too; N is
# evaluated only.
_base_ = ['./zeroshot_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_s-to-sdn.py']
target_tasks = _base_.tasks[:2]
train_tasks = ['seg', 'depth']
model = dict(train_tasks=train_tasks)
train_dataloader = dict(dataset=dict(tasks=target_tasks))
