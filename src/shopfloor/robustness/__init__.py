"""The robustness report (`shopfloor robustness`): a model's metric as a function of perturbation strength.

A model can score well on held-out data and still fail on the line when a sensor drifts, a camera's lighting
ages or someone (or some noise) pushes its inputs just so. This package measures how fast the metric falls:

- `probe.Probe`: what a task gives through the contract hook `Estimator.robustness_probe(data)`: its inputs
  for the data as a tensor of raw readings (or grey levels), a differentiable function from them to its
  outputs, the loss an attack raises, the metric, and each input's spread and typical value;
- `perturb`: the perturbations (Gaussian noise in units of each input's spread, one input stuck at its
  median or missing, and for images blur, brightness, JPEG quality and small rotations);
- `attacks`: FGSM and PGD within an L-infinity budget on the normalised inputs (raw / spread);
- `curves.robustness_curves`: every curve that fits the task, and the inputs the model leans on most;
- `page.write_page`: the report page, one plot per curve.
"""
