"""Single-image inference: build a model from a config + checkpoint, predict any image size."""
from pathlib import Path
from typing import Iterable, List, Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mtl_adapters.registry import MODELS, register_all_modules
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.utils import load_config, read_image

#: file suffixes taken as images when a folder is given
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None,
               device: str = 'cpu', cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build the config's model, load ``checkpoint`` (mmengine ``load_checkpoint``, strict),
    move it to ``device`` and switch to eval mode. The config is kept as ``model.cfg``."""
    register_all_modules()
    if isinstance(config, Config):
        cfg = config
        cfg.merge_from_dict(cfg_options or {})
    else:
        cfg = load_config(str(config), cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {getattr(cfg, "filename", config)} has no `model`')
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        load_checkpoint(model, str(checkpoint), map_location='cpu', strict=True)
    model.cfg = cfg
    return model.to(device).eval()


def _image_and_meta(img_or_path) -> tuple:
    """(HxWx3 uint8 RGB image, metainfo) from a path or an array."""
    if isinstance(img_or_path, (str, Path)):
        img = read_image(img_or_path, unchanged=False,
                         hint='pass an image file (PNG, JPEG, ...)')
        meta = dict(img_path=str(img_or_path))
    else:
        img, meta = np.asarray(img_or_path), {}
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
            raise ValueError(f'inference_model: expected an HxWx3 uint8 RGB image, got '
                             f'{img.dtype} {img.shape}')
        img = img[..., :3]
    h, w = img.shape[:2]
    meta.update(ori_shape=(h, w), img_shape=(h, w))
    return img, meta


@torch.no_grad()
def inference_model(model: torch.nn.Module, img_or_path) -> MultiTaskDataSample:
    """Predict every task of one image (path or HxWx3 uint8 RGB array) of any size: the
    model's data preprocessor normalises it and pads it to its size divisor, the model crops
    the predictions back to the image. Returns a sample with ``pred_<task>`` (C, H, W)."""
    img, meta = _image_and_meta(img_or_path)
    sample = MultiTaskDataSample(metainfo=meta)
    inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (3, H, W)
    was_training = model.training
    model.eval()
    try:
        out = model.test_step(dict(inputs=[inputs], data_samples=[sample]))[0]
    finally:
        model.train(was_training)
    return out


def list_images(inputs: Iterable[Union[str, Path]], recursive: bool = True) -> List[Path]:
    """Expand files and folders into a sorted list of files: folders give their files with an
    image suffix, explicit files are kept whatever their suffix (``read_image`` will say
    clearly if one is not an image). A missing path raises ``FileNotFoundError``."""
    out: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = '**/*' if recursive else '*'
            out.extend(sorted(p for p in path.glob(pattern)
                              if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.exists():
            out.append(path)
        else:
            raise FileNotFoundError(f'input not found: {path}')
    return out
