"""What a fit sets after the network has learnt: the temperature of the probabilities and the unknown verdict.

Both are set on the held-out windows (`windows.holdout_segments`): the temperature by `metrics.fit_temperature`;
the unknown verdict from every class's training windows (their spectral descriptions' mean and Ledoit-Wolf
covariance) and its radius (the class's median held-out distance times one level for all classes: the
`unknown_quantile` of the held-out windows' novelty in those units, times `unknown_margin`).
"""

from __future__ import annotations

import torch

from shopfloor.tasks.diagnose.windows import WindowSampler

CENTROID_WINDOWS = 512  # training windows per class that place its centroid and covariance
BATCH = 512


def calibrate(model, sampler: WindowSampler, x_valid: torch.Tensor, y_valid: torch.Tensor) -> None:
    from sklearn.covariance import LedoitWolf

    from shopfloor.metrics import fit_temperature

    logits, _ = model.logits_of(x_valid)
    net, k_classes = model.net_, len(model.classes_)
    generator = torch.Generator().manual_seed(model.seed)
    picked = []
    for k in range(k_classes):
        items = torch.nonzero(sampler.labels == k)[:, 0]
        picked.append(items[torch.randperm(len(items), generator=generator)[:CENTROID_WINDOWS]])
    with torch.inference_mode():
        described = [net.log_spectrum(net.normalise(sampler.windows(items, shift=False))).flatten(1).double()
                     for items in picked]
        everything = torch.cat(described)
        mean, std = everything.mean(0), everything.std(0) + 1e-3
        centroids = torch.zeros(net.centroids.shape)
        precision = torch.zeros(net.precision.shape)
        for k, own in enumerate(described):
            own = ((own - mean) / std).numpy()
            fitted = LedoitWolf().fit(own) if len(own) > 1 else None
            centroids[k] = torch.as_tensor(own.mean(0))
            precision[k] = torch.as_tensor(fitted.precision_) if fitted is not None else torch.eye(len(mean))
    with torch.no_grad():
        net.feature_mean.copy_(mean)
        net.feature_std.copy_(std)
        net.centroids.copy_(centroids)
        net.precision.copy_(precision)
        apart = torch.cat([net.distances(net.described(x_valid[i:i + BATCH])) for i in range(0, len(x_valid), BATCH)])
    own = apart[torch.arange(len(y_valid)), y_valid]
    spread = torch.stack([own[y_valid == k].median() for k in range(k_classes)])  # each class's usual distance
    nearest = (apart / spread[None]).amin(1)  # the novelty of each held-out window, in those units
    level = torch.quantile(nearest, model.unknown_quantile) * model.unknown_margin
    radius = spread * level
    with torch.no_grad():
        model.net_.temperature.fill_(fit_temperature(logits.numpy(), y_valid.numpy()))
        model.net_.radius.copy_(radius.clamp(min=1e-6))
    model.unknown_rule_ = (f"farther from every class's spectra (Mahalanobis) than {float(level):.3g} x that class's "
                          f"median held-out distance ({model.unknown_margin:g} x the {model.unknown_quantile:.1%} "
                          f"quantile of {len(y_valid)} held-out windows)")
    probability, novelty = model.answers_of(x_valid)
    decision = probability.argmax(1)
    model.validation_metrics_ = {
        "accuracy": float((decision == y_valid).float().mean()),
        "unknown_rate": float((novelty > 1).float().mean()),
        "temperature": float(model.net_.temperature),
    }
