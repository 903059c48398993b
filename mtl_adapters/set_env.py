"""Process set-up for tools and tests: fill every registry and make ``mtl_adapters`` the default
scope (as mmsegmentation's ``mmseg.utils.register_all_modules``).

It sits at the top of the package because it imports every registering sub-package, each of
which imports :mod:`mtl_adapters.registry`; keeping it out of ``registry.py`` keeps the import
graph free of circles, function-level imports included.
"""
from mmengine.registry import init_default_scope as set_default_scope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every sub-package that registers something, so every registry of
    :mod:`mtl_adapters.registry` is filled; install the weights-only checkpoint loader; make
    ``mtl_adapters`` the default scope (mmengine's ``init_default_scope``) unless
    ``init_default_scope`` is False.

    The imports are inside the function, so importing this module is cheap; and no module of
    the package imports this one (only tools, ``apis`` and benchmarks, the top floor), so these
    imports close no circle.
    """
    from mtl_adapters.utils.setup_env import setup_offline_env
    setup_offline_env()
    import mtl_adapters.datasets  # noqa: F401
    import mtl_adapters.engine  # noqa: F401
    import mtl_adapters.evaluation  # noqa: F401
    import mtl_adapters.models  # noqa: F401
    import mtl_adapters.tasks  # noqa: F401
    import mtl_adapters.visualization  # noqa: F401
    import mtl_adapters.weighting  # noqa: F401
    from mtl_adapters.utils.checkpoint import register_safe_checkpoint_loader
    register_safe_checkpoint_loader()
    if init_default_scope:
        set_default_scope('mtl_adapters')


__all__ = ['register_all_modules']
