"""shopfloor: deep learning for the factory floor.

Public API: the estimators, `load`, and `__version__`. Heavy modules load on first use so
that `import shopfloor` (and `shopfloor --help`) stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
# class name -> task: one line per task
_ESTIMATORS = {
    "TabularModel": "tabular",
    "RULModel": "rul",
    "DefectModel": "defects",
    "AnomalyModel": "anomaly",
    "ProcessOptimizer": "optimize",
    "MonitorModel": "monitor",
    "DiagnoseModel": "diagnose",
    "ForecastModel": "forecast",
}
__all__ = [*_ESTIMATORS, "load", "use_device", "__version__"]


def load(folder):
    """Load a saved model folder (any task). Only safetensors and JSON are read."""
    from shopfloor.tasks.base import load as _load

    return _load(folder)


def use_device(device):
    """`with shopfloor.use_device("cuda"): model.fit(data)`: where networks train (see `shopfloor.devices`)."""
    from shopfloor.devices import use_device as _use_device

    return _use_device(device)


def __getattr__(name: str):
    if name in _ESTIMATORS:
        from shopfloor.tasks import estimator_class

        return estimator_class(_ESTIMATORS[name])
    raise AttributeError(f"module 'shopfloor' has no attribute '{name}'")
