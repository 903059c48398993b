# Runtime shared by every config (OpenMMLab 2.x conventions).
default_scope = 'mtl_adapters'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False, window_size=20)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
custom_imports = dict(imports=['mtl_adapters.utils.setup_env'], allow_failed_imports=False)
custom_hooks = [
    # parameter table (total, trainable, per component and per task) when training starts
    dict(type='ParamReportHook'),
    # grid pictures (input | ground truth | prediction per task) of every `interval`-th
    # validation/test sample, at most `max_samples` per evaluation, written by the visualizer's
    # backends: <work_dir>/<timestamp>/vis_data/vis_image/ and TensorBoard
    dict(type='MultiTaskVisualizationHook', interval=50, max_samples=8),
]
# `tools/train.py --auto-scale-lr` scales the learning rate by (GPUs x batch per GPU) / this base
# batch: the total batch the configs' learning rates were chosen for (their names say 1xb8)
auto_scale_lr = dict(enable=False, base_batch_size=8)
