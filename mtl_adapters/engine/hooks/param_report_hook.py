"""Log the model's parameter report (total, trainable, per component) before training."""
from mmengine.hooks import Hook

from mtl_adapters.models.param_report import format_param_report, parameter_report
from mtl_adapters.registry import HOOKS


@HOOKS.register_module()
class ParamReportHook(Hook):
    """Print ``parameter_report`` of the model as a table at ``before_train``."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        """Log the parameter table once, from rank 0's logger."""
        report = parameter_report(runner.model)
        runner.logger.info('parameter report\n' + format_param_report(report))
