"""High-level APIs: model initialisation and inference at the config's test scale."""
from .inference import (apply_test_geometry, inference_model, init_model, keep_ratio_size,
                        list_images, test_geometry)

__all__ = ['init_model', 'inference_model', 'list_images', 'test_geometry',
           'apply_test_geometry', 'keep_ratio_size']
