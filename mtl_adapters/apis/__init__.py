"""High-level APIs: model initialisation and single-image inference."""
from .inference import inference_model, init_model, list_images

__all__ = ['init_model', 'inference_model', 'list_images']
