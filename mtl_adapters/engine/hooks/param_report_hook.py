"""Log the model's parameter report (total, trainable, per component) before training."""
import contextlib

from mmengine.hooks import Hook
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

from mtl_adapters.models.param_report import format_param_report, parameter_report
from mtl_adapters.registry import HOOKS


@HOOKS.register_module()
class ParamReportHook(Hook):
    """Print ``parameter_report`` of the model as a table at ``before_train``."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        """Log the parameter table once, from rank 0's logger. Under FSDP
        (configs/_base_/fsdp.py) the parameters are counted gathered: a rank holds flat
        shards, whose shapes are not the parameters' (a collective: every rank runs it)."""
        model = runner.model
        full = FSDP.summon_full_params(model, writeback=False) if isinstance(model, FSDP) \
            else contextlib.nullcontext()
        with full:
            report = parameter_report(model)
        runner.logger.info('parameter report\n' + format_param_report(report))
