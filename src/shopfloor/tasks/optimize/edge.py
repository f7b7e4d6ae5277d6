"""The optimiser's edge hooks (`Estimator.edge_hooks`): it has neither, and says why.

Its answer is a search over settings through a Gaussian-process surrogate, not one network's forward pass:
there is no graph to quantise (it has no ONNX export either), and "its inputs perturbed" would be settings it
chooses itself; its own report already shows how uncertain each prediction is.
"""

from __future__ import annotations

from shopfloor.errors import NotSupported


def edge_data(model, data, truth=None):
    raise NotSupported(f"{model.described_as} has no int8 export: it searches settings through a Gaussian-process "
                       "surrogate, not a network graph (and has no ONNX export to quantise)")


def robustness_probe(model, data, truth=None):
    raise NotSupported(f"{model.described_as} has no robustness report: it chooses its inputs (the settings) itself; "
                       "its report shows each prediction's uncertainty instead")
