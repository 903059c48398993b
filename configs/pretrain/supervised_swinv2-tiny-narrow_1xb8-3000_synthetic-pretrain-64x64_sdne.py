# Supervised multi-task pretraining of the CPU demo's narrow Swin-V2-T trunk (the shipped
# mtl_adapters/weights/swinv2-tiny-narrow_synthetic-pretrain.safetensors): the whole trunk
# trained end to end with one light FPN head per task on S-D-N-E of a synthetic corpus disjoint
# from the studied scenes (other generator seed, hence other layouts, cameras and materials; the
# 'default' style only, so the 'alt' and 'shifted' domains of the generalisation configs and
# of the claims study stay unseen).
#   python tools/pretrain.py configs/pretrain/<this file>
# generates the corpus (`corpus`, resumable) if needed, trains, and writes the trunk file.
# CPU budget: 64 px crops of the 128 px views (a quarter of the tokens per image). The crops
# cover 15-100 % of the view, so objects appear at the scales of both feeds the trunk serves:
# whole 128 px views (the demo's configs; a 15-40 % crop zoomed to 64 px) and whole 64 px views
# (the claims study; a whole view resized to 64 px). timm plans the windows for 64 px (the
# stage-3/4 windows clamp to the feature size); Swin-V2's continuous position bias carries over
# to the 128 px windows.
# Why 3000 iterations on 256 scenes (measured with scripts/frozen_feature_comparison.py: light
# heads on the frozen trunk, 3 seeds, pretrained vs random): the first shipped trunk (240
# iterations, 64 scenes, zoomed crops only) helped seg and normals a little and depth not at
# all; this one wins on every seed for seg, depth and normals. docs/benchmarks.md has both.
_base_ = [
    '../_base_/models/light_swinv2_tiny.py',
    '../_base_/datasets/synthetic_sdne.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/synthetic_pretrain-256'
# data_prep/synthetic.py's generate(): seed 20240 (the studied sets use 0 and 1000), all train
corpus = dict(num_scenes=256, views_per_scene=10, size=128, seed=20240, style='default',
              splits=(256, 0, 0))
tasks = {{_base_.tasks}}
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='RandomResizedCrop', size=crop_size, scale=(0.15, 1.0),
                         ratio=(0.75, 1.333)),
                    dict(type='HorizontalFlip', p=0.5)],
         photometric=[dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
                           hue=0.02, p=0.8)]),
    dict(type='PackMultiTaskInputs'),
]
model = dict(
    type='SupervisedTrunkPretrainModel',
    tasks=tasks,
    encoder=dict(type='FullFineTuneSwinV2Encoder', pretrained=None, img_size=crop_size,
                 model_kwargs=dict(embed_dim=32, num_heads=(1, 2, 4, 8))),
    decoder=dict(channels=32))
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
max_iters = 3000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=100, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=500, max_keep_ckpts=1), logger=dict(interval=50))
# no validation: the corpus is all training scenes; the trunk is judged on the studied scenes
# (frozen-feature comparison, decoder-only configs)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
# the trunk file tools/pretrain.py writes (relative paths: under the work dir)
trunk_out = 'trunk.safetensors'
