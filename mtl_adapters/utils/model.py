"""The one way to get the bare model out of mmengine's wrappers (DDP, FSDP, ...)."""
from mmengine.model import is_model_wrapper


def unwrap_model(model):
    """``model.module`` for an mmengine model wrapper (``MMDistributedDataParallel`` and the
    other registered wrappers), else ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
