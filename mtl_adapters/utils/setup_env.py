"""Process-wide setup: offline hubs, registry scope, and the weights-only checkpoint loader."""
import os


def setup_offline_env() -> None:
    """No network at run time: timm must not retry the hub, albumentations must not phone home."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every sub-package so all registries are filled; set the default scope."""
    setup_offline_env()
    import mtl_adapters.datasets  # noqa: F401
    import mtl_adapters.engine  # noqa: F401
    import mtl_adapters.evaluation  # noqa: F401
    import mtl_adapters.models  # noqa: F401
    import mtl_adapters.tasks  # noqa: F401
    import mtl_adapters.visualization  # noqa: F401
    import mtl_adapters.weighting  # noqa: F401
    from .checkpoint import register_safe_checkpoint_loader
    register_safe_checkpoint_loader()
    if init_default_scope:
        from mmengine.registry import DefaultScope
        if DefaultScope.get_current_instance() is None or \
                DefaultScope.get_current_instance().scope_name != 'mtl_adapters':
            DefaultScope.get_instance(f'mtl_adapters-{id(object())}', scope_name='mtl_adapters')
