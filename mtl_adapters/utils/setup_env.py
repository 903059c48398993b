"""Process-wide environment set-up, run when the package is imported (``mtl_adapters``).

Filling the registries is :func:`mtl_adapters.set_env.register_all_modules`: it imports every
sub-package, which a ``utils`` module must not do (``utils`` is the bottom layer).
"""
import os


def setup_offline_env() -> None:
    """No network at run time: timm must not retry the hub, albumentations must not phone home."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
