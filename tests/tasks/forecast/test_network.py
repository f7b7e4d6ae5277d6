"""ForecastNet and forecast_loss: the interface's shapes, no covariates, quantiles that never cross, a step that
learns, and an ONNX export that gives torch's answer."""

from __future__ import annotations

import math

import pytest
import torch

from shopfloor.kits.onnx import export_module, frozen_copy
from shopfloor.tasks.forecast.network import ForecastNet, forecast_loss, pinball_loss

LOOKBACK, HORIZON = 48, 12


def inputs(batch: int, targets: int, past: int = 0, known: int = 0, series: int = 1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, LOOKBACK, targets + past, generator=generator),
            torch.randn(batch, LOOKBACK, known, generator=generator),
            torch.randn(batch, HORIZON, known, generator=generator),
            torch.randint(0, series, (batch,), generator=generator))


@pytest.mark.parametrize("architecture", [{}, {"mixer": True}, {"mixer": True, "mixing": True}, {"revin": False}])
def test_output_shape_with_covariates_and_many_series(architecture):
    net = ForecastNet(lookback=LOOKBACK, horizon=HORIZON, targets=2, past=3, known=4, series=5, **architecture)
    out = net(*inputs(6, 2, past=3, known=4, series=5))
    assert out.shape == (6, HORIZON, 2, 4)
    assert torch.isfinite(out).all()


def test_no_covariates_means_zero_size_tensors():
    net = ForecastNet(lookback=LOOKBACK, horizon=HORIZON, targets=1)
    history, known_history, known_future, series = inputs(3, 1)
    assert known_history.shape == (3, LOOKBACK, 0)
    assert net(history, known_history, known_future, series).shape == (3, HORIZON, 1, 4)


@pytest.mark.parametrize("quantiles", [(0.1, 0.5, 0.9), (0.05, 0.2, 0.8, 0.95), (0.9, 0.1), (0.5,), ()])
def test_quantiles_never_cross_in_the_order_given(quantiles):
    net = ForecastNet(lookback=LOOKBACK, horizon=HORIZON, targets=2, quantiles=quantiles)
    with torch.no_grad():  # random weights: the head must still keep them apart
        for parameter in net.parameters():
            parameter.add_(torch.randn_like(parameter))
        out = net(*inputs(8, 2))
    assert out.shape[-1] == 1 + len(quantiles)
    order = sorted(range(len(quantiles)), key=lambda i: quantiles[i])
    ordered = out[..., 1:][..., order]
    assert (ordered[..., 1:] >= ordered[..., :-1]).all()


def test_initial_quantiles_spread_like_a_normal_around_the_point():
    """Before training the 10 % and 90 % quantiles sit about 1.28 window spreads either side of the point forecast."""
    net = ForecastNet(lookback=LOOKBACK, horizon=HORIZON, targets=1, mixer=False).eval()
    history = torch.randn(4, LOOKBACK, 1) * 3.0 + 10.0
    out = net(history, history[..., :0], torch.zeros(4, HORIZON, 0), torch.zeros(4, dtype=torch.long))
    spread = history.std(dim=1, unbiased=False).reshape(4, 1, 1)
    low = (out[..., 0] - out[..., 1]) / spread
    high = (out[..., 3] - out[..., 0]) / spread
    assert torch.allclose(low, torch.full_like(low, 1.2816), atol=1e-2)
    assert torch.allclose(high, torch.full_like(high, 1.2816), atol=1e-2)


def test_gradient_steps_lower_the_loss_on_a_seasonal_series():
    torch.manual_seed(0)
    net = ForecastNet(lookback=LOOKBACK, horizon=HORIZON, targets=1, known=1)
    t = torch.arange(400, dtype=torch.float32)
    level = torch.sin(2 * math.pi * t / 24) + 0.01 * t
    starts = torch.arange(0, 400 - LOOKBACK - HORIZON)
    index = starts.unsqueeze(1) + torch.arange(LOOKBACK + HORIZON)
    windows = level[index].unsqueeze(-1)
    known = torch.cos(2 * math.pi * t / 24)[index].unsqueeze(-1)
    history, actual = windows[:, :LOOKBACK], windows[:, LOOKBACK:, :]
    series = torch.zeros(len(starts), dtype=torch.long)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)

    def loss():
        return forecast_loss(net(history, known[:, :LOOKBACK], known[:, LOOKBACK:], series), actual, net.quantiles)

    first = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < 0.5 * first


def test_pinball_loss_is_half_the_absolute_error_at_the_median():
    actual = torch.tensor([[[1.0], [3.0]]])
    output = torch.stack([actual, torch.zeros_like(actual)], dim=-1)  # point exact, median 0
    assert float(pinball_loss(output, actual, (0.5,))) == pytest.approx(0.5 * 2.0)
    assert float(forecast_loss(output, actual, (0.5,))) == pytest.approx(1.0)


@pytest.mark.parametrize(("sizes", "architecture"), [({"targets": 2, "past": 1, "known": 3, "series": 4}, {}),
                                                     ({"targets": 2, "past": 1, "known": 3, "series": 4},
                                                      {"mixer": True, "mixing": True}),
                                                     ({"targets": 1}, {"mixer": True})])
def test_onnx_export_matches_torch(sizes, architecture):
    import onnxruntime as ort

    net = frozen_copy(ForecastNet(lookback=LOOKBACK, horizon=HORIZON, **sizes, **architecture))
    names = ["history", "known_history", "known_future", "series"]
    example = inputs(4, sizes["targets"], sizes.get("past", 0), sizes.get("known", 0), sizes.get("series", 1))
    proto, _ = export_module(net, example, 18, names, "forecast")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    new = inputs(7, sizes["targets"], sizes.get("past", 0), sizes.get("known", 0), sizes.get("series", 1), seed=1)
    exported = session.run(["forecast"], {name: tensor.numpy() for name, tensor in zip(names, new, strict=True)})[0]
    with torch.no_grad():
        expected = net(*new).numpy()
    assert exported.shape == expected.shape
    assert abs(exported - expected).max() <= 1e-4


def test_builds_on_the_meta_device_as_a_saved_model_is_loaded():
    """shopfloor.load builds the network on the meta device to check shapes before reading the weights."""
    with torch.device("meta"):
        net = ForecastNet(lookback=LOOKBACK, horizon=HORIZON, targets=2, known=3, series=4, quantiles=(0.05, 0.5, 0.95))
    assert all(p.device.type == "meta" for p in net.parameters())


def test_sizes_no_window_can_have_are_refused():
    with pytest.raises(ValueError, match="horizon"):
        ForecastNet(lookback=LOOKBACK, horizon=0, targets=1)
