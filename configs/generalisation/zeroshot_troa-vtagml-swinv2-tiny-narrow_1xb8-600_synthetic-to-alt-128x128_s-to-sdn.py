# Zero-shot task transfer on the synthetic scenes, step 2 of 2: the S-D-N source model (the
# _base_ below, trained on data/synthetic, 'default' style) adapted on data/synthetic_alt
# (another appearance; same classes and geometry distribution) where only S is labelled, then
# every task evaluated there. Run step 1 first (`python tools/train.py <the _base_ config>`),
# then `python tools/train.py <this config>`: `load_from` is step 1's last checkpoint.
# What is trained and what is evaluated:
# * model.train_tasks: the tasks labelled on the target (here S). D and N are evaluated only:
#   their decoders and heads keep the source's values (frozen), they get no loss, and TROA
#   updates W only among the trained tasks (D's and N's rows and columns stay the source's).
#   The shared adapters and S's task embedding adapt through S; D's and N's task embeddings
#   keep the source's values (model.freeze_eval_only_embeddings=True, the default; False
#   lets them move).
# * the training dataset lists only the labelled tasks, so the target's D and N labels are
#   never read; validation and test list every task and report S, D and N on the target.
_base_ = ['./zeroshot-source_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdn.py']
source_work_dir = ('work_dirs/'
                   'zeroshot-source_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdn')
load_from = source_work_dir + '/iter_600.pth'
target_root = 'data/synthetic_alt'
# the tasks labelled on the target: their configs (a prefix of the source's S-D-N) and names
target_tasks = _base_.tasks[:1]
train_tasks = ['seg']
model = dict(train_tasks=train_tasks)
train_dataloader = dict(dataset=dict(data_root=target_root, tasks=target_tasks))
val_dataloader = dict(dataset=dict(data_root=target_root))
test_dataloader = dict(dataset=dict(data_root=target_root))
