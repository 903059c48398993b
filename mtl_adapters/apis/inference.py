"""Inference: build a model from a config + checkpoint; predict images of any size, in batches,
at the scale of the config's test pipeline, with every prediction mapped back to the input."""
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor
from mmengine.runner import load_checkpoint

from mtl_adapters.registry import MODELS
from mtl_adapters.set_env import register_all_modules
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


#: test-time geometry that inference can undo (a resize); anything else is refused by name
_RESIZES = ('Resize', 'LongestMaxSize', 'SmallestMaxSize')


def test_geometry(cfg) -> List[dict]:
    """The geometric transforms of the config's test pipeline (``MultiTaskAlbu.geometric`` in
    ``test_dataloader.dataset.pipeline``): what ``tools/test.py`` does to an image's size.
    Only resizes can be mapped back to the input; another transform is an error naming it."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', None)
    if pipeline is None:
        pipeline = cfg.get('test_pipeline', [])
    geometry = []
    for step in pipeline:
        if step.get('type') == 'MultiTaskAlbu':
            geometry.extend(dict(t) for t in step.get('geometric') or [])
    for t in geometry:
        if t.get('type') not in _RESIZES:
            raise ValueError(f'the test pipeline applies {t.get("type")!r}; inference maps '
                             f'predictions back to the input and can only undo {_RESIZES}')
    return geometry


def keep_ratio_size(size: Tuple[int, int], box: Tuple[int, int]) -> Tuple[int, int]:
    """(h, w) of an image of ``size`` rescaled to fit ``box`` (h, w) keeping its aspect ratio,
    as mmseg's ``Resize(keep_ratio=True)``: long side <= the box's long side, short side <=
    its short side."""
    h, w = size
    scale = min(max(box) / max(h, w), min(box) / min(h, w))
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def apply_test_geometry(img: np.ndarray, geometry: Sequence[dict]) -> np.ndarray:
    """The test pipeline's resizes on one image, keeping its aspect ratio: ``Resize(height,
    width)`` becomes a keep-ratio resize into that box (the test pipeline's fixed size was
    chosen for the dataset's own aspect ratio, which a photo need not have); albumentations'
    ``LongestMaxSize``/``SmallestMaxSize`` keep the ratio already and run as they are."""
    import albumentations as A
    for t in geometry:
        params = {k: v for k, v in t.items() if k != 'type'}
        if t['type'] == 'Resize':
            h, w = keep_ratio_size(img.shape[:2], (params.pop('height'), params.pop('width')))
            transform = A.Resize(height=h, width=w, **params)
        else:
            transform = getattr(A, t['type'])(**params)
        img = transform(image=img)['image']
    return img


def _image(img_or_path) -> Tuple[np.ndarray, dict]:
    """(HxWx3 uint8 RGB image, metainfo) from a path or an array."""
    if isinstance(img_or_path, (str, Path)):
        img = read_image(img_or_path, unchanged=False,
                         hint='pass an image file (PNG, JPEG, ...)')
        return img, dict(img_path=str(img_or_path))
    img = np.asarray(img_or_path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
        raise ValueError(f'inference_model: expected an HxWx3 uint8 RGB image, got '
                         f'{img.dtype} {img.shape}')
    return img[..., :3], {}


def prepare_image(img_or_path, geometry: Sequence[dict]) -> Tuple[Tensor, MultiTaskDataSample]:
    """One image -> ((3, h, w) uint8 tensor at the test scale, its sample with
    ``ori_shape`` (the input's size) and ``img_shape`` (the network's))."""
    img, meta = _image(img_or_path)
    ori = img.shape[:2]
    img = apply_test_geometry(img, geometry)
    meta.update(ori_shape=tuple(ori), img_shape=tuple(img.shape[:2]))
    tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return tensor, MultiTaskDataSample(metainfo=meta)


@torch.no_grad()
def inference_model(model: torch.nn.Module, images, batch_size: int = 1,
                    keep_logits: bool = False, geometry: Optional[Sequence[dict]] = None):
    """Predict every task of one image or a list of images (paths or HxWx3 uint8 RGB arrays)
    of any size, at the scale the model was tested at, and map every prediction back to the
    input's size and units.

    Each image is resized (keeping its aspect ratio) by the config's test-time geometry
    (``test_geometry(model.cfg)``; none: native size), normalised and padded by the model's
    data preprocessor, predicted (``model.test_cfg``: whole or sliding window; the trunk runs
    once per image for all tasks), and each task's raw output is resized bilinearly back to
    the input before ``task.postprocess`` (logit-bilinear labels, re-normalised normals,
    depth in metres). Consecutive images of equal test size are batched (``batch_size``), so
    batched and single inference pad alike and give the same outputs.

    Returns a ``MultiTaskDataSample`` with ``pred_<task>`` (C, H, W) (and ``logits_<task>``
    with ``keep_logits``), or a list of them for a list input.
    """
    single = isinstance(images, (str, Path, np.ndarray))
    images = [images] if single else list(images)
    if geometry is None:
        geometry = test_geometry(model.cfg) if hasattr(model, 'cfg') else []
    was_training = model.training
    model.eval()
    results: List[MultiTaskDataSample] = []
    try:
        batch: List[Tuple[Tensor, MultiTaskDataSample]] = []

        def flush():
            if batch:
                data = model.data_preprocessor(
                    dict(inputs=[t for t, _ in batch], data_samples=[s for _, s in batch]),
                    False)
                results.extend(model.predict(data['inputs'], data['data_samples'],
                                             rescale=True, keep_logits=keep_logits))
                batch.clear()

        for item in images:
            tensor, sample = prepare_image(item, geometry)
            if batch and (len(batch) >= batch_size
                          or batch[0][0].shape[-2:] != tensor.shape[-2:]):
                flush()
            batch.append((tensor, sample))
        flush()
    finally:
        model.train(was_training)
    return results[0] if single else results


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
