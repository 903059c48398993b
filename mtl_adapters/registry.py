"""Registries of mtl_adapters: children of mmengine's root registries, scope ``mtl_adapters``.

Every buildable component (tasks, datasets, transforms, models, weighting methods, hooks,
metrics, visualisers) is registered here. ``locations`` makes the Registry import the
sub-package that defines a name the first time a config asks for it, so configs only need
``default_scope = 'mtl_adapters'``. :func:`mtl_adapters.set_env.register_all_modules` fills
every registry at once (what scripts and tests call first); it lives at the top of the package,
not here, because every registering module imports this one.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

#: Task definitions (semantic segmentation, depth, normals, edges, ...).
TASKS = Registry('task', scope='mtl_adapters', locations=['mtl_adapters.tasks'])
#: Datasets.
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mtl_adapters',
    locations=['mtl_adapters.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='mtl_adapters',
    locations=['mtl_adapters.datasets'])
#: Data transforms.
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mtl_adapters',
    locations=['mtl_adapters.datasets.transforms'])
#: Models and their parts (backbones, adapters, decoders, heads, losses, preprocessors).
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mtl_adapters', locations=['mtl_adapters.models'])
#: Task-weighting methods (uniform, uncertainty, GradNorm, PCGrad, TROA).
WEIGHTINGS = Registry(
    'task weighting', scope='mtl_adapters', locations=['mtl_adapters.weighting'])
#: Hooks.
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mtl_adapters', locations=['mtl_adapters.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mtl_adapters', locations=['mtl_adapters.engine'])
#: optimizers, wrappers and schedulers: mmengine's, reachable from this scope (no lookup warnings)
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope='mtl_adapters')
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mtl_adapters',
                          locations=['mtl_adapters.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            scope='mtl_adapters')
#: Training loops (``UDAIterBasedTrainLoop``: source and target batches together).
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='mtl_adapters',
    locations=['mtl_adapters.engine'])
#: Metrics.
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='mtl_adapters',
    locations=['mtl_adapters.evaluation'])
#: Visualisers and their backends.
VISUALIZERS = Registry(
    'visualizer', parent=MMENGINE_VISUALIZERS, scope='mtl_adapters',
    locations=['mtl_adapters.visualization'])
VISBACKENDS = Registry(
    'vis_backend', parent=MMENGINE_VISBACKENDS, scope='mtl_adapters',
    locations=['mtl_adapters.visualization'])


__all__ = [
    'TASKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'WEIGHTINGS', 'HOOKS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'PARAM_SCHEDULERS', 'LOOPS',
    'METRICS', 'VISUALIZERS', 'VISBACKENDS'
]
