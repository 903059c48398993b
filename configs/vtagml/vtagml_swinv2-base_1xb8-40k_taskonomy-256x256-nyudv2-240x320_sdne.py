# Generalisation to a new domain without fine-tuning: the Taskonomy S-D-N-E paper model
# (trained and validated on Taskonomy, unchanged) tested on the 654 NYUDv2 test frames. NYU40
# labels are mapped to Taskonomy's 17 classes (class_maps/nyu40_to_taskonomy17.json: classes
# that may hold one of the 16 objects are unlabelled). Frames are resized to 240x320, about
# Taskonomy's pixels per degree at the 256 px training crops (NYU: 63 deg over 640 px).
# Depth as in nyudv2_sdne.py (Eigen crop, 0.001..10 m, pooled); normals and texture edges as
# prepared by data_prep/nyudv2.py.
#   python tools/train.py THIS_CONFIG                       # trains on Taskonomy
#   python tools/test.py THIS_CONFIG work_dirs/.../iter_40000.pth   # evaluates on NYUDv2
_base_ = ['./vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py']
nyudv2_root = 'data/nyudv2'
nyudv2_size = (240, 320)
nyudv2_tasks = [
    dict(type='SemanticTask', num_classes=17),      # names from the dataset's class map
    dict(type='DepthTask',
         metric_cfg=dict(min_depth=1e-3, max_depth=10.0,
                         crop=(45 / 480, 471 / 480, 41 / 640, 601 / 640), per_image=False)),
    dict(type='NormalTask'),
    dict(type='EdgeTask'),
]
nyudv2_test_pipeline = [
    dict(type='LoadMultiTaskImageAndAnnotations'),
    dict(type='MultiTaskAlbu',
         geometric=[dict(type='Resize', height=nyudv2_size[0], width=nyudv2_size[1])]),
    dict(type='PackMultiTaskInputs'),
]
test_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    # NYUDv2's depth protocol (range, Eigen crop), not the Taskonomy model's: declared
    dataset=dict(_delete_=True, type='NYUDv2Dataset', data_root=nyudv2_root, split='test',
                 class_map='taskonomy17', tasks=nyudv2_tasks, own_metric_cfg=True,
                 pipeline=nyudv2_test_pipeline))
test_evaluator = dict(type='MultiTaskMetric')
